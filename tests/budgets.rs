//! Spend budgets over HTTP (a cost in the request, the tenant's and the
//! agent's monthly budgets, block and warn, retries, concurrent callers,
//! the month's end, a restart) and capacity quotas.

use std::sync::Arc;

use serde_json::{Value, json};
use ward::gates::ManualClock;

use crate::server::{Body, OPERATOR, Reply, TestServer};

/// A tenant with `budgets`, and agent `bot` (which may read documents,
/// with `agent_budgets` of its own); its admin key.
async fn tenant(server: &TestServer, slug: &str, budgets: Value, agent_budgets: Value) -> String {
    let (_, admin, _) = server.tenant(slug).await;
    let patched = server
        .call(
            "PATCH",
            &format!("/v1/tenants/{slug}"),
            Some(OPERATOR),
            None,
            Body::Json(json!({"settings": {"budgets": budgets}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let bot = json!({"type": "ai_agent", "budgets": agent_budgets,
                     "permissions": [{"resource": "doc:*", "actions": ["read"]}]});
    let put = server.put("/v1/agents/bot", &admin, bot).await;
    assert_eq!(put.status, 201, "{}", put.body);
    admin
}

async fn decide(server: &TestServer, key: &str, body: Value) -> Reply {
    let reply = server.post("/v1/authorize", key, body).await;
    assert_eq!(
        reply.status, 200,
        "a budget refusal is a decision: {}",
        reply.body
    );
    reply
}

fn read(tokens: u64) -> Value {
    json!({"agent": "bot", "action": "read", "resource": "doc:1", "cost": {"tokens": tokens}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_budget_denies_the_call_that_would_overspend() {
    let server = TestServer::start().await;
    let key = tenant(
        &server,
        "blocked",
        json!({"tokens": {"monthly": 1000, "action": "block"}}),
        json!({}),
    )
    .await;

    for left in [600, 200] {
        let reply = decide(&server, &key, read(400)).await;
        assert_eq!(reply.body["decision"], true, "{}", reply.body);
        assert_eq!(reply.body["remaining"]["tokens"], left);
    }
    let refused = decide(&server, &key, read(400)).await;
    assert_eq!(refused.body["decision"], false);
    assert_eq!(refused.body["reasons"], json!(["budget_exhausted:tokens"]));
    assert_eq!(refused.body["remaining"]["tokens"], 200);
    let last = decide(&server, &key, read(200)).await;
    assert_eq!(last.body["decision"], true);
    assert_eq!(last.body["remaining"]["tokens"], 0);

    // A decision the policy denies spends nothing; a call without a cost
    // is not counted.
    let denied = decide(
        &server,
        &key,
        json!({"agent": "bot", "action": "write", "resource": "doc:1", "cost": {"tokens": 5}}),
    )
    .await;
    assert_eq!(denied.body["decision"], false);
    let free = decide(
        &server,
        &key,
        json!({"agent": "bot", "action": "read", "resource": "doc:1"}),
    )
    .await;
    assert_eq!(free.body["decision"], true);
    let usage = server.get("/v1/usage", &key).await;
    assert_eq!(
        usage.body["spend"]["tokens"],
        json!({"spent": 1000, "monthly": 1000, "remaining": 0, "action": "block"})
    );
    assert_eq!(usage.body["agents"]["bot"]["tokens"]["spent"], 1000);
    let through_the_client = ward_client::Client::new(&server.base, &key)
        .unwrap()
        .usage()
        .await
        .unwrap();
    assert_eq!(through_the_client.spend["tokens"].remaining, Some(0));

    // The AuthZEN form carries the cost in its context.
    let evaluation = server
        .post(
            "/access/v1/evaluation",
            &key,
            json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
                   "resource": {"type": "doc", "id": "2"}, "context": {"cost": {"tokens": 1}}}),
        )
        .await;
    assert_eq!(evaluation.status, 200, "{}", evaluation.body);
    assert_eq!(evaluation.body["decision"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warn_budget_allows_with_a_reason_and_warns_at_80_and_100_percent() {
    let server = TestServer::start().await;
    let key = tenant(
        &server,
        "warned",
        json!({"cents": {"monthly": 10, "action": "warn"}}),
        json!({}),
    )
    .await;
    let cents = |n: u64| json!({"agent": "bot", "action": "read", "resource": "doc:1", "cost": {"cents": n}});
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let reply = decide(&server, &key, cents(3)).await;
        assert_eq!(reply.body["decision"], true, "{}", reply.body);
        reasons.push(reply.body["reasons"].clone());
    }
    assert!(
        !reasons[2].to_string().contains("budget_warning"),
        "9 of 10 is not over: {:?}",
        reasons[2]
    );
    assert!(
        reasons[3].to_string().contains("budget_warning:cents"),
        "{:?}",
        reasons[3]
    );
    let events = server.get("/v1/audit?kind=budget_warning", &key).await;
    let percents: Vec<u64> = events.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["percent"].as_u64().unwrap())
        .collect();
    assert_eq!(percents, [100, 80], "once each, newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_request_id_spends_once_and_agents_have_budgets_of_their_own() {
    let server = TestServer::start().await;
    let key = tenant(
        &server,
        "retried",
        json!({"tokens": {"monthly": 1000}}),
        json!({"tokens": {"monthly": 150}}),
    )
    .await;
    let mut body = read(100);
    body["request_id"] = json!("call-1");
    for _ in 0..3 {
        let reply = decide(&server, &key, body.clone()).await;
        assert_eq!(reply.body["decision"], true, "{}", reply.body);
    }
    let usage = server.get("/v1/usage", &key).await;
    assert_eq!(
        usage.body["spend"]["tokens"]["spent"], 100,
        "{}",
        usage.body
    );

    // The agent's own budget (150) binds before the tenant's (1000).
    let over = decide(&server, &key, read(100)).await;
    assert_eq!(over.body["reasons"], json!(["budget_exhausted:tokens"]));
    assert_eq!(over.body["remaining"]["tokens"], 50);

    // Malformed costs are the caller's mistake.
    for bad in [json!({"tokens": -1}), json!({"Tokens": 1}), json!("lots")] {
        let mut body = read(1);
        body["cost"] = bad;
        let reply = server.post("/v1/authorize", &key, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_input"),
            "{}",
            reply.body
        );
    }
    let mut twice = read(1);
    twice["context"] = json!({"cost": {"tokens": 1}});
    assert_eq!(server.post("/v1/authorize", &key, twice).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_never_spend_past_a_block_budget() {
    let server = Arc::new(TestServer::start().await);
    let key = tenant(
        &server,
        "crowded",
        json!({"tokens": {"monthly": 100}}),
        json!({}),
    )
    .await;
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let (server, key) = (Arc::clone(&server), key.clone());
            tokio::spawn(
                async move { decide(&server, &key, read(10)).await.body["decision"] == true },
            )
        })
        .collect();
    let mut allowed = 0;
    for caller in callers {
        allowed += usize::from(caller.await.unwrap());
    }
    assert_eq!(allowed, 10);
    let usage = server.get("/v1/usage", &key).await;
    assert_eq!(usage.body["spend"]["tokens"]["spent"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_start_afresh_at_the_month_boundary_in_utc() {
    // 2026-12-31T23:59:00Z.
    let clock = Arc::new(ManualClock::at(1_798_761_540_000));
    let server = TestServer::start_with_clock("", Arc::clone(&clock) as Arc<_>).await;
    let key = tenant(
        &server,
        "monthly",
        json!({"tokens": {"monthly": 100}}),
        json!({}),
    )
    .await;
    assert_eq!(
        decide(&server, &key, read(100)).await.body["decision"],
        true
    );
    assert_eq!(decide(&server, &key, read(1)).await.body["decision"], false);
    clock.advance(60_000);
    let january = decide(&server, &key, read(100)).await;
    assert_eq!(january.body["decision"], true, "{}", january.body);
    let usage = server.get("/v1/usage", &key).await;
    assert_eq!(usage.body["month"], "2027-01");
    assert_eq!(usage.body["spend"]["tokens"]["spent"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token = "budget-restart-operator";
    let (mut ward, base, _) = crate::support::spawn_ward(dir.path(), None, Some(token));
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, base: &str, path: &str, key: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let tenant = json!({"slug": "kept", "name": "Kept",
                        "settings": {"budgets": {"tokens": {"monthly": 100}}}});
    let key = crate::support::provision(&http, &base, token, tenant).await;
    let bot =
        json!({"type": "ai_agent", "permissions": [{"resource": "doc:*", "actions": ["read"]}]});
    call(reqwest::Method::PUT, &base, "/v1/agents/bot", &key, bot)
        .await
        .unwrap();
    let spent: Value = call(
        reqwest::Method::POST,
        &base,
        "/v1/authorize",
        &key,
        read(70),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(spent["decision"], true);

    ward.stop();
    let (mut ward, base, _) = crate::support::spawn_ward(dir.path(), None, Some(token));
    let over: Value = call(
        reqwest::Method::POST,
        &base,
        "/v1/authorize",
        &key,
        read(31),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        over["reasons"],
        json!(["budget_exhausted:tokens"]),
        "{over}"
    );
    assert_eq!(over["remaining"]["tokens"], 30);
    ward.kill();
}

#[test]
fn the_budgets_page_refuses_an_agents_call_as_written() {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BUDGETS.md"),
    )
    .unwrap();
    let script = crate::docs::blocks(&page, "sh").join("\n");
    let expected = crate::docs::blocks(&page, "text").concat();
    let dir = tempfile::tempdir().unwrap();
    let token = "budgets-page-operator";
    let (mut ward, base, _) = crate::support::spawn_ward(dir.path(), None, Some(token));
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("OP", token)
        .env("URL", &base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, expected);
    ward.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_quota_is_a_429_without_retry_after_and_an_event_for_tenant_and_operator() {
    let server = TestServer::start().await;
    let (id, admin, _) = server.tenant("capped").await;
    let patched = server
        .call(
            "PATCH",
            "/v1/tenants/capped",
            Some(OPERATOR),
            None,
            Body::Json(json!({"settings": {"max_agents": 1}})),
        )
        .await;
    assert_eq!(patched.status, 200);
    let agent = json!({"type": "ai_agent"});
    assert_eq!(
        server
            .put("/v1/agents/one", &admin, agent.clone())
            .await
            .status,
        201
    );
    let refused = server.put("/v1/agents/two", &admin, agent).await;
    assert_eq!((refused.status, refused.code()), (429, "quota_exceeded"));
    assert_eq!(
        refused.body["error"]["limit"],
        json!({"name": "max_agents", "value": 1})
    );
    assert!(
        refused.headers.get("retry-after").is_none(),
        "capacity does not free itself"
    );

    let own = server.get("/v1/audit?kind=quota_exceeded", &admin).await;
    assert_eq!(own.body["entries"][0]["target"], "two", "{}", own.body);
    let operator = server
        .get("/v1/global/audit?kind=quota_exceeded", OPERATOR)
        .await;
    let event = &operator.body["entries"][0];
    assert_eq!(event["details"]["tenant_id"], id, "{}", operator.body);
    assert_eq!(event["details"]["quota"], "max_agents");
}
