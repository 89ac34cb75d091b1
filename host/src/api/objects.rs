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
            On::Tenant => Ok(caller.admin_scope()?),
            On::Global => Ok(caller.global_scope()?),
        }
    }
}

/// Defines a route's handler twice, for a tenant's scope and for the
/// global one, each with its own OpenAPI description, both calling
/// `$inner` with the scope and the route's other extractors.
macro_rules! in_both_scopes {
    (
        $(#[$tenant_meta:meta])* $tenant:ident;
        $(#[$global_meta:meta])* $global:ident;
        $inner:ident($($arg:ident: $extract:ty),*) -> $answer:ty
    ) => {
        $(#[$tenant_meta])*
        pub async fn $tenant(
            State(state): State<AppState>,
            caller: Caller,
            $($arg: $extract),*
        ) -> Result<$answer, ApiError> {
            $inner(On::Tenant, state, caller, $($arg),*).await
        }

        $(#[$global_meta])*
        pub async fn $global(
            State(state): State<AppState>,
            caller: Caller,
            $($arg: $extract),*
        ) -> Result<$answer, ApiError> {
            $inner(On::Global, state, caller, $($arg),*).await
        }
    };
}

// ---- agents ------------------------------------------------------------------

async fn put_agent(
    on: On,
    state: AppState,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutAgent>,
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    Ok(Json(state.registry.get_agent(&on.scope(&caller)?, &name)?))
}

async fn delete_agent(
    on: On,
    state: AppState,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
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

in_both_scopes! {
/// Create or replace an agent (201 when created).
#[utoipa::path(put, path = "/v1/agents/{name}", tag = "agents", request_body = PutAgent, params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 201, body = Agent)))]
    tenant_put_agent;
/// Create or replace a global agent.
#[utoipa::path(put, path = "/v1/global/agents/{name}", tag = "global", request_body = PutAgent, params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 201, body = Agent)))]
    global_put_agent;
    put_agent(name: ApiPath<String>, body: ApiJson<PutAgent>) -> axum::response::Response
}

in_both_scopes! {
/// Every agent the tenant sees: its own and inherited global ones.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = Vec<Agent>)))]
    tenant_list_agents;
/// Every global agent.
#[utoipa::path(get, path = "/v1/global/agents", tag = "global", responses((status = 200, body = Vec<Agent>)))]
    global_list_agents;
    list_agents() -> Json<Vec<Agent>>
}

in_both_scopes! {
/// One agent, the tenant's own or else the global one.
#[utoipa::path(get, path = "/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), responses((status = 200, body = Agent)))]
    tenant_get_agent;
/// One global agent.
#[utoipa::path(get, path = "/v1/global/agents/{name}", tag = "global", params(("name" = String, Path)), responses((status = 200, body = Agent)))]
    global_get_agent;
    get_agent(name: ApiPath<String>) -> Json<Agent>
}

in_both_scopes! {
/// Delete one of the tenant's agents (403 `global_read_only` for a global one).
#[utoipa::path(delete, path = "/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), responses((status = 204)))]
    tenant_delete_agent;
/// Delete a global agent.
#[utoipa::path(delete, path = "/v1/global/agents/{name}", tag = "global", params(("name" = String, Path)), responses((status = 204)))]
    global_delete_agent;
    delete_agent(name: ApiPath<String>) -> NoContent
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
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<UploadQuery>,
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PolicyInfo>, ApiError> {
    Ok(Json(state.registry.get_policy(&on.scope(&caller)?, &name)?))
}

async fn activate_policy(
    on: On,
    state: AppState,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ActivatePolicy>,
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
    ApiPath(name): ApiPath<String>,
    ApiJson(config): ApiJson<Value>,
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
    ApiPath(name): ApiPath<String>,
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

in_both_scopes! {
/// Upload a new version of a policy (`application/wasm`); active unless
/// `?activate=false`.
#[utoipa::path(put, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path), UploadQuery),
    request_body(content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream"))),
    responses((status = 201, body = UploadedPolicy), (status = 413), (status = 422, description = "invalid module")))]
    tenant_upload_policy;
/// Upload a new version of a global policy.
#[utoipa::path(put, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path), UploadQuery),
    request_body(content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream"))),
    responses((status = 201, body = UploadedPolicy), (status = 413), (status = 422, description = "invalid module")))]
    global_upload_policy;
    upload_policy(name: ApiPath<String>, query: ApiQuery<UploadQuery>, headers: HeaderMap, body: ApiBytes) -> Created<UploadedPolicy>
}

in_both_scopes! {
/// Every policy the tenant sees.
#[utoipa::path(get, path = "/v1/policies", tag = "policies", responses((status = 200, body = Vec<PolicyInfo>)))]
    tenant_list_policies;
/// Every global policy.
#[utoipa::path(get, path = "/v1/global/policies", tag = "global", responses((status = 200, body = Vec<PolicyInfo>)))]
    global_list_policies;
    list_policies() -> Json<Vec<PolicyInfo>>
}

in_both_scopes! {
/// One policy and its versions.
#[utoipa::path(get, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path)), responses((status = 200, body = PolicyInfo)))]
    tenant_get_policy;
/// One global policy.
#[utoipa::path(get, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path)), responses((status = 200, body = PolicyInfo)))]
    global_get_policy;
    get_policy(name: ApiPath<String>) -> Json<PolicyInfo>
}

in_both_scopes! {
/// Make a version active (rollback or roll forward).
#[utoipa::path(post, path = "/v1/policies/{name}/activate", tag = "policies", params(("name" = String, Path)), request_body = ActivatePolicy,
    responses((status = 200, body = PolicyInfo)))]
    tenant_activate_policy;
/// Make a version of a global policy active.
#[utoipa::path(post, path = "/v1/global/policies/{name}/activate", tag = "global", params(("name" = String, Path)), request_body = ActivatePolicy,
    responses((status = 200, body = PolicyInfo)))]
    global_activate_policy;
    activate_policy(name: ApiPath<String>, body: ApiJson<ActivatePolicy>) -> Json<PolicyInfo>
}

in_both_scopes! {
/// Set the config passed to the policy with every request (any JSON).
#[utoipa::path(put, path = "/v1/policies/{name}/config", tag = "policies", params(("name" = String, Path)), request_body = Value,
    responses((status = 200, body = PolicyInfo)))]
    tenant_configure_policy;
