//! Many tenants, each with its own policy module: start-up, cold and resident
//! decisions, memory.
//!
//! `cargo bench -p ward --bench scale` (`WARD_SCALE_TENANTS`, default
//! 10,000). Every tenant gets the builtin `permissions` component with a
//! custom section naming the tenant: a distinct module (its own sha256,
//! compiled on its own) that decides the same way, set as the tenant's
//! default policy.
//!
//! Building that state compiles every module once, which takes minutes, so
//! it is kept under the target directory (`ward-bench-scale-N`) and reused
//! by later runs. Each run then measures, on the kept state:
//!
//! - start-up: opening the store and loading every index, beside the same
//!   for an empty store (nothing is compiled or loaded from the cache at
//!   start-up);
//! - a decision for a tenant whose module is not in memory (loaded from
//!   the disk cache, never recompiled), for 1,000 tenants picked at random,
//!   beside a decision for a tenant whose module is resident;
//! - resident memory (RSS) after a decision for every tenant, with the
//!   resident set bounded by `sandbox.max_resident_policies` (512).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../plugins_build.rs"]
mod plugins_build;

mod support {
    pub mod audit_off;
}

use support::audit_off::AuditOff;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use ward::audit::AuditLog;
use ward::plugins::PERMISSIONS_WASM;
use ward::registry::{Registry, ScopeId};
use ward::sandbox::{Sandbox, SandboxConfig};
use ward::server::Parts;
use ward::store::{SledStore, Store};
use ward_types::{AuthorizeRequest, CreateTenant, Entity, RequestAction, TenantKind};

const SAMPLE: usize = 1_000;

/// The component with a custom section holding `n`: distinct bytes, the
/// same decisions.
fn variant(component: &[u8], n: u32) -> Vec<u8> {
    let name = b"ward-tenant";
    let payload = n.to_le_bytes();
    let mut out = component.to_vec();
    out.push(0); // a custom section; sizes below fit one LEB128 byte
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn slug(n: usize) -> String {
    format!("t{n:05}")
}

/// What `ward serve` opens at start-up, minus HTTP and authentication.
fn open(dir: &Path) -> (Parts, Arc<Sandbox>) {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("db")).unwrap());
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig {
            cache_dir: Some(dir.join("compiled")),
            ..SandboxConfig::default()
        })
        .unwrap(),
    );
    let audit_store: Arc<dyn Store> = Arc::new(AuditOff(Arc::clone(&store)));
    let audit = Arc::new(AuditLog::new(audit_store).unwrap());
    let parts = Parts::local(store, Arc::clone(&sandbox), audit).unwrap();
    (parts, sandbox)
}

/// Creates `tenants` tenants with their own module, two at a time (one
/// per core); skipped when a previous run finished it.
fn populate(dir: &Path, tenants: usize) {
    let done = dir.join("complete");
    if done.exists() {
        println!("reusing the {tenants} tenants in {}", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    println!(
        "creating {tenants} tenants with distinct modules in {} (once; compiles every module)",
        dir.display()
    );
    let (parts, _) = open(dir);
    let registry = &parts.registry;
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= tenants {
                        break;
                    }
                    let mut settings = Map::new();
                    settings.insert("default_policy".into(), Value::from("main"));
                    let tenant = registry
                        .create_tenant(
                            CreateTenant {
                                slug: slug(n),
                                name: slug(n),
                                kind: TenantKind::Organization,
                                settings: Some(settings),
                            },
                            "bench",
                        )
                        .unwrap();
                    let module = variant(PERMISSIONS_WASM, n as u32);
                    registry
                        .upload_policy(&ScopeId::Tenant(tenant.id), "main", &module, true, "bench")
                        .unwrap();
                    if n > 0 && n.is_multiple_of(1000) {
                        println!("  {n} tenants, {:.0} s", started.elapsed().as_secs_f64());
                    }
                }
            });
        }
    });
    parts.store.flush().unwrap();
    drop(parts);
    std::fs::write(&done, b"").unwrap();
    println!(
        "  done in {:.0} s ({:.1} ms per module)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / tenants as f64
    );
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn request() -> AuthorizeRequest {
    AuthorizeRequest {
        subject: Entity::new("agent", "nobody"),
        action: RequestAction::new("read"),
        resource: Entity::new("reports", "q3"),
        context: None,
    }
}

