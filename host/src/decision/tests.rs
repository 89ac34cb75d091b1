//! The pipeline's rules with a scripted evaluator: resolution, policy
//! choice, failure mapping and call semantics, on a temporary store, with
//! no Wasm compiled or run.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use ward_types::{
    AgentStatus, AuthorizeRequest, CreateTenant, PutAgent, Scope, TenantKind, TenantStatus,
    UpdateTenant,
};

use super::{Chosen, Decider, DecisionOutcome, Evaluate, Schedule, Semantic};
use crate::evaluations::EvaluationPool;
use crate::gates::ManualClock;
use crate::registry::{Registry, ScopeId};
use crate::sandbox::{
    Batch, Consumed, DataLookup, Outcome, PolicyErrorKind, PolicyFailure, RequestView, Sandbox,
    SandboxConfig, SandboxLimits, Slice,
};

/// What the double was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    policy: String,
    scope: Scope,
    agent: Option<(String, crate::sandbox::Scope)>,
    resource: String,
}

/// An evaluator that answers by rule instead of running a policy:
/// resources whose id starts with `ok` are allowed; `fail` is a trap;
/// `gone` is a policy that cannot be loaded; `data:<key>` answers with
/// what `data-get` returns for the key. Its one reason names the policy.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<Seen>>,
}

impl Scripted {
    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Evaluate for Scripted {
    fn evaluate(
        &self,
        _: &mut Batch,
        policy: &Chosen<'_>,
        request: RequestView<'_>,
        _: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        _: Slice,
    ) -> Result<Option<Outcome>, String> {
        let id = request.resource.id;
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Seen {
                policy: policy.name.to_string(),
                scope: policy.scope,
                agent: request
                    .agent
                    .map(|agent| (agent.name.to_string(), agent.scope)),
                resource: id.to_string(),
            });
        if id == "gone" {
            return Err(String::from("module missing"));
        }
        let (allow, reason, failure) = match id.strip_prefix("data:") {
            Some(key) => (true, data.data_get(key).unwrap_or_default(), None),
            None if id == "fail" => (
                false,
                PolicyErrorKind::Trap.reason(),
                Some(PolicyFailure {
                    kind: PolicyErrorKind::Trap,
                    detail: String::from("unreachable"),
                }),
            ),
            None => (id.starts_with("ok"), policy.name.to_string(), None),
        };
        Ok(Some(Outcome {
            allow,
            reasons: vec![reason],
            context: String::from("{}"),
            failure,
            usage: Consumed::default(),
        }))
    }

    fn finish(&self, _: Batch) {}
}

/// One sandbox for every test: an engine, no module.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    Arc::clone(SANDBOX.get_or_init(|| {
        let config = SandboxConfig {
            warm_instances: 0,
            ..SandboxConfig::default()
        };
        Arc::new(Sandbox::new(config).expect("the engine starts"))
    }))
}

struct Setup {
    registry: Arc<Registry>,
    decider: Arc<Decider>,
    scripted: Arc<Scripted>,
    tenant: String,
    scope: ScopeId,
}

/// A registry with the global `permissions` policy (unchecked) and
/// tenant `acme`, decided through [`Scripted`].
fn setup() -> Setup {
    let registry = Arc::new(Registry::for_tests(
        sandbox(),
        Arc::new(ManualClock::at(1_800_000_000_000)),
    ));
    registry
        .put_policy_unchecked(&ScopeId::Global, "permissions")
        .unwrap();
    let tenant = registry
        .create_tenant(
            CreateTenant {
                slug: String::from("acme"),
                name: String::from("Acme"),
                kind: TenantKind::Organization,
                settings: None,
            },
            "test",
        )
        .unwrap()
        .id;
    let (audit, gates) = registry.parts_for_tests();
    let scripted = Arc::new(Scripted::default());
    let schedule = Schedule {
        inline: true,
        refusal_delay: Duration::ZERO,
    };
    let decider = Arc::new(Decider::new(
        Arc::clone(&registry),
        Arc::clone(&scripted) as Arc<dyn Evaluate>,
        audit,
        gates,
        Arc::new(EvaluationPool::start(1).unwrap()),
        schedule,
    ));
    Setup {
        registry,
        decider,
        scripted,
        scope: ScopeId::Tenant(tenant.clone()),
        tenant,
    }
}

fn agent(policy: Option<&str>) -> PutAgent {
    PutAgent {
        kind: String::from("ai_agent"),
        status: AgentStatus::Active,
        attributes: Default::default(),
        permissions: Vec::new(),
        policy: policy.map(str::to_string),
        budgets: Default::default(),
    }
}

fn ask(subject: &str, resource: &str) -> AuthorizeRequest {
    serde_json::from_value(json!({
        "subject": {"type": "agent", "id": subject},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": resource},
    }))
    .unwrap()
}

