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
    /// it does not know ([`ErrorCode::Other`]) by the answer's status.
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCodeName))]
    pub code: ErrorCode,
    /// For people; may change between versions.
    pub message: String,
    /// The limit that refused the call, when one did (`quota_exceeded`,
    /// `rate_limited`, `too_many_evaluations`, `budget_exhausted`,
    /// `batch_exceeds_burst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
}

/// A limit, by the name of the setting that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limit {
    /// The setting, e.g. `max_agents` or `rate_limit_per_sec`.
    pub name: String,
    /// Its value for this tenant (or host).
    pub value: u64,
}

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)*) => {
        /// Every error code of Ward's API, as one type for the server and
        /// its clients. It travels as its `snake_case` string; a client
        /// reading a code this version does not know gets
        /// [`ErrorCode::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
            /// A code this version does not know.
            Other(String),
        }

        impl ErrorCode {
            /// Every code a server of this version answers with.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it travels.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Other(code) => code,
                }
            }

            /// The code of `text`; [`ErrorCode::Other`] when unknown.
            pub fn parse(text: &str) -> ErrorCode {
                match text {
                    $($code => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

error_codes! {
    /// `/readyz`: the audit writer is behind.
    AuditBehind => "audit_behind",
    /// The tenant's trial has ended: authorize calls are refused until
    /// its plan changes.
    BillingRequired => "billing_required",
    /// A batch larger than the tenant's burst: no wait makes it fit.
    BatchExceedsBurst => "batch_exceeds_burst",
    /// The tenant's decisions for the month are spent.
    BudgetExhausted => "budget_exhausted",
    /// Too many compilations at once; try again.
    Busy => "busy",
    /// The name is taken.
    Conflict => "conflict",
    /// Authenticated, but not allowed here.
    Forbidden => "forbidden",
    /// A tenant tried to change a global object.
    GlobalReadOnly => "global_read_only",
    /// The request's headers are too many or too large.
    HeadersTooLarge => "headers_too_large",
    /// The server failed; its log says why.
    Internal => "internal",
    /// Malformed or out-of-range input.
    InvalidInput => "invalid_input",
    /// The body is not JSON.
    InvalidJson => "invalid_json",
    /// The uploaded module was refused.
    InvalidModule => "invalid_module",
    /// Another client error the HTTP layer answered.
    InvalidRequest => "invalid_request",
    /// Credentials that do not check out.
    InvalidToken => "invalid_token",
    /// The route does not take that method.
    MethodNotAllowed => "method_not_allowed",
    /// No such object, or not visible to the caller.
    NotFound => "not_found",
    /// A tenant quota would be exceeded.
    QuotaExceeded => "quota_exceeded",
    /// The tenant's rate limit is reached.
    RateLimited => "rate_limited",
    /// `Ward-Min-Revision` names a revision this replica has not applied
    /// within the wait; another replica, or a retry, may have it.
    RevisionUnavailable => "revision_unavailable",
    /// A setting only the operator sets.
    SettingNotAdjustable => "setting_not_adjustable",
    /// A tenant header names a tenant the credential is not for.
    TenantMismatch => "tenant_mismatch",
    /// The token's issuer is not trusted with that tenant.
    TenantNotAllowed => "tenant_not_allowed",
    /// The request must name its tenant.
    TenantRequired => "tenant_required",
    /// The request took too long.
    Timeout => "timeout",
    /// The token has expired.
    TokenExpired => "token_expired",
    /// JSON nested deeper than allowed.
    TooDeep => "too_deep",
    /// A body or module over its limit.
    TooLarge => "too_large",
    /// The tenant has its maximum of evaluations running.
    TooManyEvaluations => "too_many_evaluations",
    /// No credentials.
    Unauthenticated => "unauthenticated",
    /// The server cannot answer now.
    Unavailable => "unavailable",
    /// The body's content type is not the route's.
    UnsupportedMediaType => "unsupported_media_type",
    /// The request target is too long.
    UriTooLong => "uri_too_long",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&text))
    }
}

/// The schema of an error code: one of [`ErrorCode::KNOWN`].
#[cfg(feature = "openapi")]
pub struct ErrorCodeName;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCodeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::KNOWN.iter().map(ErrorCode::as_str)))
            .description(Some("The error's stable code."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCodeName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_strings_and_unknown_ones_survive() {
        for code in ErrorCode::KNOWN {
            let text = serde_json::to_string(code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), *code);
            assert_eq!(ErrorCode::parse(code.as_str()), *code);
        }
        let later: ErrorCode = serde_json::from_str("\"seat_limit\"").unwrap();
        assert_eq!(later, ErrorCode::Other(String::from("seat_limit")));
        assert_eq!(later.as_str(), "seat_limit");
    }
}
