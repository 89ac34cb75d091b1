//! Load from a second process, against the real `ward` binary on loopback.
//!
//! `cargo bench -p ward-cli --bench load` (bounded: about two minutes).
//! The server runs pinned to core 0 and the load generator (this same
//! benchmark binary, started again as a child) pinned to core 1, with
//! `taskset`, so that neither takes the other's CPU. It speaks HTTP/1.1
//! over plain keep-alive sockets: a load generator far cheaper per request
//! than the server it measures.
//!
//! 1. Noisy neighbour: tenant B sends one decision every 2 ms, alone and
//!    while tenant A floods far past its rate limit from 16 connections;
//!    B's p50/p99 in both, over several alternating rounds.
//!    Then a CPU-heavy neighbour: tenant H's policy spins 90 ms per
//!    decision, from 64 connections (its default
//!    `max_concurrent_evaluations`), while B sends its builtin decisions
//!    every 2 ms; B's p99 beside H against B's p99 alone (phase `heavy`).
//! 2. Throughput of `POST /v1/authorize` (API key, batched audit) from 16
//!    connections, beside a trivial axum server that parses the same JSON
//!    body and answers a constant decision (run by this binary, pinned the
//!    same way); the same decisions in 100-item batches; then latency at
//!    half of Ward's single-call throughput, and the trivial server's at
//!    the same rate (what this machine and generator allow; on the 2-core
//!    VM its p99 alone is 1.5-5 ms). Measured three times: as
//!    configured by default (on one core: no instances made ahead), with
//!    instances made ahead all the same (`sandbox.warm_instances = 32`),
//!    and with every decision sent to a blocking thread
//!    (`http.inline_decisions = false`).
//! 3. Upload: a policy component of about 1 MiB of code (generated rules,
//!    built without optimisation) is uploaded by tenant C while B
//!    keeps deciding; the time until it is validated, compiled and active,
//!    and B's latency meanwhile beside B's latency just before.
//!
//! Phases can be picked by name: `cargo bench -p ward-cli --bench load --
//! throughput upload` (default: all three).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../host/plugins_build.rs"]
mod plugins_build;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OPERATOR: &str = "bench-operator";
const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 4;
const DECISION: &str = r#"{"agent":"bot","action":"read","resource":"reports:q3"}"#;
const SINGLE: &str = "/v1/authorize";
/// Items in one batch of the batch measurement.
const BATCH: usize = 100;
/// Connections of the CPU-heavy neighbour: its default
/// `max_concurrent_evaluations`.
const HEAVY_CONNS: usize = 64;
/// How long the CPU-heavy neighbour's policy spins per decision.
const HEAVY_SPIN_MS: u64 = 90;

fn single() -> (&'static str, String) {
    (SINGLE, DECISION.to_string())
}