impl Setup {
    fn decide(&self, subject: &str, resource: &str) -> DecisionOutcome {
        self.decider
            .decide_now(&self.tenant, "test", &ask(subject, resource))
            .unwrap()
    }

    fn default_policy(&self, policy: Value) {
        let settings = json!({"default_policy": policy});
        self.registry
            .update_tenant(
                &self.tenant,
                UpdateTenant {
                    name: None,
                    settings: settings.as_object().cloned(),
                },
                "test",
            )
            .unwrap();
    }
}

/// `(decision, reasons, policy name and scope)` of an outcome.
fn summary(outcome: &DecisionOutcome) -> (bool, Vec<String>, Option<(String, Scope)>) {
    let response = &outcome.response;
    (
        response.decision,
        response.reasons.clone(),
        response
            .policy
            .as_ref()
            .map(|policy| (policy.name.clone(), policy.scope)),
    )
}

#[test]
fn the_tenants_agent_shadows_the_global_one_which_fills_in() {
    let s = setup();
    s.registry
        .put_agent(&ScopeId::Global, "bot", agent(None), "test")
        .unwrap();
    s.registry.put_policy_unchecked(&s.scope, "own").unwrap();

    // Only the global agent: its (builtin) policy, from the global scope.
    let outcome = s.decide("bot", "ok1");
    assert_eq!(
        summary(&outcome),
        (
            true,
            vec![String::from("permissions")],
            Some((String::from("permissions"), Scope::Global))
        )
    );
    let agent_ref = outcome.response.agent.unwrap();
    assert_eq!(
        (agent_ref.name.as_str(), agent_ref.scope),
        ("bot", Scope::Global)
    );

    // The tenant's own agent of that name wins, with its own policy.
    s.registry
        .put_agent(&s.scope, "bot", agent(Some("own")), "test")
        .unwrap();
    let outcome = s.decide("bot", "ok1");
    assert_eq!(
        summary(&outcome).2,
        Some((String::from("own"), Scope::Tenant))
    );
    assert_eq!(
        s.scripted.seen().last().unwrap().agent,
        Some((String::from("bot"), crate::sandbox::Scope::Tenant))
    );

    // Deleted again, the global one fills in.
    s.registry.delete_agent(&s.scope, "bot", "test").unwrap();
    assert_eq!(
        summary(&s.decide("bot", "ok1")).2,
        Some((String::from("permissions"), Scope::Global))
    );
}

#[test]
fn the_policy_is_the_agents_else_the_tenants_default_else_the_builtin() {
    let s = setup();
    s.registry.put_policy_unchecked(&s.scope, "bound").unwrap();
    s.registry
        .put_policy_unchecked(&s.scope, "fallback")
        .unwrap();
    // A global policy of the same name as a tenant's: the tenant's runs.
    s.registry
        .put_policy_unchecked(&ScopeId::Global, "bound")
        .unwrap();
    s.registry
        .put_agent(&s.scope, "bound-bot", agent(Some("bound")), "test")
        .unwrap();
    s.registry
        .put_agent(&s.scope, "free-bot", agent(None), "test")
        .unwrap();

    let policy_of = |subject: &str| summary(&s.decide(subject, "ok")).2;
    assert_eq!(
        policy_of("bound-bot"),
        Some((String::from("bound"), Scope::Tenant))
    );
    assert_eq!(
        policy_of("free-bot"),
        Some((String::from("permissions"), Scope::Global))
    );
    // Nobody registered, no default: denied before any policy runs.
    s.scripted.seen();
    assert_eq!(
        summary(&s.decide("stranger", "ok")),
        (false, vec![String::from("unknown_agent")], None)
    );
    assert!(s.scripted.seen().is_empty(), "no policy ran");

    s.default_policy(json!("fallback"));
    assert_eq!(
        policy_of("bound-bot"),
        Some((String::from("bound"), Scope::Tenant)),
        "the agent's own policy still comes first"
    );
    assert_eq!(
        policy_of("free-bot"),
        Some((String::from("fallback"), Scope::Tenant))
    );
    assert_eq!(
        policy_of("stranger"),
        Some((String::from("fallback"), Scope::Tenant)),
        "an unknown subject goes to the default policy"
    );
    let seen = s.scripted.seen();
    assert_eq!(seen.last().unwrap().agent, None, "with no agent");
}

