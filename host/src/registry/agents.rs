//! Agents: named principals with a type, status, attributes, permissions
//! and an optional bound policy.

use std::sync::Arc;

use serde_json::{Value, json};
use ward_types::{Agent, AuditKind, PutAgent, Timestamp};

use super::index::AgentEntry;
use super::names::{check_name, clip};
use super::{Registry, RegistryError, Result, ScopeId, check_count};
use crate::store::{Kind, Write, scoped_key};

const MAX_PERMISSIONS: usize = 1_000;
const MAX_ACTIONS: usize = 100;
const MAX_PATTERN_CHARS: usize = 512;
const MAX_TYPE_CHARS: usize = 64;
const MAX_ATTRIBUTES_BYTES: usize = 64 << 10;

impl Registry {
    /// Creates or replaces agent `name` in `scope`; `true` when created.
    pub fn put_agent(
        &self,
        scope: &ScopeId,
        name: &str,
        body: PutAgent,
        actor: &str,
    ) -> Result<(Agent, bool)> {
        let result = self.write_agent(scope, name, body, actor);
        self.audit_quota(scope, actor, name, result)
    }

    fn write_agent(
        &self,
        scope: &ScopeId,
        name: &str,
        body: PutAgent,
        actor: &str,
    ) -> Result<(Agent, bool)> {
        check_name("agent", name)?;
        check_agent_body(&body)?;
        let settings = self.settings_of(scope)?;
        if let Some(allowed) = settings
            .as_ref()
            .and_then(|s| s.allowed_agent_types.as_ref())
            && !allowed.contains(&body.kind)
        {
            return Err(RegistryError::Invalid(format!(
                "agent type `{}` is not one of this tenant's allowed types [{}]",
                clip(&body.kind),
                allowed.join(", ")
            )));
        }

        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let existing = index.agents.get(name).map(|entry| entry.agent.created_at);
        if existing.is_none() {
            check_count(
                index.agents.len(),
                settings.as_ref().map(|s| s.max_agents),
                "max_agents",
                "agents",
            )?;
        }
        let now = Timestamp::now();
        let agent = Agent {
            name: name.to_string(),
            scope: scope.scope(),
            kind: body.kind,
            status: body.status,
            attributes: body.attributes,
            permissions: body.permissions,
            policy: body.policy,
            created_at: existing.unwrap_or(now),
            updated_at: now,
        };
        self.commit(vec![Write::put_json(
            Kind::Agent,
            scoped_key(scope.key(), name),
            &agent,
        )?])?;
        index
            .agents
            .insert(name.to_string(), Arc::new(AgentEntry::new(agent.clone())));
        self.publish(scope, index)?;
        self.audit_event(
            scope,
            actor,
            AuditKind::AgentPut,
            Some(name),
            json!({"created": existing.is_none()}),
        )?;
        Ok((agent, existing.is_none()))
    }

    /// Agent `name` as `scope` sees it: the tenant's own, else the global
    /// one.
    pub fn get_agent(&self, scope: &ScopeId, name: &str) -> Result<Agent> {
        let scopes = self.scopes(scope)?;
        scopes
            .resolve(|index| index.agents.get(name))
            .map(|(entry, _)| entry.agent.clone())
            .ok_or_else(|| RegistryError::not_found("agent", name))
    }

    /// Every agent `scope` sees, by name: its own and the global ones it
    /// does not shadow.
    pub fn list_agents(&self, scope: &ScopeId) -> Result<Vec<Agent>> {
        let scopes = self.scopes(scope)?;
        Ok(scopes
            .merged(|index| &index.agents)
            .into_iter()
            .map(|entry| entry.agent.clone())
            .collect())
    }

    /// Deletes agent `name` from `scope`.
    pub fn delete_agent(&self, scope: &ScopeId, name: &str, actor: &str) -> Result<()> {
        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let in_global = self.global_index().agents.contains_key(name);
        self.check_owned(
            scope,
            index.agents.contains_key(name),
            in_global,
            "agent",
            name,
        )?;
        self.commit(vec![Write::delete(
            Kind::Agent,
            scoped_key(scope.key(), name),
        )])?;
        index.agents.remove(name);
        self.publish(scope, index)?;
        self.audit_event(
            scope,
            actor,
            AuditKind::AgentDeleted,
            Some(name),
            Value::Null,
        )?;
        Ok(())
    }
}

fn check_agent_body(body: &PutAgent) -> Result<()> {
    let invalid = |message: String| Err(RegistryError::Invalid(message));
    if body.kind.is_empty()
        || body.kind.chars().count() > MAX_TYPE_CHARS
        || body.kind.chars().any(char::is_control)
    {
        return invalid(format!(
            "agent type must be 1-{MAX_TYPE_CHARS} printable characters"
        ));
    }
    if body.permissions.len() > MAX_PERMISSIONS {
        return invalid(format!(
            "an agent has at most {MAX_PERMISSIONS} permissions"
        ));
    }
    for permission in &body.permissions {
        if permission.resource.is_empty() || permission.resource.chars().count() > MAX_PATTERN_CHARS
        {
            return invalid(format!(
                "a permission's resource pattern must be 1-{MAX_PATTERN_CHARS} characters"
            ));
        }
        if permission.actions.is_empty() || permission.actions.len() > MAX_ACTIONS {
            return invalid(format!("a permission lists 1-{MAX_ACTIONS} actions"));
        }
        if permission
            .actions
            .iter()
            .any(|a| a.is_empty() || a.chars().count() > MAX_PATTERN_CHARS)
        {
            return invalid(format!(
                "an action name must be 1-{MAX_PATTERN_CHARS} characters"
            ));
        }
    }
    if Value::Object(body.attributes.clone()).to_string().len() > MAX_ATTRIBUTES_BYTES {
        return invalid(format!(
            "attributes are at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"
        ));
    }
    if let Some(policy) = &body.policy {
        check_name("policy", policy)?;
    }
    Ok(())
}
