//! One error type for every route: `{"error": {"code", "message"}}` with
//! the status the code implies. 5xx answers say only that something went
//! wrong; the cause travels with the response to the request middleware,
//! which logs it once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ward_types::{ErrorBody, ErrorCode, ErrorDetail, Limit};

use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::decision::DecisionError;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
    /// The limit that refused the call, for the client.
    limit: Option<Box<Limit>>,
    /// Why a 5xx happened: for the log, never for the client.
    cause: Option<String>,
}

/// The status each code answers with, unless a route says otherwise.
pub fn status_of(code: &ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BatchExceedsBurst
        | ErrorCode::InvalidInput
        | ErrorCode::InvalidJson
        | ErrorCode::InvalidRequest
        | ErrorCode::TenantRequired
        | ErrorCode::TooDeep => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidToken | ErrorCode::TokenExpired | ErrorCode::Unauthenticated => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::Forbidden
        | ErrorCode::GlobalReadOnly
        | ErrorCode::SettingNotAdjustable
        | ErrorCode::TenantMismatch
        | ErrorCode::TenantNotAllowed => StatusCode::FORBIDDEN,
        ErrorCode::BillingRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::InvalidModule => StatusCode::UNPROCESSABLE_ENTITY,
        // A capacity quota is a 429 like the platforms Ward follows answer,
        // but without Retry-After: capacity does not free itself.
        ErrorCode::BudgetExhausted
        | ErrorCode::QuotaExceeded
        | ErrorCode::RateLimited
        | ErrorCode::TooManyEvaluations => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorCode::AuditBehind
        | ErrorCode::Busy
        | ErrorCode::RevisionUnavailable
        | ErrorCode::Timeout
        | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal | ErrorCode::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The cause of a 5xx answer, carried to the middleware that logs it.
#[derive(Debug, Clone)]
pub(crate) struct InternalCause(pub String);

impl ApiError {
    /// An error with `code`, answered with the code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_status(status_of(&code), code, message)
    }

    /// An error with `code` answered with another status than the code's
    /// own (the AuthZEN routes' 400 for a wrong content type; the HTTP
    /// layer's own client errors).
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            limit: None,
            cause: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500 `internal`; `cause` is logged (once, by the request
    /// middleware), never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut error = Self::new(
            ErrorCode::Internal,
            "something went wrong; see the server log",
        );
        error.cause = Some(cause.to_string());
        error
    }

    /// 500 `internal` for `err`, its whole chain of causes logged.
    pub fn internal_error(err: &dyn std::error::Error) -> Self {
        let mut cause = err.to_string();
        let mut source = err.source();
        while let Some(next) = source {
            let text = next.to_string();
            // `#[error(transparent)]` repeats its source's text.
            if !cause.ends_with(&text) {
                cause.push_str(": ");
                cause.push_str(&text);
            }
            source = next.source();
        }
        Self::internal(cause)
    }

    /// Naming the limit (the setting `name`, at `value`) that refused.
    pub fn with_limit(mut self, name: &str, value: u64) -> Self {
        self.limit = Some(Box::new(Limit {
            name: name.to_string(),
            value,
        }));
        self
    }

    /// With `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                limit: self.limit.map(|limit| *limit),
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
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        let code = err.code();
        if status_of(&code).is_server_error() && code != ErrorCode::Busy {
            return ApiError::internal_error(&err);
        }
        let mut error = ApiError::new(code.clone(), err.to_string());
        if let RegistryError::QuotaExceeded { quota, limit, .. } = &err {
            error = error.with_limit(quota, *limit);
        }
        if code == ErrorCode::Busy {
            // A compile slot is usually free again within a second or two.
            return error.retry_after(1);
        }
        error
    }
}

impl From<DecisionError> for ApiError {
    fn from(err: DecisionError) -> Self {
        let code = err.code();
        if status_of(&code).is_server_error() {
            return ApiError::internal_error(&err);
        }
        let error = ApiError::new(code, err.to_string());
        match &err {
            DecisionError::Refused { refusal } => error
                .with_limit(refusal.reason.setting(), refusal.limit)
                .retry_after(refusal.retry_after_secs),
            DecisionError::BatchExceedsBurst { burst, .. } => {
                error.with_limit("burst", u64::from(*burst))
            }
            _ => error,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let code = match &err {
            AuthError::Missing => ErrorCode::Unauthenticated,
            AuthError::InvalidToken(_) => ErrorCode::InvalidToken,
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::TenantMismatch(_) => ErrorCode::TenantMismatch,
            AuthError::UnknownTenant(_) => ErrorCode::NotFound,
            AuthError::TenantRequired(_) => ErrorCode::TenantRequired,
            AuthError::Forbidden(_) => ErrorCode::Forbidden,
            AuthError::NotAdjustable(_) => ErrorCode::SettingNotAdjustable,
            AuthError::TenantNotAllowed(_) => ErrorCode::TenantNotAllowed,
            AuthError::BadHeader(_) => ErrorCode::InvalidInput,
            AuthError::Store(_) => return ApiError::internal_error(&err),
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        match err {
            AuditError::Invalid(message) => ApiError::new(ErrorCode::InvalidInput, message),
            AuditError::Store(err) => ApiError::internal_error(&err),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::internal_error(&err)
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
