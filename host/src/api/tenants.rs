//! Tenants (operator only), the caller's own tenant, and API keys.

use axum::extract::State;
use axum::http::StatusCode;
use ward_types::ErrorCode;
use ward_types::{
    ApiKeyInfo, CreateKey, CreateTenant, CreatedKey, Me, MyTenant, TENANT_ADJUSTABLE_SETTINGS,
    Tenant, TenantStatus, UpdateTenant,
};

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState, Created, NoContent, blocking};
use crate::auth::{Caller, Role};

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
    let owner = if caller.role == Role::Operator {
        None
    } else {
        let principal = caller
            .principal
            .as_ref()
            .filter(|principal| principal.bounds.self_service)
            .ok_or_else(|| {
                ApiError::forbidden("tenants are created by the operator or through self-service")
            })?;
        if !principal.bounds.allows(&body.slug) {
            return Err(ApiError::new(
                ErrorCode::TenantNotAllowed,
                "this issuer may not name a tenant with that slug",
            ));
        }
        if let Some(settings) = &body.settings {
            check_adjustable(settings)?;
        }
        body.kind = ward_types::TenantKind::Organization;
        Some((
            principal.owner.clone(),
            principal.bounds.self_service_max_tenants,
        ))
    };
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

/// Refuses settings a tenant's own admins may not set.
fn check_adjustable(settings: &serde_json::Map<String, serde_json::Value>) -> Result<(), ApiError> {
    match settings
        .keys()
        .find(|key| !TENANT_ADJUSTABLE_SETTINGS.contains(&key.as_str()))
    {
        Some(field) => Err(ApiError::new(
            ErrorCode::SettingNotAdjustable,
            format!(
                "`{}` is set by the operator; a tenant adjusts only {}",
                crate::registry::clip(field),
                TENANT_ADJUSTABLE_SETTINGS.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Change the caller's own tenant: its name and the settings a tenant
/// adjusts itself (`default_policy`, `audit_retention_days`,
/// `allowed_agent_types`); quotas, budgets and sandbox limits stay with the
/// operator (403 naming the field).
#[utoipa::path(patch, path = "/v1/tenant", tag = TAG, request_body = UpdateTenant,
    responses((status = 200, body = Tenant)))]
pub async fn update_own(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<axum::Json<Tenant>, ApiError> {
    let tenant = caller.admin_scope()?.key().to_string();
    if let Some(settings) = &body.settings {
        check_adjustable(settings)?;
    }
    update_tenant(state, caller, tenant, body).await
}

async fn update_tenant(
    state: AppState,
    caller: Caller,
    tenant: String,
    body: UpdateTenant,
) -> Result<axum::Json<Tenant>, ApiError> {
    let registry = state.registry.clone();
    blocking(move || {
        Ok(axum::Json(registry.update_tenant(
            &tenant,
            body,
            &caller.actor,
        )?))
    })
    .await
}

/// Who the caller is and the tenants it may act in, with its roles in
/// each: a tenant switcher's data.
#[utoipa::path(get, path = "/v1/me", tag = TAG, responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> axum::Json<Me> {
    let (actor, _) = crate::audit::split_actor(&caller.actor);
    let registry = &state.registry;
    let mine = |tenant: Tenant, roles: Vec<String>| MyTenant {
        id: tenant.id,
        slug: tenant.slug,
        name: tenant.name,
        roles,
    };
    let mut tenants: Vec<MyTenant> = Vec::new();
    match &caller.principal {
        Some(principal) => {
            for (named, roles) in &principal.memberships {
                let roles: Vec<String> = roles
                    .iter()
                    .filter(|role| matches!(role.as_str(), "admin" | "authorize"))
                    .cloned()
                    .collect();
                if let Ok(tenant) = registry.get_tenant(named)
                    && principal.bounds.allows(&tenant.slug)
                    && !roles.is_empty()
                {
                    tenants.push(mine(tenant, roles));
                }
            }
            if principal.bounds.self_service {
                for tenant in registry.list_tenants() {
                    if tenant.owner.as_ref() == Some(&principal.owner)
                        && !tenants.iter().any(|t| t.id == tenant.id)
                    {
                        tenants.push(mine(
                            tenant,
                            vec![String::from("owner"), String::from("admin")],
                        ));
                    }
                }
            }
        }
        None if caller.role != Role::Operator => {
            if let Some(tenant) = caller
                .tenant
                .as_ref()
                .and_then(|id| registry.get_tenant(id).ok())
            {
                let role = if caller.role == Role::Admin {
                    "admin"
                } else {
                    "authorize"
                };
                tenants.push(mine(tenant, vec![role.to_string()]));
            }
        }
        None => {}
    }
    axum::Json(Me {
        actor: actor.to_string(),
        operator: caller.role == Role::Operator,
        tenants,
    })
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

/// Rename a tenant or merge its settings (JSON merge patch).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = TAG, request_body = UpdateTenant,
    params(("tenant" = String, Path, description = "id or slug")), responses((status = 200, body = Tenant)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
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
        // The operator, or the user who created it through self-service;
        // anyone else learns nothing, not even whether it exists.
        let target = if caller.role == Role::Operator {
            registry.get_tenant(&tenant)?
        } else {
            registry
                .get_tenant(&tenant)
                .ok()
                .filter(|target| {
                    caller.principal.as_ref().is_some_and(|principal| {
                        principal.bounds.self_service
                            && target.owner.as_ref() == Some(&principal.owner)
                    })
                })
                .ok_or_else(|| {
                    ApiError::forbidden("this route is for the operator or the tenant's owner")
                })?
        };
        registry.delete_tenant(&target.id, &caller.actor)?;
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
