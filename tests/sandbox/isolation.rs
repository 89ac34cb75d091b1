//! Isolation between evaluations and tenants; quick code replaced by optimised
//! code.

use super::*;

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
