//! One in-process decision, several ways, in one run:
//!
//! - **ward**: `Decider::decide_now` — tenant and agent resolution, policy
//!   choice, the builtin `permissions` policy on a fresh sandbox instance,
//!   the answer; audit entries are made and queued, and the store drops
//!   them (`support::audit_off`). Twice: with
//!   instances made ahead by the sandbox's background thread (the default
//!   on two cores), and with every instance made and dropped on the
//!   deciding thread (`warm_instances = 0`); each with the process's CPU
//!   time per decision, all threads included;
//! - **ward, no sandbox**: the same pipeline with the builtin's rules in
//!   plain Rust in place of the sandbox (the `Evaluate` seam): what
//!   resolution, the answer and the audit entry cost without a policy
//!   instance;
//! - **ward, batch**: the 1,000 requests as calls of 100 items, whose
//!   items share one instance;
//! - **native**: the same rules in plain Rust (agent looked up in a map,
//!   the SDK's `glob_match`, the same reasons);
//! - **cedar**: the `cedar-policy` crate, one policy set per agent, one
//!   `permit … when { context.resource like "…" }` per permission — the
//!   fastest natural formulation: no entity store is needed.
//!
//! Scenario: 50 agents × 10 permissions with `*` globs, 1,000 fixed
//! requests, half allowed. Before timing, all three must give the same
//! decision for every request. Then rounds of the 1,000 requests
//! alternate between the three (so that drift on a noisy machine hits
//! each alike); the figure is the median over rounds of the mean time per
//! decision. `cargo bench -p ward --bench decision` (about 30 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet,
    RestrictedExpression,
};
use ward::audit::AuditLog;
use ward::decision::{Chosen, Evaluate, Schedule, Semantic};
use ward::gates::SystemClock;
use ward::registry::ScopeId;
use ward::sandbox::{
    Batch, Consumed, DataLookup, Outcome, RequestView, Sandbox, SandboxConfig, SandboxLimits, Slice,
};
use ward::server::Parts;
use ward::store::{SledStore, Store};
use ward_types::{
    AgentStatus, AuthorizeRequest, CreateTenant, Entity, Permission, PutAgent, RequestAction,
    TenantKind,
};

mod support {
    pub mod audit_off;
    pub mod permissions;
}

use support::audit_off::AuditOff;

const AGENTS: usize = 50;
const GRANTS: usize = 10;
const REQUESTS: usize = 1_000;
const ROUNDS: usize = 15;
const TYPES: [&str; 10] = [
    "reports", "invoices", "docs", "tickets", "crm", "wiki", "builds", "calendar", "mail", "files",
];
const ACTIONS: [&str; 5] = ["read", "write", "export", "comment", "delete"];

/// A small deterministic generator: the same scenario on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

fn agent_name(agent: usize) -> String {
    format!("agent-{agent:02}")
}

/// Agent `agent`'s 10 grants: every pattern has a `*`, some grant `*`.
fn grants(agent: usize) -> Vec<Permission> {
    (0..GRANTS)
        .map(|j| {
            let kind = TYPES[(agent + j) % TYPES.len()];
            let resource = match j % 4 {
                0 => format!("{kind}:*"),
                1 => format!("{kind}:team-{}-*", agent % 7),
                2 => format!("*:public-{kind}-*"),
                _ => format!("{kind}:*-{}", agent % 3),
            };
            let mut actions = if j == 9 && agent.is_multiple_of(5) {
                vec![String::from("*")]
            } else {
                vec![
                    ACTIONS[(agent + j) % ACTIONS.len()].to_string(),
                    ACTIONS[(agent + 2 * j + 1) % ACTIONS.len()].to_string(),
                ]
            };
            actions.dedup();
            Permission { resource, actions }
        })
        .collect()
}

struct Scenario {
    agents: HashMap<String, Vec<Permission>>,
    requests: Vec<AuthorizeRequest>,
    expected: Vec<bool>,
}

fn native(
    agents: &HashMap<String, Vec<Permission>>,
    request: &AuthorizeRequest,
) -> (bool, Vec<String>) {
    let resource = format!("{}:{}", request.resource.kind, request.resource.id);
    let Some(grants) = agents.get(&request.subject.id) else {
        return (false, vec![String::from("unknown_agent")]);
    };
    let grants = grants
        .iter()
        .map(|p| (p.resource.as_str(), p.actions.iter().map(String::as_str)));
    support::permissions::decide(&request.subject.id, grants, &resource, &request.action.name)
}

