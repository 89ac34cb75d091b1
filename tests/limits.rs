//! Audit that never drops, per-tenant limits, usage and metrics.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use ward::decision::DecisionError;
use ward::gates::ManualClock;
use ward::registry::{Registry, ScopeId};
use ward_types::{CreateTenant, ErrorCode, TenantKind};

use crate::server::{Body, OPERATOR, TestServer};
use crate::support::{Local, guest, shared_sandbox};

async fn tenant_with(server: &TestServer, slug: &str, settings: Value) -> String {
    let (_, admin, _) = server.tenant(slug).await;
    let patched = server
        .call(
            "PATCH",
            &format!("/v1/tenants/{slug}"),
            Some(OPERATOR),
            None,
            Body::Json(json!({"settings": settings})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let agent = json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
    assert_eq!(
        server.put("/v1/agents/bot", &admin, agent).await.status,
        201
    );
    admin
}

fn decision() -> Value {
    json!({"agent": "bot", "action": "read", "resource": "doc:1"})
}

pub async fn audit_ids(server: &TestServer, key: &str, kind: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = server
            .get(&format!("/v1/audit?kind={kind}&limit=1000{cursor}"), key)
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        ids.extend(
            page.body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_hit_audited_once_and_recovered() {
    let clock = Arc::new(ManualClock::at(ward_types::Timestamp::now().millis()));
    let server = TestServer::start_with_clock("", Arc::clone(&clock) as Arc<_>).await;
    let key = tenant_with(
        &server,
        "acme",
        // One token a second, on a clock that stands still until the
        // test moves it: no refusal below sees a new token.
        json!({"rate_limit_per_sec": 1, "burst": 3}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            server.post("/v1/authorize", &key, decision()).await.status,
            200
        );
    }
    for _ in 0..5 {
        let refused = server.post("/v1/authorize", &key, decision()).await;
        assert_eq!((refused.status, refused.code()), (429, "rate_limited"));
        assert_eq!(
            refused.body["error"]["limit"],
            json!({"name": "rate_limit_per_sec", "value": 1}),
            "which limit refused"
        );
        let retry: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
    }
    assert_eq!(
        audit_ids(&server, &key, "rate_limited").await.len(),
        1,
        "one event per episode"
    );
    clock.advance(1_100);
    assert_eq!(
        server.post("/v1/authorize", &key, decision()).await.status,
        200,
        "recovered"
    );
    let usage = server.get("/v1/usage", &key).await;
    assert_eq!(usage.body["rate_limited"], 5);
    assert_eq!(usage.body["decisions"], 4);
    assert_eq!(usage.body["rate_limit_per_sec"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_paced_by_http_refusal_delay_ms() {
    let server = TestServer::start_with("[http]\nrefusal_delay_ms = 400\n").await;
    let key = tenant_with(
        &server,
        "flood",
        json!({"rate_limit_per_sec": 1, "burst": 1}),
    )
    .await;
    assert_eq!(
        server.post("/v1/authorize", &key, decision()).await.status,
        200
    );
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let refused = server.post("/v1/authorize", &key, decision()).await;
        assert_eq!((refused.status, refused.code()), (429, "rate_limited"));
        // Held for half to all of the delay (jittered), never less.
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_hit_and_recovered() {
    let server = TestServer::start().await;
    let key = tenant_with(
        &server,
        "acme",
        json!({"max_concurrent_evaluations": 1, "sandbox": {"timeout_ms": 5000}}),
    )
    .await;
    let slow = slow_agent(&server, &key, 600).await;
    let (first, second) = tokio::join!(server.post("/v1/authorize", &key, slow.clone()), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        server.post("/v1/authorize", &key, decision()).await
    });
    assert_eq!(first.status, 200);
    assert_eq!(
        (second.status, second.code()),
        (429, "too_many_evaluations")
    );
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(
        server.post("/v1/authorize", &key, decision()).await.status,
        200,
        "recovered"
    );
    assert_eq!(
        audit_ids(&server, &key, "too_many_evaluations").await.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_slower_than_the_inline_slice_is_decided_once_on_a_blocking_thread() {
    slow_and_quick_decisions(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_inline_decisions_off_every_decision_still_runs() {
    slow_and_quick_decisions(TestServer::start_with("[http]\ninline_decisions = false\n").await)
        .await;
}

/// With one evaluation thread, slow decisions wait their turn in the
/// evaluation pool (seen in `/metrics`), and each is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_decisions_wait_their_turn_in_the_evaluation_pool() {
    let server = TestServer::start_with("[http]\nevaluation_threads = 1\n").await;
    let key = tenant_with(&server, "acme", json!({"sandbox": {"timeout_ms": 2000}})).await;
    let slow = slow_agent(&server, &key, 150).await;
    let waiting = |text: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix("ward_evaluations_waiting "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let watch = async {
        let mut most = 0;
        for _ in 0..200 {
            let metrics = server
                .call("GET", "/metrics", Some(OPERATOR), None, Body::None)
                .await;
            most = most.max(waiting(metrics.body.as_str().unwrap()));
            if most > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        most
    };
    let (first, second, third, most) = tokio::join!(
        server.post("/v1/authorize", &key, slow.clone()),
        server.post("/v1/authorize", &key, slow.clone()),
        server.post("/v1/authorize", &key, slow.clone()),
        watch
    );
    for answer in [first, second, third] {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["decision"], true, "{}", answer.body);
    }
    assert!(most >= 1, "three 150 ms decisions on one thread queue");
    let metrics = server
        .call("GET", "/metrics", Some(OPERATOR), None, Body::None)
        .await;
    assert_eq!(waiting(metrics.body.as_str().unwrap()), 0);
}

/// Agent `slowpoke` whose policy `slow` spins for `spin_ms`; a request
/// from it.
async fn slow_agent(server: &TestServer, key: &str, spin_ms: u64) -> Value {
    let uploaded = server.upload("/v1/policies/slow", key, guest("spin")).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    server
        .put("/v1/policies/slow/config", key, json!({"spin_ms": spin_ms}))
        .await;
    server
        .put(
            "/v1/agents/slowpoke",
            key,
            json!({"type": "ai_agent", "policy": "slow"}),
        )
        .await;
    json!({"agent": "slowpoke", "action": "read", "resource": "doc:1"})
}

/// A 40 ms policy, alone and in a batch between quick ones: each answered
/// in order, and audited once.
async fn slow_and_quick_decisions(server: TestServer) {
    let key = tenant_with(&server, "acme", json!({"sandbox": {"timeout_ms": 2000}})).await;
    let slow = slow_agent(&server, &key, 40).await;

    let answer = server.post("/v1/authorize", &key, slow.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["decision"], true, "{}", answer.body);
    // A batch mixing quick and slow items answers each, in order.
    let batch = json!({"items": [decision(), slow, decision()]});
    let answers = server.post("/v1/authorize/batch", &key, batch).await;
    assert_eq!(answers.status, 200, "{}", answers.body);
    let results = answers.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["decision"] == true), "{results:?}");
    assert_eq!(results[1]["policy"]["name"], "slow");

    // One audit entry per decision: the abandoned inline attempt left none.
    let page = server.get("/v1/audit?kind=decision&limit=100", &key).await;
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{}", page.body);
    let slow_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["policy"]["name"] == "slow")
        .collect();
    assert_eq!(slow_entries.len(), 2);
    for entry in slow_entries {
        let spent = entry["details"]["usage"]["sandbox_us"].as_u64().unwrap();
        // The full run's ~40 ms (the guest's clock counts whole ms), not
        // the 1-2 ms of an abandoned inline attempt.
        assert!(spent >= 30_000, "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_budget_is_hit_over_http() {
    let server = TestServer::start().await;
    let key = tenant_with(&server, "acme", json!({"max_decisions_per_month": 2})).await;
    assert_eq!(
        server.post("/v1/authorize", &key, decision()).await.status,
        200
    );
    let batch = json!({"items": [decision(), decision()]});
    let over = server.post("/v1/authorize/batch", &key, batch).await;
    assert_eq!(
        (over.status, over.code()),
        (429, "budget_exhausted"),
        "a batch counts each item"
    );
    assert_eq!(
        server.post("/v1/authorize", &key, decision()).await.status,
        200
    );
    let spent = server
        .post(
            "/access/v1/evaluation",
            &key,
            json!({"subject": {"type": "agent", "id": "bot"},
        "action": {"name": "read"}, "resource": {"type": "doc", "id": "1"}}),
        )
        .await;
    assert_eq!((spent.status, spent.code()), (429, "budget_exhausted"));
    let retry: u64 = spent.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=31 * 86_400).contains(&retry));
    let usage = server.get("/v1/usage", &key).await;
    assert_eq!(
        (
            usage.body["decisions"].clone(),
            usage.body["max_decisions_per_month"].clone()
        ),
        (json!(2), json!(2))
    );
}

fn registry_at(dir: &std::path::Path, clock: Arc<ManualClock>) -> Local {
    Local::open(dir, shared_sandbox(), clock)
}

fn create(registry: &Registry, slug: &str, settings: Value) -> String {
    registry
        .create_tenant(
            CreateTenant {
                slug: slug.into(),
                name: slug.into(),
                kind: TenantKind::Organization,
                settings: settings.as_object().cloned(),
            },
            "operator",
        )
        .unwrap()
        .id
}

#[test]
fn the_budget_rolls_over_with_the_month_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-30T23:59:00Z
    let clock = Arc::new(ManualClock::at(1_796_083_140_000));
    let registry = registry_at(dir.path(), Arc::clone(&clock));
    let tenant = create(&registry, "acme", json!({"max_decisions_per_month": 3}));
    for _ in 0..2 {
        drop(registry.admit(&tenant, 1, "t").map_err(|_| ()).unwrap());
    }
    registry.persist_usage();
    drop(registry);

    let registry = registry_at(dir.path(), Arc::clone(&clock));
    assert_eq!(
        registry.usage(&tenant).unwrap().decisions,
        2,
        "persisted across a restart"
    );
    drop(registry.admit(&tenant, 1, "t").map_err(|_| ()).unwrap());
    match registry.admit(&tenant, 1, "t") {
        Err(DecisionError::Refused { refusal }) => {
            assert_eq!(refusal.reason.code(), ErrorCode::BudgetExhausted);
            assert_eq!(refusal.retry_after_secs, 60, "one minute to December");
        }
        _ => panic!("the fourth decision of November must be refused"),
    }
    clock.advance(60_000);
    assert!(
        registry.admit(&tenant, 1, "t").is_ok(),
        "December starts a new budget"
    );
    let usage = registry.usage(&tenant).unwrap();
    assert_eq!((usage.month.as_str(), usage.decisions), ("2026-12", 1));
}

#[test]
fn retention_prunes_only_what_is_past_each_tenants_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(ward_types::Timestamp::now().millis()));
    let registry = registry_at(dir.path(), Arc::clone(&clock));
    let short = create(&registry, "short", json!({"audit_retention_days": 30}));
    let long = create(&registry, "long", json!({"audit_retention_days": 365}));
    for tenant in [&short, &long] {
        registry
            .put_agent(
                &ScopeId::Tenant(tenant.clone()),
                "bot",
                serde_json::from_value(json!({"type": "t"})).unwrap(),
                "t",
            )
            .unwrap();
    }
    registry.audit().flush();
    let count = |tenant: &str| {
        registry
            .audit()
            .query(tenant, &Default::default())
            .unwrap()
            .entries
            .len()
    };
    let (before_short, before_long) = (count(&short), count(&long));
    assert!(before_short >= 2 && before_long >= 2);

    assert_eq!(registry.prune_audit().unwrap(), 0, "nothing is old yet");
    clock.advance(31 * 86_400_000);
    assert_eq!(registry.prune_audit().unwrap(), before_short);
    assert_eq!(count(&short), 0);
    assert_eq!(count(&long), before_long);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_decisions_from_32_clients_are_all_in_the_log() {
    let server = Arc::new(TestServer::start().await);
    let key = tenant_with(
        &server,
        "acme",
        json!({"rate_limit_per_sec": 1000000, "burst": 1000000}),
    )
    .await;
    let mut clients = Vec::new();
    for client in 0..32 {
        let (server, key) = (Arc::clone(&server), key.clone());
        clients.push(tokio::spawn(async move {
            let calls = 10_000 / 32 + usize::from(client < 10_000 % 32);
            let mut ids = Vec::with_capacity(calls);
            for _ in 0..calls {
                let reply = server.post("/v1/authorize", &key, decision()).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                ids.push(reply.body["decision_id"].as_str().unwrap().to_string());
            }
            ids
        }));
    }
    let mut answered = HashSet::new();
    for client in clients {
        answered.extend(client.await.unwrap());
    }
    assert_eq!(answered.len(), 10_000);
    // Batched mode: every entry is durable within the flush interval.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logged = audit_ids(&server, &key, "decision").await;
    assert_eq!(logged.len(), 10_000);
    assert_eq!(logged.into_iter().collect::<HashSet<_>>(), answered);

    let metrics = server
        .call("GET", "/metrics", Some(OPERATOR), None, Body::None)
        .await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("outcome=\"allow\"} 10000"), "{text}");
    assert!(text.contains("ward_decision_duration_seconds_count 10000"));
    assert!(text.contains("ward_audit_queue_depth 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_leave_tenants_out() {
    let server = TestServer::start_with("[metrics]\ntenant_labels = false\n").await;
    let key = tenant_with(&server, "acme", json!({})).await;
    server.post("/v1/authorize", &key, decision()).await;
    let metrics = server
        .call("GET", "/metrics", Some(OPERATOR), None, Body::None)
        .await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("ward_decisions_total{outcome=\"allow\"} 1"),
        "{text}"
    );
    assert!(!text.contains("tenant=\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_sync_mode_every_answered_decision_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.toml");
    std::fs::write(&config, "[audit]\ndurability = \"sync\"\n").unwrap();
    let start = |dir: &std::path::Path| {
        let (child, base, _) =
            crate::support::spawn_ward(&dir.join("data"), Some(&config), Some(OPERATOR));
        (child, base)
    };
    let (mut child, base) = start(dir.path());
    let http = reqwest::Client::new();
    let key = crate::support::provision(
        &http,
        &base,
        OPERATOR,
        json!({"slug": "acme", "name": "Acme"}),
    )
    .await;
    http.put(format!("{base}/v1/agents/bot"))
        .bearer_auth(&key)
        .json(&json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]}))
        .send()
        .await
        .unwrap();

    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, base, key, answered) = (
            http.clone(),
            base.clone(),
            key.clone(),
            Arc::clone(&answered),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let reply = http
                    .post(format!("{base}/v1/authorize"))
                    .bearer_auth(&key)
                    .json(&decision())
                    .send()
                    .await;
                let Ok(reply) = reply else { return };
                let Ok(body) = reply.json::<Value>().await else {
                    return;
                };
                if let Some(id) = body["decision_id"].as_str() {
                    answered.lock().unwrap().push(id.to_string());
                }
            }
        }));
    }
    while answered.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill();
    for client in clients {
        let _ = client.await;
    }
    let in_order: Vec<String> = answered.lock().unwrap().clone();
    let answered: HashSet<String> = in_order.iter().cloned().collect();
    assert!(answered.len() >= 300);

    let (mut child, base) = start(dir.path());
    let mut logged = HashSet::new();
    let mut cursor = String::new();
    loop {
        let page: Value = http
            .get(format!("{base}/v1/audit?kind=decision&limit=1000{cursor}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        logged.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    child.kill();
    let lost: Vec<usize> = in_order
        .iter()
        .enumerate()
        .filter(|(_, id)| !logged.contains(*id))
        .map(|(i, _)| i)
        .collect();
    assert!(
        lost.is_empty(),
        "answered decisions missing from the log at positions {lost:?} of {}",
        in_order.len()
    );
}
