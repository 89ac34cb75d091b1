//! `GET /v1/agents` and `/v1/global/agents`: filters, cursor paging, and
//! the plain list older clients get without paging.

use super::*;

/// The names in a list of agents.
fn names(agents: &Value) -> Vec<String> {
    agents
        .as_array()
        .unwrap_or_else(|| panic!("not a list of agents: {agents}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `path` (which has a query) `limit` agents at a time,
/// following `next_cursor` to the end.
async fn pages(server: &TestServer, path: &str, token: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}&limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = server.get(&url, token).await;
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        let listed = names(&page.body["agents"]);
        assert!(listed.len() <= limit, "{url}: {listed:?}");
        pages.push(listed);
        match page.body.get("next_cursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_string()),
            None => break,
        }
        assert!(pages.len() <= 100, "paging never ends");
    }
    pages
}

/// `agent-00`..`agent-{n-1}`: every third disabled, even ones of type
/// `service`, the others `user`.
async fn put_agents(server: &TestServer, token: &str, n: usize) {
    for i in 0..n {
        let kind = if i % 2 == 0 { "service" } else { "user" };
        let status = if i % 3 == 0 { "disabled" } else { "active" };
        let put = server
            .put(
                &format!("/v1/agents/agent-{i:02}"),
                token,
                json!({"type": kind, "status": status}),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.body);
    }
}

fn expected(n: usize, keep: impl Fn(usize) -> bool) -> Vec<String> {
    (0..n)
        .filter(|i| keep(*i))
        .map(|i| format!("agent-{i:02}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_filtered_by_status_and_type() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    put_agents(&server, &admin, 12).await;

    // Without limit or cursor: the plain list, as before, filtered.
    let all = server.get("/v1/agents", &admin).await;
    assert_eq!(names(&all.body), expected(12, |_| true));
    let active = server.get("/v1/agents?status=active", &admin).await;
    assert_eq!(names(&active.body), expected(12, |i| i % 3 != 0));
    assert!(
        active
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "active"),
        "{}",
        active.body
    );
    let disabled = server.get("/v1/agents?status=disabled", &admin).await;
    assert_eq!(names(&disabled.body), expected(12, |i| i % 3 == 0));
    let services = server.get("/v1/agents?type=service", &admin).await;
    assert_eq!(names(&services.body), expected(12, |i| i % 2 == 0));
    let both = server
        .get("/v1/agents?type=user&status=disabled", &admin)
        .await;
    assert_eq!(names(&both.body), ["agent-03", "agent-09"]);
    // Exact match only.
    let prefix = server.get("/v1/agents?type=serv", &admin).await;
    assert_eq!(prefix.status, 200);
    assert!(names(&prefix.body).is_empty());

    // Paged, the same filters.
    let paged = pages(&server, "/v1/agents?status=active&type=service", &admin, 2).await;
    assert_eq!(paged.concat(), expected(12, |i| i % 3 != 0 && i % 2 == 0));
    assert_eq!(paged.len(), 2, "{paged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_agents_in_three_pages_of_ten() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    put_agents(&server, &admin, 25).await;

    let paged = pages(&server, "/v1/agents?", &admin, 10).await;
    let sizes: Vec<usize> = paged.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(
        paged.concat(),
        expected(25, |_| true),
        "sorted, none missed, none twice"
    );

    // A page ending exactly at the end says it is the last.
    let whole = server.get("/v1/agents?limit=25", &admin).await;
    assert_eq!(names(&whole.body["agents"]).len(), 25);
    assert!(whole.body.get("next_cursor").is_none(), "{}", whole.body);

    // A cursor alone pages by the default size (100): the rest.
    let first = server.get("/v1/agents?limit=20", &admin).await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = server
        .get(&format!("/v1/agents?cursor={cursor}"), &admin)
        .await;
    assert_eq!(names(&rest.body["agents"]), expected(25, |i| i >= 20));
    assert!(rest.body.get("next_cursor").is_none());

    // An agent deleted between pages does not shift the next one.
    let first = server.get("/v1/agents?limit=10", &admin).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let deleted = server
        .call(
            "DELETE",
            "/v1/agents/agent-09",
            Some(&admin),
            None,
            Body::None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    let second = server
        .get(&format!("/v1/agents?limit=10&cursor={cursor}"), &admin)
        .await;
    assert_eq!(names(&second.body["agents"]), expected(20, |i| i >= 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_global_agents_are_listed_once() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    for (name, kind) in [
        ("g-auditor", "service"),
        ("shared", "service"),
        ("z-global", "user"),
    ] {
        let put = server
            .put(
                &format!("/v1/global/agents/{name}"),
                OPERATOR,
                json!({"type": kind}),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.body);
    }
    for name in ["a-own", "shared", "m-own"] {
        let put = server
            .put(
                &format!("/v1/agents/{name}"),
                &admin,
                json!({"type": "user"}),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.body);
    }

    // The tenant's `shared` shadows the global one, in the plain list and
    // across pages.
    let merged = ["a-own", "g-auditor", "m-own", "shared", "z-global"];
    let all = server.get("/v1/agents", &admin).await;
    assert_eq!(names(&all.body), merged);
    let shared = &all.body.as_array().unwrap()[3];
    assert_eq!(
        (&shared["scope"], &shared["type"]),
        (&json!("tenant"), &json!("user"))
    );
    for limit in [1, 2, 3] {
        let paged = pages(&server, "/v1/agents?", &admin, limit).await;
        assert_eq!(paged.concat(), merged, "limit {limit}");
    }

    // Filters see the tenant's agent, not the one it shadows.
    let services = server.get("/v1/agents?type=service", &admin).await;
    assert_eq!(names(&services.body), ["g-auditor"]);
    let users = pages(&server, "/v1/agents?type=user", &admin, 2).await;
    assert_eq!(users.concat(), ["a-own", "m-own", "shared", "z-global"]);

    // An operator inside the tenant sees the same.
    let as_operator = server
        .call(
            "GET",
            "/v1/agents?type=service&limit=5",
            Some(OPERATOR),
            Some("acme"),
            Body::None,
        )
        .await;
    assert_eq!(names(&as_operator.body["agents"]), ["g-auditor"]);

    // The global scope: only its own agents, with the same query.
    let global = server.get("/v1/global/agents", OPERATOR).await;
    assert_eq!(names(&global.body), ["g-auditor", "shared", "z-global"]);
    let global_services = pages(&server, "/v1/global/agents?type=service", OPERATOR, 1).await;
    assert_eq!(global_services, [vec!["g-auditor"], vec!["shared"]]);
    let refused = server
        .get("/v1/global/agents?status=paused", OPERATOR)
        .await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_input"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listing_queries_are_refused() {
    let server = TestServer::start().await;
    let (_, admin, _) = server.tenant("acme").await;
    put_agents(&server, &admin, 3).await;
    let page = server.get("/v1/agents?limit=1", &admin).await;
    let good = page.body["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(
        server
            .get(&format!("/v1/agents?cursor={good}"), &admin)
            .await
            .status,
        200
    );

    let long_type = "t".repeat(65);
    let upper = good.to_uppercase();
    let cases: Vec<(String, &str)> = vec![
        ("status=paused".into(), "status"),
        ("status=Active".into(), "status"),
        ("status=".into(), "status"),
        ("limit=0".into(), "limit"),
        ("limit=1001".into(), "limit"),
        ("limit=ten".into(), "limit"),
        ("limit=-1".into(), "limit"),
        ("type=".into(), "type"),
        (format!("type={long_type}"), "type"),
        ("cursor=bogus".into(), "cursor"),
        ("cursor=".into(), "cursor"),
        // Hex of a name with a space: no agent could have ended a page.
        ("cursor=6120620a".into(), "cursor"),
        // The audit log's cursors are not agent cursors.
        ("cursor=01J9ZQ3V8Y6X4W2T0R8P6N4M2K".into(), "cursor"),
        (format!("cursor={upper}"), "cursor"),
        ("status=active&status=disabled".into(), "status"),
        ("limit=5&limit=6".into(), "limit"),
    ];
    for (query, named) in cases {
        for route in ["/v1/agents", "/v1/global/agents"] {
            let token = if route == "/v1/agents" {
                &admin
            } else {
                OPERATOR
            };
            let reply = server.get(&format!("{route}?{query}"), token).await;
            assert_eq!(
                (reply.status, reply.code()),
                (400, "invalid_input"),
                "{route}?{query}: {}",
                reply.body
            );
            let message = reply.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(named), "{route}?{query}: {message}");
        }
    }
    // 64 characters is a type that can exist.
    let ok = server
        .get(&format!("/v1/agents?type={}", "t".repeat(64)), &admin)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_listing_parameters() {
    let server = TestServer::start().await;
    let doc = server.get("/openapi.json", OPERATOR).await.body;
    for path in ["/v1/agents", "/v1/global/agents"] {
        let params: Vec<&str> = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"))
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["status", "type", "limit", "cursor"] {
            assert!(params.contains(&name), "{path}: {params:?}");
        }
    }
}
