//! Agents, policies and data documents: the same verbs on a tenant's scope
//! (`/v1/...`, tenant admins and operators with `X-Tenant-ID`) and on the
//! global scope (`/v1/global/...`, operators only). Reads in a tenant see
//! inherited global objects; writes touch only the caller's own scope.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;
use ward_types::ErrorCode;
use ward_types::{
    ActivatePolicy, Agent, AgentPage, AgentStatus, DataDocument, PolicyInfo, PutAgent,
    UploadedPolicy,
};

use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use super::{ApiError, AppState, Created, NoContent, blocking};
use crate::auth::Caller;
use crate::registry::{self, Registry, ScopeId};

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

/// A read in the caller's scope, answered as JSON.
fn read<T>(
    on: On,
    state: &AppState,
    caller: &Caller,
    read: impl FnOnce(&Registry, &ScopeId) -> registry::Result<T>,
) -> Result<Json<T>, ApiError> {
    Ok(Json(read(&state.registry, &on.scope(caller)?)?))
}

/// A write in the caller's scope, as the caller, on a blocking thread:
/// it is durable when it returns.
async fn write<T: Send + 'static>(
    on: On,
    state: AppState,
    caller: Caller,
    write: impl FnOnce(&Registry, &ScopeId, &str) -> registry::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let scope = on.scope(&caller)?;
    let registry = state.registry.clone();
    blocking(move || Ok(write(&registry, &scope, &caller.actor)?)).await
}

