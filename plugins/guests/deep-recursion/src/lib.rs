//! Test guest: recurses. `{"depth": N}` recurses N calls deep then allows;
//! with no config it recurses without end.

use std::hint::black_box;

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, allow};

#[derive(Deserialize, Default)]
struct Config {
    depth: Option<u64>,
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    // The addition after the call keeps it from becoming a loop.
    black_box(recurse(black_box(depth - 1))) + 1
}

fn evaluate(request: &Request) -> Result<Decision> {
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    let reached = recurse(config.depth.unwrap_or(u64::MAX));
    Ok(allow().with_context("depth", reached))
}

ward_policy::policy!(evaluate);
