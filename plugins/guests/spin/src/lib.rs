//! Test guest: burns CPU. `{"spin_ms": N}` spins for N ms by the host clock,
//! `{"iterations": N}` runs N loop iterations; with no config it never stops.

use std::hint::black_box;

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, allow, now_millis};

#[derive(Deserialize, Default)]
struct Config {
    spin_ms: Option<u64>,
    iterations: Option<u64>,
}

fn evaluate(request: &Request) -> Result<Decision> {
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    if let Some(ms) = config.spin_ms {
        let end = now_millis() + ms;
        while now_millis() < end {}
        return Ok(allow());
    }
    let iterations = config.iterations.unwrap_or(u64::MAX);
    let mut acc = 0u64;
    let mut i = 0u64;
    while i < iterations {
        acc = black_box(acc.wrapping_mul(31).wrapping_add(i));
        i += 1;
    }
    Ok(allow().with_context("acc", acc))
}

ward_policy::policy!(evaluate);
