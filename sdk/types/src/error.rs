use serde::{Deserialize, Serialize};

/// Every error response: `{"error": {"code": "…", "message": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// `snake_case`, stable: match on this. A client should treat a code
    /// it does not know by the answer's status.
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCodeName))]
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

/// Every error code a Ward server answers with (the schema of
/// [`ErrorDetail::code`] in `/openapi.json`).
pub const ERROR_CODES: [&str; 31] = [
    "audit_behind",
    "batch_exceeds_burst",
    "budget_exhausted",
    "busy",
    "conflict",
    "forbidden",
    "global_read_only",
    "headers_too_large",
    "internal",
    "invalid_input",
    "invalid_json",
    "invalid_module",
    "invalid_request",
    "invalid_token",
    "method_not_allowed",
    "not_found",
    "quota_exceeded",
    "rate_limited",
    "setting_not_adjustable",
    "tenant_mismatch",
    "tenant_not_allowed",
    "tenant_required",
    "timeout",
    "token_expired",
    "too_deep",
    "too_large",
    "too_many_evaluations",
    "unauthenticated",
    "unavailable",
    "unsupported_media_type",
    "uri_too_long",
];

/// The schema of an error code: one of [`ERROR_CODES`].
#[cfg(feature = "openapi")]
pub struct ErrorCodeName;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCodeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ERROR_CODES))
            .description(Some("The error's stable code."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCodeName {}
