//! Agents, policies and data documents: the same verbs on a tenant's scope
//! (`/v1/...`, tenant admins and operators with `X-Tenant-ID`) and on the
//! global scope (`/v1/global/...`, operators only). Reads in a tenant see
//! inherited global objects; writes touch only the caller's own scope.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;
use ward_types::ErrorCode;
use ward_types::{ActivatePolicy, Agent, DataDocument, PolicyInfo, PutAgent, UploadedPolicy};

use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use super::{ApiError, AppState, Created, NoContent, blocking};
use crate::auth::Caller;
use crate::registry::ScopeId;

use axum::Json;

/// Which scope a route acts on.
#[derive(Clone, Copy)]
enum On {
    Tenant,
    Global,
}

impl On {
    fn scope(self, caller: &Caller) -> Result<ScopeId, ApiError> {
        match self {
            On::Tenant => caller.admin_scope(),
            On::Global => caller.global_scope(),
        }
    }
}

// ---- agents ------------------------------------------------------------------

async fn put_agent(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
    body: PutAgent,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    let (agent, created) =
        blocking(move || Ok(registry.put_agent(&scope, &name, body, &caller.actor)?)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(agent)).into_response())
}

async fn list_agents(
    on: On,
    state: AppState,
    caller: Caller,
) -> Result<Json<Vec<Agent>>, ApiError> {
    Ok(Json(state.registry.list_agents(&on.scope(&caller)?)?))
}

async fn get_agent(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
) -> Result<Json<Agent>, ApiError> {
    Ok(Json(state.registry.get_agent(&on.scope(&caller)?, &name)?))
}

async fn delete_agent(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
) -> Result<NoContent, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(registry
            .delete_agent(&scope, &name, &caller.actor)
            .map(|()| NoContent)?)
    })
    .await
}

/// Create or replace an agent (201 when created).
#[utoipa::path(put, path = "/v1/agents/{name}", tag = "agents", request_body = PutAgent, params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 201, body = Agent)))]
pub async fn tenant_put_agent(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<PutAgent>,
) -> Result<axum::response::Response, ApiError> {
    put_agent(On::Tenant, s, c, n, b).await
}

/// Every agent the tenant sees: its own and inherited global ones.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = Vec<Agent>)))]
pub async fn tenant_list_agents(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<Agent>>, ApiError> {
    list_agents(On::Tenant, s, c).await
}

/// One agent, the tenant's own or else the global one.
#[utoipa::path(get, path = "/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), responses((status = 200, body = Agent)))]
pub async fn tenant_get_agent(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    get_agent(On::Tenant, s, c, n).await
}

/// Delete one of the tenant's agents (403 `global_read_only` for a global one).
#[utoipa::path(delete, path = "/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), responses((status = 204)))]
pub async fn tenant_delete_agent(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    delete_agent(On::Tenant, s, c, n).await
}

/// Create or replace a global agent.
#[utoipa::path(put, path = "/v1/global/agents/{name}", tag = "global", request_body = PutAgent, params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 201, body = Agent)))]
pub async fn global_put_agent(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<PutAgent>,
) -> Result<axum::response::Response, ApiError> {
    put_agent(On::Global, s, c, n, b).await
}

/// Every global agent.
#[utoipa::path(get, path = "/v1/global/agents", tag = "global", responses((status = 200, body = Vec<Agent>)))]
pub async fn global_list_agents(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<Agent>>, ApiError> {
    list_agents(On::Global, s, c).await
}

/// One global agent.
#[utoipa::path(get, path = "/v1/global/agents/{name}", tag = "global", params(("name" = String, Path)), responses((status = 200, body = Agent)))]
pub async fn global_get_agent(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    get_agent(On::Global, s, c, n).await
}

/// Delete a global agent.
#[utoipa::path(delete, path = "/v1/global/agents/{name}", tag = "global", params(("name" = String, Path)), responses((status = 204)))]
pub async fn global_delete_agent(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    delete_agent(On::Global, s, c, n).await
}

// ---- policies ----------------------------------------------------------------

/// Query of a policy upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Activate the new version (default true).
    #[serde(default = "yes")]
    activate: bool,
}

fn yes() -> bool {
    true
}

/// A policy upload's body: the component's bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct WasmComponent(Vec<u8>);

async fn upload_policy(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
    query: UploadQuery,
    headers: HeaderMap,
    body: ApiBytes,
) -> Result<Created<UploadedPolicy>, ApiError> {
    let scope = on.scope(&caller)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media != "application/wasm" && media != "application/octet-stream" {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "upload the component as `Content-Type: application/wasm`",
        ));
    }
    let registry = state.registry.clone();
    blocking(move || {
        Ok(Created(registry.upload_policy(
            &scope,
            &name,
            &body.0,
            query.activate,
            &caller.actor,
        )?))
    })
    .await
}

