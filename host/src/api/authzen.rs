//! The OpenID AuthZEN 1.0 Access Evaluation API and its discovery
//! document. Answers carry only `decision` and, when the policy returned
//! one, `context`: reasons and decision ids are in the native API and the
//! audit log.

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use ward_types::ErrorCode;
use ward_types::{AuthorizeRequest, Discovery, Evaluation, Evaluations};

use super::extract::{ApiPath, AuthzenJson};
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::decision::{MAX_BATCH, Semantic, check_request};

fn item_error(message: String) -> Evaluation {
    Evaluation {
        decision: false,
        context: json!({"error": {"status": 400, "message": message}})
            .as_object()
            .cloned(),
    }
}

fn to_request(value: Value) -> Result<AuthorizeRequest, String> {
    let request: AuthorizeRequest = serde_json::from_value(value).map_err(|err| err.to_string())?;
    check_request(&request)?;
    Ok(request)
}

/// Access evaluation: may `subject` do `action` on `resource`?
#[utoipa::path(post, path = "/access/v1/evaluation", tag = "authzen", request_body = AuthorizeRequest,
    responses((status = 200, body = Evaluation), (status = 400),
        (status = 402, description = "the tenant's trial has ended: `billing_required` until its plan changes"), (status = 429, description = "a tenant limit refused the call; retry after `Retry-After` seconds")))]
pub async fn evaluation(
    State(state): State<AppState>,
    caller: Caller,
    AuthzenJson(body): AuthzenJson<Value>,
) -> Result<axum::Json<Evaluation>, ApiError> {
    let request =
        to_request(body).map_err(|m| ApiError::bad_request(ErrorCode::InvalidInput, m))?;
    let decision = decide_one(&state, &caller, request).await?;
    Ok(axum::Json(decision.into()))
}

async fn decide_one(
    state: &AppState,
    caller: &Caller,
    request: AuthorizeRequest,
) -> Result<ward_types::DecisionResponse, ApiError> {
    let tenant = caller.decision_tenant()?;
    Ok(state
        .decider
        .decide_one(tenant, &caller.actor, request)
        .await?)
}

/// Access evaluations: many questions at once. Top-level `subject`,
/// `action`, `resource` and `context` are defaults that an item's own key
/// replaces whole; `options.evaluations_semantic` is `execute_all`
/// (default), `deny_on_first_deny` or `permit_on_first_permit`. Without
/// items, this is a single evaluation.
#[utoipa::path(post, path = "/access/v1/evaluations", tag = "authzen", request_body = Object,
    responses((status = 200, body = Evaluations), (status = 400),
        (status = 402, description = "the tenant's trial has ended: `billing_required` until its plan changes"), (status = 429, description = "a tenant limit refused the call; retry after `Retry-After` seconds")))]
pub async fn evaluations(
    State(state): State<AppState>,
    caller: Caller,
    AuthzenJson(body): AuthzenJson<Value>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let bad = |m: &str| ApiError::bad_request(ErrorCode::InvalidInput, m.to_string());
    let Value::Object(mut body) = body else {
        return Err(bad("the body must be a JSON object"));
    };
    let semantic = match body
        .get("options")
        .and_then(|o| o.get("evaluations_semantic"))
    {
        None => Some(Semantic::ExecuteAll),
        Some(Value::String(name)) => Semantic::from_authzen(name),
        Some(_) => None,
    }
    .ok_or_else(|| {
        bad(
            "options.evaluations_semantic must be execute_all, deny_on_first_deny or permit_on_first_permit",
        )
    })?;
    let items = match body.remove("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("evaluations must be a list")),
    };
    const KEYS: [&str; 4] = ["subject", "action", "resource", "context"];
    let defaults: Map<String, Value> = KEYS
        .iter()
        .filter_map(|key| body.get(*key).map(|value| (key.to_string(), value.clone())))
        .collect();

    if items.is_empty() {
        let request = to_request(Value::Object(defaults))
            .map_err(|m| ApiError::bad_request(ErrorCode::InvalidInput, m))?;
        let decision = decide_one(&state, &caller, request).await?;
        return Ok(axum::Json(Evaluation::from(decision)).into_response());
    }
    if items.len() > MAX_BATCH {
        return Err(bad(&format!("at most {MAX_BATCH} evaluations per request")));
    }
    let parsed: Vec<Result<AuthorizeRequest, String>> = items
        .into_iter()
        .map(|item| {
            let Value::Object(item) = item else {
                return Err(String::from("an evaluation must be a JSON object"));
            };
            let mut merged = defaults.clone();
            for key in KEYS {
                if let Some(value) = item.get(key) {
                    merged.insert(key.to_string(), value.clone());
                }
            }
            to_request(Value::Object(merged))
        })
        .collect();

    let tenant = caller.decision_tenant()?;
    let evaluations = state
        .decider
        .decide_call(tenant, &caller.actor, parsed, semantic)
        .await?
        .into_iter()
        .map(|answer| match answer {
            Ok(decision) => Evaluation::from(decision),
            Err(message) => item_error(message),
        })
        .collect();
    Ok(axum::Json(Evaluations { evaluations }).into_response())
}

/// The discovery document; `tenant` names the tenant whose PDP identifier
/// it describes (`{base}/{tenant}`, the identifier its URL was built from).
fn discovery_for(headers: &HeaderMap, tenant: Option<&str>) -> Result<Discovery, ApiError> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidInput, "a valid Host header is required")
        })?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let base = format!("{scheme}://{host}");
    Ok(Discovery {
        access_evaluation_endpoint: format!("{base}/access/v1/evaluation"),
        access_evaluations_endpoint: format!("{base}/access/v1/evaluations"),
        policy_decision_point: match tenant {
            Some(slug) => format!("{base}/{slug}"),
            None => base,
        },
    })
}

/// Where this PDP's endpoints are.
#[utoipa::path(get, path = "/.well-known/authzen-configuration", tag = "authzen", security(()),
    responses((status = 200, body = Discovery), (status = 400, description = "no valid Host header")))]
pub async fn discovery(headers: HeaderMap) -> Result<axum::Json<Discovery>, ApiError> {
    Ok(axum::Json(discovery_for(&headers, None)?))
}

/// The same, for one tenant. Anyone may ask, so every well-formed slug
/// gets its document whether or not such a tenant exists (an ill-formed
/// one is 404): the answer tells nobody which tenants there are. Decisions
/// still take the tenant from the credential.
#[utoipa::path(get, path = "/.well-known/authzen-configuration/{tenant_slug}", tag = "authzen",
    security(()), params(("tenant_slug" = String, Path)),
    responses((status = 200, body = Discovery), (status = 400, description = "no valid Host header"), (status = 404)))]
pub async fn tenant_discovery(
    ApiPath(slug): ApiPath<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Discovery>, ApiError> {
    match crate::registry::check_slug(&slug) {
        Ok(()) => Ok(axum::Json(discovery_for(&headers, Some(&slug))?)),
        Err(_) => Err(ApiError::not_found(format!(
            "tenant `{}` not found",
            crate::registry::clip(&slug)
        ))),
    }
}
