//! JSON nesting is bounded at every door.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nesting_is_bounded_at_every_door() {
    let server = TestServer::start().await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let agent = json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
    assert_eq!(
        server.put("/v1/agents/bot", &admin, agent).await.status,
        201
    );

    // The body of finding 1: 127 levels, accepted before, unreadable after.
    let finding = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let refused = server
        .call("PUT", "/v1/data/x", Some(&admin), None, raw(finding))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.code(), "too_deep");

    // Each door: the deepest body allowed is taken, one level more is not.
    let context = |levels: usize| nested_object(levels);
    type Make = Box<dyn Fn(usize) -> Value>;
    let doors: Vec<(&str, &str, &str, Make)> = vec![
        ("PUT", "/v1/data/doc", "admin", Box::new(nested_object)),
        (
            "PUT",
            "/v1/agents/deep",
            "admin",
            Box::new(|levels| json!({"type": "ai_agent", "attributes": nested_object(levels - 1)})),
        ),
        (
            "POST",
            "/v1/authorize",
            "authorize",
            Box::new(
                move |levels| json!({"agent": "bot", "action": "read", "resource": "doc:1", "context": context(levels - 1)}),
            ),
        ),
        (
            "POST",
            "/v1/authorize/batch",
            "authorize",
            Box::new(|levels| {
                json!({"items": [{"agent": "bot", "action": "read", "resource": "doc:1",
                                  "context": nested_object(levels - 3)}]})
            }),
        ),
        (
            "POST",
            "/access/v1/evaluation",
            "authorize",
            Box::new(|levels| {
                json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
                       "resource": {"type": "doc", "id": "1"}, "context": nested_object(levels - 1)})
            }),
        ),
        (
            "POST",
            "/access/v1/evaluations",
            "authorize",
            Box::new(|levels| {
                json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
                       "evaluations": [{"resource": {"type": "doc", "id": "1"},
                                        "context": nested_object(levels - 3)}]})
            }),
        ),
    ];
    for (method, path, role, body) in doors {
        let token = if role == "admin" { &admin } else { &authorize };
        let deepest = body(MAX_DEPTH);
        assert_eq!(ward::nesting::value_depth(&deepest), MAX_DEPTH, "{path}");
        let taken = server
            .call(method, path, Some(token), None, Body::Json(deepest))
            .await;
        assert!(
            taken.status < 300,
            "{method} {path} at the limit: {} {}",
            taken.status,
            taken.body
        );
        let too_deep = server
            .call(
                method,
                path,
                Some(token),
                None,
                Body::Json(body(MAX_DEPTH + 1)),
            )
            .await;
        assert_eq!(too_deep.status, 400, "{method} {path}: {}", too_deep.body);
        assert_eq!(too_deep.code(), "too_deep", "{method} {path}");
    }

    // Policy config and tenant settings are bodies like any other.
    let config = server
        .call(
            "PUT",
            "/v1/global/policies/permissions/config",
            Some(OPERATOR),
            None,
            Body::Json(nested_object(MAX_DEPTH + 1)),
        )
        .await;
    assert_eq!(config.code(), "too_deep", "{}", config.body);
    let tenant = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "deep", "name": "d", "settings": {"x": nested_object(MAX_DEPTH - 1)}}),
        )
        .await;
    assert_eq!(tenant.code(), "too_deep", "{}", tenant.body);

    // What was taken reads back, and the log with the deepest contexts too.
    let doc = server.get("/v1/data/doc", &admin).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["value"], nested_object(MAX_DEPTH));
    let log = server.get("/v1/audit?kind=decision", &admin).await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(log.body["entries"].as_array().unwrap().len(), 4);
}
