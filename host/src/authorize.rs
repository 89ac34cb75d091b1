//! The authorize pipeline (DESIGN §4), fail-closed at every step: tenant
//! status, agent resolution, policy choice, sandboxed evaluation, audit.
//!
//! It reads only in-memory indexes; the one store write is the audit
//! append.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use ward_types::{
    AgentRef, AgentStatus, AuditKind, AuthorizeRequest, DecisionResponse, Entity, PolicyRef, Scope,
    TenantStatus, Timestamp,
};

use crate::limits::Outcome;
use crate::registry::{Registry, RegistryError, ScopeIndex, TenantView};
use crate::sandbox::{self, DataLookup, PolicyFailure, Slice, Usage};

/// The builtin policy used when neither the agent nor the tenant names one.
pub const BUILTIN_POLICY: &str = "permissions";

/// A decision and what it cost.
#[derive(Debug, Clone)]
pub struct DecisionOutcome {
    /// The answer as the native API returns it.
    pub response: DecisionResponse,
    /// Set when the policy failed (the answer is then a deny).
    pub failure: Option<PolicyFailure>,
    /// Sandbox usage, when a policy ran.
    pub usage: Option<Usage>,
    /// Time from the start of the pipeline to the decision.
    pub duration: Duration,
}

/// Data documents as a policy of one tenant sees them: the tenant's own
/// first, then global ones; never another tenant's.
struct TenantData {
    tenant: Arc<TenantView>,
    global: Arc<ScopeIndex>,
}

impl DataLookup for TenantData {
    fn data_get(&self, key: &str) -> Option<String> {
        self.tenant
            .scope
            .data
            .get(key)
            .or_else(|| self.global.data.get(key))
            .map(|entry| entry.json.clone())
    }
}

impl Registry {
    /// Decides `request` for tenant `tenant_id` and appends the decision to
    /// the tenant's audit log. Fails only when the tenant does not exist or
    /// the audit log cannot be written; everything else is a decision.
    pub fn authorize(
        &self,
        tenant_id: &str,
        request: &AuthorizeRequest,
        actor: &str,
    ) -> Result<DecisionOutcome, RegistryError> {
        self.authorize_within(tenant_id, request, actor, Slice::Full)
    }

    /// Like [`Registry::authorize`], with the policy run within `slice`.
    /// Under [`Slice::Inline`] a policy that does not finish in its slice
    /// gives [`RegistryError::Unfinished`], and nothing is recorded.
    pub fn authorize_within(
        &self,
        tenant_id: &str,
        request: &AuthorizeRequest,
        actor: &str,
        slice: Slice,
    ) -> Result<DecisionOutcome, RegistryError> {
        let started = Instant::now();
        let view = self
            .tenant_view(tenant_id)
            .ok_or_else(|| RegistryError::not_found("tenant", tenant_id))?;
        let outcome = self
            .decide(&view, request, started, slice)
            .ok_or(RegistryError::Unfinished)?;
        let audit = self.audit();
        // Building the entry is a good part of a decision's cost; skip it
        // when it would be thrown away.
        if audit.writer().keeps_decisions() {
            let entry = DecisionEntry::new(&outcome, request, actor);
            audit.record_decision(&view.record.id, entry.id, &entry)?;
        }
        self.count(&view.record.id, &outcome);
        Ok(outcome)
    }

    fn count(&self, tenant: &str, outcome: &DecisionOutcome) {
        let metrics = self.metrics();
        metrics.latency.observe(outcome.duration.as_micros() as u64);
        let counted = match &outcome.failure {
            Some(failure) => {
                let mut errors = metrics
                    .policy_errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *errors.entry(failure.kind.as_str()).or_default() += 1;
                Outcome::Error
            }
            None if outcome.response.decision => Outcome::Allow,
            None => Outcome::Deny,
        };
        self.gates().record(tenant, counted);
    }