/// Set a global policy's config.
#[utoipa::path(put, path = "/v1/global/policies/{name}/config", tag = "global", params(("name" = String, Path)), request_body = Value,
    responses((status = 200, body = PolicyInfo)))]
    global_configure_policy;
    configure_policy(name: ApiPath<String>, body: ApiJson<Value>) -> Json<PolicyInfo>
}

in_both_scopes! {
/// Delete a policy and all its versions.
#[utoipa::path(delete, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path)), responses((status = 204)))]
    tenant_delete_policy;
/// Delete a global policy.
#[utoipa::path(delete, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path)), responses((status = 204)))]
    global_delete_policy;
    delete_policy(name: ApiPath<String>) -> NoContent
}

// ---- data ----------------------------------------------------------------------

async fn put_data(
    on: On,
    state: AppState,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(value): ApiJson<Value>,
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
    ApiPath(key): ApiPath<String>,
) -> Result<Json<DataDocument>, ApiError> {
    Ok(Json(state.registry.get_data(&on.scope(&caller)?, &key)?))
}

async fn delete_data(
    on: On,
    state: AppState,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
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

in_both_scopes! {
/// Create or replace a data document; the body is the document (any JSON).
#[utoipa::path(put, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), request_body = Value,
    responses((status = 200, body = DataDocument)))]
    tenant_put_data;
/// Create or replace a global data document.
#[utoipa::path(put, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), request_body = Value,
    responses((status = 200, body = DataDocument)))]
    global_put_data;
    put_data(key: ApiPath<String>, body: ApiJson<Value>) -> Json<DataDocument>
}

in_both_scopes! {
/// A data document, the tenant's own or else the global one.
#[utoipa::path(get, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), responses((status = 200, body = DataDocument)))]
    tenant_get_data;
/// A global data document.
#[utoipa::path(get, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), responses((status = 200, body = DataDocument)))]
    global_get_data;
    get_data(key: ApiPath<String>) -> Json<DataDocument>
}

in_both_scopes! {
/// Delete one of the tenant's data documents.
#[utoipa::path(delete, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), responses((status = 204)))]
    tenant_delete_data;
/// Delete a global data document.
#[utoipa::path(delete, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), responses((status = 204)))]
    global_delete_data;
    delete_data(key: ApiPath<String>) -> NoContent
}
