//! Test guest: allocates. `{"bytes": N}` allocates and touches N bytes then
//! allows; with no config it allocates 1 MiB blocks until it cannot.

use std::hint::black_box;

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, allow};

#[derive(Deserialize, Default)]
struct Config {
    bytes: Option<usize>,
}

fn evaluate(request: &Request) -> Result<Decision> {
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    if let Some(bytes) = config.bytes {
        let block = black_box(vec![1u8; bytes]);
        return Ok(allow().with_context("bytes", block.len()));
    }
    let mut blocks = Vec::new();
    loop {
        blocks.push(black_box(vec![1u8; 1 << 20]));
    }
}

ward_policy::policy!(evaluate);