    /// The decision; `None` when the policy did not finish in `slice`.
    fn decide(
        &self,
        view: &Arc<TenantView>,
        request: &AuthorizeRequest,
        started: Instant,
        slice: Slice,
    ) -> Option<DecisionOutcome> {
        let deny = |reason: &str, agent: Option<AgentRef>, policy: Option<PolicyRef>| {
            Some(DecisionOutcome {
                response: DecisionResponse {
                    decision: false,
                    decision_id: crate::ids::next_ulid().to_string(),
                    reasons: vec![reason.to_string()],
                    context: Map::new(),
                    agent,
                    policy,
                },
                failure: None,
                usage: None,
                duration: started.elapsed(),
            })
        };
        if view.record.status == TenantStatus::Suspended {
            return deny("tenant_suspended", None, None);
        }

        let global = self.global_index();
        let agent = view
            .scope
            .agents
            .get(&request.subject.id)
            .map(|entry| (entry, Scope::Tenant))
            .or_else(|| {
                global
                    .agents
                    .get(&request.subject.id)
                    .map(|entry| (entry, Scope::Global))
            });
        let agent_ref = agent.map(|(entry, scope)| AgentRef {
            name: entry.agent.name.clone(),
            scope,
        });
        if let Some((entry, _)) = agent
            && entry.agent.status == AgentStatus::Disabled
        {
            return deny("agent_disabled", agent_ref, None);
        }

        let default_policy = view.settings.default_policy.as_deref();
        let policy_name = match agent {
            Some((entry, _)) => entry
                .agent
                .policy
                .as_deref()
                .or(default_policy)
                .unwrap_or(BUILTIN_POLICY),
            None => match default_policy {
                Some(name) => name,
                None => return deny("unknown_agent", None, None),
            },
        };
        let policy = view
            .scope
            .policies
            .get(policy_name)
            .map(|entry| (entry, Scope::Tenant))
            .or_else(|| {
                global
                    .policies
                    .get(policy_name)
                    .map(|entry| (entry, Scope::Global))
            });
        let Some((policy, policy_scope)) = policy else {
            return deny("policy_not_found", agent_ref, None);
        };
        let Some((version, sha256)) = policy.active() else {
            return deny("policy_not_found", agent_ref, None);
        };
        let policy_ref = PolicyRef {
            name: policy.info.name.clone(),
            scope: policy_scope,
            version,
            sha256: sha256.to_string(),
        };
        let compiled = match self.compiled(policy) {
            Ok(compiled) => compiled,
            Err(err) => {
                tracing::error!(tenant = %view.record.slug, policy = policy_name, %err, "policy cannot be loaded");
                return deny("policy_error:unavailable", agent_ref, Some(policy_ref));
            }
        };

        // The guest's request borrows what the registry holds (the agent's
        // grants included); only the JSON objects are encoded here.
        let subject_properties = json_object(request.subject.properties.as_ref());
        let action_properties = json_object(request.action.properties.as_ref());
        let resource_properties = json_object(request.resource.properties.as_ref());
        let context = json_object(request.context.as_ref());
        let wit_request = sandbox::RequestRef {
            tenant: &view.wit,
            subject: wit_entity(&request.subject, &subject_properties),
            agent: agent.map(|(entry, _)| sandbox::AgentRef::from(&entry.wit)),
            action: sandbox::ActionRef {
                name: &request.action.name,
                properties: &action_properties,
            },
            resource: wit_entity(&request.resource, &resource_properties),
            context: &context,
            config: &policy.config_json,
        };
        let data = Arc::new(TenantData {
            tenant: Arc::clone(view),
            global: Arc::clone(&global),
        });
        let outcome = self.sandbox().evaluate_within(
            &compiled,
            wit_request,
            &view.settings.sandbox,
            data,
            slice,
        )?;
        let context = match serde_json::from_str::<Value>(&outcome.context) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Some(DecisionOutcome {
            response: DecisionResponse {
                decision: outcome.allow,
                decision_id: crate::ids::next_ulid().to_string(),
                reasons: outcome.reasons,
                context,
                agent: agent_ref,
                policy: Some(policy_ref),
            },
            failure: outcome.failure,
            usage: Some(outcome.usage),
            duration: started.elapsed(),
        })
    }
}

fn wit_entity<'a>(entity: &'a Entity, properties: &'a str) -> sandbox::EntityRef<'a> {
    sandbox::EntityRef {
        type_: &entity.kind,
        id: &entity.id,
        properties,
    }
}

