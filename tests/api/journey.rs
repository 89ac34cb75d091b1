//! The README's journey with the real binary.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_journey_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, operator) = spawn_ward(dir.path(), None, None);
    let operator = operator.expect("the first start prints the operator token");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(token)
    };

    let tenant: Value = call(reqwest::Method::POST, "/v1/tenants", &operator)
        .json(&json!({"slug": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["slug"], "acme");
    let key: Value = call(reqwest::Method::POST, "/v1/tenants/acme/keys", &operator)
        .json(&json!({"name": "ci", "role": "admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["secret"].as_str().unwrap().to_string();

    let uploaded = call(reqwest::Method::PUT, "/v1/policies/reports", &key)
        .header("content-type", "application/wasm")
        .body(guest("permissions"))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.unwrap();
    assert_eq!(uploaded["version"], 1);

    let agent = call(reqwest::Method::PUT, "/v1/agents/report-bot", &key)
        .json(&json!({"type": "ai_agent", "policy": "reports",
                      "permissions": [{"resource": "reports:*", "actions": ["read", "export"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(agent.status(), 201);

    let decide = |action: &'static str| {
        call(reqwest::Method::POST, "/v1/authorize", &key)
            .json(&json!({"agent": "report-bot", "action": action, "resource": "reports:q3"}))
            .send()
    };
    let allow: Value = decide("export").await.unwrap().json().await.unwrap();
    assert_eq!(allow["decision"], true);
    assert_eq!(allow["policy"]["name"], "reports");
    assert_eq!(allow["policy"]["scope"], "tenant");
    let deny = decide("delete").await.unwrap();
    assert_eq!(deny.status(), 200, "a deny is a 200");
    let deny: Value = deny.json().await.unwrap();
    assert_eq!(deny["decision"], false);

    let audit: Value = call(
        reqwest::Method::GET,
        "/v1/audit?kind=decision&limit=10",
        &key,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ids: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            deny["decision_id"].as_str().unwrap(),
            allow["decision_id"].as_str().unwrap()
        ]
    );

    // SIGTERM: a graceful stop, and everything is there at the next start.
    child.stop();
    let (mut child, base2, token) = spawn_ward(dir.path(), None, None);
    assert_eq!(
        token, None,
        "the operator token is shown only on the first start"
    );
    let after: Value = http
        .post(format!("{base2}/v1/authorize"))
        .bearer_auth(&key)
        .json(&json!({"agent": "report-bot", "action": "export", "resource": "reports:q3"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["decision"], true);
    child.kill();
}
