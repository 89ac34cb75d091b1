//! One error type for every route: `{"error": {"code", "message"}}` with
//! the status the code implies. 5xx answers say only that something went
//! wrong; the cause goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ward_types::{ErrorBody, ErrorDetail};

use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::limits::Refused;
use crate::registry::{Admission, RegistryError};
use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        // Every code is declared in /openapi.json; a test that reaches an
        // undeclared one fails here.
        debug_assert!(
            ward_types::ERROR_CODES.contains(&code),
            "error code `{code}` is missing from ward_types::ERROR_CODES"
        );
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`; `cause` is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong; see the server log",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        let status = match err.code() {
            "not_found" => StatusCode::NOT_FOUND,
            "conflict" => StatusCode::CONFLICT,
            "invalid_input" => StatusCode::BAD_REQUEST,
            "quota_exceeded" | "global_read_only" => StatusCode::FORBIDDEN,
            "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_module" => StatusCode::UNPROCESSABLE_ENTITY,
            "busy" => StatusCode::SERVICE_UNAVAILABLE,
            _ => return ApiError::internal(err),
        };
        let mut error = ApiError::new(status, err.code(), err.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A compile slot is usually free again within a second or two.
            error.retry_after = Some(1);
        }
        error
    }
}

impl From<Admission> for ApiError {
    fn from(admission: Admission) -> Self {
        match admission {
            Admission::Refused(refusal) => {
                let message = match refusal.reason {
                    Refused::RateLimited => "this tenant's rate limit is reached",
                    Refused::TooManyEvaluations => {
                        "this tenant has its maximum of evaluations running"
                    }
                    Refused::BudgetExhausted => "this tenant's decisions for the month are spent",
                };
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    refusal.reason.code(),
                    message,
                );
                error.retry_after = Some(refusal.retry_after_secs);
                error
            }
            Admission::Error(err) => err.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let (status, code) = match &err {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AuthError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AuthError::Expired => (StatusCode::UNAUTHORIZED, "token_expired"),
            AuthError::TenantMismatch(_) => (StatusCode::FORBIDDEN, "tenant_mismatch"),
            AuthError::UnknownTenant(_) => (StatusCode::NOT_FOUND, "not_found"),
            AuthError::TenantRequired(_) => (StatusCode::BAD_REQUEST, "tenant_required"),
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::TenantNotAllowed(_) => (StatusCode::FORBIDDEN, "tenant_not_allowed"),
            AuthError::BadHeader(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            AuthError::Store(_) => return ApiError::internal(err),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        match err {
            AuditError::Invalid(message) => ApiError::bad_request("invalid_input", message),
            AuditError::Store(err) => ApiError::internal(err),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::LoadError;

    #[test]
    fn a_busy_compiler_is_503_with_retry_after() {
        let response = ApiError::from(RegistryError::Module(LoadError::Busy)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");

        let invalid = ApiError::from(RegistryError::Module(LoadError::CoreModule));
        assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            invalid.into_response().headers().get(header::RETRY_AFTER),
            None
        );
    }
}
