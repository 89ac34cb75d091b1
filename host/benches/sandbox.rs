//! One decision through the sandbox with the builtin `permissions` policy
//! (a fresh instance per call), beside the same rules in plain Rust, in the
//! same run. `cargo bench -p ward --bench sandbox`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

mod support {
    pub mod permissions;
}
use ward::plugins::PERMISSIONS_WASM;
use ward::sandbox::{
    Action, Agent, Entity, NoData, Permission, Request, Sandbox, SandboxConfig, SandboxLimits,
    Scope, Tenant,
};

fn agent() -> Agent {
    let grants: [(&str, &[&str]); 10] = [
        ("reports:*", &["read", "export"]),
        ("invoices:2025-*", &["read"]),
        ("docs:team-*", &["read", "write"]),
        ("tickets:*", &["read", "comment"]),
        ("*:public-*", &["read"]),
        ("crm:account-*", &["read"]),
        ("wiki:*", &["read", "edit"]),
        ("builds:*:logs", &["read"]),
        ("calendar:*", &["read"]),
        ("mail:drafts-*", &["write"]),
    ];
    Agent {
        name: String::from("report-bot"),
        scope: Scope::Tenant,
        type_: String::from("ai_agent"),
        attributes: String::from("{}"),
        permissions: grants
            .iter()
            .map(|(resource, actions)| Permission {
                resource: resource.to_string(),
                actions: actions.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    }
}

fn request(action: &str, kind: &str, id: &str) -> Request {
    let entity = |kind: &str, id: &str| Entity {
        type_: kind.to_string(),
        id: id.to_string(),
        properties: String::from("{}"),
    };
    Request {
        tenant: Tenant {
            id: String::from("tnt_01JBENCH"),
            slug: String::from("bench"),
        },
        subject: entity("agent", "report-bot"),
        agent: Some(agent()),
        action: Action {
            name: action.to_string(),
            properties: String::from("{}"),
        },
        resource: entity(kind, id),
        context: String::from("{}"),
        config: String::from("null"),
    }
}

/// The `permissions` policy's rules, natively.
fn permissions_native(request: &Request) -> (bool, Vec<String>) {
    let resource = format!("{}:{}", request.resource.type_, request.resource.id);
    let Some(agent) = &request.agent else {
        return (false, vec![String::from("not an agent")]);
    };
    let grants = agent
        .permissions
        .iter()
        .map(|p| (p.resource.as_str(), p.actions.iter().map(String::as_str)));
    support::permissions::decide(&agent.name, grants, &resource, &request.action.name)
}

fn bench(c: &mut Criterion) {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let policy = sandbox.load(PERMISSIONS_WASM, usize::MAX).unwrap();
    let limits = SandboxLimits::default();
    let allowed = request("export", "reports", "q3");
    let denied = request("delete", "reports", "q3");

    let outcome = sandbox.evaluate(&policy, &allowed, &limits, Arc::new(NoData));
    assert!(outcome.allow);
    assert_eq!(outcome.reasons, permissions_native(&allowed).1);
    assert!(
        !sandbox
            .evaluate(&policy, &denied, &limits, Arc::new(NoData))
            .allow
    );

    let mut group = c.benchmark_group("decision");
    group.bench_function("sandboxed_permissions_allow", |b| {
        b.iter(|| sandbox.evaluate(&policy, black_box(&allowed), &limits, Arc::new(NoData)))
    });
    group.bench_function("sandboxed_permissions_deny", |b| {
        b.iter(|| sandbox.evaluate(&policy, black_box(&denied), &limits, Arc::new(NoData)))
    });
    group.bench_function("native_permissions_allow", |b| {
        b.iter(|| permissions_native(black_box(&allowed)))
    });
    group.bench_function("native_permissions_deny", |b| {
        b.iter(|| permissions_native(black_box(&denied)))
    });
    group.finish();

    // The pool setting that matters most for per-decision instantiation:
    // resetting only the dirtied pages of a reused slot (every instance
    // made and dropped on this thread, so that the reset is measured).
    let mut tuning = c.benchmark_group("pool");
    for pagemap_scan in [true, false] {
        let sandbox = Sandbox::new(SandboxConfig {
            pagemap_scan,
            warm_instances: 0,
            ..SandboxConfig::default()
        })
        .unwrap();
        let policy = sandbox.load(PERMISSIONS_WASM, usize::MAX).unwrap();
        tuning.bench_function(format!("pagemap_scan_{pagemap_scan}"), |b| {
            b.iter(|| sandbox.evaluate(&policy, black_box(&allowed), &limits, Arc::new(NoData)))
        });
    }
    // How much of each memory is reset in place rather than given back to
    // the kernel (and faulted in again by the next instance), with every
    // instance made on this thread.
    for keep_kib in [256usize, 1024, 2048, 4096] {
        let sandbox = Sandbox::new(SandboxConfig {
            memory_keep_resident: keep_kib << 10,
            warm_instances: 0,
            ..SandboxConfig::default()
        })
        .unwrap();
        let policy = sandbox.load(PERMISSIONS_WASM, usize::MAX).unwrap();
        tuning.bench_function(format!("keep_resident_{keep_kib}_kib"), |b| {
            b.iter(|| sandbox.evaluate(&policy, black_box(&allowed), &limits, Arc::new(NoData)))
        });
    }
    tuning.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
