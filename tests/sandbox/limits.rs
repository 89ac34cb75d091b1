//! Each limit of the sandbox, obeyed and violated.

use super::*;

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
