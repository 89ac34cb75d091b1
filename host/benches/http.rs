//! `POST /v1/authorize` throughput with the audit log `batched` and
//! `sync`, against a real server on loopback, in one run; then the cost
//! per decision of 100 single calls against one batch of 100.
//!
//! `cargo bench -p ward --bench http` (bounded: about 20 s). The server
//! and the load share this process's runtime and the machine's cores, so
//! compare the figures of one run with each other; `cargo bench -p ward-cli --bench load` measures
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
        // Each server serves until the process ends, so its data
        // directory must live as long: one whose files were deleted under
        // it fails its writes, and sled's lock shared by every store of
        // the process can then stall the next server.
        let mut servers = Vec::new();
        for (name, mode) in [
            ("batched", Durability::Batched),
            ("sync", Durability::Sync),
        ] {
            let server = Arc::new(start(mode).await);
            let key = server.tenant("load", unlimited.clone()).await;
            let rate = throughput(&server, &key, 16).await;
            println!("audit {name:<8} {rate:>9.0} decisions/s");
            rates.push(rate);
            servers.push(server);
        }
        println!("sync / batched = {:.2}", rates[1] / rates[0]);

        let server = Arc::new(start(Durability::Batched).await);
        let key = server.tenant("batch", unlimited.clone()).await;
        let (single, batch) = singles_and_batch(&server, &key).await;
        println!(
            "== 100 decisions, one client, audit batched, median of {BATCH_ROUNDS} rounds\n\
             100 single calls  {single:>8.1} us per decision\n\
             one batch of 100  {batch:>8.1} us per decision   batch / single = {:.3} (target <= 0.2)",
            batch / single
        );
    });
}

const BATCH_ROUNDS: usize = 15;

/// Median µs per decision of 100 sequential single calls, and of one
/// batch call of the same 100 requests (rounds alternate the two).
async fn singles_and_batch(server: &Server, key: &str) -> (f64, f64) {
    let items: Vec<Value> = (0..100)
        .map(|n| {
            let action = ["read", "write"][n % 2];
            json!({"agent": "bot", "action": action, "resource": format!("reports:{n}")})
        })
        .collect();
    let (mut singles, mut batches) = (Vec::new(), Vec::new());
    for _ in 0..BATCH_ROUNDS {
        let started = Instant::now();
        for item in &items {
            let reply = server.post("/v1/authorize", key, item.clone()).await;
            assert_eq!(reply.status(), 200);
            let _ = reply.bytes().await;
        }
        singles.push(started.elapsed().as_secs_f64() * 1e6 / 100.0);
        let started = Instant::now();
        let reply = server
            .post("/v1/authorize/batch", key, json!({"items": items}))
            .await;
        assert_eq!(reply.status(), 200);
        let answer: Value = reply.json().await.unwrap();
        assert_eq!(answer["results"].as_array().map(Vec::len), Some(100));
        batches.push(started.elapsed().as_secs_f64() * 1e6 / 100.0);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    (median(singles), median(batches))
}