/// A JSON object's text; `{}` (not allocated) when absent or empty.
fn json_object(map: Option<&Map<String, Value>>) -> Cow<'static, str> {
    match map {
        Some(map) if !map.is_empty() => match serde_json::to_string(map) {
            Ok(text) => Cow::Owned(text),
            Err(_) => Cow::Borrowed("{}"),
        },
        _ => Cow::Borrowed("{}"),
    }
}

/// A decision's audit entry, encoded straight from the decision: the same
/// JSON as the [`ward_types::AuditEntry`] it is read back as, without
/// copying the request into a `serde_json::Value` first (building and
/// then encoding that copy was about 3 µs a decision).
#[derive(serde::Serialize)]
struct DecisionEntry<'a> {
    id: &'a str,
    time: Timestamp,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<&'a str>,
    kind: AuditKind,
    decision: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    reasons: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a AgentRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a PolicyRef>,
    duration_us: u64,
    details: DecisionDetails<'a>,
}

#[derive(serde::Serialize)]
struct DecisionDetails<'a> {
    request: &'a AuthorizeRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a PolicyFailure>,
}

#[derive(serde::Serialize)]
struct UsageDetails {
    sandbox_us: u64,
    fuel_consumed: Option<u64>,
    peak_memory_bytes: u64,
    log_truncated: bool,
}

impl<'a> DecisionEntry<'a> {
    fn new(outcome: &'a DecisionOutcome, request: &'a AuthorizeRequest, actor: &'a str) -> Self {
        let response = &outcome.response;
        let (actor, on_behalf_of) = crate::audit::split_actor(actor);
        DecisionEntry {
            id: &response.decision_id,
            time: Timestamp::now(),
            actor,
            on_behalf_of,
            kind: AuditKind::Decision,
            decision: response.decision,
            reasons: &response.reasons,
            agent: response.agent.as_ref(),
            policy: response.policy.as_ref(),
            duration_us: outcome.duration.as_micros() as u64,
            details: DecisionDetails {
                request,
                usage: outcome.usage.as_ref().map(|usage| UsageDetails {
                    sandbox_us: usage.duration.as_micros() as u64,
                    fuel_consumed: usage.fuel_consumed,
                    peak_memory_bytes: usage.peak_memory_bytes,
                    log_truncated: usage.log_truncated,
                }),
                failure: outcome.failure.as_ref(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use ward_types::AuditEntry;

    use super::*;
    use crate::sandbox::PolicyErrorKind;

    #[test]
    fn a_decision_entry_reads_back_as_the_audit_entry_it_stands_for() {
        let request: AuthorizeRequest = serde_json::from_value(json!({
            "subject": {"type": "agent", "id": "bot"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d1", "properties": {"owner": "ann"}},
            "context": {"ip": "10.0.0.1"}
        }))
        .unwrap();
        let outcome = DecisionOutcome {
            response: DecisionResponse {
                decision: false,
                decision_id: crate::ids::next_ulid().to_string(),
                reasons: vec![String::from("policy failed")],
                context: Map::new(),
                agent: None,
                policy: None,
            },
            failure: Some(PolicyFailure {
                kind: PolicyErrorKind::Trap,
                detail: String::from("unreachable"),
            }),
            usage: Some(Usage {
                duration: Duration::from_micros(12),
                fuel_consumed: None,
                peak_memory_bytes: 65_536,
                log_truncated: false,
            }),
            duration: Duration::from_micros(30),
        };
        let encoded =
            serde_json::to_vec(&DecisionEntry::new(&outcome, &request, "key:k1")).unwrap();
        let entry: AuditEntry = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(entry.id, outcome.response.decision_id);
        assert_eq!(
            (entry.kind, entry.decision),
            (AuditKind::Decision, Some(false))
        );
        assert_eq!(
            (entry.actor.as_str(), entry.duration_us),
            ("key:k1", Some(30))
        );
        assert_eq!(entry.reasons, ["policy failed"]);
        assert_eq!(
            entry.details,
            json!({
                "request": serde_json::to_value(&request).unwrap(),
                "usage": {
                    "sandbox_us": 12,
                    "fuel_consumed": null,
                    "peak_memory_bytes": 65_536,
                    "log_truncated": false,
                },
                "failure": {"kind": "trap", "detail": "unreachable"},
            })
        );
    }
}
