//! Native decisions: `POST /v1/authorize` (short or AuthZEN-shaped form)
//! and `POST /v1/authorize/batch`. The decisions themselves are made in
//! [`crate::decision`].

use axum::extract::State;
use ward_types::ErrorCode;
use ward_types::{AuthorizeRequest, BatchRequest, BatchResponse, DecisionResponse};

use super::extract::ApiJson;
use super::parse::{Incoming, IncomingBatch};
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::decision::{MAX_BATCH, Semantic};

/// Decide one request. A deny is a 200 like an allow.
#[utoipa::path(post, path = "/v1/authorize", tag = "authorize", request_body = AuthorizeRequest,
    responses((status = 200, body = DecisionResponse), (status = 402, description = "the tenant's trial has ended: `billing_required` until its plan changes"), (status = 429, description = "a tenant limit refused the call; retry after `Retry-After` seconds")))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(Incoming(request)): ApiJson<Incoming>,
) -> Result<axum::Json<DecisionResponse>, ApiError> {
    let request =
        request.map_err(|message| ApiError::bad_request(ErrorCode::InvalidInput, message))?;
    let tenant = caller.decision_tenant()?;
    let decision = state
        .decider
        .decide_one(tenant, &caller.actor, request)
        .await?;
    Ok(axum::Json(decision))
}

/// Decide up to 100 requests at once.
#[utoipa::path(post, path = "/v1/authorize/batch", tag = "authorize", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse),
        (status = 400, description = "a malformed item, or more items than the tenant's burst (`batch_exceeds_burst`)"),
        (status = 402, description = "the tenant's trial has ended: `billing_required` until its plan changes"), (status = 429, description = "a tenant limit refused the call; retry after `Retry-After` seconds")))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IncomingBatch>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("a batch has 1 to {MAX_BATCH} items"),
        ));
    }
    let requests = body
        .items
        .into_iter()
        .enumerate()
        .map(|(i, Incoming(item))| {
            item.map(Ok).map_err(|m| {
                ApiError::bad_request(ErrorCode::InvalidInput, format!("items[{i}]: {m}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tenant = caller.decision_tenant()?;
    let results = state
        .decider
        .decide_call(tenant, &caller.actor, requests, Semantic::ExecuteAll)
        .await?
        .into_iter()
        .map(|answer| answer.map_err(ApiError::internal))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(BatchResponse { results }))
}
