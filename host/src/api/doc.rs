//! Error answers in the OpenAPI document: the statuses every route of a
//! kind can answer, each with the `ErrorBody` schema. The statuses that
//! only one route answers are in that handler's own annotation; the
//! answers common to a kind of route (what the credential check, the body
//! and path extractors and the request-head limits refuse) are added here,
//! where they cannot be forgotten on a new route.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Adds the error answers of every operation in `openapi` and gives every
/// declared error answer the `ErrorBody` schema.
pub fn declare_errors(openapi: &mut OpenApi) {
    each_operation(openapi, declare);
}

/// Calls `visit` with every operation of `openapi` and its path.
fn each_operation(openapi: &mut OpenApi, mut visit: impl FnMut(&str, &mut Operation)) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            visit(path, operation);
        }
    }
}

fn declare(path: &str, operation: &mut Operation) {
    let mut statuses = BTreeSet::new();
    // The request-head limits and the request deadline apply to every route.
    statuses.extend([
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        StatusCode::SERVICE_UNAVAILABLE,
    ]);
    if authenticated(operation) {
        // A credential that is missing, wrong, not allowed here, or that
        // names a tenant (X-Tenant-ID) that does not exist or is required;
        // a store failure while checking it.
        statuses.extend([
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR,
        ]);
    }
    let parameters = operation.parameters.iter().flatten();
    for parameter in parameters {
        match parameter.parameter_in {
            ParameterIn::Path => {
                statuses.extend([StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND]);
            }
            ParameterIn::Query | ParameterIn::Header | ParameterIn::Cookie => {
                statuses.insert(StatusCode::BAD_REQUEST);
            }
        }
    }
    if operation.request_body.is_some() {
        statuses.extend([StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE]);
        // A write may pass a capacity quota (429 `quota_exceeded`, without
        // Retry-After).
        if authenticated(operation) {
            statuses.insert(StatusCode::TOO_MANY_REQUESTS);
        }
        // The AuthZEN routes answer a wrong content type with 400.
        if !path.starts_with("/access/") {
            statuses.insert(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
    let responses = &mut operation.responses.responses;
    for status in statuses {
        responses
            .entry(status.as_str().to_string())
            .or_insert_with(|| RefOr::T(error_response(status, None)));
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(declared)) = (is_error, &mut *response)
            && declared.content.is_empty()
        {
            let status = status.parse::<u16>().ok();
            let status = status.and_then(|s| StatusCode::from_u16(s).ok());
            if let Some(status) = status {
                let description = Some(declared.description.clone()).filter(|d| !d.is_empty());
                *declared = error_response(status, description);
            }
        }
    }
}

/// Adds `headers` (name, meaning), all optional, to every operation that
/// takes a credential.
pub fn declare_headers(openapi: &mut OpenApi, headers: &[(String, &'static str)]) {
    use utoipa::openapi::path::ParameterBuilder;
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    each_operation(openapi, |_, operation| {
        if !authenticated(operation) {
            return;
        }
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        for (name, meaning) in headers {
            parameters.push(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(*meaning))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .max_length(Some(256)),
                    ))
                    .build(),
            );
        }
    });
}

/// Whether the operation needs a credential (it has no empty security
/// requirement, which marks a public route).
fn authenticated(operation: &Operation) -> bool {
    let public = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .is_ok_and(|value| value.as_object().is_some_and(|map| map.is_empty()))
    });
    !public
}

fn error_response(status: StatusCode, description: Option<String>) -> utoipa::openapi::Response {
    let description =
        description.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