fn batch() -> (&'static str, String) {
    let items = vec![DECISION; BATCH].join(",");
    ("/v1/authorize/batch", format!(r#"{{"items":[{items}]}}"#))
}

// ---- the load generator (child process) ------------------------------------

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr, key: &str, path: &str, body: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Conn {
            stream,
            request,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends the request and reads the whole answer; returns its status.
    async fn call(&mut self) -> u16 {
        self.stream.write_all(&self.request).await.unwrap();
        self.buf.clear();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                let status: u16 = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    self.read_more().await;
                }
                return status;
            }
            self.read_more().await;
        }
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Calls (of `path` with `body`) from `conns` connections as fast as
/// answers come, for `run`.
async fn closed_loop(
    addr: SocketAddr,
    key: String,
    conns: usize,
    run: Duration,
    (path, body): (&'static str, String),
) -> Value {
    let end = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (key, body) = (key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, &key, path, &body).await;
            let (mut ok, mut refused) = (0u64, 0u64);
            while Instant::now() < end {
                match conn.call().await {
                    200 => ok += 1,
                    429 => refused += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (o, r) = task.await.unwrap();
        ok += o;
        refused += r;
    }
    json!({"ok": ok, "refused": refused, "per_sec": (ok + refused) as f64 / run.as_secs_f64()})
}

/// Sends one request every `every`, turn by turn over `conns` keep-alive
/// connections, for `run`; returns each one's latency in µs, from its
/// send. A thread of its own paces the sends: tokio's timer fires at most
/// once a millisecond, and would release each millisecond's requests
/// together, a burst the server then queues (not what independent
/// clients send).
async fn open_loop(
    addr: SocketAddr,
    key: String,
    every: Duration,
    run: Duration,
    conns: u32,
) -> Vec<u64> {
    let mut turns = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (turn, mut my_turn) = tokio::sync::mpsc::unbounded_channel::<()>();
        turns.push(turn);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, &key, SINGLE, DECISION).await;
            let mut latencies = Vec::new();
            while my_turn.recv().await.is_some() {
                let sent = Instant::now();
                assert_eq!(conn.call().await, 200);
                latencies.push(sent.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    // The connections open before the first send.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::thread::spawn(move || {
        let start = Instant::now();
        for n in 0u32.. {
            let at = every * n;
            if at >= run {
                break;
            }
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let _ = turns[(n % conns) as usize].send(());
        }
        // Dropping the senders ends each connection's loop.
    });
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// `--load ADDR MODE KEY_B KEY_A SECS EVERY_US CONNS`: prints one JSON line.
fn load_child(args: &[String]) {
    let addr: SocketAddr = args[0].parse().unwrap();
    let mode = args[1].clone();
    let (key_b, key_a) = (args[2].clone(), args[3].clone());
    let run = Duration::from_secs(args[4].parse().unwrap());
    let every = Duration::from_micros(args[5].parse().unwrap());
    let conns: u32 = args[6].parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = runtime.block_on(async move {
        match mode.as_str() {
            "steady" => json!({"latencies": open_loop(addr, key_b, every, run, conns).await}),
            "flooded" => {
                let flood = tokio::spawn(closed_loop(addr, key_a, 16, run, single()));
                let latencies = open_loop(addr, key_b, every, run, conns).await;
                json!({"latencies": latencies, "flood": flood.await.unwrap()})
            }
            "heavy" => {
                let flood = tokio::spawn(closed_loop(addr, key_a, HEAVY_CONNS, run, single()));
                let latencies = open_loop(addr, key_b, every, run, conns).await;
                json!({"latencies": latencies, "flood": flood.await.unwrap()})
            }
            "throughput" => closed_loop(addr, key_b, 16, run, single()).await,
            "batch" => closed_loop(addr, key_b, 16, run, batch()).await,
            other => panic!("unknown mode {other}"),
        }
    });
    println!("{out}");
}

// ---- the trivial baseline server (child process) --------------------------

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct ShortForm {
    agent: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Option<serde_json::Map<String, Value>>,
}

/// `--trivial`: an axum server that parses the body and answers a
/// constant decision; prints its address.
fn trivial_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/v1/authorize",
            axum::routing::post(|axum::Json(_body): axum::Json<ShortForm>| async {
                axum::Json(
                    json!({"decision": true, "decision_id": "0", "reasons": [], "context": {}}),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

// ---- the parent ------------------------------------------------------------

struct Pinning {
    server: Vec<String>,
    load: Vec<String>,
}

fn pinning() -> Pinning {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset").arg("-V").output().is_ok();
    // WARD_BENCH_PIN=0: server and generator share every core, as on a
    // host where Ward is not pinned.
    let wanted = std::env::var("WARD_BENCH_PIN").map_or(true, |v| v != "0");
    if taskset && cores >= 2 && wanted {
        let last = (cores - 1).to_string();
        let server_cores = if cores > 2 {
            format!("0-{}", cores - 2)
        } else {
            "0".into()
        };
        println!("server on core(s) {server_cores}, load generator on core {last}");
        Pinning {
            server: vec!["taskset".into(), "-c".into(), server_cores],
            load: vec!["taskset".into(), "-c".into(), last],
        }
    } else {
        println!("not pinned (taskset missing or one core): figures share the CPU");
        Pinning {
            server: Vec::new(),
            load: Vec::new(),
        }
    }
}

fn command(prefix: &[String], program: &str) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child and reads its address from the line containing `marker`.
fn start(mut command: Command, marker: &str, separator: &str) -> (Process, SocketAddr) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Process(command.spawn().unwrap());
    let output: Box<dyn std::io::Read + Send> = if marker == "ward is serving" {
        let _ = child.0.stdout.take();
        Box::new(child.0.stderr.take().unwrap())
    } else {
        let _ = child.0.stderr.take();
        Box::new(child.0.stdout.take().unwrap())
    };
    let mut lines = BufReader::new(output).lines();
    let addr = loop {
        let line = lines.next().expect("the server exited early").unwrap();
        if line.contains(marker) {
            let text = line.split(separator).nth(1).unwrap();
            break text.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn load(pin: &Pinning, args: &[String]) -> Value {
    finish(spawn_load(pin, args))
}

/// Starts the load generator; [`finish`] collects what it measured.
fn spawn_load(pin: &Pinning, args: &[String]) -> Child {
    let exe = std::env::current_exe().unwrap();
    command(&pin.load, exe.to_str().unwrap())
        .arg("--load")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the load generator failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn latencies(value: &Value) -> Vec<u64> {
    let mut all: Vec<u64> = value["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    all.sort_unstable();
    all
}

/// A running `ward serve` with tenants B (unlimited) and A (100/s), and
/// their keys.
struct Ward {
    _process: Process,
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    b: String,
    a: String,
}

/// Ward with `http.refusal_delay_ms`, and `more` TOML after the `[http]`
/// section's lines (more of it, or other sections).
fn start_ward(pin: &Pinning, refusal_delay_ms: u64, more: &str) -> Ward {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.toml");
    std::fs::write(
        &config,
        format!("[http]\nrefusal_delay_ms = {refusal_delay_ms}\n{more}\n"),
    )
    .unwrap();
    let mut serve = command(&pin.server, env!("CARGO_BIN_EXE_ward"));
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("WARD_ADMIN_TOKEN", OPERATOR)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let (process, addr) = start(serve, "ward is serving", "listen=");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (b, a) = runtime.block_on(async {
        let unlimited = json!({"rate_limit_per_sec": 1_000_000, "burst": 1_000_000, "max_concurrent_evaluations": 1024});
        (
            tenant(addr, "steady", unlimited).await,
            tenant(addr, "noisy", json!({"rate_limit_per_sec": 100, "burst": 100})).await,
        )
    });
    Ward {
        _process: process,
        _dir: dir,
        addr,
        b,
        a,
    }
}

/// A tenant with `settings`, an admin key and an agent `bot`; its key.
async fn tenant(addr: SocketAddr, slug: &str, settings: Value) -> String {
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let send = |request: reqwest::RequestBuilder, body: Value| async move {
        let reply = request.json(&body).send().await.unwrap();
        assert!(reply.status().is_success(), "{}", reply.status());
        reply.json::<Value>().await.unwrap()
    };
    send(
        client
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(OPERATOR),
        json!({"slug": slug, "name": slug, "settings": settings}),
    )
    .await;
    let key = send(
        client
            .post(format!("{base}/v1/tenants/{slug}/keys"))
            .bearer_auth(OPERATOR),
        json!({"name": "k", "role": "admin"}),
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        client.put(format!("{base}/v1/agents/bot")).bearer_auth(&key),
        json!({"type": "ai_agent", "permissions": [{"resource": "reports:*", "actions": ["read"]}]}),
    )
    .await;
    key
}

fn load_args(ward: &Ward, addr: SocketAddr, mode: &str, every_us: u64, conns: u32) -> Vec<String> {
    flood_args(ward, &ward.a, mode, every_us, conns, addr)
}

/// [`load_args`] with `flooder` as the flooding tenant's key.
fn flood_args(
    ward: &Ward,
    flooder: &str,
    mode: &str,
    every_us: u64,
    conns: u32,
    addr: SocketAddr,
) -> Vec<String> {
    vec![
        addr.to_string(),
        mode.into(),
        ward.b.clone(),
        flooder.to_string(),
        ROUND.as_secs().to_string(),
        every_us.to_string(),
        conns.to_string(),
    ]
}

/// B alone and B under A's flood, `ROUNDS` times alternating; prints a
/// row per round and the pooled percentiles.
fn noisy(pin: &Pinning, ward: &Ward) {
    noisy_rounds(pin, ward, &ward.a, "flooded");
}

/// B alone and B beside `flooder` calling in `mode`, `ROUNDS` times
/// alternating; prints a row per round and the pooled percentiles, and
/// returns B's p99 alone and flooded (ms).
fn noisy_rounds(pin: &Pinning, ward: &Ward, flooder: &str, mode: &str) -> (f64, f64) {
    println!("round  B alone p50 / p99        B flooded p50 / p99      p99 growth  A answered/s");
    let (mut alone_all, mut flooded_all) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let alone = latencies(&load(pin, &load_args(ward, ward.addr, "steady", 2000, 1)));
        let flooded_out = load(pin, &flood_args(ward, flooder, mode, 2000, 1, ward.addr));
        let flooded = latencies(&flooded_out);
        let answered = flooded_out["flood"]["per_sec"].as_f64().unwrap();
        println!(
            "{}  {answered:>9.0}",
            row(&round.to_string(), &alone, &flooded)
        );
        alone_all.extend(alone);
        flooded_all.extend(flooded);
    }
    alone_all.sort_unstable();
    flooded_all.sort_unstable();
    println!("{}", row("all", &alone_all, &flooded_all));
    (percentile(&alone_all, 0.99), percentile(&flooded_all, 0.99))
}

/// Noisy neighbour with a CPU-heavy policy: tenant H (default settings)
/// decides with a policy that spins for [`HEAVY_SPIN_MS`] from
/// [`HEAVY_CONNS`] connections while B sends its builtin decisions every
/// 2 ms. The target: B's p99 within 5x of its p99 alone, or
/// under 10 ms, whichever is larger.
fn noisy_heavy(pin: &Pinning, ward: &Ward) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let heavy = runtime.block_on(async {
        let key = tenant(ward.addr, "heavy", json!({})).await;
        let client = reqwest::Client::new();
        let base = format!("http://{}", ward.addr);
        let reply = client
            .put(format!("{base}/v1/policies/spin"))
            .bearer_auth(&key)
            .header("content-type", "application/wasm")
            .body(std::fs::read(plugins_build::guests().join("spin.wasm")).unwrap())
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{}", reply.status());
        for (path, body) in [
            (
                "/v1/policies/spin/config",
                json!({"spin_ms": HEAVY_SPIN_MS}),
            ),
            (
                "/v1/agents/bot",
                json!({"type": "ai_agent", "policy": "spin"}),
            ),
        ] {
            let reply = client
                .put(format!("{base}{path}"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(reply.status().is_success(), "{}", reply.status());
        }
        key
    });
    let (alone, flooded) = noisy_rounds(pin, ward, &heavy, "heavy");
    let bound = (alone * 5.0).max(10.0);
    println!(
        "B's p99 beside the heavy tenant: {flooded:.3} ms, {:.1}x its p99 alone ({alone:.3} ms); target <= {bound:.3} ms: {}",
        flooded / alone,
        if flooded <= bound { "met" } else { "not met" }
    );
}

/// One line of the noisy-neighbour table (sorted latencies in µs).
fn row(label: &str, alone: &[u64], flooded: &[u64]) -> String {
    let (p99a, p99f) = (percentile(alone, 0.99), percentile(flooded, 0.99));
    format!(
        "{label:>5}  {:>6.3} / {:>6.3} ms       {:>6.3} / {:>6.3} ms       {:>+6.0}% ",
        percentile(alone, 0.5),
        p99a,
        percentile(flooded, 0.5),
        p99f,
        (p99f / p99a - 1.0) * 100.0
    )
}

/// Rules in the generated policy: enough for about 1 MiB of code.
const BULKY_RULES: usize = 2_000;

/// A policy component of about 1 MiB of code: a crate generated here with
/// 2,000 distinct rule functions, built for `wasm32-wasip2` without
/// optimisation or debug info, so that its size is code the compiler must
/// translate, not data.
fn big_policy() -> Vec<u8> {
    let release = plugins_build::guests();
    let target = release.ancestors().nth(2).unwrap();
    let krate = target.join("bulky");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/policy");
    let manifest = format!(
        "[package]\nname = \"bulky\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nward-policy = {{ path = {:?} }}\n\n[workspace]\n",
        sdk.canonicalize().unwrap().display().to_string()
    );
    let mut source = String::from(
        "//! Generated by host/benches/load.rs: many distinct rules.\n\
         use ward_policy::{Decision, Request, Result, allow, deny};\n\n",
    );
    for i in 0..BULKY_RULES {
        let letter = (b'a' + (i % 26) as u8) as char;
        source.push_str(&format!(
            "#[inline(never)]\nfn rule_{i}(resource: &str, action: &str) -> Option<String> {{\n\
             \x20   if resource.len() % {m} == {r} && action.starts_with('{letter}') && resource.contains(\"k{i}\") {{\n\
             \x20       return Some(format!(\"rule {i} grants `{{action}}` on `{{resource}}`\"));\n\
             \x20   }}\n    None\n}}\n\n",
            m = i % 13 + 2,
            r = i % (i % 13 + 2),
        ));
    }
    source.push_str("static RULES: &[fn(&str, &str) -> Option<String>] = &[\n");
    for i in 0..BULKY_RULES {
        source.push_str(&format!("    rule_{i},\n"));
    }
    source.push_str(
        "];\n\nfn evaluate(request: &Request) -> Result<Decision> {\n\
         \x20   let resource = request.resource().qualified();\n\
         \x20   let action = request.action().name();\n\
         \x20   for rule in RULES {\n\
         \x20       if let Some(reason) = rule(&resource, action) {\n\
         \x20           return Ok(allow().reason(reason));\n\
         \x20       }\n\
         \x20   }\n\
         \x20   Ok(deny(String::from(\"no rule matches\")))\n\
         }\n\nward_policy::policy!(evaluate);\n",
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(krate.join("src/lib.rs"), source).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(krate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .status()
        .unwrap();
    assert!(status.success(), "building the generated policy failed");
    std::fs::read(target.join("wasm32-wasip2/debug/bulky.wasm")).unwrap()
}

/// Target 5: upload-to-active time of a ~1 MiB component, and what it
/// does to another tenant's decisions meanwhile.
fn upload(pin: &Pinning, ward: &Ward) {
    let wasm = big_policy();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key_c = runtime.block_on(tenant(ward.addr, "uploader", json!({})));
    println!(
        "\n== upload: a {:.2} MiB policy component by tenant C while B sends every 2 ms",
        wasm.len() as f64 / f64::from(1 << 20)
    );
    let before = latencies(&load(pin, &load_args(ward, ward.addr, "steady", 2000, 1)));
    let during = spawn_load(pin, &load_args(ward, ward.addr, "steady", 2000, 1));
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (status, body, took) = runtime.block_on(async {
        let reply = reqwest::Client::new()
            .put(format!("http://{}/v1/policies/big", ward.addr))
            .bearer_auth(&key_c)
            .header("content-type", "application/wasm")
            .body(wasm)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        (reply.status(), reply.json::<Value>().await.unwrap(), took)
    });
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["active"], true, "{body}");
    let during = latencies(&finish(during));
    println!(
        "uploaded, validated, compiled and active in {:.3} s (target <= 2 s: {})",
        took.as_secs_f64(),
        if took <= Duration::from_secs(2) {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "B before: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        percentile(&before, 1.0)
    );
    println!(
        "B during: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        percentile(&during, 1.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--load") {
        return load_child(&args[at + 1..]);
    }
    if args.iter().any(|a| a == "--trivial") {
        return trivial_server();
    }
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["noisy", "heavy", "throughput", "upload"].contains(a))
        .collect();
    let phase = |name: &str| named.is_empty() || named.contains(&name);
    let pin = pinning();
    if phase("noisy") {
        println!(
            "\n== noisy neighbour: B at 500/s; A (limit 100/s) flooding from 16 connections; {ROUNDS} rounds of {ROUND:?}"
        );
        println!("-- refusals answered at once (http.refusal_delay_ms = 0)");
        noisy(&pin, &start_ward(&pin, 0, ""));
        println!("-- refusals paced (http.refusal_delay_ms = 100, the default)");
    }
    let ward = start_ward(&pin, 100, "");
    if phase("noisy") {
        noisy(&pin, &ward);
    }
    if phase("noisy") || phase("heavy") {
        println!(
            "\n== CPU-heavy neighbour: B at 500/s; H's {HEAVY_SPIN_MS} ms policy from {HEAVY_CONNS} connections; {ROUNDS} rounds of {ROUND:?}"
        );
        noisy_heavy(&pin, &start_ward(&pin, 100, ""));
    }
    if phase("upload") {
        upload(&pin, &ward);
    }
    if !phase("throughput") {
        return;
    }

    println!("\n== throughput: 16 connections, {ROUND:?}; a trivial axum handler as the baseline");
    let exe = std::env::current_exe().unwrap();
    let mut trivial = command(&pin.server, exe.to_str().unwrap());
    trivial.arg("--trivial");
    // Kept running (idle but for its own measurements) for the latency
    // baseline at each of Ward's half-load rates.
    let (_trivial_server, trivial_addr) = start(trivial, "listening", "listening ");
    let baseline = load(&pin, &load_args(&ward, trivial_addr, "throughput", 0, 16))["per_sec"]
        .as_f64()
        .unwrap();
    println!("trivial axum   {baseline:>9.0} requests/s");
    let trivial = (trivial_addr, baseline);
    throughput(
        &pin,
        &ward,
        trivial,
        "decisions on the async worker (default)",
    );
    drop(ward);
    let warm = start_ward(&pin, 100, "[sandbox]\nwarm_instances = 32");
    throughput(
        &pin,
        &warm,
        trivial,
        "instances made ahead on the same core (sandbox.warm_instances = 32)",
    );
    drop(warm);
    let pooled = start_ward(&pin, 100, "inline_decisions = false");
    throughput(
        &pin,
        &pooled,
        trivial,
        "every decision on a blocking thread (http.inline_decisions = false)",
    );
}

/// Single calls, 100-item batches and latency at half load against `ward`;
/// then the trivial server's latency at that same rate, the floor that
/// this machine and load generator set (`trivial`: its address and
/// throughput).
fn throughput(pin: &Pinning, ward: &Ward, trivial: (SocketAddr, f64), label: &str) {
    let (trivial_addr, baseline) = trivial;
    println!("-- {label}");
    let rate = load(pin, &load_args(ward, ward.addr, "throughput", 0, 16))["per_sec"]
        .as_f64()
        .unwrap();
    println!(
        "ward (batched) {rate:>9.0} decisions/s   ratio {:.2}",
        rate / baseline
    );
    let batches = load(pin, &load_args(ward, ward.addr, "batch", 0, 16))["per_sec"]
        .as_f64()
        .unwrap();
    let in_batches = batches * BATCH as f64;
    println!(
        "ward, {BATCH}-item batches {in_batches:>9.0} decisions/s   cost per decision {:.2} of a single call's",
        rate / in_batches
    );

    let half = rate / 2.0;
    let every_us = (1_000_000.0 / half).round() as u64;
    let at_rate = |addr| latencies(&load(pin, &load_args(ward, addr, "steady", every_us, 16)));
    let at_half = at_rate(ward.addr);
    println!(
        "at half load ({half:.0}/s over 16 connections): p50 {:.3} ms, p99 {:.3} ms",
        percentile(&at_half, 0.5),
        percentile(&at_half, 0.99)
    );
    let floor = at_rate(trivial_addr);
    println!(
        "trivial axum at the same rate:              p50 {:.3} ms, p99 {:.3} ms   Ward's p99 / its {:.2}",
        percentile(&floor, 0.5),
        percentile(&floor, 0.99),
        percentile(&at_half, 0.99) / percentile(&floor, 0.99)
    );
}
