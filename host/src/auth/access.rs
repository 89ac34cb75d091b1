//! What a caller may do: the role checks of every route, and what a
//! tenant's own admins and a self-service user may change. Handlers ask
//! here; the rules live nowhere else.

use ward_types::{
    CreateTenant, Me, MyTenant, TENANT_ADJUSTABLE_SETTINGS, Tenant, TenantKind, TenantOwner,
};

use super::{AuthError, Authenticator, Caller, Role};
use crate::registry::ScopeId;

impl Caller {
    /// The tenant scope a management call acts on: a tenant admin's own,
    /// or the one an operator named.
    pub fn admin_scope(&self) -> Result<ScopeId, AuthError> {
        match (self.role, &self.tenant) {
            (Role::Authorize, _) => Err(AuthError::Forbidden(String::from(
                "this API key may only ask for decisions",
            ))),
            (Role::User, _) => Err(AuthError::Forbidden(String::from(
                "this token acts in no tenant: name one with X-Tenant-ID",
            ))),
            (_, Some(tenant)) => Ok(ScopeId::Tenant(tenant.clone())),
            (_, None) => Err(AuthError::TenantRequired(String::from(
                "operators name the tenant to act in with X-Tenant-ID",
            ))),
        }
    }

    /// The tenant a decision is for.
    pub fn decision_tenant(&self) -> Result<&str, AuthError> {
        self.tenant.as_deref().ok_or_else(|| {
            AuthError::TenantRequired(String::from(
                "operators name the tenant to act in with X-Tenant-ID",
            ))
        })
    }

    /// Checks that the caller is the operator.
    pub fn require_operator(&self) -> Result<(), AuthError> {
        if self.role == Role::Operator {
            Ok(())
        } else {
            Err(AuthError::Forbidden(String::from(
                "this route is for the operator",
            )))
        }
    }

    /// The global scope, for the operator only.
    pub fn global_scope(&self) -> Result<ScopeId, AuthError> {
        self.require_operator()?;
        Ok(ScopeId::Global)
    }

    /// Whether the caller may create `request`, and as whom: the operator
    /// creates any tenant (`None`); a user of a self-service issuer
    /// creates an organization it then owns, with a slug its issuer
    /// allows and only settings a tenant adjusts itself (`Some` owner and
    /// the most tenants it may own).
    pub fn may_create(
        &self,
        request: &mut CreateTenant,
    ) -> Result<Option<(TenantOwner, usize)>, AuthError> {
        if self.role == Role::Operator {
            return Ok(None);
        }
        let principal = self
            .principal
            .as_ref()
            .filter(|principal| principal.bounds.self_service)
            .ok_or_else(|| {
                AuthError::Forbidden(String::from(
                    "tenants are created by the operator or through self-service",
                ))
            })?;
        if !principal.bounds.allows(&request.slug) {
            return Err(AuthError::TenantNotAllowed(String::from(
                "this issuer may not name a tenant with that slug",
            )));
        }
        if let Some(settings) = &request.settings {
            check_adjustable(settings)?;
        }
        request.kind = TenantKind::Organization;
        Ok(Some((
            principal.owner.clone(),
            principal.bounds.self_service_max_tenants,
        )))
    }

    /// Whether the caller may delete `tenant` (`None`: no such tenant):
    /// the operator, or the user who created it through self-service.
    /// Anyone else learns nothing, not even whether it exists.
    pub fn may_delete(&self, tenant: Option<&Tenant>) -> Result<(), AuthError> {
        let owns = |tenant: &Tenant| {
            self.principal.as_ref().is_some_and(|principal| {
                principal.bounds.self_service && tenant.owner.as_ref() == Some(&principal.owner)
            })
        };
        if self.role == Role::Operator || tenant.is_some_and(owns) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(String::from(
                "this route is for the operator or the tenant's owner",
            )))
        }
    }

    /// The tenant scope a tenant's own change acts on, when it changes
    /// only what a tenant adjusts itself: never its plan.
    pub fn may_adjust(
        &self,
        settings: Option<&serde_json::Map<String, serde_json::Value>>,
        changes_plan: bool,
    ) -> Result<ScopeId, AuthError> {
        let scope = self.admin_scope()?;
        if changes_plan {
            return Err(AuthError::NotAdjustable(String::from(
                "`plan` is set by the operator; a tenant cannot change its own plan",
            )));
        }
        if let Some(settings) = settings {
            check_adjustable(settings)?;
        }
        Ok(scope)
    }
}

/// Refuses settings a tenant's own admins may not set.
fn check_adjustable(
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), AuthError> {
    match settings
        .keys()
        .find(|key| !TENANT_ADJUSTABLE_SETTINGS.contains(&key.as_str()))
    {
        Some(field) => Err(AuthError::NotAdjustable(format!(
            "`{}` is set by the operator; a tenant adjusts only {}",
            crate::registry::clip(field),
            TENANT_ADJUSTABLE_SETTINGS.join(", ")
        ))),
        None => Ok(()),
    }
}

impl Authenticator {
    /// Who `caller` is and the tenants it may act in, with its roles in
    /// each: a tenant switcher's data.
    pub fn me(&self, caller: &Caller) -> Me {
        let (actor, _) = crate::audit::split_actor(&caller.actor);
        let registry = &self.registry;
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
        Me {
            actor: actor.to_string(),
            operator: caller.role == Role::Operator,
            tenants,
        }
    }
}
