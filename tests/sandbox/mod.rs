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

mod builtins;
mod guests;
mod isolation;
mod limits;
mod loading;

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