async fn list_policies(
    on: On,
    state: AppState,
    caller: Caller,
) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    Ok(Json(state.registry.list_policies(&on.scope(&caller)?)?))
}

async fn get_policy(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
) -> Result<Json<PolicyInfo>, ApiError> {
    Ok(Json(state.registry.get_policy(&on.scope(&caller)?, &name)?))
}

async fn activate_policy(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
    body: ActivatePolicy,
) -> Result<Json<PolicyInfo>, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(Json(registry.activate_policy(
            &scope,
            &name,
            body.version,
            &caller.actor,
        )?))
    })
    .await
}

async fn configure_policy(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
    config: Value,
) -> Result<Json<PolicyInfo>, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(Json(registry.configure_policy(
            &scope,
            &name,
            config,
            &caller.actor,
        )?))
    })
    .await
}

async fn delete_policy(
    on: On,
    state: AppState,
    caller: Caller,
    name: String,
) -> Result<NoContent, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(registry
            .delete_policy(&scope, &name, &caller.actor)
            .map(|()| NoContent)?)
    })
    .await
}

/// Upload a new version of a policy (`application/wasm`); active unless
/// `?activate=false`.
#[utoipa::path(put, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path), UploadQuery),
    request_body(content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream"))),
    responses((status = 201, body = UploadedPolicy), (status = 413), (status = 422, description = "invalid module")))]
pub async fn tenant_upload_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    h: HeaderMap,
    b: ApiBytes,
) -> Result<Created<UploadedPolicy>, ApiError> {
    upload_policy(On::Tenant, s, c, n, q, h, b).await
}

/// Every policy the tenant sees.
#[utoipa::path(get, path = "/v1/policies", tag = "policies", responses((status = 200, body = Vec<PolicyInfo>)))]
pub async fn tenant_list_policies(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    list_policies(On::Tenant, s, c).await
}

/// One policy and its versions.
#[utoipa::path(get, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path)), responses((status = 200, body = PolicyInfo)))]
pub async fn tenant_get_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Json<PolicyInfo>, ApiError> {
    get_policy(On::Tenant, s, c, n).await
}

/// Make a version active (rollback or roll forward).
#[utoipa::path(post, path = "/v1/policies/{name}/activate", tag = "policies", params(("name" = String, Path)), request_body = ActivatePolicy,
    responses((status = 200, body = PolicyInfo)))]
pub async fn tenant_activate_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<ActivatePolicy>,
) -> Result<Json<PolicyInfo>, ApiError> {
    activate_policy(On::Tenant, s, c, n, b).await
}

/// Set the config passed to the policy with every request (any JSON).
#[utoipa::path(put, path = "/v1/policies/{name}/config", tag = "policies", params(("name" = String, Path)), request_body = Value,
    responses((status = 200, body = PolicyInfo)))]
pub async fn tenant_configure_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<Value>,
) -> Result<Json<PolicyInfo>, ApiError> {
    configure_policy(On::Tenant, s, c, n, b).await
}

/// Delete a policy and all its versions.
#[utoipa::path(delete, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path)), responses((status = 204)))]
pub async fn tenant_delete_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    delete_policy(On::Tenant, s, c, n).await
}

/// Upload a new version of a global policy.
#[utoipa::path(put, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path), UploadQuery),
    request_body(content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream"))),
    responses((status = 201, body = UploadedPolicy), (status = 413), (status = 422, description = "invalid module")))]
pub async fn global_upload_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    h: HeaderMap,
    b: ApiBytes,
) -> Result<Created<UploadedPolicy>, ApiError> {
    upload_policy(On::Global, s, c, n, q, h, b).await
}

