//! One decision, fail-closed at every step: tenant status, the agent and
//! then the policy resolved narrowest-first, the sandboxed evaluation.
//!
//! It reads only in-memory indexes; the one store write is the audit
//! append.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use ward_types::{
    AgentRef, AgentStatus, AuthorizeRequest, DecisionResponse, Entity, PolicyRef, TenantStatus,
};

use super::entry::DecisionEntry;
use super::{Chosen, Decider, DecisionError};
use crate::gates::Tally;
use crate::gates::spend::{Charge, Spent};
use crate::registry::{BUILTIN_POLICY, Scopes, TenantView};
use crate::sandbox::{self, Batch, Consumed, PolicyFailure, Slice};

/// A decision and what it cost.
#[derive(Debug, Clone)]
pub struct DecisionOutcome {
    /// The answer as the native API returns it.
    pub response: DecisionResponse,
    /// Set when the policy failed (the answer is then a deny).
    pub failure: Option<PolicyFailure>,
    /// Sandbox usage, when a policy ran.
    pub usage: Option<Consumed>,
    /// Time from the start of the pipeline to the decision.
    pub duration: Duration,
}

impl Decider {
    /// Decides `request` for the tenant of `scopes` within `slice`, on
    /// `batch`'s instance when it runs the same policy, and appends the
    /// decision to the tenant's audit log. `None` when the policy did not
    /// finish in its inline slice: nothing was recorded, and the caller
    /// runs it again on a thread that may block.
    pub(super) fn decide_item(
        &self,
        scopes: &Arc<Scopes>,
        batch: &mut Batch,
        request: &AuthorizeRequest,
        actor: &str,
        slice: Slice,
    ) -> Result<Option<DecisionOutcome>, DecisionError> {
        let started = Instant::now();
        let Some(view) = &scopes.tenant else {
            return Err(DecisionError::TenantNotFound(String::new()));
        };
        let Some(mut outcome) = self.evaluate(view, scopes, batch, request, started, slice) else {
            return Ok(None);
        };
        self.spend(view, scopes, request, actor, &mut outcome);
        let entry = DecisionEntry::new(&outcome, request, actor);
        self.audit
            .record_decision(&view.record.id, entry.id, &entry)
            .map_err(DecisionError::Audit)?;
        self.count(&view.record.id, &outcome);
        Ok(Some(outcome))
    }

    /// Charges an allowed decision's `cost` to the tenant's and its
    /// agent's spend budgets: a `block` budget it would pass turns it into
    /// a deny (`budget_exhausted:<unit>`), a `warn` budget it passes adds
    /// a reason (`budget_warning:<unit>`) and, at 80% and 100%, an audit
    /// event. Denied decisions spend nothing.
    fn spend(
        &self,
        view: &TenantView,
        scopes: &Scopes,
        request: &AuthorizeRequest,
        actor: &str,
        outcome: &mut DecisionOutcome,
    ) {
        let response = &mut outcome.response;
        let charge = match Charge::of(request) {
            Ok(Some(charge)) => charge,
            Ok(None) => return,
            Err(_) => {
                // Checked at the door; a batch item may still carry one.
                response.decision = false;
                response.reasons = vec![String::from("invalid_cost")];
                return;
            }
        };
        if !response.decision || outcome.failure.is_some() {
            return;
        }
        let agent = scopes.resolve(|index| index.agents.get(&request.subject.id));
        let agent = agent.map(|(entry, _)| (entry.agent.name.as_str(), &entry.agent.budgets));
        let month = crate::gates::month_of(self.gates.clock().now_ms());
        let spent = self.gates.spending().charge(
            &view.record.id,
            month,
            agent,
            &view.settings.budgets,
            &charge,
        );
        match spent {
            Spent::Exhausted { unit, remaining } => {
                response.decision = false;
                response.reasons = vec![format!("budget_exhausted:{unit}")];
                response.remaining = Some(ward_types::Cost::from([(unit, remaining)]));
            }
            Spent::Within {
                remaining,
                over,
                warnings,
            } => {
                response
                    .reasons
                    .extend(over.iter().map(|unit| format!("budget_warning:{unit}")));
                if !remaining.is_empty() {
                    response.remaining = Some(remaining);
                }
                for warning in warnings {
                    let details = serde_json::to_value(&warning).unwrap_or(Value::Null);
                    // Queued like the decision: never a wait for the disk.
                    if let Err(err) = self.audit.queue_event(
                        &view.record.id,
                        actor,
                        ward_types::AuditKind::BudgetWarning,
                        details,
                    ) {
                        tracing::error!(%err, "a budget warning could not be queued");
                    }
                }
            }
        }
    }