/// 1,000 requests, alternately one that the rules allow and one they deny.
fn scenario() -> Scenario {
    let agents: HashMap<String, Vec<Permission>> =
        (0..AGENTS).map(|a| (agent_name(a), grants(a))).collect();
    let mut rng = Lcg(7);
    let mut requests = Vec::with_capacity(REQUESTS);
    let mut expected = Vec::with_capacity(REQUESTS);
    for k in 0..REQUESTS {
        let want = k % 2 == 0;
        let agent = agent_name(k % AGENTS);
        loop {
            let kind = TYPES[rng.next(TYPES.len())];
            let n = rng.next(1000);
            let id = match rng.next(4) {
                0 => format!("team-{}-{n}", n % 7),
                1 => format!("public-{}-{n}", TYPES[n % TYPES.len()]),
                2 => format!("q{n}"),
                _ => format!("x{n}-{}", n % 3),
            };
            let action = ACTIONS[rng.next(ACTIONS.len())];
            let request = AuthorizeRequest {
                subject: Entity::new("agent", &agent),
                action: RequestAction::new(action),
                resource: Entity::new(kind, &id),
                context: None,
            };
            if native(&agents, &request).0 == want {
                requests.push(request);
                expected.push(want);
                break;
            }
        }
    }
    Scenario {
        agents,
        requests,
        expected,
    }
}

/// Ward's registry for one tenant holding the 50 agents, audit entries
/// dropped by the store, with
/// `warm_instances` made ahead of their decisions (0: made inline).
fn ward(scenario: &Scenario, warm_instances: usize, plain: bool) -> (Parts, Arc<Sandbox>, String) {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let audit_store: Arc<dyn Store> = Arc::new(AuditOff(Arc::clone(&store)));
    let audit = Arc::new(AuditLog::new(audit_store).unwrap());
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig {
            warm_instances,
            ..SandboxConfig::default()
        })
        .unwrap(),
    );
    let schedule = Schedule {
        inline: true,
        refusal_delay: std::time::Duration::ZERO,
    };
    let evaluator: Option<Arc<dyn Evaluate>> = match plain {
        true => Some(Arc::new(PlainPermissions)),
        false => None,
    };
    let parts = Parts::assemble_with(
        store,
        Arc::clone(&sandbox),
        audit,
        Arc::new(SystemClock),
        schedule,
        1,
        evaluator,
    )
    .unwrap();
    let registry = &parts.registry;
    let tenant = registry
        .create_tenant(
            CreateTenant {
                slug: String::from("bench"),
                name: String::from("bench"),
                kind: TenantKind::Organization,
                // Admission never refuses here: calls of 100 items are
                // admitted as fast as the benchmark makes them.
                settings: serde_json::json!({
                    "rate_limit_per_sec": 1_000_000,
                    "burst": 1_000_000,
                    "max_concurrent_evaluations": 1024,
                })
                .as_object()
                .cloned(),
            },
            "bench",
        )
        .unwrap();
    let scope = ScopeId::Tenant(tenant.id.clone());
    for (name, permissions) in &scenario.agents {
        let body = PutAgent {
            kind: String::from("ai_agent"),
            status: AgentStatus::Active,
            attributes: serde_json::Map::new(),
            permissions: permissions.clone(),
            policy: None,
            budgets: Default::default(),
        };
        registry.put_agent(&scope, name, body, "bench").unwrap();
    }
    (parts, sandbox, tenant.id)
}

/// The builtin `permissions` policy's rules in plain Rust, in the
/// sandbox's place.
struct PlainPermissions;

