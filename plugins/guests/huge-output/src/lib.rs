//! Test guest: answers with as much as it is told to. `{"reasons": N,
//! "reason_bytes": M, "context_bytes": K}`; with no
//! config it answers with ten thousand reasons of 1 KB and a 4 MB context.

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, deny};

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    reasons: usize,
    reason_bytes: usize,
    context_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reasons: 10_000,
            reason_bytes: 1_000,
            context_bytes: 4 << 20,
        }
    }
}

fn evaluate(request: &Request) -> Result<Decision> {
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    let mut decision = deny("x".repeat(config.reason_bytes));
    for _ in 1..config.reasons {
        decision = decision.reason("x".repeat(config.reason_bytes));
    }
    if config.context_bytes > 0 {
        decision = decision.with_context("blob", "y".repeat(config.context_bytes));
    }
    Ok(decision)
}

ward_policy::policy!(evaluate);
