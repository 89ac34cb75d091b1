//! The shared PostgreSQL store beside the embedded sled store, in one run:
//!
//! - **decisions**: `Decider::decide_now` on one tenant and agent with the
//!   builtin `permissions` policy, audit entries written by the real
//!   writer into each store: the decision path reads in-memory indexes
//!   only, so the two should match;
//! - **management writes**: `put_agent` (cluster lock, catch-up, commit
//!   with its change record on PostgreSQL; one flushed write on sled),
//!   latency p50 and p99.
//!
//! PostgreSQL is a throwaway server started from the installed binaries
//! (`host/testing/postgres.rs`), on loopback. Rounds alternate between the
//! stores so that drift on a noisy machine hits both alike.
//! `cargo bench -p ward --bench store` (about a minute).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ward::audit::AuditLog;
use ward::decision::Schedule;
use ward::gates::SystemClock;
use ward::registry::ScopeId;
use ward::sandbox::{Sandbox, SandboxConfig};
use ward::server::Parts;
use ward::store::{PostgresStore, SledStore, Store};
use ward_types::{
    AgentStatus, AuthorizeRequest, CreateTenant, Entity, Permission, PutAgent, RequestAction,
    TenantKind,
};

#[path = "../testing/postgres.rs"]
mod postgres;

const DECISIONS: usize = 1_000;
const ROUNDS: usize = 11;
const WRITES: usize = 300;

fn agent(round: usize) -> PutAgent {
    PutAgent {
        kind: String::from("ai_agent"),
        status: AgentStatus::Active,
        attributes: serde_json::Map::new(),
        permissions: vec![Permission {
            resource: format!("docs:{round}*"),
            actions: vec![String::from("read")],
        }],
        policy: None,
        budgets: Default::default(),
    }
}

struct Side {
    name: &'static str,
    parts: Parts,
    tenant: String,
    decide_us: Vec<f64>,
    write_us: Vec<f64>,
}

fn side(name: &'static str, store: Arc<dyn Store>, sandbox: &Arc<Sandbox>) -> Side {
    let audit = Arc::new(AuditLog::new(Arc::clone(&store)).unwrap());
    let schedule = Schedule {
        inline: true,
        refusal_delay: Duration::ZERO,
    };
    let parts = Parts::assemble(
        store,
        Arc::clone(sandbox),
        audit,
        Arc::new(SystemClock),
        schedule,
        1,
    )
    .unwrap();
    let tenant = parts
        .registry
        .create_tenant(
            CreateTenant {
                slug: String::from("bench"),
                name: String::from("bench"),
                kind: TenantKind::Organization,
                settings: serde_json::json!({
                    "rate_limit_per_sec": 1_000_000,
                    "burst": 1_000_000,
                })
                .as_object()
                .cloned(),
            },
            "bench",
        )
        .unwrap();
    let scope = ScopeId::Tenant(tenant.id.clone());
    let mut reader = agent(0);
    reader.permissions[0].resource = String::from("docs:*");
    parts
        .registry
        .put_agent(&scope, "reader", reader, "bench")
        .unwrap();
    Side {
        name,
        parts,
        tenant: tenant.id,
        decide_us: Vec::new(),
        write_us: Vec::new(),
    }
}

fn decide_round(side: &mut Side, requests: &[AuthorizeRequest]) {
    let started = Instant::now();
    for request in requests {
        let outcome = side
            .parts
            .decider
            .decide_now(&side.tenant, "bench", request)
            .unwrap();
        assert!(outcome.response.decision);
    }
    side.decide_us
        .push(started.elapsed().as_secs_f64() * 1e6 / requests.len() as f64);
}

fn write_round(side: &mut Side, round: usize) {
    let scope = ScopeId::Tenant(side.tenant.clone());
    let started = Instant::now();
    side.parts
        .registry
        .put_agent(
            &scope,
            &format!("writer-{}", round % 50),
            agent(round),
            "bench",
        )
        .unwrap();
    side.write_us.push(started.elapsed().as_secs_f64() * 1e6);
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let server = postgres::Postgres::start().unwrap_or_else(|err| panic!("{err}"));
    let url = server.database("bench").unwrap();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let shared: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).unwrap());
    let mut sides = [
        side("sled", sled, &sandbox),
        side("postgres", shared, &sandbox),
    ];
    let requests: Vec<AuthorizeRequest> = (0..DECISIONS)
        .map(|i| AuthorizeRequest {
            subject: Entity::new("agent", "reader"),
            action: RequestAction::new("read"),
            resource: Entity::new("docs", i.to_string()),
            context: None,
        })
        .collect();
    // Warm up: compile the builtin, fill pools and caches.
    for side in &mut sides {
        decide_round(side, &requests);
        side.decide_us.clear();
    }
    for round in 0..ROUNDS {
        for side in &mut sides {
            decide_round(side, &requests);
        }
        let _ = round;
    }
    for round in 0..WRITES {
        for side in &mut sides {
            write_round(side, round);
        }
    }
    println!("store bench: {DECISIONS} decisions x {ROUNDS} rounds, {WRITES} agent writes");
    let sled_decide = quantile(&sides[0].decide_us, 0.5);
    for side in &sides {
        let decide = quantile(&side.decide_us, 0.5);
        println!(
            "  {:<9} decide {:>7.1} µs ({:>7.0} decisions/s, {:.2}x sled)   write p50 {:>8.0} µs  p99 {:>8.0} µs",
            side.name,
            decide,
            1e6 / decide,
            decide / sled_decide,
            quantile(&side.write_us, 0.5),
            quantile(&side.write_us, 0.99),
        );
    }
}
