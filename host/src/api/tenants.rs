//! Tenants (operator only), the caller's own tenant, and API keys.

use axum::extract::State;
use axum::http::StatusCode;
use ward_types::{
    ApiKeyInfo, CreateKey, CreateTenant, CreatedKey, Me, PatchTenant, Plan, Tenant, TenantStatus,
};

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState, Created, NoContent, blocking};
use crate::auth::Caller;

const TAG: &str = "tenants";

/// Create a tenant: the operator, or a user of a self-service issuer, who
/// then owns the new organization tenant (and no API key ever may).
#[utoipa::path(post, path = "/v1/tenants", tag = TAG, request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 409, description = "slug taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut body): ApiJson<CreateTenant>,
) -> Result<Created<Tenant>, ApiError> {
    let owner = caller.may_create(&mut body)?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(Created(registry.create_owned_tenant(
            body,
            &caller.actor,
            owner,
        )?))
    })
    .await
}

/// Change the caller's own tenant: its name and the settings a tenant
/// adjusts itself (`default_policy`, `audit_retention_days`,
/// `allowed_agent_types`); quotas, budgets, sandbox limits and the plan
/// stay with the operator (403 naming the field). A setting the config
/// file pins is 409.
#[utoipa::path(patch, path = "/v1/tenant", tag = TAG, request_body = PatchTenant,
    responses((status = 200, body = Tenant)))]
pub async fn update_own(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PatchTenant>,
) -> Result<axum::Json<Tenant>, ApiError> {
    let tenant = caller
        .may_adjust(body.settings.as_ref(), body.plan.is_some())?
        .key()
        .to_string();
    update_tenant(state, caller, tenant, body).await
}

async fn update_tenant(
    state: AppState,
    caller: Caller,
    tenant: String,
    mut body: PatchTenant,
) -> Result<axum::Json<Tenant>, ApiError> {
    let registry = state.registry.clone();
    blocking(move || {
        let plan = body.plan.take();
        Ok(axum::Json(registry.patch_tenant(
            &tenant,
            body.into(),
            plan,
            &caller.actor,
        )?))
    })
    .await
}

/// The plans of the server's configuration (`[[plans]]`).
#[utoipa::path(get, path = "/v1/plans", tag = TAG, responses((status = 200, body = Vec<Plan>)))]
pub async fn plans(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<Plan>>, ApiError> {
    caller.require_operator()?;
    Ok(axum::Json(state.registry.plans()))
}

/// Who the caller is and the tenants it may act in, with its roles in
/// each: a tenant switcher's data.
#[utoipa::path(get, path = "/v1/me", tag = TAG, responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> axum::Json<Me> {
    axum::Json(state.auth.me(&caller))
}

/// List every tenant, whatever its status.
#[utoipa::path(get, path = "/v1/tenants", tag = TAG, responses((status = 200, body = Vec<Tenant>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<Tenant>>, ApiError> {
    caller.require_operator()?;
    Ok(axum::Json(state.registry.list_tenants()))
}

/// One tenant, by id or slug.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = TAG, params(("tenant" = String, Path, description = "id or slug")),
    responses((status = 200, body = Tenant)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> Result<axum::Json<Tenant>, ApiError> {
    caller.require_operator()?;
    Ok(axum::Json(state.registry.get_tenant(&tenant)?))
}

/// Rename a tenant, merge its settings (JSON merge patch) or change its
/// plan (an unknown plan is 400; `null` removes it). A setting the config
/// file pins for the tenant is 409.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = TAG, request_body = PatchTenant,
    params(("tenant" = String, Path, description = "id or slug")), responses((status = 200, body = Tenant)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<PatchTenant>,
) -> Result<axum::Json<Tenant>, ApiError> {
    caller.require_operator()?;
    update_tenant(state, caller, tenant, body).await
}

/// Suspend a tenant: every decision becomes a deny (`tenant_suspended`).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/suspend", tag = TAG,
    params(("tenant" = String, Path, description = "id or slug")), responses((status = 200, body = Tenant)))]
pub async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> Result<axum::Json<Tenant>, ApiError> {
    set_status(state, caller, tenant, TenantStatus::Suspended).await
}

/// Reactivate a suspended tenant.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/activate", tag = TAG,
    params(("tenant" = String, Path, description = "id or slug")), responses((status = 200, body = Tenant)))]
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> Result<axum::Json<Tenant>, ApiError> {
    set_status(state, caller, tenant, TenantStatus::Active).await
}

async fn set_status(
    state: AppState,
    caller: Caller,
    tenant: String,
    status: TenantStatus,
) -> Result<axum::Json<Tenant>, ApiError> {
    caller.require_operator()?;
    let registry = state.registry.clone();
    blocking(move || {
        Ok(axum::Json(registry.set_tenant_status(
            &tenant,
            status,
            &caller.actor,
        )?))
    })
    .await
}

/// Delete a tenant and everything it owns; its keys stop working at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = TAG,
    params(("tenant" = String, Path, description = "id or slug")), responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    let registry = state.registry.clone();
    blocking(move || {
        let found = registry.get_tenant(&tenant);
        caller.may_delete(found.as_ref().ok())?;
        registry.delete_tenant(&found?.id, &caller.actor)?;
        Ok(NoContent)
    })
    .await
}

/// Create an API key for a tenant (the operator's way to hand out the
/// first one). The secret is in this answer only.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = TAG, request_body = CreateKey,
    params(("tenant" = String, Path, description = "id or slug")), responses((status = 201, body = CreatedKey)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Created<CreatedKey>, ApiError> {
    caller.require_operator()?;
    let tenant_id = state.registry.get_tenant(&tenant)?.id;
    create_key_in(state, caller, tenant_id, body).await
}

/// The caller's own tenant.
#[utoipa::path(get, path = "/v1/tenant", tag = TAG, responses((status = 200, body = Tenant)))]
pub async fn own(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Tenant>, ApiError> {
    let tenant = caller.decision_tenant()?;
    Ok(axum::Json(state.registry.get_tenant(tenant)?))
}

/// Create an API key in the caller's tenant. The secret is in this answer
/// only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey, responses((status = 201, body = CreatedKey)))]
pub async fn create_own_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Created<CreatedKey>, ApiError> {
    let tenant = caller.admin_scope()?.key().to_string();
    create_key_in(state, caller, tenant, body).await
}

async fn create_key_in(
    state: AppState,
    caller: Caller,
    tenant: String,
    body: CreateKey,
) -> Result<Created<CreatedKey>, ApiError> {
    let registry = state.registry.clone();
    blocking(move || {
        let (key, secret) = registry.create_key(&tenant, &body.name, body.role, &caller.actor)?;
        Ok(Created(CreatedKey { key, secret }))
    })
    .await
}

/// The caller's tenant's API keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = Vec<ApiKeyInfo>)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<ApiKeyInfo>>, ApiError> {
    let scope = caller.admin_scope()?;
    Ok(axum::Json(state.registry.list_keys(scope.key())?))
}

/// Revoke an API key at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)), responses((status = 204)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<NoContent, ApiError> {
    let tenant = caller.admin_scope()?.key().to_string();
    let registry = state.registry.clone();
    blocking(move || {
        registry.revoke_key(&tenant, &id, &caller.actor)?;
        Ok(NoContent)
    })
    .await
}

impl<T: serde::Serialize> axum::response::IntoResponse for Created<T> {
    fn into_response(self) -> axum::response::Response {
        (StatusCode::CREATED, axum::Json(self.0)).into_response()
    }
}
