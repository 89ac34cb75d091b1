//! The HTTP API against a real listening server: the README journey (with
//! the real `ward` binary), management routes, and hostile input.

use std::process::Command;

use serde_json::{Value, json};

use crate::server::{Body, OPERATOR, TestServer};
use crate::support::{guest, spawn_ward};

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
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.0.wait().unwrap().success());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_objects_and_keys_over_http() {
    let server = TestServer::start().await;
    let (id, admin, _) = server.tenant("acme").await;
    assert!(id.starts_with("tnt_"));
    assert_eq!(
        server.get("/v1/tenants/acme", OPERATOR).await.body["id"],
        id
    );
    assert_eq!(server.get("/v1/tenant", &admin).await.body["slug"], "acme");

    let patched = server
        .call(
            "PATCH",
            "/v1/tenants/acme",
            Some(OPERATOR),
            None,
            Body::Json(json!({"settings": {"max_agents": 3}})),
        )
        .await;
    assert_eq!(patched.body["settings"]["max_agents"], 3);

    assert_eq!(
        server
            .put("/v1/agents/bot", &admin, json!({"type": "service"}))
            .await
            .status,
        201
    );
    assert_eq!(
        server
            .put("/v1/agents/bot", &admin, json!({"type": "service"}))
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .get("/v1/agents", &admin)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server
            .put("/v1/data/limits", &admin, json!({"max": 5}))
            .await
            .body["value"]["max"],
        5
    );
    assert_eq!(
        server.get("/v1/data/limits", &admin).await.body["scope"],
        "tenant"
    );

    let up = server
        .upload("/v1/policies/p", &admin, guest("permissions"))
        .await;
    assert_eq!(up.status, 201);
    let up2 = server
        .upload("/v1/policies/p?activate=false", &admin, guest("rbac"))
        .await;
    assert_eq!(
        (up2.body["version"].clone(), up2.body["active"].clone()),
        (json!(2), json!(false))
    );
    let activated = server
        .post("/v1/policies/p/activate", &admin, json!({"version": 2}))
        .await;
    assert_eq!(activated.body["active_version"], 2);
    let configured = server
        .put("/v1/policies/p/config", &admin, json!({"roles": {}}))
        .await;
    assert_eq!(configured.body["config"], json!({"roles": {}}));
    let listed = server.get("/v1/policies", &admin).await;
    let names: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["p", "permissions"]);

    let created = server
        .post(
            "/v1/keys",
            &admin,
            json!({"name": "second", "role": "authorize"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let second = created.body["secret"].as_str().unwrap().to_string();
    let key_id = created.body["id"].as_str().unwrap().to_string();
    let keys = server.get("/v1/keys", &admin).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 3);
    assert!(keys.body.to_string().contains("last_used_at"));
    assert!(
        !keys.body.to_string().contains(&second),
        "secrets are never listed"
    );
    assert_eq!(server.get("/v1/tenant", &second).await.status, 200);
    assert_eq!(
        server
            .call(
                "DELETE",
                &format!("/v1/keys/{key_id}"),
                Some(&admin),
                None,
                Body::None
            )
            .await
            .status,
        204
    );
    assert_eq!(
        server.get("/v1/tenant", &second).await.status,
        401,
        "revoked at once"
    );

    assert_eq!(
        server
            .post("/v1/tenants/acme/suspend", OPERATOR, json!({}))
            .await
            .body["status"],
        "suspended"
    );
    let denied = server
        .post(
            "/v1/authorize",
            &admin,
            json!({"agent": "bot", "action": "a", "resource": "r:1"}),
        )
        .await;
    assert_eq!(
        (denied.status, denied.body["reasons"][0].clone()),
        (200, json!("tenant_suspended"))
    );
    assert_eq!(
        server
            .post("/v1/tenants/acme/activate", OPERATOR, json!({}))
            .await
            .body["status"],
        "active"
    );

    assert_eq!(
        server
            .call(
                "DELETE",
                "/v1/tenants/acme",
                Some(OPERATOR),
                None,
                Body::None
            )
            .await
            .status,
        204
    );
    assert_eq!(
        server.get("/v1/tenant", &admin).await.status,
        401,
        "keys die with their tenant"
    );
    assert_eq!(server.get("/v1/tenants/acme", OPERATOR).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_routes_and_read_only_inheritance() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    assert_eq!(
        server
            .put(
                "/v1/global/agents/shared",
                OPERATOR,
                json!({"type": "service"})
            )
            .await
            .status,
        201
    );
    assert_eq!(
        server
            .put("/v1/global/data/plans", OPERATOR, json!(["free"]))
            .await
            .status,
        200
    );
    assert_eq!(
        server.get("/v1/agents/shared", &admin).await.body["scope"],
        "global"
    );
    assert_eq!(
        server.get("/v1/data/plans", &admin).await.body["scope"],
        "global"
    );
    let refused = server
        .call(
            "DELETE",
            "/v1/agents/shared",
            Some(&admin),
            None,
            Body::None,
        )
        .await;
    assert_eq!((refused.status, refused.code()), (403, "global_read_only"));
    let refused = server
        .post(
            "/v1/policies/permissions/activate",
            &admin,
            json!({"version": 1}),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (403, "global_read_only"));
    assert_eq!(server.get("/v1/global/agents", &admin).await.status, 403);
    assert_eq!(
        server.get("/v1/global/policies", OPERATOR).await.body[0]["name"],
        "permissions"
    );
    let log = server
        .get("/v1/global/audit?kind=agent_put", OPERATOR)
        .await;
    assert_eq!(log.body["entries"][0]["target"], "shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_object_is_exactly_like_a_missing_one() {
    let server = TestServer::start().await;
    let (_, a, _) = server.tenant("acme").await;
    let (_, b, _) = server.tenant("globex").await;
    server
        .put("/v1/agents/secret-bot", &a, json!({"type": "service"}))
        .await;
    server.put("/v1/data/secret-doc", &a, json!(1)).await;
    server
        .upload("/v1/policies/secret-policy", &a, guest("permissions"))
        .await;
    for (path, missing) in [
        ("/v1/agents/secret-bot", "/v1/agents/no-such-bot"),
        ("/v1/data/secret-doc", "/v1/data/no-such-doc"),
        ("/v1/policies/secret-policy", "/v1/policies/no-such-policy"),
    ] {
        for method in ["GET", "DELETE"] {
            let foreign = server.call(method, path, Some(&b), None, Body::None).await;
            let absent = server
                .call(method, missing, Some(&b), None, Body::None)
                .await;
            assert_eq!(foreign.status, 404, "{method} {path}");
            assert_eq!(foreign.code(), absent.code());
            let name = |p: &str| p.rsplit('/').next().unwrap().to_string();
            assert_eq!(
                foreign.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace(&name(path), "X"),
                absent.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace(&name(missing), "X")
            );
        }
    }
    assert!(server.get("/v1/agents/secret-bot", &a).await.status == 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_access_inside_a_tenant_is_audited() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    let listed = server
        .call(
            "GET",
            "/v1/agents",
            Some(OPERATOR),
            Some("acme"),
            Body::None,
        )
        .await;
    assert_eq!(listed.status, 200);
    let log = server
        .get("/v1/audit?kind=admin_cross_tenant_access", &admin)
        .await;
    let entry = &log.body["entries"][0];
    assert_eq!(entry["actor"], "operator");
    assert_eq!(entry["details"]["path"], "/v1/agents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_4xx_json_and_changes_nothing() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    let raw = |ct: &'static str, body: &str| Body::Raw(ct, body.as_bytes().to_vec());

    let cases: Vec<(&str, &str, Body, u16, &str)> = vec![
        (
            "POST",
            "/v1/tenants",
            raw("application/json", "{\"slug\": "),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/tenants",
            raw("application/json", "{\"slug\": 5, \"name\": \"x\"}"),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/tenants",
            raw("text/plain", "{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/tenants",
            Body::Json(json!({"slug": "Not A Slug", "name": "x"})),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/tenants",
            Body::Json(json!({"slug": "global", "name": "x"})),
            400,
            "invalid_input",
        ),
        (
            "PUT",
            "/v1/agents/has%20space",
            Body::Json(json!({"type": "service"})),
            400,
            "invalid_input",
        ),
        (
            "PUT",
            "/v1/agents/bot",
            Body::Json(json!({"type": "service", "surprise": 1})),
            400,
            "invalid_input",
        ),
        (
            "PUT",
            "/v1/agents/bot",
            Body::Json(json!({"type": ""})),
            400,
            "invalid_input",
        ),
        (
            "PUT",
            "/v1/policies/p",
            Body::Raw("application/wasm", b"not wasm".to_vec()),
            422,
            "invalid_module",
        ),
        (
            "PUT",
            "/v1/policies/p",
            Body::Raw("application/wasm", guest("forbidden_import")),
            422,
            "invalid_module",
        ),
        (
            "PUT",
            "/v1/policies/p",
            Body::Raw("text/plain", guest("permissions")),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/authorize",
            Body::Json(json!({"agent": "a", "action": "b", "resource": "no-colon"})),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/authorize",
            Body::Json(json!({"subject": {"type": "agent"}})),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/authorize/batch",
            Body::Json(json!({"items": []})),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/authorize/batch",
            Body::Json(
                json!({"items": vec![json!({"agent": "a", "action": "b", "resource": "c:d"}); 101]}),
            ),
            400,
            "invalid_input",
        ),
        ("GET", "/v1/audit?limit=0", Body::None, 400, "invalid_input"),
        (
            "GET",
            "/v1/audit?since=yesterday",
            Body::None,
            400,
            "invalid_input",
        ),
        (
            "GET",
            "/v1/audit?cursor=bogus",
            Body::None,
            400,
            "invalid_input",
        ),
        (
            "GET",
            "/v1/audit?kind=nonsense",
            Body::None,
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/policies/missing/activate",
            Body::Json(json!({"version": "one"})),
            400,
            "invalid_input",
        ),
        ("GET", "/v1/nowhere", Body::None, 404, "not_found"),
        (
            "PATCH",
            "/v1/agents/bot",
            Body::Json(json!({})),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let token = if path == "/v1/tenants" {
            OPERATOR
        } else {
            admin.as_str()
        };
        let reply = server.call(method, path, Some(token), None, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{method} {path}: {}",
            reply.body
        );
    }
    // Oversized bodies are refused from their declared length alone.
    for (path, content_type, length) in [
        ("/v1/policies/p", "application/wasm", 40usize << 20),
        ("/v1/data/d", "application/json", 2 << 20),
        ("/v1/authorize", "application/json", 2 << 20),
    ] {
        let method = if path == "/v1/authorize" {
            "POST"
        } else {
            "PUT"
        };
        let (status, body) = server
            .declare_body(method, path, &admin, content_type, length)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap_or("")),
            (413, "too_large"),
            "{path}"
        );
    }
    // A module over the tenant's own (smaller) limit is refused once read.
    server
        .call(
            "PATCH",
            "/v1/tenants/acme",
            Some(OPERATOR),
            None,
            Body::Json(json!({"settings": {"max_module_bytes": 1000}})),
        )
        .await;
    let over_tenant_limit = server
        .upload("/v1/policies/p", &admin, guest("permissions"))
        .await;
    assert_eq!(
        (over_tenant_limit.status, over_tenant_limit.code()),
        (413, "too_large")
    );
    assert_eq!(
        server
            .get("/v1/tenants", OPERATOR)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        server
            .get("/v1/agents", &admin)
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    let policies = server.get("/v1/policies", &admin).await;
    assert_eq!(
        policies.body.as_array().unwrap().len(),
        1,
        "only the inherited builtin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_probes() {
    let server = TestServer::start().await;
    let reply = server
        .call("GET", "/openapi.json", None, None, Body::None)
        .await;
    assert_eq!(reply.status, 200);
    let paths = reply.body["paths"].as_object().unwrap();
    for path in [
        "/v1/tenants",
        "/v1/authorize",
        "/access/v1/evaluations",
        "/v1/global/policies/{name}",
        "/v1/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        server
            .call("GET", "/healthz", None, None, Body::None)
            .await
            .body["status"],
        "ok"
    );
    assert_eq!(
        server
            .call("GET", "/readyz", None, None, Body::None)
            .await
            .body["status"],
        "ready"
    );
}
