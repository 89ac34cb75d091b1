//! Tenants, objects, keys, global routes and operator access over HTTP.

use super::*;

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
