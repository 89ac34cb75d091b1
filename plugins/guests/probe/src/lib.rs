//! Test guest: reports back what it was given, so tests can see exactly what
//! the host passed in and what the host imports return.
//!
//! Config (all optional): `{"data_keys": ["k"], "stdout_bytes": N,
//! "log_lines": N, "allow": bool}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use ward_policy::{
    Decision, Level, Request, Result, Scope, allow, data_get_raw, deny, log, now_millis,
};

/// Counts calls within one instance: Ward must answer 1 every time.
static CALLS: AtomicU32 = AtomicU32::new(0);

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    data_keys: Vec<String>,
    stdout_bytes: usize,
    log_lines: usize,
    allow: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_keys: Vec::new(),
            stdout_bytes: 0,
            log_lines: 0,
            allow: true,
        }
    }
}

fn evaluate(request: &Request) -> Result<Decision> {
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };

    let mut data = BTreeMap::new();
    for key in &config.data_keys {
        let value = match data_get_raw(key) {
            Some(json) => serde_json::from_str::<Value>(&json)?,
            None => Value::Null,
        };
        data.insert(key.clone(), value);
    }
    if config.stdout_bytes > 0 {
        let line = vec![b'o'; config.stdout_bytes];
        let _ = std::io::stdout().write_all(&line);
        let _ = std::io::stdout().flush();
    }
    for i in 0..config.log_lines {
        log(Level::Info, &format!("probe line {i}"));
    }

    let agent = request.agent().map(|agent| {
        json!({
            "name": agent.name,
            "scope": match agent.scope { Scope::Global => "global", Scope::Tenant => "tenant" },
            "type": agent.kind,
            "attributes": agent.attributes::<Value>().unwrap_or(Value::Null),
            "permissions": agent.permissions.iter()
                .map(|p| json!({"resource": p.resource, "actions": p.actions}))
                .collect::<Vec<_>>(),
        })
    });
    let decision = if config.allow {
        allow()
    } else {
        deny("probe told to deny")
    };
    Ok(decision
        .with_context("calls", calls)
        .with_context("now_millis", now_millis())
        .with_context(
            "tenant",
            json!({"id": request.tenant().id, "slug": request.tenant().slug}),
        )
        .with_context(
            "subject",
            json!({
                "type": request.subject().kind(),
                "id": request.subject().id(),
                "properties": request.subject().properties::<Value>()?,
            }),
        )
        .with_context("agent", agent)
        .with_context(
            "action",
            json!({
                "name": request.action().name(),
                "properties": request.action().properties::<Value>()?,
            }),
        )
        .with_context(
            "resource",
            json!({
                "type": request.resource().kind(),
                "id": request.resource().id(),
                "properties": request.resource().properties::<Value>()?,
            }),
        )
        .with_context("context", request.context::<Value>()?)
        .with_context("config", request.config::<Value>()?)
        .with_context("data", data))
}

ward_policy::policy!(evaluate);
