//! Machine callers name their tenant and user in their own headers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_callers_name_their_tenant_and_user_in_their_own_headers() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new("m2m");
    let path = dir.path().join("m2m.json");
    std::fs::write(&path, json!({"keys": [key.jwk()]}).to_string()).unwrap();
    let server = TestServer::start_with(&format!(
        r#"
[auth]
operator_tenant_header = "X-Aegis-Tenant"

[[auth.jwt]]
issuer = "https://m2m.test"
jwks_file = {:?}
audience = ["ward"]
algorithms = ["HS256"]
tenant_header = "snc-tenant"
require_tenant_header = true
acting_user_header = "snc-userid"
"#,
        path.display().to_string()
    ))
    .await;
    server.tenant("acme").await;
    server.tenant("globex").await;
    server.tenant("initech").await;
    let token = key.sign(claims(
        "https://m2m.test",
        json!({"sub": "svc", "tenant": ["acme", "globex"]}),
    ));
    let call = |method: &'static str,
                path: &'static str,
                headers: Vec<(&'static str, &'static str)>,
                body: Option<Value>| {
        let (server, token) = (&server, token.clone());
        async move {
            let mut request = server
                .client
                .request(method.parse().unwrap(), format!("{}{path}", server.base))
                .bearer_auth(token);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let reply = request.send().await.unwrap();
            let status = reply.status().as_u16();
            (status, reply.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, body) = call("GET", "/v1/tenant", vec![], None).await;
    assert_eq!(status, 403, "the tenant header is required: {body}");
    let (status, _) = call("GET", "/v1/tenant", vec![("x-tenant-id", "acme")], None).await;
    assert_eq!(status, 403, "X-Tenant-ID is not this issuer's header");
    let (status, body) = call("GET", "/v1/tenant", vec![("snc-tenant", "globex")], None).await;
    assert_eq!((status, body["slug"].clone()), (200, json!("globex")));
    let (status, body) = call("GET", "/v1/tenant", vec![("snc-tenant", "initech")], None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("tenant_mismatch"))
    );

    // The acting user is recorded beside the actor, for management calls
    // and decisions alike.
    let acting = vec![("snc-tenant", "acme"), ("snc-userid", "bob@acme")];
    let agent = json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
    let (status, _) = call("PUT", "/v1/agents/bot", acting.clone(), Some(agent)).await;
    assert_eq!(status, 201);
    let decision = json!({"agent": "bot", "action": "read", "resource": "doc:1"});
    let (status, _) = call("POST", "/v1/authorize", acting.clone(), Some(decision)).await;
    assert_eq!(status, 200);
    let (status, log) = call(
        "GET",
        "/v1/audit?limit=10",
        vec![("snc-tenant", "acme")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let entries = log["entries"].as_array().unwrap();
    for kind in ["agent_put", "decision"] {
        let entry = entries.iter().find(|e| e["kind"] == kind).unwrap();
        assert_eq!(entry["actor"], "jwt:svc", "{kind}");
        assert_eq!(entry["on_behalf_of"], "bob@acme", "{kind}");
    }
    let long: &'static str = Box::leak("u".repeat(300).into_boxed_str());
    let (status, _) = call(
        "GET",
        "/v1/tenant",
        vec![("snc-tenant", "acme"), ("snc-userid", long)],
        None,
    )
    .await;
    assert_eq!(status, 400);

    // The operator's alias for X-Tenant-ID, audited the same way.
    let aliased = server
        .client
        .get(format!("{}/v1/agents", server.base))
        .bearer_auth(OPERATOR)
        .header("x-aegis-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(aliased.status(), 200);
    let both = server
        .client
        .get(format!("{}/v1/agents", server.base))
        .bearer_auth(OPERATOR)
        .header("x-aegis-tenant", "acme")
        .header("x-tenant-id", "globex")
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 403);
    let log = server
        .call(
            "GET",
            "/v1/audit?kind=admin_cross_tenant_access",
            Some(OPERATOR),
            Some("acme"),
            Body::None,
        )
        .await;
    let paths: Vec<&str> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["details"]["path"].as_str())
        .collect();
    assert!(paths.contains(&"/v1/agents"), "{paths:?}");

    // The API description names every one of these headers.
    let openapi = server
        .call("GET", "/openapi.json", None, None, Body::None)
        .await;
    let parameters: Vec<&str> = openapi.body["paths"]["/v1/agents"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "header")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for header in ["x-tenant-id", "x-aegis-tenant", "snc-tenant", "snc-userid"] {
        assert!(parameters.contains(&header), "{header} in {parameters:?}");
    }
}
