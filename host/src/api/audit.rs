//! Reading the audit log.

use axum::extract::State;
use ward_types::ErrorCode;
use ward_types::{AuditKind, AuditPage, AuditQuery as AuditParams, Timestamp};

use super::extract::ApiQuery;
use super::{ApiError, AppState, blocking};
use crate::audit::AuditQuery;
use crate::auth::Caller;

/// Checks the query parameters of an audit read.
fn parse(params: AuditParams) -> Result<AuditQuery, ApiError> {
    let bad = |what: &str| ApiError::bad_request(ErrorCode::InvalidInput, what.to_string());
    let time = |text: Option<String>, name: &str| {
        text.map(|t| {
            Timestamp::parse(&t).ok_or_else(|| bad(&format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
    };
    Ok(AuditQuery {
        since: time(params.since, "since")?,
        until: time(params.until, "until")?,
        kind: params
            .kind
            .map(|k| {
                serde_json::from_value::<AuditKind>(serde_json::Value::String(k))
                    .map_err(|_| bad("kind is not an audit entry kind"))
            })
            .transpose()?,
        agent: params.agent,
        decision: params
            .decision
            .map(|d| {
                d.parse::<bool>()
                    .map_err(|_| bad("decision must be true or false"))
            })
            .transpose()?,
        limit: params
            .limit
            .map(|l| {
                l.parse::<usize>()
                    .map_err(|_| bad("limit must be a number"))
            })
            .transpose()?,
        cursor: params.cursor,
    })
}

/// The tenant's audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams), responses((status = 200, body = AuditPage)))]
pub async fn tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let scope = caller.admin_scope()?;
    read(state, scope.key().to_string(), params).await
}

/// The operator's own log (global-scope changes, tenant deletions).
#[utoipa::path(get, path = "/v1/global/audit", tag = "global", params(AuditParams), responses((status = 200, body = AuditPage)))]
pub async fn global(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let scope = caller.global_scope()?;
    read(state, scope.key().to_string(), params).await
}

async fn read(
    state: AppState,
    scope: String,
    params: AuditParams,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let query = parse(params)?;
    let audit = state.audit.clone();
    blocking(move || Ok(axum::Json(audit.query(&scope, &query)?))).await
}
