//! `POST /v1/authorize` throughput with the audit log off, `batched` and
//! `sync`, against a real server on loopback, in one run.
//!
//! `cargo bench -p ward --bench http` (bounded: about 20 s). The server
//! and the load share this process's runtime and the machine's cores, so
//! compare the figures of one run with each other; `--bench load` measures
//! with the load in a second process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ward::audit::writer::Durability;
use ward::config::Config;
use ward::server::Ward;

const OPERATOR: &str = "bench-operator";
const RUN: Duration = Duration::from_secs(5);

struct Server {
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(durability: Durability) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let mut config = Config::from_toml(&toml).unwrap();
    config.audit.durability = durability;
    let ward = tokio::task::block_in_place(|| Ward::open(&config, Some(OPERATOR))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ward.serve(listener, std::future::pending()));
    Server {
        base,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Server {
    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A tenant with `settings`, an admin key, and an agent `bot` allowed
    /// everything; returns the key.
    async fn tenant(&self, slug: &str, settings: Value) -> String {
        self.post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": slug, "name": slug, "settings": settings}),
        )
        .await;
        let key: Value = self
            .post(
                &format!("/v1/tenants/{slug}/keys"),
                OPERATOR,
                json!({"name": "k", "role": "admin"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let key = key["secret"].as_str().unwrap().to_string();
        self.client
            .put(format!("{}/v1/agents/bot", self.base))
            .bearer_auth(&key)
            .json(&json!({"type": "ai_agent", "permissions": [{"resource": "reports:*", "actions": ["read"]}]}))
            .send()
            .await
            .unwrap();
        key
    }
}

fn decision() -> Value {
    json!({"agent": "bot", "action": "read", "resource": "reports:q3"})
}

const UNLIMITED: &str =
    r#"{"rate_limit_per_sec": 1000000, "burst": 1000000, "max_concurrent_evaluations": 1024}"#;

/// Decisions per second from `clients` concurrent clients over `RUN`.
async fn throughput(server: &Arc<Server>, key: &str, clients: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (server, key, done, stop) = (
            Arc::clone(server),
            key.to_string(),
            Arc::clone(&done),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = server.post("/v1/authorize", &key, decision()).await;
                assert_eq!(reply.status(), 200);
                let _ = reply.bytes().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let unlimited: Value = serde_json::from_str(UNLIMITED).unwrap();

        println!("== authorize throughput, 16 clients, {RUN:?} each");
        let mut rates = Vec::new();
        for (name, mode) in [
            ("off", Durability::DiscardForBenchmarks),
            ("batched", Durability::Batched),
            ("sync", Durability::Sync),
        ] {
            let server = Arc::new(start(mode).await);
            let key = server.tenant("load", unlimited.clone()).await;
            let rate = throughput(&server, &key, 16).await;
            println!("audit {name:<8} {rate:>9.0} decisions/s");
            rates.push(rate);
        }
        println!(
            "batched / off = {:.2}, sync / off = {:.2}, sync / batched = {:.2}",
            rates[1] / rates[0],
            rates[2] / rates[0],
            rates[2] / rates[1]
        );
    });
}
