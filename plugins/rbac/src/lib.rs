//! Role-based access: the subject's roles map to permissions.
//!
//! Roles come from the subject's `roles` property (a list of names, or one
//! name), else from the resolved agent's `roles` attribute. The mapping from
//! role to permissions is `{"roles": {"viewer": [{"resource": "docs:*",
//! "actions": ["read"]}]}}`, taken from the policy's config when it has a
//! `roles` field, else from the data document named by the config's
//! `data_key` (default `rbac`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use ward_policy::{Decision, Error, Request, Result, allow, data_get, deny, glob_match};

#[derive(Deserialize)]
struct Grant {
    resource: String,
    actions: Vec<String>,
}

#[derive(Deserialize)]
struct RoleMap {
    roles: BTreeMap<String, Vec<Grant>>,
}

#[derive(Deserialize, Default)]
struct Config {
    roles: Option<BTreeMap<String, Vec<Grant>>>,
    data_key: Option<String>,
}

fn evaluate(request: &Request) -> Result<Decision> {
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    let roles_to_grants = match config.roles {
        Some(roles) => roles,
        None => {
            let key = config.data_key.as_deref().unwrap_or("rbac");
            let Some(map) = data_get::<RoleMap>(key)? else {
                return Err(Error::new(format!(
                    "no role mapping: config has no `roles` and data document `{key}` is missing"
                )));
            };
            map.roles
        }
    };

    let roles = subject_roles(request);
    if roles.is_empty() {
        return Ok(deny(format!(
            "subject `{}` has no roles",
            request.subject().qualified()
        )));
    }

    let resource = request.resource().qualified();
    let action = request.action().name();
    for role in &roles {
        let Some(grants) = roles_to_grants.get(role) else {
            continue;
        };
        for grant in grants {
            let action_ok = grant.actions.iter().any(|a| a == action || a == "*");
            if action_ok && glob_match(&grant.resource, &resource) {
                return Ok(
                    allow().reason(format!("role `{role}` grants `{action}` on `{resource}`"))
                );
            }
        }
    }
    Ok(deny(format!(
        "roles [{}] grant no `{action}` on `{resource}`",
        roles.join(", ")
    )))
}

fn subject_roles(request: &Request) -> Vec<String> {
    let from_subject = request.subject().property("roles");
    let from_agent = || request.agent().and_then(|agent| agent.attribute("roles"));
    match from_subject.or_else(from_agent) {
        Some(Value::String(role)) => vec![role],
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(role) => Some(role),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

ward_policy::policy!(evaluate);
