//! Limits on the request head, and the guarantee that every error answer
//! has the JSON error shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ward_types::ErrorCode;

use super::ApiError;

/// Most bytes of header names and values in one request (each header also
/// counts 4 bytes for its `: ` and line end, as on the wire). A request
/// over it answers 431 `headers_too_large`.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most headers in one request (431 `headers_too_large` beyond).
pub const MAX_HEADERS: usize = 100;

/// Longest request target (path and query), in bytes (414
/// `uri_too_long` beyond).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// What the HTTP/1 parser buffers while reading a request head. Heads up
/// to this size reach [`limit_head`] and get a JSON answer; a head larger
/// than this, or with more than [`PARSER_MAX_HEADERS`] headers, is refused
/// by the parser itself with a bare 431 and the connection is closed.
pub const PARSER_BUFFER_BYTES: usize = 4 << 20;

/// Most headers the HTTP/1 parser accepts (see [`PARSER_BUFFER_BYTES`]).
pub const PARSER_MAX_HEADERS: usize = 1000;

/// Refuses a request whose head is over [`MAX_HEADERS`],
/// [`MAX_HEADER_BYTES`] or [`MAX_URI_BYTES`] before any handler (or
/// credential check) sees it.
pub async fn limit_head(request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target is {uri_bytes} bytes; at most {MAX_URI_BYTES} are read"),
        )
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request has {} headers in {header_bytes} bytes; at most {MAX_HEADERS} headers in {MAX_HEADER_BYTES} bytes are read",
                headers.len()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// Largest error body read back to reuse its text as the message.
const MAX_MESSAGE_BYTES: usize = 1024;

/// Turns an error answer that is not JSON (one made by a layer or an
/// extractor outside Ward's own error type) into the JSON error shape,
/// keeping its status and headers.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = if status.is_server_error() {
        String::from("something went wrong; see the server log")
    } else {
        match axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await {
            Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_string(),
            _ => status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_string(),
        }
    };
    let fresh = ApiError::with_status(status, code_of(status), message).into_response();
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &fresh_parts.headers {
        if !parts.headers.contains_key(name) {
            parts.headers.insert(name.clone(), value.clone());
        }
    }
    Response::from_parts(parts, Body::new(fresh_body))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The error code an answer of `status` gets when nothing more precise is
/// known.
fn code_of(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::InvalidInput,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidInput,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        status if status.is_client_error() => ErrorCode::InvalidRequest,
        _ => ErrorCode::Internal,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_plain_error_answer_becomes_the_json_shape_and_keeps_its_status() {
        let app = Router::new()
            .route(
                "/plain",
                get(|| async { (StatusCode::BAD_REQUEST, "plain words") }),
            )
            .route(
                "/broken",
                get(|| async { (StatusCode::BAD_GATEWAY, "upstream details") }),
            )
            .route("/fine", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(json_errors));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let request = Request::get(path).body(Body::empty()).unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let content_type = response.headers()[header::CONTENT_TYPE].clone();
                let body = axum::body::to_bytes(response.into_body(), 4096)
                    .await
                    .unwrap();
                (status, content_type, body)
            }
        };
        let (status, content_type, body) = call("/plain").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_input", "message": "plain words"}})
        );

        // A server error's text is not passed on.
        let (status, _, body) = call("/broken").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("upstream details"));

        // Success is left alone.
        let (status, content_type, body) = call("/fine").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.to_str().unwrap().starts_with("text/plain"));
        assert_eq!(&body[..], b"ok");
    }
}