/// Every global policy.
#[utoipa::path(get, path = "/v1/global/policies", tag = "global", responses((status = 200, body = Vec<PolicyInfo>)))]
pub async fn global_list_policies(
    State(s): State<AppState>,
    c: Caller,
) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    list_policies(On::Global, s, c).await
}

/// One global policy.
#[utoipa::path(get, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path)), responses((status = 200, body = PolicyInfo)))]
pub async fn global_get_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Json<PolicyInfo>, ApiError> {
    get_policy(On::Global, s, c, n).await
}

/// Make a version of a global policy active.
#[utoipa::path(post, path = "/v1/global/policies/{name}/activate", tag = "global", params(("name" = String, Path)), request_body = ActivatePolicy,
    responses((status = 200, body = PolicyInfo)))]
pub async fn global_activate_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<ActivatePolicy>,
) -> Result<Json<PolicyInfo>, ApiError> {
    activate_policy(On::Global, s, c, n, b).await
}

/// Set a global policy's config.
#[utoipa::path(put, path = "/v1/global/policies/{name}/config", tag = "global", params(("name" = String, Path)), request_body = Value,
    responses((status = 200, body = PolicyInfo)))]
pub async fn global_configure_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<Value>,
) -> Result<Json<PolicyInfo>, ApiError> {
    configure_policy(On::Global, s, c, n, b).await
}

/// Delete a global policy.
#[utoipa::path(delete, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path)), responses((status = 204)))]
pub async fn global_delete_policy(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    delete_policy(On::Global, s, c, n).await
}

// ---- data ----------------------------------------------------------------------

async fn put_data(
    on: On,
    state: AppState,
    caller: Caller,
    key: String,
    value: Value,
) -> Result<Json<DataDocument>, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(Json(registry.put_data(
            &scope,
            &key,
            value,
            &caller.actor,
        )?))
    })
    .await
}

async fn get_data(
    on: On,
    state: AppState,
    caller: Caller,
    key: String,
) -> Result<Json<DataDocument>, ApiError> {
    Ok(Json(state.registry.get_data(&on.scope(&caller)?, &key)?))
}

async fn delete_data(
    on: On,
    state: AppState,
    caller: Caller,
    key: String,
) -> Result<NoContent, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(registry
            .delete_data(&scope, &key, &caller.actor)
            .map(|()| NoContent)?)
    })
    .await
}

/// Create or replace a data document; the body is the document (any JSON).
#[utoipa::path(put, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), request_body = Value,
    responses((status = 200, body = DataDocument)))]
pub async fn tenant_put_data(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(k): ApiPath<String>,
    ApiJson(b): ApiJson<Value>,
) -> Result<Json<DataDocument>, ApiError> {
    put_data(On::Tenant, s, c, k, b).await
}

/// A data document, the tenant's own or else the global one.
#[utoipa::path(get, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), responses((status = 200, body = DataDocument)))]
pub async fn tenant_get_data(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(k): ApiPath<String>,
) -> Result<Json<DataDocument>, ApiError> {
    get_data(On::Tenant, s, c, k).await
}

/// Delete one of the tenant's data documents.
#[utoipa::path(delete, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), responses((status = 204)))]
pub async fn tenant_delete_data(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(k): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    delete_data(On::Tenant, s, c, k).await
}

/// Create or replace a global data document.
#[utoipa::path(put, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), request_body = Value,
    responses((status = 200, body = DataDocument)))]
pub async fn global_put_data(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(k): ApiPath<String>,
    ApiJson(b): ApiJson<Value>,
) -> Result<Json<DataDocument>, ApiError> {
    put_data(On::Global, s, c, k, b).await
}

/// A global data document.
#[utoipa::path(get, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), responses((status = 200, body = DataDocument)))]
pub async fn global_get_data(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(k): ApiPath<String>,
) -> Result<Json<DataDocument>, ApiError> {
    get_data(On::Global, s, c, k).await
}

/// Delete a global data document.
#[utoipa::path(delete, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), responses((status = 204)))]
pub async fn global_delete_data(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(k): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    delete_data(On::Global, s, c, k).await
}
