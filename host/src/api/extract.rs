//! Request extractors whose rejections are [`ApiError`]s.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use ward_types::ErrorCode;

use super::{ApiError, AppState, blocking};
use crate::auth::Caller;
use crate::nesting;

/// A JSON body; malformed JSON, wrong types and oversized bodies answer
/// with JSON errors (400, 400, 413).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        refuse_declared_excess(&request, state.http.max_body_bytes)?;
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as `Content-Type: application/json`",
            ));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(bytes_rejection)?;
        // Before parsing: what is accepted here is stored and read back
        // wrapped in Ward's own records (crate::nesting).
        nesting::check(&body)
            .map_err(|err| ApiError::bad_request(ErrorCode::TooDeep, err.to_string()))?;
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether the body is declared JSON: `application/json` or a
/// `application/*+json` type, with or without parameters.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(declared) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            ApiError::bad_request(ErrorCode::InvalidInput, err.body_text())
        }
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request(ErrorCode::InvalidJson, err.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(err) => bytes_rejection(err),
        other => ApiError::bad_request(ErrorCode::InvalidInput, other.body_text()),
    }
}

/// A raw body; an oversized one answers 413 `too_large`.
pub struct ApiBytes(pub Bytes);

impl FromRequest<AppState> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        refuse_declared_excess(&request, state.upload_limit)?;
        Bytes::from_request(request, state)
            .await
            .map(ApiBytes)
            .map_err(bytes_rejection)
    }
}

fn too_large() -> ApiError {
    ApiError::new(ErrorCode::TooLarge, "the request body is too large")
}

/// Refuses a body whose declared length is over `limit` before reading any
/// of it, so the client learns at once and no bandwidth is spent. (Bodies
/// without a length are cut off at the limit as they arrive.)
fn refuse_declared_excess(request: &Request, limit: usize) -> Result<(), ApiError> {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(too_large()),
        _ => Ok(()),
    }
}

fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::bad_request(ErrorCode::InvalidInput, rejection.body_text())
    }
}

pub use crate::auth::TENANT_HEADER;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let authorization = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|value| {
                value.to_str().map(str::to_string).map_err(|_| {
                    ApiError::bad_request(
                        ErrorCode::InvalidInput,
                        "header authorization is not ASCII",
                    )
                })
            })
            .transpose()?;
        // API keys and the operator token are checked in memory, here; a
        // JWT may need its issuer's keys fetched or its tenant provisioned,
        // so it is verified on a blocking thread.
        let jwt = authorization
            .as_deref()
            .is_some_and(|value| value.matches('.').count() == 2);
        let caller = if jwt {
            let auth = state.auth.clone();
            let headers = parts.headers.clone();
            blocking(move || Ok(auth.authenticate(authorization.as_deref(), &headers)?)).await?
        } else {
            state
                .auth
                .authenticate(authorization.as_deref(), &parts.headers)?
        };
        if caller.cross_tenant {
            let (auth, audited) = (state.auth.clone(), caller.clone());
            let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
            blocking(move || Ok(auth.record_cross_tenant(&audited, &method, &path)?)).await?;
        }
        Ok(caller)
    }
}

/// A path parameter; one that is not UTF-8 after percent-decoding (or
/// not of the declared type) answers 400 `invalid_input`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &axum::extract::rejection::PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;
    match rejection {
        PathRejection::FailedToDeserializePathParams(err) => match err.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => ApiError::bad_request(
                ErrorCode::InvalidInput,
                format!("path parameter `{key}` is not UTF-8 once percent-decoded"),
            ),
            _ => ApiError::bad_request(ErrorCode::InvalidInput, err.body_text()),
        },
        // Only a route without parameters could ask for them: a bug here,
        // not the client's.
        other => ApiError::internal(other.body_text()),
    }
}

/// Query parameters; a repeated, unknown-typed or malformed one answers
/// 400 `invalid_input` naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                format!("query: {}", rejection.body_text()),
            )),
        }
    }
}

/// A JSON body on the AuthZEN routes: as [`ApiJson`], except that a
/// missing or non-JSON `Content-Type` answers 400 rather than 415, as the
/// AuthZEN certification scenario expects (docs/API.md).
pub struct AuthzenJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AuthzenJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match ApiJson::<T>::from_request(request, state).await {
            Ok(ApiJson(value)) => Ok(AuthzenJson(value)),
            Err(err) if err.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Err(ApiError::bad_request(
                    ErrorCode::UnsupportedMediaType,
                    "send the body as `Content-Type: application/json`",
                ))
            }
            Err(err) => Err(err),
        }
    }
}
