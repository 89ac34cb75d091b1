//! Hostile input gets a 4xx JSON answer and changes nothing; the OpenAPI
//! document and probes.

use super::*;

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
        ("/v1/policies/p", "application/wasm", 80usize << 20),
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