/// Defines a route's handler twice, for a tenant's scope and for the
/// global one, each with its own OpenAPI description: `$body` runs with
/// `$on` naming the scope, `$state` and `$caller` bound, and the route's
/// other extractors by name.
macro_rules! in_both_scopes {
    (
        $(#[$tenant_meta:meta])* $tenant:ident;
        $(#[$global_meta:meta])* $global:ident;
        |$on:ident, $state:ident, $caller:ident $(, $arg:ident: $extract:ty)*| -> $answer:ty $body:block
    ) => {
        $(#[$tenant_meta])*
        pub async fn $tenant(
            State($state): State<AppState>,
            $caller: Caller,
            $($arg: $extract),*
        ) -> Result<$answer, ApiError> {
            let $on = On::Tenant;
            $body
        }

        $(#[$global_meta])*
        pub async fn $global(
            State($state): State<AppState>,
            $caller: Caller,
            $($arg: $extract),*
        ) -> Result<$answer, ApiError> {
            let $on = On::Global;
            $body
        }
    };
}

// ---- agents ---------------------------------------------------------------------

in_both_scopes! {
    /// Create or replace an agent (201 when created).
    #[utoipa::path(put, path = "/v1/agents/{name}", tag = "agents", request_body = PutAgent, params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 201, body = Agent)))]
    tenant_put_agent;
    /// Create or replace a global agent.
    #[utoipa::path(put, path = "/v1/global/agents/{name}", tag = "global", request_body = PutAgent, params(("name" = String, Path)),
    responses((status = 200, body = Agent), (status = 201, body = Agent)))]
    global_put_agent;
    |on, state, caller, name: ApiPath<String>, body: ApiJson<PutAgent>| -> axum::response::Response {
        let (agent, created) = write(on, state, caller, move |registry, scope, actor| {
            registry.put_agent(scope, &name.0, body.0, actor)
        })
        .await?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok((status, Json(agent)).into_response())
    }
}

/// Query of an agent listing, all optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentListQuery {
    /// Only agents of this status.
    #[param(value_type = Option<AgentStatus>)]
    status: Option<String>,
    /// Only agents of this type (exact match, at most 64 characters).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Page size, 1–1000 (default 100 with a `cursor`); with `limit` or
    /// `cursor` the answer is one page, else every matching agent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// An agent listing's answer: every matching agent when neither `limit`
/// nor `cursor` is given (the answer older clients expect), else one page.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AgentListing {
    /// Every matching agent, by name.
    All(Vec<Agent>),
    /// One page, by name.
    Page(AgentPage),
}

impl AgentListQuery {
    /// The listing this query asks for in `scope`.
    fn answer(self, registry: &Registry, scope: &ScopeId) -> Result<AgentListing, ApiError> {
        let bad = |message: &str| ApiError::bad_request(ErrorCode::InvalidInput, message);
        let status = self
            .status
            .map(|s| {
                serde_json::from_value::<AgentStatus>(Value::String(s))
                    .map_err(|_| bad("status must be `active` or `disabled`"))
            })
            .transpose()?;
        let limit = self
            .limit
            .map(|l| {
                l.parse::<usize>()
                    .map_err(|_| bad("limit must be a number"))
            })
            .transpose()?;
        let page = registry.list_agents_page(
            scope,
            status,
            self.kind.as_deref(),
            limit,
            self.cursor.as_deref(),
        )?;
        Ok(if limit.is_some() || self.cursor.is_some() {
            AgentListing::Page(page)
        } else {
            AgentListing::All(page.agents)
        })
    }
}

in_both_scopes! {
    /// The agents the tenant sees, its own and inherited global ones, by
    /// name: all of them, or one page with `limit` or `cursor`.
    #[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AgentListQuery), responses((status = 200, body = AgentListing)))]
    tenant_list_agents;
    /// The global agents, by name: all of them, or one page with `limit`
    /// or `cursor`.
    #[utoipa::path(get, path = "/v1/global/agents", tag = "global", params(AgentListQuery), responses((status = 200, body = AgentListing)))]
    global_list_agents;
    |on, state, caller, query: ApiQuery<AgentListQuery>| -> Json<AgentListing> {
        Ok(Json(query.0.answer(&state.registry, &on.scope(&caller)?)?))
    }
}

in_both_scopes! {
    /// One agent, the tenant's own or else the global one.
    #[utoipa::path(get, path = "/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), responses((status = 200, body = Agent)))]
    tenant_get_agent;
    /// One global agent.
    #[utoipa::path(get, path = "/v1/global/agents/{name}", tag = "global", params(("name" = String, Path)), responses((status = 200, body = Agent)))]
    global_get_agent;
    |on, state, caller, name: ApiPath<String>| -> Json<Agent> {
        read(on, &state, &caller, |registry, scope| registry.get_agent(scope, &name.0))
    }
}

in_both_scopes! {
    /// Delete one of the tenant's agents (403 `global_read_only` for a global one).
    #[utoipa::path(delete, path = "/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), responses((status = 204)))]
    tenant_delete_agent;
    /// Delete a global agent.
    #[utoipa::path(delete, path = "/v1/global/agents/{name}", tag = "global", params(("name" = String, Path)), responses((status = 204)))]
    global_delete_agent;
    |on, state, caller, name: ApiPath<String>| -> NoContent {
        write(on, state, caller, move |registry, scope, actor| {
            registry.delete_agent(scope, &name.0, actor).map(|()| NoContent)
        })
        .await
    }
}

// ---- policies -------------------------------------------------------------------

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

/// Refuses an upload whose `Content-Type` is not a Wasm component's.
fn check_wasm_type(headers: &HeaderMap) -> Result<(), ApiError> {
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
    Ok(())
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
    |on, state, caller, name: ApiPath<String>, query: ApiQuery<UploadQuery>, headers: HeaderMap, body: ApiBytes| -> Created<UploadedPolicy> {
        check_wasm_type(&headers)?;
        write(on, state, caller, move |registry, scope, actor| {
            registry
                .upload_policy(scope, &name.0, &body.0, query.0.activate, actor)
                .map(Created)
        })
        .await
    }
}

in_both_scopes! {
    /// Every policy the tenant sees.
    #[utoipa::path(get, path = "/v1/policies", tag = "policies", responses((status = 200, body = Vec<PolicyInfo>)))]
    tenant_list_policies;
    /// Every global policy.
    #[utoipa::path(get, path = "/v1/global/policies", tag = "global", responses((status = 200, body = Vec<PolicyInfo>)))]
    global_list_policies;
    |on, state, caller| -> Json<Vec<PolicyInfo>> {
        read(on, &state, &caller, |registry, scope| registry.list_policies(scope))
    }
}

in_both_scopes! {
    /// One policy and its versions.
    #[utoipa::path(get, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path)), responses((status = 200, body = PolicyInfo)))]
    tenant_get_policy;
    /// One global policy.
    #[utoipa::path(get, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path)), responses((status = 200, body = PolicyInfo)))]
    global_get_policy;
    |on, state, caller, name: ApiPath<String>| -> Json<PolicyInfo> {
        read(on, &state, &caller, |registry, scope| registry.get_policy(scope, &name.0))
    }
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
    |on, state, caller, name: ApiPath<String>, body: ApiJson<ActivatePolicy>| -> Json<PolicyInfo> {
        write(on, state, caller, move |registry, scope, actor| {
            registry.activate_policy(scope, &name.0, body.0.version, actor).map(Json)
        })
        .await
    }
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
    |on, state, caller, name: ApiPath<String>, config: ApiJson<Value>| -> Json<PolicyInfo> {
        write(on, state, caller, move |registry, scope, actor| {
            registry.configure_policy(scope, &name.0, config.0, actor).map(Json)
        })
        .await
    }
}

in_both_scopes! {
    /// Delete a policy and all its versions.
    #[utoipa::path(delete, path = "/v1/policies/{name}", tag = "policies", params(("name" = String, Path)),
        responses((status = 204), (status = 409, description = "the tenant's `default_policy` names it")))]
    tenant_delete_policy;
    /// Delete a global policy.
    #[utoipa::path(delete, path = "/v1/global/policies/{name}", tag = "global", params(("name" = String, Path)),
        responses((status = 204), (status = 409, description = "the builtin, or a policy tenants default to")))]
    global_delete_policy;
    |on, state, caller, name: ApiPath<String>| -> NoContent {
        write(on, state, caller, move |registry, scope, actor| {
            registry.delete_policy(scope, &name.0, actor).map(|()| NoContent)
        })
        .await
    }
}

