//! Agents: named principals with a type, status, attributes, permissions
//! and an optional bound policy.

use std::sync::Arc;

use serde_json::{Value, json};
use ward_types::{Agent, AgentPage, AgentStatus, AuditKind, PutAgent, Timestamp};

use super::index::AgentEntry;
use super::names::{check_name, clip};
use super::{Registry, RegistryError, Result, ScopeId, check_count};
use crate::store::{Kind, Write, scoped_key};

const MAX_PERMISSIONS: usize = 1_000;
const MAX_ACTIONS: usize = 100;
const MAX_PATTERN_CHARS: usize = 512;
const MAX_TYPE_CHARS: usize = 64;
const MAX_ATTRIBUTES_BYTES: usize = 64 << 10;
/// Most agents one page of a listing holds.
const MAX_AGENT_PAGE: usize = 1000;
/// Page size of a listing given a cursor but no limit.
const DEFAULT_AGENT_PAGE: usize = 100;

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
            budgets: body.budgets,
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

    /// The agents `scope` sees (as [`Registry::list_agents`]) of this
    /// `status` and type `kind`, by name: all of them, or one page when a
    /// `limit` or a `cursor` (the previous page's `next_cursor`) is given.
    pub fn list_agents_page(
        &self,
        scope: &ScopeId,
        status: Option<AgentStatus>,
        kind: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<AgentPage> {
        let listing = Listing::new(status, kind, limit, cursor)?;
        let scopes = self.scopes(scope)?;
        Ok(listing.page(
            scopes
                .merged(|index| &index.agents)
                .into_iter()
                .map(|entry| &entry.agent),
        ))
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

/// One agent listing, checked: its filters and the page it answers.
#[derive(Debug)]
struct Listing<'q> {
    status: Option<AgentStatus>,
    kind: Option<&'q str>,
    /// The page starts after this name, the previous page's last.
    after: Option<String>,
    /// `usize::MAX` when the whole listing is asked for.
    limit: usize,
}

impl<'q> Listing<'q> {
    fn new(
        status: Option<AgentStatus>,
        kind: Option<&'q str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Self> {
        let invalid = |message: String| Err(RegistryError::Invalid(message));
        if let Some(kind) = kind
            && (kind.is_empty() || kind.chars().count() > MAX_TYPE_CHARS)
        {
            return invalid(format!("type must be 1-{MAX_TYPE_CHARS} characters"));
        }
        let limit = match (limit, cursor) {
            (Some(limit), _) if !(1..=MAX_AGENT_PAGE).contains(&limit) => {
                return invalid(format!("limit must be between 1 and {MAX_AGENT_PAGE}"));
            }
            (Some(limit), _) => limit,
            (None, Some(_)) => DEFAULT_AGENT_PAGE,
            (None, None) => usize::MAX,
        };
        Ok(Listing {
            status,
            kind,
            after: cursor.map(name_after).transpose()?,
            limit,
        })
    }

    /// The page of `sorted`, agents sorted by name, this listing answers;
    /// `next_cursor` only when an agent past the page matches too, so the
    /// last page says it is the last.
    fn page<'a>(&self, sorted: impl IntoIterator<Item = &'a Agent>) -> AgentPage {
        let mut matching = sorted
            .into_iter()
            .skip_while(|agent| {
                self.after
                    .as_ref()
                    .is_some_and(|after| agent.name <= *after)
            })
            .filter(|agent| self.status.is_none_or(|status| agent.status == status))
            .filter(|agent| self.kind.is_none_or(|kind| agent.kind == kind));
        let agents: Vec<Agent> = matching.by_ref().take(self.limit).cloned().collect();
        let next_cursor = match agents.last() {
            Some(last) if agents.len() == self.limit && matching.next().is_some() => {
                Some(cursor_after(&last.name))
            }
            _ => None,
        };
        AgentPage {
            agents,
            next_cursor,
        }
    }
}

/// The cursor of a page ending with agent `name`: its name in lowercase
/// hex, opaque to clients and safe in a query string.
fn cursor_after(name: &str) -> String {
    hex::encode(name)
}

