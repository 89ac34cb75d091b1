//! The edges of the HTTP surface, through a real listening server: every
//! client mistake is a JSON error with the right status (path and query
//! extraction, request heads, batches no burst can admit, empty
//! subjects), tenant settings that would break the tenant, and the
//! AuthZEN details (content type, discovery identifier, default policy).

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::{Body, OPERATOR, Reply, TestServer};
use crate::support::guest;

fn assert_json_error(reply: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{what}: {}",
        reply.body
    );
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        reply.body
    );
}

/// Sends `head` (the request line and headers, without the blank line) on
/// a fresh connection and returns the status, the Content-Type and the
/// body of the answer.
async fn raw_request(server: &TestServer, head: &str) -> (u16, String, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers");
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_query_mistakes_are_json_errors() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    let cases = [
        ("GET", "/v1/agents/%FF", "bad UTF-8 in a path segment"),
        ("GET", "/v1/global/data/%C3%28", "bad UTF-8 in a global key"),
        ("GET", "/v1/tenants/%FF", "bad UTF-8 in a tenant"),
        (
            "GET",
            "/v1/audit?limit=1&limit=2",
            "a repeated query parameter",
        ),
        ("GET", "/v1/audit?since=a&since=b", "a repeated filter"),
    ];
    for (method, path, what) in cases {
        let token = if path.starts_with("/v1/tenants") {
            OPERATOR
        } else {
            admin.as_str()
        };
        let reply = server
            .call(method, path, Some(token), None, Body::None)
            .await;
        assert_json_error(&reply, 400, "invalid_input", what);
    }
    // The query is read before the body, which is small here: the server
    // answers without reading it.
    for query in ["?activate=maybe", "?activate=true&activate=false"] {
        let reply = server
            .upload(&format!("/v1/policies/p{query}"), &admin, b"\0asm".to_vec())
            .await;
        assert_json_error(&reply, 400, "invalid_input", query);
    }
    let reply = server
        .upload(
            "/v1/policies/p?activate=false",
            &admin,
            guest("permissions"),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    // The fallbacks too: no such route, and a method a route does not take.
    let reply = server.call("GET", "/nowhere", None, None, Body::None).await;
    assert_json_error(&reply, 404, "not_found", "no such route");
    let reply = server
        .call("PATCH", "/v1/agents", Some(&admin), None, Body::None)
        .await;
    assert_json_error(&reply, 405, "method_not_allowed", "wrong method");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_json_errors() {
    let server = TestServer::start().await;
    let big = |bytes: usize| format!("Bearer {}", "a".repeat(bytes));

    // A 2 MB credential: refused with the JSON shape, not a bare 431.
    let (status, content_type, body) = raw_request(
        &server,
        &format!("GET /v1/agents HTTP/1.1\r\nAuthorization: {}", big(2 << 20)),
    )
    .await;
    assert_eq!(status, 431, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");

    // Just over the documented limit, and with too many headers.
    let over = ward::api::MAX_HEADER_BYTES;
    let reply = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("x-padding", "p".repeat(over))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 431);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");
    let mut many = String::from("GET /healthz HTTP/1.1");
    for i in 0..=ward::api::MAX_HEADERS {
        many.push_str(&format!("\r\nx-h{i}: {i}"));
    }
    let (status, content_type, body) = raw_request(&server, &many).await;
    assert_eq!(status, 431, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );

    // A request target over its limit.
    let long = format!(
        "GET /v1/agents/{} HTTP/1.1",
        "n".repeat(ward::api::MAX_URI_BYTES)
    );
    let (status, content_type, body) = raw_request(&server, &long).await;
    assert_eq!(status, 414, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );

    // Within the limits, the same kind of request is served.
    let reply = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("x-padding", "p".repeat(over / 2))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    // Beyond the parser's own bound, the parser answers (bare) and the
    // server goes on serving.
    let (status, _, _) = raw_request(
        &server,
        &format!(
            "GET /healthz HTTP/1.1\r\nAuthorization: {}",
            big(ward::api::PARSER_BUFFER_BYTES + 1024)
        ),
    )
    .await;
    assert_eq!(status, 431);
    let reply = server.call("GET", "/healthz", None, None, Body::None).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_burst_is_a_400_not_a_429() {
    let server = TestServer::start_with("[http]\nrefusal_delay_ms = 0\n").await;
    let created = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "small", "name": "Small", "settings": {"burst": 5, "rate_limit_per_sec": 1}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = server
        .post(
            "/v1/tenants/small/keys",
            OPERATOR,
            json!({"name": "k", "role": "authorize"}),
        )
        .await
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let item = json!({"agent": "bot", "action": "read", "resource": "docs:1"});
    let authzen_item = json!({"resource": {"type": "docs", "id": "1"}});

    for _ in 0..2 {
        let native = server
            .post(
                "/v1/authorize/batch",
                &key,
                json!({"items": vec![item.clone(); 6]}),
            )
            .await;
        assert_json_error(&native, 400, "batch_exceeds_burst", "native batch");
        assert_eq!(native.body["error"]["limit"]["name"], "burst");
        let authzen = server
            .post(
                "/access/v1/evaluations",
                &key,
                json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
                       "evaluations": vec![authzen_item.clone(); 6]}),
            )
            .await;
        assert_json_error(&authzen, 400, "batch_exceeds_burst", "AuthZEN batch");
    }
    // A batch the burst can hold is decided.
    let fits = server
        .post(
            "/v1/authorize/batch",
            &key,
            json!({"items": vec![item.clone(); 5]}),
        )
        .await;
    assert_eq!(fits.status, 200, "{}", fits.body);
    assert_eq!(fits.body["results"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_form_and_authzen_agree_on_empty_or_missing_subjects() {
    let server = TestServer::start().await;
    let (_, _, key) = server.tenant("acme").await;
    let full = |subject: Value| {
        let mut body = json!({"action": {"name": "read"}, "resource": {"type": "docs", "id": "1"}});
        if !subject.is_null() {
            body["subject"] = subject;
        }
        body
    };
    let cases = [
        (
            "/v1/authorize",
            json!({"agent": "", "action": "read", "resource": "docs:1"}),
        ),
        (
            "/v1/authorize",
            json!({"agent": "bot", "action": "", "resource": "docs:1"}),
        ),
        (
            "/v1/authorize",
            json!({"action": "read", "resource": "docs:1"}),
        ),
        ("/v1/authorize", full(json!({"type": "agent", "id": ""}))),
        ("/v1/authorize", full(Value::Null)),
        (
            "/access/v1/evaluation",
            full(json!({"type": "agent", "id": ""})),
        ),
        (
            "/access/v1/evaluation",
            full(json!({"type": "", "id": "bot"})),
        ),
        ("/access/v1/evaluation", full(Value::Null)),
    ];
    for (path, body) in cases {
        let reply = server.post(path, &key, body.clone()).await;
        assert_json_error(&reply, 400, "invalid_input", &format!("{path} {body}"));
    }
    let batch = server
        .post(
            "/v1/authorize/batch",
            &key,
            json!({"items": [{"agent": "", "action": "read", "resource": "docs:1"}]}),
        )
        .await;
    assert_json_error(&batch, 400, "invalid_input", "native batch item");
    // A subject that is merely unknown is still a question: a 200 deny.
    let unknown = server
        .post(
            "/v1/authorize",
            &key,
            json!({"agent": "nobody", "action": "read", "resource": "docs:1"}),
        )
        .await;
    assert_eq!(
        (unknown.status, &unknown.body["decision"]),
        (200, &json!(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_would_break_the_tenant_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let host_max_module = ward::sandbox::SandboxConfig::default().max_module_bytes as u64;
    let bad = [
        (
            json!({"max_module_bytes": host_max_module + 1}),
            "max_module_bytes",
        ),
        (json!({"max_module_bytes": 0}), "max_module_bytes"),
        (
            json!({"sandbox": {"max_instances": 0}}),
            "sandbox.max_instances",
        ),
        (
            json!({"sandbox": {"memory_bytes": 1}}),
            "sandbox.memory_bytes",
        ),
        (json!({"sandbox": {"max_tables": 0}}), "sandbox.max_tables"),
        (
            json!({"sandbox": {"max_table_elements": 0}}),
            "sandbox.max_table_elements",
        ),
        (
            json!({"sandbox": {"hostcall_bytes": 0}}),
            "sandbox.hostcall_bytes",
        ),
        (json!({"sandbox": {"fuel": 1}}), "sandbox.fuel"),
        (json!({"audit_retention_days": 0}), "audit_retention_days"),
        (json!({"burst": 0}), "burst"),
        (
            json!({"default_policy": "no-such-policy"}),
            "default_policy",
        ),
    ];
    for (settings, field) in &bad {
        let reply = server
            .post(
                "/v1/tenants",
                OPERATOR,
                json!({"slug": "broken", "name": "B", "settings": settings}),
            )
            .await;
        assert_json_error(&reply, 400, "invalid_input", &format!("create {settings}"));
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{settings}: {message}");
    }
    assert_eq!(
        server.get("/v1/tenants/broken", OPERATOR).await.status,
        404,
        "nothing was created"
    );

    let (_, _, key) = server.tenant("acme").await;
    let before = server.get("/v1/tenants/acme", OPERATOR).await.body;
    for (settings, field) in &bad {
        let reply = server
            .call(
                "PATCH",
                "/v1/tenants/acme",
                Some(OPERATOR),
                None,
                Body::Json(json!({"settings": settings})),
            )
            .await;
        assert_json_error(&reply, 400, "invalid_input", &format!("patch {settings}"));
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{settings}: {message}");
    }
    assert_eq!(server.get("/v1/tenants/acme", OPERATOR).await.body, before);

    // At every floor at once, the builtin policy still decides.
    use ward_types::bounds;
    let floors = json!({
        "audit_retention_days": 1,
        "max_module_bytes": 1,
        "sandbox": {
            "memory_bytes": bounds::MIN_MEMORY_BYTES,
            "max_instances": bounds::MIN_INSTANCES,
            "max_tables": bounds::MIN_TABLES,
            "max_table_elements": bounds::MIN_TABLE_ELEMENTS,
            "hostcall_bytes": bounds::MIN_HOSTCALL_BYTES,
            "fuel": bounds::MIN_FUEL,
        }
    });
    let reply = server
        .call(
            "PATCH",
            "/v1/tenants/acme",
            Some(OPERATOR),
            None,
            Body::Json(json!({"settings": floors})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let grants: Vec<Value> = (0..50)
        .map(|i| json!({"resource": format!("docs-{i}:*"), "actions": ["read", "write", "export"]}))
        .chain([json!({"resource": "docs:*", "actions": ["read"]})])
        .collect();
    let agent = server
        .call(
            "PUT",
            "/v1/agents/reader",
            Some(OPERATOR),
            Some("acme"),
            Body::Json(json!({"type": "ai_agent", "permissions": grants})),
        )
        .await;
    assert_eq!(agent.status, 201, "{}", agent.body);
    let decision = server
        .post(
            "/v1/authorize",
            &key,
            json!({"agent": "reader", "action": "read", "resource": "docs:1"}),
        )
        .await;
    assert_eq!(decision.status, 200);
    assert_eq!(decision.body["decision"], true, "{}", decision.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_must_name_a_policy_the_tenant_sees() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    let set_default = |policy: &'static str| {
        let server = &server;
        async move {
            let patch = json!({"settings": {"default_policy": policy}});
            server
                .call(
                    "PATCH",
                    "/v1/tenants/acme",
                    Some(OPERATOR),
                    None,
                    Body::Json(patch),
                )
                .await
        }
    };
    let reply = set_default("mine").await;
    assert_json_error(&reply, 400, "invalid_input", "a policy that does not exist");
    // A global one (the builtin) and the tenant's own are accepted.
    let reply = set_default("permissions").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        server
            .upload("/v1/policies/mine", &admin, guest("permissions"))
            .await
            .status,
        201
    );
    let reply = set_default("mine").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["settings"]["default_policy"], "mine");
    // A new tenant can only name a global one.
    let reply = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "other", "name": "O", "settings": {"default_policy": "mine"}}),
        )
        .await;
    assert_json_error(&reply, 400, "invalid_input", "another tenant's policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_routes_answer_a_wrong_content_type_with_400() {
    let server = TestServer::start().await;
    let (_, _, key) = server.tenant("acme").await;
    let body = br#"{"subject": {"type": "agent", "id": "a"}, "action": {"name": "read"}, "resource": {"type": "docs", "id": "1"}}"#;
    for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let mut request = server
                .client
                .post(format!("{}{path}", server.base))
                .bearer_auth(&key)
                .body(body.to_vec());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let reply = request.send().await.unwrap();
            assert_eq!(reply.status(), 400, "{path} {content_type:?}");
            let body: Value = reply.json().await.unwrap();
            assert!(body["error"]["code"].is_string(), "{body}");
        }
        // An empty body, and malformed JSON, are 400 too.
        for raw in [&b""[..], b"{"] {
            let reply = server
                .call(
                    "POST",
                    path,
                    Some(&key),
                    None,
                    Body::Raw("application/json", raw.to_vec()),
                )
                .await;
            assert_eq!(reply.status, 400, "{path} {raw:?}: {}", reply.body);
        }
    }
    // The native routes keep 415 for a body that is not JSON.
    let reply = server
        .client
        .post(format!("{}/v1/authorize", server.base))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 415);
}