impl Evaluate for PlainPermissions {
    fn evaluate(
        &self,
        _: &mut Batch,
        _: &Chosen<'_>,
        request: RequestView<'_>,
        _: &SandboxLimits,
        _: Arc<dyn DataLookup>,
        _: Slice,
    ) -> Result<Option<Outcome>, String> {
        let resource = format!("{}:{}", request.resource.type_, request.resource.id);
        let Some(agent) = request.agent else {
            return Err(String::from("the benchmark's requests all name an agent"));
        };
        let grants = agent.permissions.iter().map(|grant| {
            (
                grant.resource.as_str(),
                grant.actions.iter().map(String::as_str),
            )
        });
        let (allow, reasons) =
            support::permissions::decide(agent.name, grants, &resource, request.action.name);
        Ok(Some(Outcome {
            allow,
            reasons,
            context: String::from("{}"),
            failure: None,
            usage: Consumed::default(),
        }))
    }

    fn finish(&self, _: Batch) {}
}

/// One Cedar policy set per agent.
struct Cedar {
    authorizer: Authorizer,
    sets: HashMap<String, PolicySet>,
    entities: Entities,
    agent_type: EntityTypeName,
    action_type: EntityTypeName,
}

impl Cedar {
    fn new(scenario: &Scenario) -> Self {
        let sets = scenario
            .agents
            .iter()
            .map(|(name, permissions)| {
                let text: String = permissions
                    .iter()
                    .map(|p| {
                        let action = if p.actions.iter().any(|a| a == "*") {
                            String::from("action")
                        } else {
                            let list: Vec<String> = p
                                .actions
                                .iter()
                                .map(|a| format!("Action::\"{a}\""))
                                .collect();
                            format!("action in [{}]", list.join(", "))
                        };
                        format!(
                            "permit(principal, {action}, resource) when {{ context.resource like \"{}\" }};\n",
                            p.resource
                        )
                    })
                    .collect();
                (name.clone(), PolicySet::from_str(&text).unwrap())
            })
            .collect();
        Cedar {
            authorizer: Authorizer::new(),
            sets,
            entities: Entities::empty(),
            agent_type: EntityTypeName::from_str("Agent").unwrap(),
            action_type: EntityTypeName::from_str("Action").unwrap(),
        }
    }