#[test]
fn every_refusal_before_the_policy_is_a_deny_with_its_reason() {
    let s = setup();
    let mut disabled = agent(None);
    disabled.status = AgentStatus::Disabled;
    s.registry
        .put_agent(&s.scope, "off", disabled, "test")
        .unwrap();
    s.registry
        .put_agent(&s.scope, "lost", agent(Some("nowhere")), "test")
        .unwrap();
    s.registry
        .put_agent(&s.scope, "bot", agent(None), "test")
        .unwrap();

    let reasons = |subject: &str, resource: &str| s.decide(subject, resource).response.reasons;
    assert_eq!(reasons("off", "ok"), ["agent_disabled"]);
    assert_eq!(reasons("lost", "ok"), ["policy_not_found"]);
    assert!(s.scripted.seen().is_empty(), "no policy ran");

    // The policy's module cannot be loaded: a deny naming that.
    let unavailable = s.decide("bot", "gone");
    assert_eq!(
        summary(&unavailable),
        (
            false,
            vec![String::from("policy_error:unavailable")],
            Some((String::from("permissions"), Scope::Global))
        )
    );

    s.registry
        .set_tenant_status(&s.tenant, TenantStatus::Suspended, "test")
        .unwrap();
    s.scripted.seen();
    assert_eq!(reasons("bot", "ok"), ["tenant_suspended"]);
    assert!(s.scripted.seen().is_empty(), "no policy ran");
}

#[test]
fn a_failing_policy_is_a_deny_counted_as_an_error() {
    let s = setup();
    s.registry
        .put_agent(&s.scope, "bot", agent(None), "test")
        .unwrap();
    let outcome = s.decide("bot", "fail");
    assert!(!outcome.response.decision);
    assert_eq!(outcome.response.reasons, ["policy_error:trap"]);
    assert_eq!(
        outcome.failure.map(|failure| failure.kind),
        Some(PolicyErrorKind::Trap)
    );
    let errors = s.decider.metrics().policy_errors.lock().unwrap().clone();
    assert_eq!(errors.get("trap"), Some(&1));
    let (_, gates) = s.registry.parts_for_tests();
    let gate = gates.gate(&s.tenant);
    let [allowed, denied, failed] = gate
        .outcomes
        .each_ref()
        .map(|count| count.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!((allowed, denied, failed), (0, 0, 1));
}

#[test]
fn data_get_reads_the_tenants_document_then_the_global_one_never_anothers() {
    let s = setup();
    s.registry
        .put_agent(&ScopeId::Global, "bot", agent(None), "test")
        .unwrap();
    let other = s
        .registry
        .create_tenant(
            CreateTenant {
                slug: String::from("other"),
                name: String::from("Other"),
                kind: TenantKind::Organization,
                settings: None,
            },
            "test",
        )
        .unwrap();
    let put = |scope: &ScopeId, key: &str, value: Value| {
        s.registry.put_data(scope, key, value, "test").unwrap();
    };
    put(&ScopeId::Global, "shared", json!("global"));
    put(&ScopeId::Global, "both", json!("global"));
    put(&s.scope, "both", json!("own"));
    put(&ScopeId::Tenant(other.id), "secret", json!("other's"));

    let read = |key: &str| s.decide("bot", &format!("data:{key}")).response.reasons;
    assert_eq!(read("shared"), ["\"global\""]);
    assert_eq!(read("both"), ["\"own\""]);
    assert_eq!(read("secret"), [""], "another tenant's document is absent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_stops_as_its_semantic_says_and_answers_bad_items_in_place() {
    let s = setup();
    s.registry
        .put_agent(&s.scope, "bot", agent(None), "test")
        .unwrap();
    let items = |resources: &[&str]| -> Vec<super::Item> {
        resources
            .iter()
            .map(|resource| match *resource {
                "bad" => Err(String::from("not a request")),
                resource => Ok(ask("bot", resource)),
            })
            .collect()
    };
    let decisions = |answers: Vec<super::ItemAnswer>| -> Vec<Option<bool>> {
        answers
            .into_iter()
            .map(|answer| answer.ok().map(|decision| decision.decision))
            .collect()
    };
    let call = |resources: &[&str], semantic| {
        let decider = Arc::clone(&s.decider);
        let (tenant, items) = (s.tenant.clone(), items(resources));
        async move {
            decider
                .decide_call(&tenant, "test", items, semantic)
                .await
                .unwrap()
        }
    };

    let all = call(&["ok1", "no", "bad", "ok2"], Semantic::ExecuteAll).await;
    assert_eq!(decisions(all), [Some(true), Some(false), None, Some(true)]);
    assert_eq!(s.scripted.seen().len(), 3, "the bad item decided nothing");

    let until_deny = call(&["ok1", "no", "ok2"], Semantic::DenyOnFirstDeny).await;
    assert_eq!(decisions(until_deny), [Some(true), Some(false)]);
    let until_permit = call(&["no", "bad", "ok1", "no"], Semantic::PermitOnFirstPermit).await;
    assert_eq!(decisions(until_permit), [Some(false), None, Some(true)]);
}
