//! The sandbox: loading refuses what it must, every limit is obeyed and
//! violated, failures become denies, and nothing leaks between evaluations.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ward::sandbox::{
    LoadError, LoadedPolicy, MemoryData, NoData, Outcome, PolicyErrorKind, Request, Sandbox,
    SandboxConfig, SandboxLimits, SandboxStats, Slice,
};

use crate::support::*;

fn run(name: &str, config: &str, limits: &SandboxLimits) -> Outcome {
    let policy = load(name);
    shared_sandbox().evaluate(&policy, &configured(config), limits, Arc::new(NoData))
}

fn failure_kind(outcome: &Outcome) -> Option<PolicyErrorKind> {
    outcome.failure.as_ref().map(|f| f.kind)
}

fn assert_denied_with(outcome: &Outcome, kind: PolicyErrorKind) {
    assert!(!outcome.allow, "{outcome:?}");
    assert_eq!(failure_kind(outcome), Some(kind), "{outcome:?}");
    assert_eq!(outcome.reasons, vec![format!("policy_error:{kind}")]);
}

fn context(outcome: &Outcome) -> Value {
    serde_json::from_str(&outcome.context).unwrap()
}

// ---- loading -------------------------------------------------------------

#[test]
fn load_refuses_garbage_bytes() {
    let err = shared_sandbox()
        .load(b"this is not webassembly at all", usize::MAX)
        .unwrap_err();
    assert!(matches!(err, LoadError::NotComponent(_)), "{err}");
}

#[test]
fn load_refuses_a_core_module() {
    let err = shared_sandbox()
        .load(b"\0asm\x01\0\0\0", usize::MAX)
        .unwrap_err();
    assert_eq!(err, LoadError::CoreModule);
}