/// The tenant ids by slug number.
fn tenant_ids(registry: &Registry, tenants: usize) -> Vec<String> {
    (0..tenants)
        .map(|n| registry.get_tenant(&slug(n)).unwrap().id)
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tenants: usize = std::env::var("WARD_SCALE_TENANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let target: PathBuf = plugins_build::guests()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let dir = target.join(format!("ward-bench-scale-{tenants}"));
    populate(&dir, tenants);

    println!("\n== {tenants} tenants, each with its own module");
    let empty = tempfile::tempdir().unwrap();
    let started = Instant::now();
    drop(open(empty.path()));
    let baseline = started.elapsed();
    let rss_before = rss_mib();
    let started = Instant::now();
    let (parts, sandbox) = open(&dir);
    let registry = &parts.registry;
    let startup = started.elapsed();
    let stats = sandbox.stats();
    println!(
        "start-up: {:.0} ms with {tenants} tenants, {:.0} ms empty; modules compiled {}, loaded from the cache {} (lazy)",
        startup.as_secs_f64() * 1000.0,
        baseline.as_secs_f64() * 1000.0,
        stats.compiled,
        stats.cache_hits,
    );
    let ids = tenant_ids(registry, tenants);
    let request = request();

    // Cold: a random sample, none decided before in this process.
    let mut order: Vec<usize> = (0..tenants).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let mut cold = Vec::with_capacity(SAMPLE);
    for &n in order.iter().take(SAMPLE.min(tenants)) {
        let started = Instant::now();
        let outcome = parts
            .decider
            .decide_now(&ids[n], "bench", &request)
            .unwrap();
        cold.push(started.elapsed());
        assert!(outcome.failure.is_none(), "{outcome:?}");
    }
    cold.sort_unstable();
    let warm_tenant = &ids[order[0]];
    parts
        .decider
        .decide_now(warm_tenant, "bench", &request)
        .unwrap();
    let mut warm: Vec<Duration> = (0..SAMPLE)
        .map(|_| {
            let started = Instant::now();
            parts
                .decider
                .decide_now(warm_tenant, "bench", &request)
                .unwrap();
            started.elapsed()
        })
        .collect();
    warm.sort_unstable();
    println!(
        "decision, module not in memory: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (target p99 <= 5 ms: {})",
        percentile(&cold, 0.5),
        percentile(&cold, 0.99),
        percentile(&cold, 1.0),
        if percentile(&cold, 0.99) <= 5.0 {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "decision, module resident:      p50 {:.3} ms, p99 {:.3} ms; cold / warm at p50 {:.0}x",
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        percentile(&cold, 0.5) / percentile(&warm, 0.5)
    );

    // Every tenant once: the resident set stays bounded.
    let started = Instant::now();
    for id in &ids {
        parts.decider.decide_now(id, "bench", &request).unwrap();
    }
    let all = started.elapsed();
    let stats = sandbox.stats();
    println!(
        "a decision for each of the {tenants} tenants: {:.1} s; resident modules {}, evictions {}, recompiled {}",
        all.as_secs_f64(),
        stats.resident,
        stats.evictions,
        stats.compiled,
    );
    println!(
        "resident memory: {:.0} MiB before opening, {:.0} MiB after (target < 2048 MiB: {})",
        rss_before,
        rss_mib(),
        if rss_mib() < 2048.0 { "met" } else { "not met" }
    );
    assert_eq!(stats.compiled, 0, "nothing recompiled");
}
