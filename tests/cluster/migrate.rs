//! `ward store migrate`: the schema on its own, and an embedded
//! installation moved into the shared store.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{OPERATOR, ward};
use crate::support::{guest, spawn_ward};

#[test]
fn the_schema_migrates_explicitly_and_once() {
    let url = super::database();
    let dir = tempfile::tempdir().unwrap();
    let first = ward(&["store", "migrate", "--store", &url], dir.path());
    assert!(first.contains("migrated to version 1"), "{first}");
    let second = ward(&["store", "migrate", "--store", &url], dir.path());
    assert!(second.contains("nothing to migrate"), "{second}");
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The bot reads a document.
async fn decide(http: &reqwest::Client, base: &str, key: &str) -> (StatusCode, Value) {
    let request = json!({"agent": "bot", "action": "read", "resource": "doc:1"});
    call(
        http,
        base,
        Method::POST,
        "/v1/authorize",
        key,
        Some(request),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_installation_moves_into_the_shared_store_once() {
    // An installation on the embedded store, used a little.
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let (mut embedded, base, _) = spawn_ward(&data, None, Some(OPERATOR));
    let http = reqwest::Client::new();
    let (status, _) = call(
        &http,
        &base,
        Method::POST,
        "/v1/tenants",
        OPERATOR,
        Some(json!({"slug": "moved", "name": "Moved"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, key) = call(
        &http,
        &base,
        Method::POST,
        "/v1/tenants/moved/keys",
        OPERATOR,
        Some(json!({"name": "ci", "role": "admin"})),
    )
    .await;
    let key = key["secret"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let uploaded = http
            .put(format!("{base}/v1/policies/docs"))
            .bearer_auth(&key)
            .header("content-type", "application/wasm")
            .body(guest("permissions"))
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), StatusCode::CREATED);
    }
    let agent = json!({"type": "assistant", "policy": "docs", "permissions": [{"resource": "doc:*", "actions": ["read"]}]});
    assert_eq!(
        call(
            &http,
            &base,
            Method::PUT,
            "/v1/agents/bot",
            &key,
            Some(agent)
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert!(
        call(
            &http,
            &base,
            Method::PUT,
            "/v1/data/limits",
            &key,
            Some(json!({"max": 3}))
        )
        .await
        .0
        .is_success()
    );
    let mut decided = Vec::new();
    for _ in 0..5 {
        let (status, answer) = decide(&http, &base, &key).await;
        assert_eq!(status, StatusCode::OK);
        decided.push(answer["decision_id"].as_str().unwrap().to_string());
    }
    // Stopped as an operator stops it.
    embedded.stop();

    let url = super::database();
    let data_arg = data.to_str().unwrap();
    let report = ward(
        &["store", "migrate", "--from", data_arg, "--to", &url],
        home.path(),
    );
    assert!(report.contains("copied 1 tenant(s)"), "{report}");
    assert!(report.contains("all verified"), "{report}");

    // A second run copies nothing twice.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["store", "migrate", "--from", data_arg, "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds 1 tenant"));

    // Replicas on the shared store serve all of it.
    let replica = super::Replica::start(tempfile::tempdir().unwrap(), &url, "");
    let base = replica.base.clone();
    let (status, answer) = decide(&http, &base, &key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["decision"], true);
    assert_eq!(answer["policy"]["version"], 2);
    let (_, policy) = call(&http, &base, Method::GET, "/v1/policies/docs", &key, None).await;
    assert_eq!(policy["versions"].as_array().unwrap().len(), 2);
    let (_, doc) = call(&http, &base, Method::GET, "/v1/data/limits", &key, None).await;
    assert_eq!(doc["value"]["max"], 3, "{doc}");
    let (_, usage) = call(&http, &base, Method::GET, "/v1/usage", &key, None).await;
    assert_eq!(
        usage["decisions"], 6,
        "five before the move, one after: {usage}"
    );
    let (_, log) = call(
        &http,
        &base,
        Method::GET,
        "/v1/audit?kind=decision&limit=100",
        &key,
        None,
    )
    .await;
    let logged: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(logged.len(), 6, "{log}");
    for id in &decided {
        assert!(logged.contains(&id.as_str()), "{id} was not moved");
    }
}
