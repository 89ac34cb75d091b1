//! Native decisions: `POST /v1/authorize` (short or AuthZEN-shaped form)
//! and `POST /v1/authorize/batch`.

use std::time::Duration;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value};
use ward_types::{
    AuthorizeRequest, BatchRequest, BatchResponse, DecisionResponse, Entity, RequestAction,
};

use super::extract::ApiJson;
use super::{ApiError, AppState, blocking};
use crate::auth::Caller;
use crate::limits::Permit;
use crate::registry::Admission;

/// Most items in one batch.
pub const MAX_BATCH: usize = 100;

/// The short form: `{"agent": "name", "action": "export", "resource":
/// "reports:q3", "context": {}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortForm {
    agent: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

/// Reads one request in either form.
pub fn parse_request(value: Value) -> Result<AuthorizeRequest, String> {
    let short = value.get("agent").is_some() || value.get("action").is_some_and(Value::is_string);
    if short {
        let form: ShortForm =
            serde_json::from_value(value).map_err(|err| format!("short form: {err}"))?;
        let (kind, id) = form
            .resource
            .split_once(':')
            .filter(|(kind, id)| !kind.is_empty() && !id.is_empty())
            .ok_or_else(|| String::from("short form: resource must be `type:id`"))?;
        return Ok(AuthorizeRequest {
            subject: Entity {
                kind: String::from("agent"),
                id: form.agent,
                properties: None,
            },
            action: RequestAction {
                name: form.action,
                properties: None,
            },
            resource: Entity {
                kind: kind.to_string(),
                id: id.to_string(),
                properties: None,
            },
            context: form.context,
        });
    }
    let request: AuthorizeRequest = serde_json::from_value(value).map_err(|err| err.to_string())?;
    check_request(&request)?;
    Ok(request)
}

/// Required strings must not be empty.
pub fn check_request(request: &AuthorizeRequest) -> Result<(), String> {
    let fields = [
        ("subject.type", &request.subject.kind),
        ("subject.id", &request.subject.id),
        ("action.name", &request.action.name),
        ("resource.type", &request.resource.kind),
        ("resource.id", &request.resource.id),
    ];
    match fields.iter().find(|(_, value)| value.is_empty()) {
        Some((name, _)) => Err(format!("{name} must not be empty")),
        None => Ok(()),
    }
}

/// Decides requests for the caller's tenant on a blocking thread.
///
/// The tenant's limits are checked first, here on the async worker: a
/// refusal is only arithmetic on in-memory counters (plus one audit
/// event per episode), so a tenant flooding past its limits is answered
/// without ever occupying a blocking thread that others' decisions need.
pub async fn decide_all(
    state: &AppState,
    caller: &Caller,
    requests: Vec<AuthorizeRequest>,
) -> Result<Vec<DecisionResponse>, ApiError> {
    let tenant = caller.decision_tenant()?;
    let permit = admit(state, caller, &tenant, requests.len()).await?;
    let registry = state.registry.clone();
    let actor = caller.actor.clone();
    blocking(move || {
        let _permit = permit;
        requests
            .iter()
            .map(|request| Ok(registry.authorize(&tenant, request, &actor)?.response))
            .collect()
    })
    .await
}

/// Checks the tenant's limits for `decisions` more decisions. A refusal
/// is answered after `http.refusal_delay_ms` (at most its `Retry-After`).
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    decisions: usize,
) -> Result<Permit, ApiError> {
    let count = u32::try_from(decisions).unwrap_or(u32::MAX);
    match state.registry.admit(tenant, count, &caller.actor) {
        Ok(permit) => Ok(permit),
        Err(Admission::Refused(refusal)) => {
            // Jittered (half to all of the pause), so that a flood's
            // connections, refused together, do not come back together.
            let pause = Duration::from_millis(state.http.refusal_delay_ms)
                .min(Duration::from_secs(refusal.retry_after_secs))
                .mul_f64(rand::random_range(0.5..=1.0));
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            Err(Admission::Refused(refusal).into())
        }
        Err(other) => Err(other.into()),
    }
}

/// Decides one request for the caller's tenant.
pub async fn decide_one(
    state: &AppState,
    caller: &Caller,
    request: AuthorizeRequest,
) -> Result<DecisionResponse, ApiError> {
    decide_all(state, caller, vec![request])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no decision"))
}

/// Decide one request. A deny is a 200 like an allow.
#[utoipa::path(post, path = "/v1/authorize", tag = "authorize", request_body = AuthorizeRequest,
    responses((status = 200, body = DecisionResponse)))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<axum::Json<DecisionResponse>, ApiError> {
    let request =
        parse_request(body).map_err(|message| ApiError::bad_request("invalid_input", message))?;
    decide_one(&state, &caller, request).await.map(axum::Json)
}

/// Decide up to 100 requests at once.
#[utoipa::path(post, path = "/v1/authorize/batch", tag = "authorize", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse)))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchRequest>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("a batch has 1 to {MAX_BATCH} items"),
        ));
    }
    let requests = body
        .items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            parse_request(item)
                .map_err(|m| ApiError::bad_request("invalid_input", format!("items[{i}]: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = decide_all(&state, &caller, requests).await?;
    Ok(axum::Json(BatchResponse { results }))
}
