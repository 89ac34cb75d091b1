//! Test guest: writes to stdout and stderr, then allows. `{"sleep_ms": N}`
//! also sleeps N ms (a WASI clock wait) before answering.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, allow};

#[derive(Deserialize, Default)]
struct Config {
    sleep_ms: Option<u64>,
}

fn evaluate(request: &Request) -> Result<Decision> {
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    println!("chatty on stdout: `{}`", request.action().name());
    eprintln!("chatty on stderr: `{}`", request.action().name());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if let Some(ms) = config.sleep_ms {
        std::thread::sleep(Duration::from_millis(ms));
    }
    Ok(allow().reason("spoke up"))
}

ward_policy::policy!(evaluate);
