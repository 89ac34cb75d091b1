//! Tenancy on sled: lifecycle, narrowest-first resolution, the authorize
//! pipeline, isolation between tenants, cascade delete and restarts.

use serde_json::{Value, json};
use ward::audit::AuditQuery;
use ward::registry::{Registry, RegistryError, ScopeId};
use ward::store::{Kind, Store};
use ward_types::{
    AuditKind, AuthorizeRequest, CreateTenant, Entity, Permission, PutAgent, RequestAction, Scope,
    TenantKind, TenantStatus, UpdateTenant,
};

use crate::support::*;

mod isolation;
mod lifecycle;
mod objects;
mod pipeline;
mod resolution;
mod tenants;

const OP: &str = "operator";

fn create(registry: &Registry, slug: &str) -> ScopeId {
    create_with(registry, slug, json!({}))
}

fn create_with(registry: &Registry, slug: &str, settings: Value) -> ScopeId {
    let tenant = registry
        .create_tenant(
            CreateTenant {
                slug: slug.into(),
                name: format!("{slug} Inc."),
                kind: TenantKind::Organization,
                settings: settings.as_object().cloned(),
            },
            OP,
        )
        .unwrap();
    ScopeId::Tenant(tenant.id)
}

fn tenant_id(scope: &ScopeId) -> &str {
    scope.key()
}

fn grants(pairs: &[(&str, &[&str])]) -> Vec<Permission> {
    pairs
        .iter()
        .map(|(resource, actions)| Permission {
            resource: resource.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

fn agent_body(pairs: &[(&str, &[&str])]) -> PutAgent {
    PutAgent {
        kind: "ai_agent".into(),
        status: Default::default(),
        attributes: Default::default(),
        permissions: grants(pairs),
        policy: None,
        budgets: Default::default(),
    }
}

/// An agent with no grants whose decisions `policy` makes.
fn bound_to(policy: &str) -> PutAgent {
    PutAgent {
        policy: Some(policy.into()),
        budgets: Default::default(),
        ..agent_body(&[])
    }
}

fn ask(subject: &str, action: &str, resource: &str) -> AuthorizeRequest {
    let (kind, id) = resource.split_once(':').unwrap();
    AuthorizeRequest {
        subject: Entity {
            kind: "agent".into(),
            id: subject.into(),
            properties: None,
        },
        action: RequestAction {
            name: action.into(),
            properties: None,
        },
        resource: Entity {
            kind: kind.into(),
            id: id.into(),
            properties: None,
        },
        context: None,
    }
}

fn decide(
    registry: &Local,
    scope: &ScopeId,
    subject: &str,
    action: &str,
    resource: &str,
) -> ward::decision::DecisionOutcome {
    registry
        .authorize(
            tenant_id(scope),
            &ask(subject, action, resource),
            "key:test",
        )
        .unwrap()
}

fn code(err: RegistryError) -> String {
    err.code().as_str().to_string()
}