    fn decide(&self, request: &AuthorizeRequest) -> bool {
        let Some(set) = self.sets.get(&request.subject.id) else {
            return false;
        };
        let resource = format!("{}:{}", request.resource.kind, request.resource.id);
        let uid = |kind: &EntityTypeName, id: &str| {
            EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
        };
        let resource_type = EntityTypeName::from_str(&request.resource.kind).unwrap();
        let context = Context::from_pairs([(
            String::from("resource"),
            RestrictedExpression::new_string(resource.clone()),
        )])
        .unwrap();
        let cedar_request = cedar_policy::Request::new(
            uid(&self.agent_type, &request.subject.id),
            uid(&self.action_type, &request.action.name),
            uid(&resource_type, &request.resource.id),
            context,
            None,
        )
        .unwrap();
        let response = self
            .authorizer
            .is_authorized(&cedar_request, set, &self.entities);
        response.decision() == Decision::Allow
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Mean time per decision over one pass of the requests, in µs.
fn pass(requests: &[AuthorizeRequest], mut decide: impl FnMut(&AuthorizeRequest) -> bool) -> f64 {
    let started = Instant::now();
    let mut allowed = 0;
    for request in requests {
        allowed += usize::from(decide(black_box(request)));
    }
    black_box(allowed);
    started.elapsed().as_secs_f64() * 1e6 / requests.len() as f64
}

/// CPU time of the process's live threads so far, in µs (the first field
/// of each thread's `schedstat`: nanoseconds on a CPU).
fn process_cpu_us() -> f64 {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total as f64 / 1e3
}

/// Decides with one of the registries built by [`ward`].
fn decide_with(ward: &(Parts, Arc<Sandbox>, String)) -> impl Fn(&AuthorizeRequest) -> bool + '_ {
    move |request| {
        ward.0
            .decider
            .decide_now(&ward.2, "bench", request)
            .unwrap()
            .response
            .decision
    }
}

/// Like [`pass`], and the process's CPU time per decision, counted until
/// the background work the pass left (stores still to drop) is done.
fn pass_with_cpu(
    requests: &[AuthorizeRequest],
    decide: impl FnMut(&AuthorizeRequest) -> bool,
) -> (f64, f64) {
    let cpu = process_cpu_us();
    let time = pass(requests, decide);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cpu = (process_cpu_us() - cpu) / requests.len() as f64;
    (time, cpu)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scenario = scenario();
    let warm = ward(&scenario, SandboxConfig::default().warm_instances, false);
    let inline = ward(&scenario, 0, false);
    let plain = ward(&scenario, 0, true);
    let batched = ward(&scenario, 0, false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Calls of 100 items, as `POST /v1/authorize/batch` makes them.
    let batch_pass = |requests: &[AuthorizeRequest]| {
        let started = Instant::now();
        for chunk in requests.chunks(100) {
            let items = chunk.iter().cloned().map(Ok).collect();
            let answers = runtime
                .block_on(batched.0.decider.decide_call(
                    &batched.2,
                    "bench",
                    items,
                    Semantic::ExecuteAll,
                ))
                .unwrap();
            black_box(answers);
        }
        started.elapsed().as_secs_f64() * 1e6 / requests.len() as f64
    };
    let cedar = Cedar::new(&scenario);
    let ward_decide = decide_with(&warm);
    let inline_decide = decide_with(&inline);
    let plain_decide = decide_with(&plain);
    let native_decide = |request: &AuthorizeRequest| native(&scenario.agents, request).0;

    // The three agree on every request before anything is timed.
    let allowed = scenario.expected.iter().filter(|a| **a).count();
    assert_eq!(allowed, REQUESTS / 2);
    for (request, expected) in scenario.requests.iter().zip(&scenario.expected) {
        assert_eq!(ward_decide(request), *expected, "ward: {request:?}");
        assert_eq!(inline_decide(request), *expected, "ward: {request:?}");
        assert_eq!(plain_decide(request), *expected, "plain: {request:?}");
        assert_eq!(cedar.decide(request), *expected, "cedar: {request:?}");
    }
    let answer = (warm.0)
        .decider
        .decide_now(&warm.2, "bench", &scenario.requests[0])
        .unwrap()
        .response;
    assert_eq!(
        answer.reasons,
        native(&scenario.agents, &scenario.requests[0]).1
    );

    let (mut w, mut i, mut n, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut p, mut b) = (Vec::new(), Vec::new());
    let (mut w_cpu, mut i_cpu) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (time, cpu) = pass_with_cpu(&scenario.requests, &ward_decide);
        w.push(time);
        w_cpu.push(cpu);
        let (time, cpu) = pass_with_cpu(&scenario.requests, &inline_decide);
        i.push(time);
        i_cpu.push(cpu);
        p.push(pass(&scenario.requests, &plain_decide));
        b.push(batch_pass(&scenario.requests));
        n.push(pass(&scenario.requests, native_decide));
        c.push(pass(&scenario.requests, |r| cedar.decide(r)));
    }
    let (w, i, n, c) = (median(w), median(i), median(n), median(c));
    let (p, b) = (median(p), median(b));
    let (w_cpu, i_cpu) = (median(w_cpu), median(i_cpu));
    println!(
        "\n== one decision in process: {AGENTS} agents x {GRANTS} permissions, {REQUESTS} requests (half allowed), median of {ROUNDS} rounds"
    );
    println!(
        "ward (registry + sandbox, fresh instance, no audit store) {w:>8.2} us   cpu {w_cpu:.2} us (all threads)"
    );
    let stats = warm.1.stats();
    let decided = (ROUNDS + 2) * REQUESTS;
    println!(
        "    ({:.0}% of its decisions ran on an instance made ahead)",
        100.0 * stats.warm_taken as f64 / decided as f64
    );
    println!(
        "ward, every instance made and dropped inline         {i:>8.2} us   cpu {i_cpu:.2} us"
    );
    println!("ward, no sandbox (the rules in Rust in its place)    {p:>8.2} us");
    println!(
        "ward, calls of 100 items (one instance per call)     {b:>8.2} us   batch / single (inline) {:.2}",
        b / i
    );
    println!(
        "native Rust, same rules                              {n:>8.2} us   ward / native {:.1}x",
        w / n
    );
    println!(
        "cedar-policy, one policy set per agent               {c:>8.2} us   cedar / ward {:.2}x",
        c / w
    );
    println!(
        "target: ward <= 10 us: {}; cedar / ward >= 1.5: {}",
        if w <= 10.0 { "met" } else { "not met" },
        if c / w >= 1.5 { "met" } else { "not met" }
    );
}
