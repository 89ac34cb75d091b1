//! A batch is one request: its items that run the same policy share one
//! instance, and decide exactly as they would alone.

use serde_json::{Value, json};

use crate::server::{Body, OPERATOR, TestServer};
use crate::support::guest;

/// Every policy and guest of `plugins/` that Ward accepts, with the config
/// it runs under. (`forbidden-import` is refused at upload.)
const POLICIES: [(&str, Option<&str>); 10] = [
    ("permissions", None),
    ("rbac", None),
    ("spin", None),
    ("memory-bomb", None),
    ("deep-recursion", None),
    ("panic", None),
    (
        "huge-output",
        Some(r#"{"reasons": 100, "context_bytes": 0}"#),
    ),
    ("malformed-output", None),
    ("chatty", None),
    ("probe", None),
];

/// What of an answer must not depend on batching: the decision, its
/// reasons, and its context without the probe's per-instance call count
/// and clock.
fn comparable(answer: &Value) -> Value {
    let mut context = answer["context"].clone();
    if let Some(context) = context.as_object_mut() {
        context.remove("calls");
        context.remove("now_millis");
    }
    json!({
        "decision": answer["decision"],
        "reasons": answer["reasons"],
        "context": context,
        "policy": answer["policy"]["name"],
    })
}

async fn batch_decides_as_single_calls(inline: bool) {
    let server = TestServer::start_with(&format!("[http]\ninline_decisions = {inline}\n")).await;
    let (_, admin, authorize) = server.tenant("acme").await;
    // The spinning guest runs to its tenant's timeout in every item. The
    // memory bomb must reach its limit well within that timeout even on a
    // machine whose cores are busy elsewhere, or its reason would depend on
    // the machine's load rather than on batching: a small memory limit and
    // a timeout with room to spare.
    let short = json!({"settings": {"sandbox": {"timeout_ms": 250, "memory_bytes": 4 << 20}}});
    let patched = server
        .call(
            "PATCH",
            "/v1/tenants/acme",
            Some(OPERATOR),
            None,
            Body::Json(short),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    for (name, config) in POLICIES {
        if name != "permissions" {
            let uploaded = server
                .upload(
                    &format!("/v1/policies/{name}"),
                    &admin,
                    guest(&name.replace('-', "_")),
                )
                .await;
            assert_eq!(uploaded.status, 201, "{name}: {}", uploaded.body);
        }
        if let Some(config) = config {
            let config: Value = serde_json::from_str(config).unwrap();
            let put = server
                .put(&format!("/v1/policies/{name}/config"), &admin, config)
                .await;
            assert_eq!(put.status, 200, "{name}: {}", put.body);
        }
        let agent = json!({
            "type": "ai_agent",
            "policy": name,
            "attributes": {"roles": ["reader"]},
            "permissions": [{"resource": "doc:*", "actions": ["read"]}],
        });
        let put = server
            .put(&format!("/v1/agents/{name}"), &admin, agent)
            .await;
        assert_eq!(put.status, 201, "{name}: {}", put.body);
    }
    let request = |name: &str, action: &str, id: &str| json!({"agent": name, "action": action, "resource": format!("doc:{id}")});
    // Each policy three times in a row (one shared instance), an allow and
    // a deny alternating on one instance, then all of them interleaved
    // (an instance per run of the same policy).
    let mut items = Vec::new();
    for (name, _) in POLICIES {
        for (action, id) in [("read", "1"), ("write", "2"), ("read", "3")] {
            items.push(request(name, action, id));
        }
    }
    for round in 0..2 {
        for (name, _) in POLICIES {
            items.push(request(name, ["read", "delete"][round], "4"));
        }
    }
    assert!(items.len() <= 100);

    let mut singles = Vec::new();
    for item in &items {
        let answer = server.post("/v1/authorize", &authorize, item.clone()).await;
        assert_eq!(answer.status, 200, "{item}: {}", answer.body);
        assert_eq!(answer.body["context"]["calls"].as_u64().unwrap_or(1), 1);
        singles.push(answer.body);
    }
    let batched = server
        .post("/v1/authorize/batch", &authorize, json!({"items": items}))
        .await;
    assert_eq!(batched.status, 200, "{}", batched.body);
    let results = batched.body["results"].as_array().unwrap();
    assert_eq!(results.len(), singles.len());
    for ((item, single), batched) in items.iter().zip(&singles).zip(results) {
        assert_eq!(comparable(batched), comparable(single), "{item}");
    }

    // The probe's three items in a row ran on one instance; the next call
    // starts on a fresh one.
    let probe = POLICIES
        .iter()
        .position(|(name, _)| *name == "probe")
        .unwrap()
        * 3;
    let calls: Vec<&Value> = results[probe..probe + 3]
        .iter()
        .map(|result| &result["context"]["calls"])
        .collect();
    assert_eq!(calls, [&json!(1), &json!(2), &json!(3)], "one instance");
    let again = server
        .post(
            "/v1/authorize/batch",
            &authorize,
            json!({"items": [request("probe", "read", "1")]}),
        )
        .await;
    assert_eq!(
        again.body["results"][0]["context"]["calls"], 1,
        "{}",
        again.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_decides_as_single_calls_with_inline_decisions() {
    batch_decides_as_single_calls(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_decides_as_single_calls_on_the_evaluation_pool() {
    batch_decides_as_single_calls(false).await;
}