#[test]
fn load_refuses_a_corrupt_component() {
    let mut bytes = guest("permissions");
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    let err = shared_sandbox().load(&bytes, usize::MAX).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[test]
fn load_refuses_a_component_without_evaluate() {
    // The smallest valid component: a preamble and nothing else.
    let empty = b"\0asm\x0d\0\x01\0";
    let err = shared_sandbox().load(empty, usize::MAX).unwrap_err();
    assert!(matches!(err, LoadError::MissingExport(_)), "{err}");
    assert!(err.to_string().contains("evaluate"), "{err}");
}

#[test]
fn load_refuses_an_import_outside_wasi_and_ward_naming_it() {
    let err = shared_sandbox()
        .load(&guest("forbidden_import"), usize::MAX)
        .unwrap_err();
    match &err {
        LoadError::ForbiddenImport(name) => assert!(name.starts_with("acme:exfil/net"), "{name}"),
        other => panic!("expected a forbidden import, got {other}"),
    }
    assert!(err.to_string().contains("acme:exfil/net"));
}

#[test]
fn module_size_limit_is_obeyed_and_violated() {
    let bytes = guest("permissions");
    assert!(shared_sandbox().load(&bytes, bytes.len()).is_ok());
    let err = shared_sandbox().load(&bytes, bytes.len() - 1).unwrap_err();
    assert_eq!(
        err,
        LoadError::TooLarge {
            size: bytes.len(),
            limit: bytes.len() - 1
        }
    );
}

#[test]
fn host_module_size_cap_applies_whatever_the_tenant_allows() {
    let bytes = guest("permissions");
    let sandbox = Sandbox::new(SandboxConfig {
        max_module_bytes: 1024,
        ..small_config()
    })
    .unwrap();
    let err = sandbox.load(&bytes, usize::MAX).unwrap_err();
    assert!(
        matches!(err, LoadError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[test]
fn compile_time_bound_is_obeyed_and_violated() {
    let bytes = guest("rbac");
    let strict = Sandbox::new(SandboxConfig {
        compile_timeout: Duration::from_millis(1),
        ..small_config()
    })
    .unwrap();
    let err = strict.load(&bytes, usize::MAX).unwrap_err();
    assert_eq!(err, LoadError::CompileTimeout { limit_ms: 1 });

    let relaxed = Sandbox::new(small_config()).unwrap();
    assert!(relaxed.load(&bytes, usize::MAX).is_ok());
    assert_eq!(relaxed.stats().compiled, 1);
}

/// `max_concurrent_compiles` counts every compile still running, abandoned
/// and background ones included; a compile frees its place when it ends,
/// before its caller hears of it.
#[test]
fn concurrent_compiles_are_bounded_and_each_frees_its_place_when_done() {
    let one_place = |config: SandboxConfig| {
        Sandbox::new(SandboxConfig {
            max_concurrent_compiles: 1,
            ..config
        })
        .unwrap()
    };
    let names = ["rbac", "probe", "spin", "deep_recursion", "huge_output"];

    // Modules loaded one after another never find the place taken.
    let sandbox = one_place(SandboxConfig {
        quick_compile_bytes: usize::MAX,
        ..small_config()
    });
    for name in names {
        let loaded = sandbox.load(&guest(name), usize::MAX);
        assert!(loaded.is_ok(), "{name}: {loaded:?}");
    }
    let stats = sandbox.stats();
    assert_eq!((stats.compiled, stats.compiling), (5, 0), "{stats:?}");

    // An abandoned compile holds its place until it ends.
    let sandbox = one_place(SandboxConfig {
        compile_timeout: Duration::ZERO,
        ..small_config()
    });
    let abandoned = LoadError::CompileTimeout { limit_ms: 0 };
    assert_eq!(
        sandbox.load(&guest("rbac"), usize::MAX).unwrap_err(),
        abandoned
    );
    assert_eq!(
        sandbox.load(&guest("probe"), usize::MAX).unwrap_err(),
        LoadError::Busy
    );
    wait_until(&sandbox, |stats| stats.compiling == 0);
    assert_eq!(
        sandbox.load(&guest("probe"), usize::MAX).unwrap_err(),
        abandoned
    );

    // A quick compile passes its place to the optimised compile, which
    // frees it before the policy counts as optimised.
    let sandbox = one_place(SandboxConfig {
        quick_compile_bytes: 0,
        ..small_config()
    });
    for (done, name) in (1..).zip(names) {
        let loaded = sandbox.load(&guest(name), usize::MAX);
        assert!(loaded.is_ok(), "{name}: {loaded:?}");
        wait_until_optimised(&sandbox, done);
    }
    let stats = sandbox.stats();
    assert_eq!((stats.compiled, stats.compiling), (5, 0), "{stats:?}");
}

#[test]
fn identical_bytes_share_one_compilation() {
    let sandbox = Sandbox::new(small_config()).unwrap();
    let bytes = guest("permissions");
    let first = sandbox.load(&bytes, usize::MAX).unwrap();
    let second = sandbox.load(&bytes, usize::MAX).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(sandbox.stats().compiled, 1);
    assert_eq!(first.sha256().len(), 64);
    assert_eq!(first.size(), bytes.len());
}

/// Run by `compiled_code_survives_a_process_restart` in a child process.
#[test]
#[ignore = "helper: runs only as a child process of another test"]
fn child_process_loads_from_cache() {
    let Ok(dir) = std::env::var("WARD_TEST_CACHE_DIR") else {
        return;
    };
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.into()),
        ..small_config()
    })
    .unwrap();
    let policy = sandbox.load(&guest("permissions"), usize::MAX).unwrap();
    let outcome = sandbox.evaluate(
        &policy,
        &request(
            Some(agent("a", &[("doc:*", &["read"])])),
            "read",
            "doc:1",
            "null",
        ),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    let stats = sandbox.stats();
    println!(
        "\nCHILD-STATS compiled={} cache_hits={} allow={}",
        stats.compiled, stats.cache_hits, outcome.allow
    );
}

#[test]
fn compiled_code_survives_a_process_restart() {
    let dir = tempfile::tempdir().unwrap();
    let run_child = || {
        let output = child_test("sandbox::child_process_loads_from_cache")
            .env("WARD_TEST_CACHE_DIR", dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "child failed: {stdout}");
        stdout
            .lines()
            .find(|line| line.starts_with("CHILD-STATS"))
            .unwrap_or_else(|| panic!("no stats in child output: {stdout}"))
            .to_string()
    };
    assert_eq!(
        run_child(),
        "CHILD-STATS compiled=1 cache_hits=0 allow=true"
    );
    assert_eq!(
        run_child(),
        "CHILD-STATS compiled=0 cache_hits=1 allow=true"
    );
}

#[test]
fn a_damaged_cache_entry_is_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..small_config()
    };
    let bytes = guest("permissions");
    let first = Sandbox::new(config()).unwrap();
    let sha = first.load(&bytes, usize::MAX).unwrap().sha256().to_string();
    drop(first);

    let entry = walk(dir.path())
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == format!("{sha}.cwasm"))
        .expect("cache entry written");
    let mut artifact = std::fs::read(&entry).unwrap();
    let last = artifact.len() - 1;
    artifact[last] ^= 0xff;
    std::fs::write(&entry, artifact).unwrap();

    let second = Sandbox::new(config()).unwrap();
    let policy = second.load(&bytes, usize::MAX).unwrap();
    assert_eq!(second.stats().compiled, 1);
    assert_eq!(second.stats().cache_hits, 0);
    let outcome = second.evaluate(
        &policy,
        &request(
            Some(agent("a", &[("doc:*", &["read"])])),
            "read",
            "doc:1",
            "null",
        ),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(outcome.allow);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

// ---- the builtin policies --------------------------------------------------

#[test]
fn permissions_policy_allows_what_a_grant_covers() {
    let policy = load("permissions");
    let bot = agent(
        "report-bot",
        &[
            ("reports:*", &["read", "export"]),
            ("*:public-*", &["read"]),
        ],
    );
    let limits = SandboxLimits::default();
    let eval = |action: &str, resource: &str| {
        shared_sandbox().evaluate(
            &policy,
            &request(Some(bot.clone()), action, resource, "null"),
            &limits,
            Arc::new(NoData),
        )
    };

    let allowed = eval("export", "reports:q3");
    assert!(allowed.allow, "{allowed:?}");
    assert_eq!(
        allowed.reasons,
        vec!["`reports:*` grants `export` on `reports:q3`"]
    );
    assert!(eval("read", "docs:public-faq").allow);

    let wrong_action = eval("delete", "reports:q3");
    assert!(!wrong_action.allow);
    assert_eq!(
        wrong_action.reasons,
        vec!["`reports:*` matches `reports:q3` but does not grant `delete`"]
    );
    let wrong_resource = eval("read", "invoices:7");
    assert!(!wrong_resource.allow);
    assert_eq!(
        wrong_resource.reasons,
        vec!["no permission of agent `report-bot` matches `invoices:7`"]
    );
    assert!(wrong_resource.failure.is_none());
}

#[test]
fn permissions_policy_denies_a_subject_that_is_not_an_agent() {
    let outcome = shared_sandbox().evaluate(
        &load("permissions"),
        &request(None, "read", "doc:1", "null"),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(!outcome.allow);
    assert_eq!(
        outcome.reasons,
        vec!["subject `agent:nobody` is not a registered agent"]
    );
}

#[test]
fn permissions_policy_wildcard_action_allows_any_action() {
    let outcome = shared_sandbox().evaluate(
        &load("permissions"),
        &request(
            Some(agent("root", &[("*", &["*"])])),
            "drop",
            "db:prod",
            "null",
        ),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(outcome.allow, "{outcome:?}");
}

/// The builtin policy is built with a 64 KiB stack (plugins/permissions/
/// build.rs) and a heap that never reuses memory (`DecisionHeap`); an agent
/// at the registry's limits (1,000 permissions of 512 characters, 100
/// actions each) must still be decided, both ways, by the builtin and by
/// the same policy built for `wasm32-wasip2`.
#[test]
fn permissions_policy_decides_for_an_agent_at_the_registry_limits() {
    let builtin = shared_sandbox()
        .load(ward::plugins::PERMISSIONS_WASM, usize::MAX)
        .unwrap();
    for policy in [builtin, load("permissions")] {
        decides_at_the_registry_limits(&policy);
    }
}

fn decides_at_the_registry_limits(policy: &Arc<LoadedPolicy>) {
    let actions: Vec<String> = (0..100).map(|i| format!("action-{i:03}")).collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let patterns: Vec<String> = (0..1_000)
        .map(|i| {
            let head = format!("kind-{i:04}:*");
            format!("{head}{}", "x*".repeat((512 - head.len()) / 2))
        })
        .collect();
    assert!(patterns.iter().all(|p| p.len() <= 512));
    let grants: Vec<(&str, &[&str])> = patterns
        .iter()
        .map(|p| (p.as_str(), actions.as_slice()))
        .collect();
    let big = agent("big", &grants);
    // Lowering 100,000 action strings takes tens of milliseconds (more in
    // a debug build beside other tests); the point here is the stack.
    let limits = SandboxLimits {
        timeout_ms: 10_000,
        ..SandboxLimits::default()
    };
    let resource = format!("kind-0999:{}", "x".repeat(300));
    let eval = |action: &str, resource: &str| {
        shared_sandbox().evaluate(
            policy,
            &request(Some(big.clone()), action, resource, "null"),
            &limits,
            Arc::new(NoData),
        )
    };

    let allowed = eval("action-099", &resource);
    assert!(allowed.allow, "{:?}", allowed.failure);
    assert!(
        allowed.reasons[0].starts_with("`kind-0999:*x*"),
        "{allowed:?}"
    );
    let denied = eval("action-100", "other:1");
    assert!(!denied.allow);
    assert!(denied.failure.is_none(), "{:?}", denied.failure);
    assert_eq!(
        denied.reasons,
        vec!["no permission of agent `big` matches `other:1`"]
    );
}

#[test]
fn the_embedded_permissions_policy_is_the_built_one_and_needs_no_wasi() {
    let built = std::path::Path::new(env!("WARD_BUILTIN_DIR")).join("permissions.wasm");
    assert_eq!(
        ward::plugins::PERMISSIONS_WASM,
        std::fs::read(built).unwrap().as_slice()
    );
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::new(&engine, ward::plugins::PERMISSIONS_WASM).unwrap();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(imports, vec!["ward:policy/types@0.1.0"]);
}

/// The builtin's heap grows linear memory as it needs; past the tenant's
/// memory limit the decision fails as `memory_limit`, like any policy's.
#[test]
fn the_builtin_heap_stops_at_the_memory_limit() {
    let builtin = shared_sandbox()
        .load(ward::plugins::PERMISSIONS_WASM, usize::MAX)
        .unwrap();
    let pattern = format!("docs:{}", "y".repeat(500));
    let actions: Vec<String> = (0..100).map(|i| format!("act-{i}")).collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let grants: Vec<(&str, &[&str])> = (0..1_000)
        .map(|_| (pattern.as_str(), actions.as_slice()))
        .collect();
    let agent = agent("wide", &grants);
    let request = request(Some(agent), "read", "docs:1", "null");
    let within = |memory_bytes: u64| SandboxLimits {
        memory_bytes,
        timeout_ms: 10_000,
        ..SandboxLimits::default()
    };

    // About 1.5 MiB of strings are lowered into the guest's memory.
    let refused = shared_sandbox().evaluate(&builtin, &request, &within(1 << 20), Arc::new(NoData));
    assert_denied_with(&refused, PolicyErrorKind::MemoryLimit);

    let decided =
        shared_sandbox().evaluate(&builtin, &request, &within(16 << 20), Arc::new(NoData));
    assert!(decided.failure.is_none(), "{:?}", decided.failure);
    assert_eq!(
        decided.reasons,
        vec!["no permission of agent `wide` matches `docs:1`"]
    );
}

#[test]
fn rbac_policy_maps_roles_from_config_or_data() {
    let policy = load("rbac");
    let mut req = request(None, "read", "docs:handbook", "");
    req.subject.properties = String::from(r#"{"roles": ["viewer"]}"#);
    let limits = SandboxLimits::default();

    req.config =
        String::from(r#"{"roles": {"viewer": [{"resource": "docs:*", "actions": ["read"]}]}}"#);
    let by_config = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(NoData));
    assert!(by_config.allow, "{by_config:?}");
    assert_eq!(
        by_config.reasons,
        vec!["role `viewer` grants `read` on `docs:handbook`"]
    );

    req.action.name = String::from("delete");
    let denied = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(NoData));
    assert!(!denied.allow);
    assert_eq!(
        denied.reasons,
        vec!["roles [viewer] grant no `delete` on `docs:handbook`"]
    );

    req.action.name = String::from("read");
    req.config = String::from("null");
    let data = MemoryData(
        [(
            String::from("rbac"),
            String::from(r#"{"roles": {"viewer": [{"resource": "docs:*", "actions": ["*"]}]}}"#),
        )]
        .into(),
    );
    let by_data = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(data));
    assert!(by_data.allow, "{by_data:?}");

    let no_mapping = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(NoData));
    assert_denied_with(&no_mapping, PolicyErrorKind::GuestError);
    assert!(
        no_mapping
            .failure
            .unwrap()
            .detail
            .contains("no role mapping")
    );
}

#[test]
fn rbac_policy_takes_roles_from_agent_attributes() {
    let mut bot = agent("bot", &[]);
    bot.attributes = String::from(r#"{"roles": "admin"}"#);
    let req = request(
        Some(bot),
        "purge",
        "cache:all",
        r#"{"roles": {"admin": [{"resource": "*", "actions": ["*"]}]}}"#,
    );
    let outcome = shared_sandbox().evaluate(
        &load("rbac"),
        &req,
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(outcome.allow, "{outcome:?}");
}

// ---- limits: each obeyed and violated --------------------------------------

/// Generous: the point is that a runaway guest is stopped, not precision.
const MARGIN: Duration = Duration::from_millis(500);

#[test]
fn timeout_is_obeyed() {
    let limits = SandboxLimits {
        timeout_ms: 500,
        ..SandboxLimits::default()
    };
    let outcome = run("spin", r#"{"spin_ms": 5}"#, &limits);
    assert!(outcome.allow, "{outcome:?}");
}

#[test]
fn an_inline_slice_gives_up_on_a_slow_policy_and_a_full_one_finishes_it() {
    let spin = load("spin");
    let limits = SandboxLimits {
        timeout_ms: 500,
        ..SandboxLimits::default()
    };
    let within = |config: &str, slice, limits: &SandboxLimits| {
        shared_sandbox().evaluate_within(
            &spin,
            &configured(config),
            limits,
            Arc::new(NoData),
            slice,
        )
    };
    // 1000 loop iterations take microseconds: decided inline. (A thread
    // descheduled for two epoch ticks may see even that cut short, so the
    // test allows a few tries on a loaded machine.)
    let quick = (0..10)
        .find_map(|_| within(r#"{"iterations": 1000}"#, Slice::Inline, &limits))
        .expect("a quick policy finishes within its inline slice");
    assert!(quick.allow, "{quick:?}");
    // 200 ms is far past any inline slice (at most 2 ticks of 1 ms)...
    assert!(within(r#"{"spin_ms": 200}"#, Slice::Inline, &limits).is_none());
    // ...and within the tenant's timeout.
    let full = within(r#"{"spin_ms": 200}"#, Slice::Full, &limits).unwrap();
    assert!(full.allow, "{full:?}");
    // The guest's clock counts whole milliseconds.
    assert!(
        full.usage.duration >= Duration::from_millis(190),
        "{full:?}"
    );
    // A timeout no longer than the slice is final even inline.
    let impatient = SandboxLimits {
        timeout_ms: 1,
        ..SandboxLimits::default()
    };
    let timed_out = within("null", Slice::Inline, &impatient).unwrap();
    assert_denied_with(&timed_out, PolicyErrorKind::Timeout);
}

#[test]
fn timeout_is_violated_by_an_infinite_loop() {
    let limits = SandboxLimits {
        timeout_ms: 50,
        ..SandboxLimits::default()
    };
    let outcome = run("spin", "null", &limits);
    assert_denied_with(&outcome, PolicyErrorKind::Timeout);
    assert!(
        outcome.usage.duration >= Duration::from_millis(50),
        "{:?}",
        outcome.usage
    );
    assert!(
        outcome.usage.duration < Duration::from_millis(50) + MARGIN,
        "{:?}",
        outcome.usage
    );
}

#[test]
fn timeout_also_stops_a_guest_spinning_on_host_calls() {
    let limits = SandboxLimits {
        timeout_ms: 30,
        ..SandboxLimits::default()
    };
    let outcome = run("spin", r#"{"spin_ms": 60000}"#, &limits);
    assert_denied_with(&outcome, PolicyErrorKind::Timeout);
    assert!(outcome.usage.duration < Duration::from_millis(30) + MARGIN);
}

#[test]
fn fuel_is_obeyed_and_reported() {
    let limits = SandboxLimits {
        fuel: Some(50_000_000),
        ..SandboxLimits::default()
    };
    let outcome = run("spin", r#"{"iterations": 1000}"#, &limits);
    assert!(outcome.allow, "{outcome:?}");
    let used = outcome.usage.fuel_consumed.unwrap();
    assert!(used > 1000 && used < 50_000_000, "{used}");
}

#[test]
fn fuel_is_violated() {
    let limits = SandboxLimits {
        fuel: Some(1_000_000),
        timeout_ms: 10_000,
        ..SandboxLimits::default()
    };
    let outcome = run("spin", "null", &limits);
    assert_denied_with(&outcome, PolicyErrorKind::FuelExhausted);
}

#[test]
fn memory_limit_is_obeyed() {
    let limits = SandboxLimits {
        memory_bytes: 16 << 20,
        ..SandboxLimits::default()
    };
    let outcome = run("memory_bomb", r#"{"bytes": 4194304}"#, &limits);
    assert!(outcome.allow, "{outcome:?}");
    assert!(outcome.usage.peak_memory_bytes >= 4 << 20);
    assert!(outcome.usage.peak_memory_bytes <= 16 << 20);
}

#[test]
fn memory_limit_is_violated_by_one_large_allocation() {
    let limits = SandboxLimits {
        memory_bytes: 16 << 20,
        ..SandboxLimits::default()
    };
    let outcome = run("memory_bomb", r#"{"bytes": 33554432}"#, &limits);
    assert_denied_with(&outcome, PolicyErrorKind::MemoryLimit);
}

#[test]
fn memory_limit_is_violated_by_a_memory_bomb() {
    let limits = SandboxLimits {
        memory_bytes: 8 << 20,
        ..SandboxLimits::default()
    };
    let outcome = run("memory_bomb", "null", &limits);
    assert_denied_with(&outcome, PolicyErrorKind::MemoryLimit);
    assert!(outcome.usage.peak_memory_bytes <= 8 << 20);
}

#[test]
fn stack_is_obeyed_by_moderate_recursion() {
    let outcome = run(
        "deep_recursion",
        r#"{"depth": 1000}"#,
        &SandboxLimits::default(),
    );
    assert!(outcome.allow, "{outcome:?}");
    assert_eq!(context(&outcome)["depth"], 1000);
}

#[test]
fn stack_is_violated_by_unbounded_recursion() {
    let outcome = run("deep_recursion", "null", &SandboxLimits::default());
    assert_denied_with(&outcome, PolicyErrorKind::StackOverflow);
}

#[test]
fn a_panic_is_a_trap() {
    let outcome = run("panic", "null", &SandboxLimits::default());
    assert_denied_with(&outcome, PolicyErrorKind::Trap);
}

#[test]
fn output_size_is_obeyed() {
    let outcome = run(
        "huge_output",
        r#"{"reasons": 3, "reason_bytes": 10, "context_bytes": 100}"#,
        &SandboxLimits::default(),
    );
    assert!(outcome.failure.is_none(), "{outcome:?}");
    assert!(!outcome.allow);
    assert_eq!(outcome.reasons, vec!["x".repeat(10); 3]);
    assert_eq!(context(&outcome)["blob"], "y".repeat(100));
}

#[test]
fn output_size_is_violated_by_each_bound() {
    let limits = SandboxLimits {
        memory_bytes: 64 << 20,
        ..SandboxLimits::default()
    };
    for config in [
        "null",
        r#"{"reasons": 65, "reason_bytes": 1, "context_bytes": 0}"#,
        r#"{"reasons": 1, "reason_bytes": 1025, "context_bytes": 0}"#,
        r#"{"reasons": 1, "reason_bytes": 1, "context_bytes": 70000}"#,
    ] {
        let outcome = run("huge_output", config, &limits);
        assert_denied_with(&outcome, PolicyErrorKind::OutputTooLarge);
    }
}

#[test]
fn malformed_output_is_a_deny() {
    let policy = load("malformed_output");
    for action in ["braces", "array"] {
        let outcome = shared_sandbox().evaluate(
            &policy,
            &request(None, action, "doc:1", "null"),
            &SandboxLimits::default(),
            Arc::new(NoData),
        );
        assert_denied_with(&outcome, PolicyErrorKind::MalformedOutput);
    }
}

#[test]
fn hostcall_bytes_are_obeyed_and_violated() {
    let small = SandboxLimits {
        hostcall_bytes: 4096,
        ..SandboxLimits::default()
    };
    let short_key = r#"{"data_keys": ["settings"]}"#;
    assert!(run("probe", short_key, &small).allow);

    let long_key = format!(r#"{{"data_keys": ["{}"]}}"#, "k".repeat(64 << 10));
    let outcome = run("probe", &long_key, &small);
    assert_denied_with(&outcome, PolicyErrorKind::OutputTooLarge);
}

#[test]
fn instance_and_table_counts_are_obeyed_and_violated() {
    let defaults = SandboxLimits::default();
    assert!(run("probe", "null", &defaults).allow);

    let one_instance = SandboxLimits {
        max_instances: 1,
        ..SandboxLimits::default()
    };
    let outcome = run("probe", "null", &one_instance);
    assert!(!outcome.allow);
    assert!(outcome.failure.is_some(), "{outcome:?}");

    let no_tables = SandboxLimits {
        max_tables: 0,
        ..SandboxLimits::default()
    };
    let outcome = run("probe", "null", &no_tables);
    assert!(!outcome.allow);
    assert!(outcome.failure.is_some(), "{outcome:?}");
}

#[test]
fn guest_output_is_capped_not_fatal() {
    let outcome = run(
        "probe",
        r#"{"stdout_bytes": 1048576, "log_lines": 5000}"#,
        &SandboxLimits::default(),
    );
    assert!(outcome.allow, "{outcome:?}");
    assert!(outcome.usage.log_truncated);

    let quiet = run("probe", r#"{"log_lines": 3}"#, &SandboxLimits::default());
    assert!(!quiet.usage.log_truncated);
}

// ---- isolation between evaluations and tenants -----------------------------

#[test]
fn the_evaluation_after_each_failure_succeeds() {
    let limits = SandboxLimits {
        timeout_ms: 50,
        memory_bytes: 8 << 20,
        ..SandboxLimits::default()
    };
    let good = load("permissions");
    let good_request = request(
        Some(agent("a", &[("doc:*", &["read"])])),
        "read",
        "doc:1",
        "null",
    );
    for bad in [
        "spin",
        "memory_bomb",
        "deep_recursion",
        "panic",
        "huge_output",
    ] {
        let failed = run(bad, "null", &limits);
        assert!(failed.failure.is_some(), "{bad}: {failed:?}");
        let next = shared_sandbox().evaluate(&good, &good_request, &limits, Arc::new(NoData));
        assert!(next.allow, "after {bad}: {next:?}");
        let again = run(bad, "null", &limits);
        assert_eq!(
            failure_kind(&again),
            failure_kind(&failed),
            "{bad} fails the same way twice"
        );
    }
}

#[test]
fn every_evaluation_gets_a_fresh_instance() {
    for _ in 0..3 {
        let outcome = run("probe", "null", &SandboxLimits::default());
        assert_eq!(context(&outcome)["calls"], 1, "{outcome:?}");
    }
}

/// Instances made ahead by the `ward-warm` thread: each serves one
/// evaluation, only of the tenant, module and limits it was made for, and
/// sees the data of the evaluation that takes it.
#[test]
fn instances_made_ahead_serve_one_evaluation_of_their_own_tenant() {
    // 32: two per lock shard, so the two tenants below have room for one
    // ready instance each even when their keys share a shard.
    let sandbox = Sandbox::new(SandboxConfig {
        warm_instances: 32,
        ..small_config()
    })
    .unwrap();
    let policy = sandbox.load(&guest("probe"), usize::MAX).unwrap();
    let limits = SandboxLimits::default();
    let tenants = [("acme", "a"), ("globex", "g")];
    let wait_for_ready = |at_least: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sandbox.stats().warm < at_least && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    for round in 0..20 {
        for (slug, who) in tenants {
            let mut req = configured(r#"{"data_keys": ["who"]}"#);
            req.tenant = tenant(slug);
            let data = MemoryData([(String::from("who"), format!("\"{who}\""))].into());
            let outcome = sandbox.evaluate(&policy, &req, &limits, Arc::new(data));
            let seen = context(&outcome);
            assert_eq!(seen["calls"], 1, "round {round}: {outcome:?}");
            assert_eq!(seen["tenant"]["slug"], slug);
            assert_eq!(seen["data"]["who"], who, "round {round}");
        }
        wait_for_ready(2);
    }
    let stats = sandbox.stats();
    assert!(stats.warm_taken >= 30, "{stats:?}");
    assert!(stats.warm <= 32, "{stats:?}");

    // Other limits never get an instance made under the old ones: with too
    // little memory for the module, instantiation itself must fail.
    let tiny = SandboxLimits {
        memory_bytes: 64 << 10,
        ..SandboxLimits::default()
    };
    let mut req = configured("null");
    req.tenant = tenant("acme");
    let outcome = sandbox.evaluate(&policy, &req, &tiny, Arc::new(NoData));
    assert!(!outcome.allow && outcome.failure.is_some(), "{outcome:?}");

    // However many tenants decide, the ready set keeps its bound.
    for n in 0..80 {
        let mut req = configured("null");
        req.tenant = tenant(&format!("t{n}"));
        let outcome = sandbox.evaluate(&policy, &req, &limits, Arc::new(NoData));
        assert_eq!(context(&outcome)["calls"], 1, "{outcome:?}");
        assert!(sandbox.stats().warm <= 32, "{:?}", sandbox.stats());
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(sandbox.stats().warm <= 32, "{:?}", sandbox.stats());

    // A forgotten module keeps no instance once the thread has caught up
    // with what was queued before.
    sandbox.forget(policy.sha256());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sandbox.stats().warm > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(sandbox.stats().warm, 0);
}

#[test]
fn the_policy_sees_the_request_and_data_it_was_given() {
    let mut bot = agent("bot", &[("doc:*", &["read"])]);
    bot.attributes = String::from(r#"{"team": "blue"}"#);
    let mut req = request(
        Some(bot),
        "read",
        "doc:7",
        r#"{"data_keys": ["limits", "absent"]}"#,
    );
    req.context = String::from(r#"{"ip": "10.0.0.1"}"#);
    req.resource.properties = String::from(r#"{"owner": "kim"}"#);
    let data = MemoryData([(String::from("limits"), String::from(r#"{"max": 3}"#))].into());
    let outcome = shared_sandbox().evaluate(
        &load("probe"),
        &req,
        &SandboxLimits::default(),
        Arc::new(data),
    );
    let seen = context(&outcome);
    assert_eq!(seen["tenant"]["slug"], "acme");
    assert_eq!(seen["tenant"]["id"], "tnt_ACME");
    assert_eq!(seen["subject"]["id"], "bot");
    assert_eq!(seen["agent"]["name"], "bot");
    assert_eq!(seen["agent"]["scope"], "tenant");
    assert_eq!(seen["agent"]["attributes"]["team"], "blue");
    assert_eq!(seen["agent"]["permissions"][0]["resource"], "doc:*");
    assert_eq!(seen["resource"]["properties"]["owner"], "kim");
    assert_eq!(seen["context"]["ip"], "10.0.0.1");
    assert_eq!(seen["data"]["limits"]["max"], 3);
    assert_eq!(seen["data"]["absent"], Value::Null);
    assert!(seen["now_millis"].as_u64().unwrap() > 1_700_000_000_000);
}

#[test]
fn one_component_from_many_threads_gives_identical_results() {
    let policy = load("permissions");
    let bot = agent(
        "bot",
        &[
            ("reports:*", &["read"]),
            ("docs:team-*", &["read", "write"]),
        ],
    );
    let cases: Vec<_> = [
        ("read", "reports:q1"),
        ("write", "reports:q1"),
        ("write", "docs:team-blue"),
        ("read", "invoices:9"),
    ]
    .into_iter()
    .map(|(action, resource)| request(Some(bot.clone()), action, resource, "null"))
    .collect();
    let limits = SandboxLimits::default();
    let expected: Vec<Outcome> = cases
        .iter()
        .map(|req| shared_sandbox().evaluate(&policy, req, &limits, Arc::new(NoData)))
        .collect();
    assert_eq!(
        expected.iter().map(|o| o.allow).collect::<Vec<_>>(),
        vec![true, false, true, false]
    );

    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for round in 0..50 {
                    let i = round % cases.len();
                    let got =
                        shared_sandbox().evaluate(&policy, &cases[i], &limits, Arc::new(NoData));
                    assert_eq!(got.allow, expected[i].allow);
                    assert_eq!(got.reasons, expected[i].reasons);
                    assert_eq!(got.context, expected[i].context);
                    assert!(got.failure.is_none());
                }
            });
        }
    });
}

#[test]
fn tenant_limits_differ_per_tenant_and_are_applied() {
    let policy = load("memory_bomb");
    let req = configured(r#"{"bytes": 8388608}"#);
    let small_tenant = SandboxLimits {
        memory_bytes: 4 << 20,
        ..SandboxLimits::default()
    };
    let large_tenant = SandboxLimits {
        memory_bytes: 32 << 20,
        ..SandboxLimits::default()
    };
    let small = shared_sandbox().evaluate(&policy, &req, &small_tenant, Arc::new(NoData));
    let large = shared_sandbox().evaluate(&policy, &req, &large_tenant, Arc::new(NoData));
    assert_denied_with(&small, PolicyErrorKind::MemoryLimit);
    assert!(large.allow, "{large:?}");

    let spin = load("spin");
    let slow = configured(r#"{"spin_ms": 40}"#);
    let impatient = SandboxLimits {
        timeout_ms: 10,
        ..SandboxLimits::default()
    };
    let patient = SandboxLimits {
        timeout_ms: 1000,
        ..SandboxLimits::default()
    };
    let a = shared_sandbox().evaluate(&spin, &slow, &impatient, Arc::new(NoData));
    let b = shared_sandbox().evaluate(&spin, &slow, &patient, Arc::new(NoData));
    assert_denied_with(&a, PolicyErrorKind::Timeout);
    assert!(b.allow);
}

#[test]
fn host_checks_tenant_limits_against_its_own() {
    let sandbox = shared_sandbox();
    assert!(sandbox.check_limits(&SandboxLimits::default()).is_ok());
    let too_much_memory = SandboxLimits {
        memory_bytes: (sandbox.config().max_memory_bytes as u64) + 1,
        ..SandboxLimits::default()
    };
    assert!(sandbox.check_limits(&too_much_memory).is_err());
    let no_time = SandboxLimits {
        timeout_ms: 0,
        ..SandboxLimits::default()
    };
    assert!(sandbox.check_limits(&no_time).is_err());
}

/// Waits until the sandbox has optimised `count` modules compiled quickly
/// first.
fn wait_until_optimised(sandbox: &Sandbox, count: u64) {
    wait_until(sandbox, |stats| stats.optimised >= count);
}

/// Waits (two minutes at most) until `sandbox`'s counters satisfy `done`.
fn wait_until(sandbox: &Sandbox, done: impl Fn(&SandboxStats) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done(&sandbox.stats()) {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting: {:?}",
            sandbox.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A sandbox caching compiled code in `dir`, compiling modules of
/// `quick_compile_bytes` or more quickly first.
fn cached_config(dir: &std::path::Path, quick_compile_bytes: usize) -> SandboxConfig {
    SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        quick_compile_bytes,
        ..small_config()
    }
}

/// A large module decides on quick code at once, goes on deciding while
/// its optimised code replaces it, and only the optimised code is kept in
/// the cache.
#[test]
fn large_modules_decide_on_quick_code_until_their_optimised_code_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = |quick_compile_bytes| cached_config(dir.path(), quick_compile_bytes);
    let bytes = guest("permissions");
    let grant = agent("a", &[("doc:*", &["read"])]);
    let allowed = request(Some(grant.clone()), "read", "doc:1", "null");
    let denied = request(Some(grant), "write", "doc:1", "null");
    let decide = |sandbox: &Sandbox, policy: &Arc<LoadedPolicy>, request: &Request| {
        let outcome =
            sandbox.evaluate(policy, request, &SandboxLimits::default(), Arc::new(NoData));
        assert!(outcome.failure.is_none(), "{outcome:?}");
        outcome.allow
    };

    // Every module counts as large here.
    let sandbox = Sandbox::new(config(0)).unwrap();
    let policy = sandbox.load(&bytes, usize::MAX).unwrap();
    std::thread::scope(|scope| {
        // Decisions keep coming while the code is replaced under them.
        let deciding = scope.spawn(|| {
            let give_up = std::time::Instant::now() + Duration::from_secs(120);
            let mut decided = 0;
            while (!policy.is_optimised() && std::time::Instant::now() < give_up) || decided < 10 {
                assert!(decide(&sandbox, &policy, &allowed));
                assert!(!decide(&sandbox, &policy, &denied));
                decided += 1;
            }
            decided
        });
        wait_until_optimised(&sandbox, 1);
        assert!(deciding.join().unwrap() >= 10);
    });
    assert!(policy.is_optimised());
    let stats = sandbox.stats();
    assert_eq!((stats.compiled, stats.cache_hits), (1, 0), "{stats:?}");
    drop((policy, sandbox));

    // The next process takes the optimised code from the cache.
    let sandbox = Sandbox::new(config(0)).unwrap();
    let policy = sandbox.load(&bytes, usize::MAX).unwrap();
    assert!(policy.is_optimised());
    assert!(decide(&sandbox, &policy, &allowed));
    let stats = sandbox.stats();
    assert_eq!(
        (stats.compiled, stats.cache_hits, stats.optimised),
        (0, 1, 0),
        "{stats:?}"
    );
}

/// A module dropped before its optimised code is ready still has that
/// code cached; modules under `quick_compile_bytes` are compiled once.
#[test]
fn optimised_code_is_cached_even_when_nothing_uses_the_module_any_more() {
    let dir = tempfile::tempdir().unwrap();
    let config = |quick_compile_bytes| cached_config(dir.path(), quick_compile_bytes);
    let bytes = guest("rbac");
    let sandbox = Sandbox::new(config(0)).unwrap();
    drop(sandbox.load(&bytes, usize::MAX).unwrap());
    wait_until_optimised(&sandbox, 1);
    drop(sandbox);

    let sandbox = Sandbox::new(config(usize::MAX)).unwrap();
    let policy = sandbox.load(&bytes, usize::MAX).unwrap();
    assert!(policy.is_optimised());
    assert_eq!(sandbox.stats().cache_hits, 1);

    let fresh = Sandbox::new(SandboxConfig {
        quick_compile_bytes: usize::MAX,
        ..small_config()
    })
    .unwrap();
    let policy = fresh.load(&bytes, usize::MAX).unwrap();
    assert!(policy.is_optimised(), "compiled once, optimised");
    let stats = fresh.stats();
    assert_eq!((stats.compiled, stats.optimised), (1, 0), "{stats:?}");
}

// ---- adversarial guests through the real HTTP server -----------------------

/// What each guest in `plugins/guests/` answers (with the config given, if
/// any): the deny reason of its failure, `Ok(reason)` for a guest that
/// decides, or `None` for one refused at upload.
type Expectation = (
    &'static str,
    Option<&'static str>,
    Option<Result<&'static str, &'static str>>,
);

fn guest_expectations() -> Vec<Expectation> {
    vec![
        ("spin", None, Some(Err("timeout"))),
        ("memory-bomb", None, Some(Err("memory_limit"))),
        ("deep-recursion", None, Some(Err("stack_overflow"))),
        ("panic", None, Some(Err("trap"))),
        // With no config it runs out of memory first.
        (
            "huge-output",
            Some(r#"{"reasons": 100, "context_bytes": 0}"#),
            Some(Err("output_too_large")),
        ),
        ("malformed-output", None, Some(Err("malformed_output"))),
        ("forbidden-import", None, None),
        ("chatty", None, Some(Ok("spoke up"))),
        ("probe", None, Some(Ok(""))),
    ]
}

/// Every guest of `plugins/guests/` uploaded to a real server and decided
/// alone and in one batch: each answer a 200 with the guest's
/// `policy_error:<kind>` (or its decision), none a dropped connection.
async fn every_guest_over_http(inline: bool) {
    use crate::server::TestServer;
    use serde_json::json;

    let expected = guest_expectations();
    let on_disk: std::collections::BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/guests"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    let known: std::collections::BTreeSet<String> =
        expected.iter().map(|(name, ..)| name.to_string()).collect();
    assert_eq!(on_disk, known, "every guest in plugins/guests/ is tried");

    let server = TestServer::start_with(&format!("[http]\ninline_decisions = {inline}\n")).await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let request = |name: &str| json!({"agent": name, "action": "read", "resource": "doc:1"});
    let mut batch = Vec::new();
    let mut answers = Vec::new();
    for (name, config, expect) in &expected {
        let wasm = guest(&name.replace('-', "_"));
        let uploaded = server
            .upload(&format!("/v1/policies/{name}"), &admin, wasm)
            .await;
        let Some(expect) = expect else {
            assert_eq!(
                (uploaded.status, uploaded.code()),
                (422, "invalid_module"),
                "{name}: {}",
                uploaded.body
            );
            continue;
        };
        assert_eq!(uploaded.status, 201, "{name}: {}", uploaded.body);
        if let Some(config) = config {
            let config: Value = serde_json::from_str(config).unwrap();
            let put = server
                .put(&format!("/v1/policies/{name}/config"), &admin, config)
                .await;
            assert_eq!(put.status, 200, "{name}: {}", put.body);
        }
        let agent = json!({"type": "ai_agent", "policy": name});
        let put = server
            .put(&format!("/v1/agents/{name}"), &admin, agent)
            .await;
        assert_eq!(put.status, 201, "{name}: {}", put.body);
        let answer = server
            .post("/v1/authorize", &authorize, request(name))
            .await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        check_answer(name, expect, &answer.body);
        batch.push(request(name));
        answers.push((name, expect));
    }
    let batched = server
        .post("/v1/authorize/batch", &authorize, json!({"items": batch}))
        .await;
    assert_eq!(batched.status, 200, "{}", batched.body);
    let results = batched.body["results"].as_array().unwrap();
    assert_eq!(results.len(), answers.len());
    for ((name, expect), result) in answers.iter().zip(results) {
        check_answer(name, expect, result);
    }

    // A guest that waits on a WASI clock: a short wait is waited out (on
    // a thread that may block), one past the timeout ends at the timeout.
    for (sleep_ms, expect) in [(5, Ok("spoke up")), (60_000, Err("timeout"))] {
        server
            .put(
                "/v1/policies/chatty/config",
                &admin,
                json!({"sleep_ms": sleep_ms}),
            )
            .await;
        let started = std::time::Instant::now();
        let answer = server
            .post("/v1/authorize", &authorize, request("chatty"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        check_answer("chatty", &expect, &answer.body);
        assert!(started.elapsed() < Duration::from_secs(10), "bounded wait");
    }
    // The probe writing a lot to stdout still decides.
    server
        .put(
            "/v1/policies/probe/config",
            &admin,
            json!({"stdout_bytes": 100_000}),
        )
        .await;
    let answer = server
        .post("/v1/authorize", &authorize, request("probe"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["decision"], true, "{}", answer.body);
}

fn check_answer(name: &str, expect: &Result<&str, &str>, body: &Value) {
    match expect {
        Err(kind) => {
            assert_eq!(body["decision"], false, "{name}: {body}");
            assert_eq!(
                body["reasons"],
                serde_json::json!([format!("policy_error:{kind}")]),
                "{name}: {body}"
            );
        }
        Ok(reason) => {
            assert_eq!(body["decision"], true, "{name}: {body}");
            if !reason.is_empty() {
                assert_eq!(
                    body["reasons"],
                    serde_json::json!([reason]),
                    "{name}: {body}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guest_answers_over_http_with_inline_decisions() {
    every_guest_over_http(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guest_answers_over_http_on_blocking_threads() {
    every_guest_over_http(false).await;
}