    /// This month's spend of tenant `tenant_id` and of its agents, each
    /// against its budgets.
    pub fn spend_report(
        &self,
        tenant_id: &str,
    ) -> Result<crate::gates::spend::SpendReport, DecisionError> {
        let scope = crate::registry::ScopeId::Tenant(tenant_id.to_string());
        let scopes = self
            .registry
            .scopes(&scope)
            .map_err(|_| DecisionError::TenantNotFound(tenant_id.to_string()))?;
        let Some(view) = &scopes.tenant else {
            return Err(DecisionError::TenantNotFound(tenant_id.to_string()));
        };
        let month = crate::gates::month_of(self.gates.clock().now_ms());
        let agent_budgets = |name: &str| {
            scopes
                .resolve(|index| index.agents.get(name))
                .map(|(entry, _)| entry.agent.budgets.clone())
        };
        Ok(self.gates.spending().report(
            &view.record.id,
            month,
            &view.settings.budgets,
            &agent_budgets,
        ))
    }

    fn count(&self, tenant: &str, outcome: &DecisionOutcome) {
        let metrics = &self.metrics;
        metrics.latency.observe(outcome.duration.as_micros() as u64);
        let tally = match &outcome.failure {
            Some(failure) => {
                let mut errors = metrics
                    .policy_errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *errors.entry(failure.kind.as_str()).or_default() += 1;
                Tally::Error
            }
            None if outcome.response.decision => Tally::Allow,
            None => Tally::Deny,
        };
        self.gates.record(tenant, tally);
    }

    /// The decision; `None` when the policy did not finish in `slice`.
    fn evaluate(
        &self,
        view: &Arc<TenantView>,
        scopes: &Arc<Scopes>,
        batch: &mut Batch,
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
                    remaining: None,
                },
                failure: None,
                usage: None,
                duration: started.elapsed(),
            })
        };
        if view.record.status == TenantStatus::Suspended {
            return deny("tenant_suspended", None, None);
        }

        let agent = scopes.resolve(|index| index.agents.get(&request.subject.id));
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
        let policy = scopes.resolve(|index| index.policies.get(policy_name));
        let Some((policy, policy_scope)) = policy else {
            return deny("policy_not_found", agent_ref, None);
        };
        let Some(active) = policy.active_version() else {
            return deny("policy_not_found", agent_ref, None);
        };
        let (version, sha256) = (active.version, active.sha256.as_str());
        let policy_ref = PolicyRef {
            name: policy.info.name.clone(),
            scope: policy_scope,
            version,
            sha256: sha256.to_string(),
            language: active.language.clone(),
        };
        let chosen = Chosen {
            name: &policy.info.name,
            scope: policy_scope,
            version,
            sha256,
            entry: policy,
        };

        // The guest's request borrows what the registry holds (the agent's
        // grants included); only the JSON objects are encoded here.
        let subject_properties = json_object(request.subject.properties.as_ref());
        let action_properties = json_object(request.action.properties.as_ref());
        let resource_properties = json_object(request.resource.properties.as_ref());
        let context = json_object(request.context.as_ref());
        let wit_request = sandbox::RequestView {
            tenant: &view.wit,
            subject: wit_entity(&request.subject, &subject_properties),
            agent: agent.map(|(entry, _)| sandbox::AgentView::from(&entry.wit)),
            action: sandbox::ActionView {
                name: &request.action.name,
                properties: &action_properties,
            },
            resource: wit_entity(&request.resource, &resource_properties),
            context: &context,
            config: &policy.config_json,
        };
        let evaluated = self.evaluator.evaluate(
            batch,
            &chosen,
            wit_request,
            &view.settings.sandbox,
            Arc::clone(scopes) as Arc<dyn sandbox::DataLookup>,
            slice,
        );
        let outcome = match evaluated {
            Ok(outcome) => outcome?,
            Err(err) => {
                tracing::error!(tenant = %view.record.slug, policy = policy_name, %err, "policy cannot be loaded");
                return deny("policy_error:unavailable", agent_ref, Some(policy_ref));
            }
        };
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
                remaining: None,
            },
            failure: outcome.failure,
            usage: Some(outcome.usage),
            duration: started.elapsed(),
        })
    }
}

fn wit_entity<'a>(entity: &'a Entity, properties: &'a str) -> sandbox::EntityView<'a> {
    sandbox::EntityView {
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
