//! Hostile input never takes Ward down: JSON nesting is bounded at every
//! door, whatever Ward accepts it reads back after a restart and deletes,
//! a record it cannot read is set aside instead of stopping it, and the
//! audit writer never wedges on one entry.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use ward::audit::AuditLog;
use ward::audit::writer::{Durability, WriterConfig};
use ward::nesting::MAX_DEPTH;
use ward::store::{Kind, SledStore, Store, Write, set_aside};

use crate::server::{Body, OPERATOR, TestServer};
use crate::support::{KillOnDrop, spawn_ward};

mod durability;
mod generated;
mod nesting;
mod unreadable;

/// JSON text `levels` deep: arrays and objects in turn around `leaf`.
fn nested(levels: usize, leaf: &str) -> String {
    let mut text = leaf.to_string();
    for level in 0..levels {
        text = if level % 2 == 0 {
            format!("[{text}]")
        } else {
            format!("{{\"k{level}\": {text}}}")
        };
    }
    text
}

/// An object `levels` deep (its outermost level is an object).
fn nested_object(levels: usize) -> Value {
    let inner = nested(levels - 1, "\"leaf\"");
    serde_json::from_str(&format!("{{\"deep\": {inner}}}")).unwrap()
}

fn raw(text: String) -> Body {
    Body::Raw("application/json", text.into_bytes())
}

/// What became of a decision request.
enum Answer {
    /// A 200, with its decision id.
    Decided(String),
    /// Any other status.
    Refused,
    /// No answer: the server is gone.
    Gone,
}

/// A client of a `ward serve` child process.
struct Remote {
    base: String,
    http: reqwest::Client,
}

impl Remote {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_in(method, path, token, None, body).await
    }

    async fn call_in(
        &self,
        method: &str,
        path: &str,
        token: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(tenant) = tenant {
            request = request.header("x-tenant-id", tenant);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_ne!(status, 500, "{method_path}: {body}", method_path = path);
        (status, body)
    }

    /// A tenant with an agent allowed everything; returns its id and an
    /// admin key.
    async fn tenant(&self, slug: &str) -> (String, String) {
        let (status, created) = self
            .call(
                "POST",
                "/v1/tenants",
                OPERATOR,
                Some(json!({"slug": slug, "name": slug})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let (status, key) = self
            .call(
                "POST",
                &format!("/v1/tenants/{slug}/keys"),
                OPERATOR,
                Some(json!({"name": "k", "role": "admin"})),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        let key = key["secret"].as_str().unwrap().to_string();
        let agent =
            json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
        let (status, _) = self.call("PUT", "/v1/agents/bot", &key, Some(agent)).await;
        assert_eq!(status, 201);
        (created["id"].as_str().unwrap().to_string(), key)
    }

    /// One native decision for the agent `bot` with `context`.
    async fn decide(&self, key: &str, context: &Value) -> Answer {
        let body =
            json!({"agent": "bot", "action": "read", "resource": "doc:1", "context": context});
        let sent = self
            .http
            .post(format!("{}/v1/authorize", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await;
        let Ok(reply) = sent else {
            return Answer::Gone;
        };
        if reply.status() != 200 {
            return Answer::Refused;
        }
        match reply.json::<Value>().await {
            Ok(answer) => match answer["decision_id"].as_str() {
                Some(id) => Answer::Decided(id.to_string()),
                None => Answer::Refused,
            },
            Err(_) => Answer::Gone,
        }
    }

    /// Every id in a scope's audit log (of `kind`, when given).
    async fn audit_ids(&self, token: &str, tenant: Option<&str>, kind: &str) -> HashSet<String> {
        let mut ids = HashSet::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self
                .call_in(
                    "GET",
                    &format!("/v1/audit?kind={kind}&limit=1000{cursor}"),
                    token,
                    tenant,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{page}");
            ids.extend(
                page["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|entry| entry["id"].as_str().unwrap().to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return ids,
            }
        }
    }

    /// The ids of the records set aside.
    async fn set_aside_ids(&self) -> Vec<String> {
        let (status, listed) = self.call("GET", "/v1/set-aside", OPERATOR, None).await;
        assert_eq!(status, 200, "{listed}");
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|aside| aside["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

fn start(dir: &Path, toml: &str) -> (KillOnDrop, Remote) {
    let config = dir.join("ward.toml");
    std::fs::write(&config, toml).unwrap();
    let (child, base, _) = spawn_ward(&dir.join("data"), Some(&config), Some(OPERATOR));
    (
        child,
        Remote {
            base,
            http: reqwest::Client::new(),
        },
    )
}

const SYNC: &str = "[audit]\ndurability = \"sync\"\n";

/// Opens the store of a stopped server, for a test to damage.
fn store_of(dir: &Path) -> SledStore {
    SledStore::open(&dir.join("data").join("db")).unwrap()
}