// ---- data -----------------------------------------------------------------------

in_both_scopes! {
    /// Create or replace a data document; the body is the document (any JSON).
    #[utoipa::path(put, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), request_body = Value,
    responses((status = 200, body = DataDocument)))]
    tenant_put_data;
    /// Create or replace a global data document.
    #[utoipa::path(put, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), request_body = Value,
    responses((status = 200, body = DataDocument)))]
    global_put_data;
    |on, state, caller, key: ApiPath<String>, value: ApiJson<Value>| -> Json<DataDocument> {
        write(on, state, caller, move |registry, scope, actor| {
            registry.put_data(scope, &key.0, value.0, actor).map(Json)
        })
        .await
    }
}

in_both_scopes! {
    /// A data document, the tenant's own or else the global one.
    #[utoipa::path(get, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), responses((status = 200, body = DataDocument)))]
    tenant_get_data;
    /// A global data document.
    #[utoipa::path(get, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), responses((status = 200, body = DataDocument)))]
    global_get_data;
    |on, state, caller, key: ApiPath<String>| -> Json<DataDocument> {
        read(on, &state, &caller, |registry, scope| registry.get_data(scope, &key.0))
    }
}

in_both_scopes! {
    /// Delete one of the tenant's data documents.
    #[utoipa::path(delete, path = "/v1/data/{key}", tag = "data", params(("key" = String, Path)), responses((status = 204)))]
    tenant_delete_data;
    /// Delete a global data document.
    #[utoipa::path(delete, path = "/v1/global/data/{key}", tag = "global", params(("key" = String, Path)), responses((status = 204)))]
    global_delete_data;
    |on, state, caller, key: ApiPath<String>| -> NoContent {
        write(on, state, caller, move |registry, scope, actor| {
            registry.delete_data(scope, &key.0, actor).map(|()| NoContent)
        })
        .await
    }
}
