//! OpenID AuthZEN 1.0: cases written from the specification.

use serde_json::{Value, json};

use crate::server::{Body, TestServer};
use crate::support::guest;

async fn setup() -> (TestServer, String) {
    let server = TestServer::start().await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let reader =
        json!({"type": "ai_agent", "permissions": [{"resource": "docs:*", "actions": ["read"]}]});
    assert_eq!(
        server.put("/v1/agents/reader", &admin, reader).await.status,
        201
    );
    assert_eq!(
        server
            .upload("/v1/policies/probe", &admin, guest("probe"))
            .await
            .status,
        201
    );
    let prober = json!({"type": "ai_agent", "policy": "probe"});
    assert_eq!(
        server.put("/v1/agents/prober", &admin, prober).await.status,
        201
    );
    (server, authorize)
}

fn ask(subject: &str, action: &str, resource: &str) -> Value {
    let (kind, id) = resource.split_once(':').unwrap();
    json!({"subject": {"type": "agent", "id": subject}, "action": {"name": action}, "resource": {"type": kind, "id": id}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_evaluation_answers_only_decision_and_context() {
    let (server, key) = setup().await;
    let allow = server
        .post(
            "/access/v1/evaluation",
            &key,
            ask("reader", "read", "docs:1"),
        )
        .await;
    assert_eq!(
        (allow.status, allow.body.clone()),
        (200, json!({"decision": true}))
    );
    let deny = server
        .post(
            "/access/v1/evaluation",
            &key,
            ask("reader", "write", "docs:1"),
        )
        .await;
    assert_eq!(
        (deny.status, deny.body.clone()),
        (200, json!({"decision": false})),
        "a deny is a 200"
    );
    let unknown = server
        .post(
            "/access/v1/evaluation",
            &key,
            ask("stranger", "read", "docs:1"),
        )
        .await;
    assert_eq!(unknown.body, json!({"decision": false}));

    // A policy that returns a context: it comes back, and nothing else does.
    let with_context = server
        .post(
            "/access/v1/evaluation",
            &key,
            ask("prober", "read", "docs:1"),
        )
        .await;
    let mut keys: Vec<&String> = with_context.body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["context", "decision"]);
    assert_eq!(with_context.body["context"]["subject"]["id"], "prober");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_ignored_and_properties_reach_the_policy() {
    let (server, key) = setup().await;
    let body = json!({
        "subject": {"type": "agent", "id": "prober", "properties": {"department": "sales"}, "extra": 1},
        "action": {"name": "read", "properties": {"method": "GET"}},
        "resource": {"type": "docs", "id": "7", "properties": {"owner": "kim"}},
        "context": {"time": "2026-11-22T09:00:00Z"},
        "future_field": {"anything": true},
    });
    let reply = server.post("/access/v1/evaluation", &key, body).await;
    assert_eq!(reply.status, 200);
    let seen = &reply.body["context"];
    assert_eq!(seen["subject"]["properties"]["department"], "sales");
    assert_eq!(seen["action"]["properties"]["method"], "GET");
    assert_eq!(seen["resource"]["properties"]["owner"], "kim");
    assert_eq!(seen["context"]["time"], "2026-11-22T09:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_malformed_required_fields_are_400() {
    let (server, key) = setup().await;
    let good = ask("reader", "read", "docs:1");
    let without = |path: &[&str]| {
        let mut body = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut node = &mut body;
        for p in parents {
            node = &mut node[*p];
        }
        node.as_object_mut().unwrap().remove(*last);
        body
    };
    for body in [
        without(&["subject"]),
        without(&["subject", "type"]),
        without(&["subject", "id"]),
        without(&["action"]),
        without(&["action", "name"]),
        without(&["resource"]),
        without(&["resource", "type"]),
        without(&["resource", "id"]),
        json!({"subject": "alice", "action": {"name": "read"}, "resource": {"type": "d", "id": "1"}}),
        json!({"subject": {"type": "agent", "id": "a", "properties": [1]}, "action": {"name": "read"}, "resource": {"type": "d", "id": "1"}}),
        json!({"subject": {"type": "agent", "id": 7}, "action": {"name": "read"}, "resource": {"type": "d", "id": "1"}}),
        json!({"subject": {"type": "", "id": "a"}, "action": {"name": "read"}, "resource": {"type": "d", "id": "1"}}),
        json!([1, 2, 3]),
    ] {
        for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
            let reply = server.post(path, &key, body.clone()).await;
            assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
            assert!(reply.body["error"]["message"].is_string());
        }
    }
    let not_json = server
        .call(
            "POST",
            "/access/v1/evaluation",
            Some(&key),
            None,
            Body::Raw("application/json", b"{nope".to_vec()),
        )
        .await;
    assert_eq!(not_json.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_or_made_up() {
    let (server, key) = setup().await;
    let reply = server
        .client
        .post(format!("{}/access/v1/evaluation", server.base))
        .bearer_auth(&key)
        .header("x-request-id", "req-42")
        .json(&ask("reader", "read", "docs:1"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.headers()["x-request-id"], "req-42");
    let made_up = server
        .post(
            "/access/v1/evaluation",
            &key,
            ask("reader", "read", "docs:1"),
        )
        .await;
    assert_eq!(made_up.headers["x-request-id"].to_str().unwrap().len(), 26);
    // Also on errors.
    let error = server
        .client
        .post(format!("{}/access/v1/evaluation", server.base))
        .header("x-request-id", "req-43")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            error.status().as_u16(),
            error.headers()["x-request-id"].to_str().unwrap()
        ),
        (401, "req-43")
    );
}

fn batch(semantic: Option<&str>, resources: &[&str]) -> Value {
    let mut body = json!({
        "subject": {"type": "agent", "id": "reader"},
        "action": {"name": "read"},
        "evaluations": resources.iter().map(|r| {
            let (kind, id) = r.split_once(':').unwrap();
            json!({"resource": {"type": kind, "id": id}})
        }).collect::<Vec<_>>(),
    });
    if let Some(semantic) = semantic {
        body["options"] = json!({"evaluations_semantic": semantic});
    }
    body
}

fn decisions(reply: &crate::server::Reply) -> Vec<bool> {
    reply.body["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_bool().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_honour_each_semantic() {
    let (server, key) = setup().await;
    let resources = ["docs:1", "secrets:1", "docs:2", "secrets:2"];
    let all = server
        .post("/access/v1/evaluations", &key, batch(None, &resources))
        .await;
    assert_eq!(decisions(&all), vec![true, false, true, false]);
    assert!(
        all.body.get("decision").is_none(),
        "no top-level decision in a batch answer"
    );
    assert_eq!(
        all.body["evaluations"][0],
        json!({"decision": true}),
        "no empty context"
    );
    let explicit = server
        .post(
            "/access/v1/evaluations",
            &key,
            batch(Some("execute_all"), &resources),
        )
        .await;
    assert_eq!(decisions(&explicit), vec![true, false, true, false]);
    let deny_first = server
        .post(
            "/access/v1/evaluations",
            &key,
            batch(Some("deny_on_first_deny"), &resources),
        )
        .await;
    assert_eq!(decisions(&deny_first), vec![true, false]);
    let permit_first = server
        .post(
            "/access/v1/evaluations",
            &key,
            batch(
                Some("permit_on_first_permit"),
                &["secrets:1", "docs:1", "docs:2"],
            ),
        )
        .await;
    assert_eq!(decisions(&permit_first), vec![false, true]);
    let bad_semantic = server
        .post(
            "/access/v1/evaluations",
            &key,
            batch(Some("whatever"), &resources),
        )
        .await;
    assert_eq!(bad_semantic.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_keys_replace_defaults_whole() {
    let (server, key) = setup().await;
    let body = json!({
        "subject": {"type": "agent", "id": "prober", "properties": {"from": "default"}},
        "action": {"name": "read"},
        "resource": {"type": "docs", "id": "default"},
        "context": {"level": "default"},
        "evaluations": [
            {},
            {"subject": {"type": "agent", "id": "prober"}},
            {"resource": {"type": "docs", "id": "item"}, "context": {"other": 1}},
        ],
    });
    let reply = server.post("/access/v1/evaluations", &key, body).await;
    let seen: Vec<&Value> = reply.body["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["context"])
        .collect();
    assert_eq!(seen[0]["subject"]["properties"], json!({"from": "default"}));
    assert_eq!(seen[0]["resource"]["id"], "default");
    assert_eq!(
        seen[1]["subject"]["properties"],
        json!({}),
        "the item's subject replaces the default whole"
    );
    assert_eq!(seen[2]["resource"]["id"], "item");
    assert_eq!(
        seen[2]["context"],
        json!({"other": 1}),
        "no merging of context either"
    );
    assert_eq!(seen[2]["subject"]["properties"], json!({"from": "default"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_missing_list_is_a_single_evaluation_and_item_errors_stay_inline() {
    let (server, key) = setup().await;
    let mut single = ask("reader", "read", "docs:1");
    let missing = server
        .post("/access/v1/evaluations", &key, single.clone())
        .await;
    assert_eq!(missing.body, json!({"decision": true}));
    single["evaluations"] = json!([]);
    let empty = server.post("/access/v1/evaluations", &key, single).await;
    assert_eq!(empty.body, json!({"decision": true}));

    let body = json!({
        "action": {"name": "read"},
        "resource": {"type": "docs", "id": "1"},
        "evaluations": [
            {"subject": {"type": "agent", "id": "reader"}},
            {"subject": "not-an-object"},
            {},
            {"subject": {"type": "agent", "id": "reader"}},
        ],
    });
    let reply = server.post("/access/v1/evaluations", &key, body).await;
    assert_eq!(reply.status, 200);
    let items = reply.body["evaluations"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], json!({"decision": true}));
    assert_eq!(items[1]["decision"], false);
    assert_eq!(items[1]["context"]["error"]["status"], 400);
    assert_eq!(
        items[2]["context"]["error"]["status"], 400,
        "missing subject with no default"
    );
    assert_eq!(items[3], json!({"decision": true}));

    let too_many = json!({"subject": {"type": "agent", "id": "reader"}, "action": {"name": "read"},
        "evaluations": vec![json!({"resource": {"type": "docs", "id": "1"}}); 101]});
    assert_eq!(
        server
            .post("/access/v1/evaluations", &key, too_many)
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents() {
    let (server, _) = setup().await;
    let doc = server
        .call(
            "GET",
            "/.well-known/authzen-configuration",
            None,
            None,
            Body::None,
        )
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["policy_decision_point"], server.base.as_str());
    assert_eq!(
        doc.body["access_evaluation_endpoint"],
        format!("{}/access/v1/evaluation", server.base)
    );
    assert_eq!(
        doc.body["access_evaluations_endpoint"],
        format!("{}/access/v1/evaluations", server.base)
    );
    let tenant = server
        .call(
            "GET",
            "/.well-known/authzen-configuration/acme",
            None,
            None,
            Body::None,
        )
        .await;
    // The PDP identifier is the one the document's URL was built from;
    // the endpoints are the host's (decisions take the tenant from the
    // credential).
    assert_eq!(
        tenant.body["policy_decision_point"],
        format!("{}/acme", server.base)
    );
    assert_eq!(
        tenant.body["access_evaluation_endpoint"],
        doc.body["access_evaluation_endpoint"]
    );
    assert_eq!(
        tenant.body["access_evaluations_endpoint"],
        doc.body["access_evaluations_endpoint"]
    );
    // Anyone may ask, so the answer never tells whether a tenant exists:
    // every well-formed slug gets its document, an ill-formed one a 404.
    let unknown = server
        .call(
            "GET",
            "/.well-known/authzen-configuration/nobody",
            None,
            None,
            Body::None,
        )
        .await;
    assert_eq!(unknown.status, 200);
    assert_eq!(
        unknown.body["policy_decision_point"],
        format!("{}/nobody", server.base)
    );
    let ill_formed = server
        .call(
            "GET",
            "/.well-known/authzen-configuration/Not_A_Slug",
            None,
            None,
            Body::None,
        )
        .await;
    assert_eq!(ill_formed.status, 404);
}