/// The name a cursor of [`cursor_after`] was made from; anything it could
/// not have made is refused.
fn name_after(cursor: &str) -> Result<String> {
    let forged = || RegistryError::Invalid(String::from("cursor is not one this server gave out"));
    let bytes = hex::decode(cursor).map_err(|_| forged())?;
    let name = String::from_utf8(bytes).map_err(|_| forged())?;
    if cursor_after(&name) != cursor || check_name("agent", &name).is_err() {
        return Err(forged());
    }
    Ok(name)
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
    if let Err(err) = ward_types::check_budgets(&body.budgets) {
        return invalid(format!("budgets: {err}"));
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

#[cfg(test)]
mod tests {
    use ward_types::Scope;

    use super::*;

    /// Read from JSON, as the store does, so that fields with defaults
    /// need not be spelled out here.
    fn agent(name: &str, kind: &str, status: AgentStatus) -> Agent {
        let now = Timestamp::now();
        serde_json::from_value(json!({
            "name": name,
            "scope": Scope::Tenant,
            "type": kind,
            "status": status,
            "attributes": {},
            "permissions": [],
            "policy": null,
            "created_at": now,
            "updated_at": now,
        }))
        .unwrap()
    }

    /// `a00`..`a24`, every third disabled, even ones of type `service`.
    fn sorted() -> Vec<Agent> {
        (0..25)
            .map(|i| {
                let status = if i % 3 == 0 {
                    AgentStatus::Disabled
                } else {
                    AgentStatus::Active
                };
                let kind = if i % 2 == 0 { "service" } else { "user" };
                agent(&format!("a{i:02}"), kind, status)
            })
            .collect()
    }

    fn names(page: &AgentPage) -> Vec<&str> {
        page.agents.iter().map(|a| a.name.as_str()).collect()
    }

    fn page(
        status: Option<AgentStatus>,
        kind: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<AgentPage> {
        Ok(Listing::new(status, kind, limit, cursor)?.page(&sorted()))
    }

    #[test]
    fn without_limit_or_cursor_every_match_is_listed() {
        let all = page(None, None, None, None).unwrap();
        assert_eq!(all.agents.len(), 25);
        assert_eq!(all.next_cursor, None);

        let disabled = page(Some(AgentStatus::Disabled), None, None, None).unwrap();
        assert_eq!(
            names(&disabled),
            [
                "a00", "a03", "a06", "a09", "a12", "a15", "a18", "a21", "a24"
            ]
        );
        let services = page(Some(AgentStatus::Disabled), Some("service"), None, None).unwrap();
        assert_eq!(names(&services), ["a00", "a06", "a12", "a18", "a24"]);
        assert!(
            page(None, Some("servic"), None, None)
                .unwrap()
                .agents
                .is_empty()
        );
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = page(None, None, Some(10), cursor.as_deref()).unwrap();
            pages += 1;
            seen.extend(page.agents.iter().map(|a| a.name.clone()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = sorted().into_iter().map(|a| a.name).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_page_that_ends_the_listing_has_no_cursor() {
        // 16 active agents: a page of exactly 16 is the last one.
        let active = page(Some(AgentStatus::Active), None, Some(16), None).unwrap();
        assert_eq!(active.agents.len(), 16);
        assert_eq!(active.next_cursor, None);
        let first = page(Some(AgentStatus::Active), None, Some(12), None).unwrap();
        let cursor = first.next_cursor.unwrap();
        let rest = page(Some(AgentStatus::Active), None, Some(12), Some(&cursor)).unwrap();
        assert_eq!(names(&rest), ["a19", "a20", "a22", "a23"]);
        assert_eq!(rest.next_cursor, None);
    }

    #[test]
    fn a_cursor_alone_pages_by_the_default_size() {
        let cursor = cursor_after("a00");
        let rest = page(None, None, None, Some(&cursor)).unwrap();
        assert_eq!(rest.agents.len(), 24);
        assert_eq!(rest.agents[0].name, "a01");
        assert_eq!(rest.next_cursor, None);
    }

    #[test]
    fn a_cursor_past_a_deleted_agent_still_places_the_page() {
        // The page after `a05b`, a name no longer (or never) listed.
        let cursor = cursor_after("a05b");
        let next = page(None, None, Some(2), Some(&cursor)).unwrap();
        assert_eq!(names(&next), ["a06", "a07"]);
    }

    #[test]
    fn bad_limits_types_and_cursors_are_refused() {
        for limit in [0, MAX_AGENT_PAGE + 1] {
            let err = page(None, None, Some(limit), None).unwrap_err();
            assert!(err.to_string().starts_with("limit "), "{err}");
        }
        assert!(page(None, None, Some(MAX_AGENT_PAGE), None).is_ok());
        for kind in [String::new(), "t".repeat(MAX_TYPE_CHARS + 1)] {
            let err = page(None, Some(&kind), None, None).unwrap_err();
            assert!(err.to_string().starts_with("type "), "{err}");
        }
        let not_utf8 = hex::encode([0xff, 0xfe]);
        let upper = cursor_after("zz").to_uppercase();
        let spaced = cursor_after("has space");
        for cursor in ["", "bogus", "abc", &upper, &not_utf8, &spaced] {
            let err = page(None, None, Some(5), Some(cursor)).unwrap_err();
            assert!(
                matches!(&err, RegistryError::Invalid(m) if m.starts_with("cursor ")),
                "{cursor}: {err}"
            );
        }
    }

    #[test]
    fn a_cursor_round_trips_any_agent_name() {
        for name in ["a", "reports/q3", "ünïcode", &"n".repeat(256)] {
            assert_eq!(name_after(&cursor_after(name)).unwrap(), name);
        }
    }
}
