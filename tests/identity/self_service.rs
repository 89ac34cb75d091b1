//! Self-service users create, own and delete their tenants.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_self_service_issuer_create_own_and_delete_their_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let (people, partner) = (Key::new("people"), Key::new("partner"));
    let mut toml = String::new();
    for (key, extra) in [
        (&people, "self_service = true\nself_service_max_tenants = 2"),
        (&partner, ""),
    ] {
        let path = dir.path().join(format!("{}.json", key.kid));
        std::fs::write(&path, json!({"keys": [key.jwk()]}).to_string()).unwrap();
        toml.push_str(&format!(
            "[[auth.jwt]]\nissuer = \"https://{}.test\"\njwks_file = {:?}\naudience = [\"ward\"]\nalgorithms = [\"HS256\"]\n{extra}\n\n",
            key.kid,
            path.display().to_string()
        ));
    }
    let server = TestServer::start_with(&toml).await;
    let (_, acme_admin, _) = server.tenant("acme").await;
    let user = |sub: &str| people.sign(claims("https://people.test", json!({"sub": sub})));
    let (alice, bob) = (user("alice"), user("bob"));

    // Who may create: a self-service user, never an API key or another
    // issuer's token; a user sets only what a tenant adjusts itself.
    let create = |token: String, body: Value| {
        let server = &server;
        async move { server.post("/v1/tenants", &token, body).await }
    };
    let new_team = json!({"slug": "team-x", "name": "Team X", "kind": "personal"});
    assert_eq!(
        create(acme_admin.clone(), new_team.clone()).await.status,
        403
    );
    let partner_token = partner.sign(claims("https://partner.test", json!({"tenant": "acme"})));
    assert_eq!(create(partner_token, new_team.clone()).await.status, 403);
    let quota = create(
        alice.clone(),
        json!({"slug": "team-x", "name": "X", "settings": {"max_agents": 1000000}}),
    )
    .await;
    assert_eq!(
        (quota.status, quota.code()),
        (403, "setting_not_adjustable")
    );
    assert!(
        quota.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_agents")
    );
    let created = create(alice.clone(), new_team).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["kind"], "organization");
    assert_eq!(
        created.body["owner"],
        json!({"issuer": "https://people.test", "subject": "alice"})
    );

    // The owner acts in it as its admin; another user of the issuer does not.
    let in_team = |token: &str, method: &'static str, path: &'static str, body: Body| {
        let (server, token) = (&server, token.to_string());
        async move {
            server
                .call(method, path, Some(&token), Some("team-x"), body)
                .await
        }
    };
    let agent = json!({"type": "ai_agent"});
    assert_eq!(
        in_team(&alice, "PUT", "/v1/agents/bot", Body::Json(agent.clone()))
            .await
            .status,
        201
    );
    assert_eq!(
        in_team(&bob, "PUT", "/v1/agents/bot", Body::Json(agent))
            .await
            .status,
        403
    );
    let key = in_team(
        &alice,
        "POST",
        "/v1/keys",
        Body::Json(json!({"name": "ci", "role": "admin"})),
    )
    .await;
    assert_eq!(key.status, 201);
    let team_key = key.body["secret"].as_str().unwrap().to_string();

    // PATCH /v1/tenant: what a tenant adjusts, and not the operator's fields.
    let patched = in_team(
        &alice,
        "PATCH",
        "/v1/tenant",
        Body::Json(json!({"settings": {"audit_retention_days": 30}})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["settings"]["audit_retention_days"], 30);
    for field in [
        json!({"max_agents": 5}),
        json!({"sandbox": {"memory_bytes": 1 << 30}}),
        json!({"rate_limit_per_sec": 9}),
    ] {
        let refused = server
            .call(
                "PATCH",
                "/v1/tenant",
                Some(&team_key),
                None,
                Body::Json(json!({"settings": field})),
            )
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (403, "setting_not_adjustable"),
            "{field}"
        );
    }

    // GET /v1/me: a tenant switcher's data, for users and keys alike.
    let me = server.get("/v1/me", &alice).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["actor"], "jwt:alice");
    assert_eq!(me.body["tenants"][0]["slug"], "team-x");
    assert_eq!(me.body["tenants"][0]["roles"], json!(["owner", "admin"]));
    assert_eq!(server.get("/v1/me", &bob).await.body["tenants"], json!([]));
    let by_key = server.get("/v1/me", &acme_admin).await;
    assert_eq!(by_key.body["tenants"][0]["slug"], "acme");
    assert_eq!(by_key.body["tenants"][0]["roles"], json!(["admin"]));
    assert_eq!(server.get("/v1/me", OPERATOR).await.body["operator"], true);

    // Only the owner (or the operator) deletes it, with the same cascade.
    let by_bob = server
        .call("DELETE", "/v1/tenants/team-x", Some(&bob), None, Body::None)
        .await;
    assert_eq!(by_bob.status, 403);
    let by_alice = server
        .call(
            "DELETE",
            "/v1/tenants/team-x",
            Some(&alice),
            None,
            Body::None,
        )
        .await;
    assert_eq!(by_alice.status, 204, "{}", by_alice.body);
    assert_eq!(server.get("/v1/tenant", &team_key).await.status, 401);
    assert_eq!(server.get("/v1/tenants/team-x", OPERATOR).await.status, 404);

    // One user owns a bounded number of tenants.
    for slug in ["team-y", "team-z"] {
        let made = create(alice.clone(), json!({"slug": slug, "name": slug})).await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let over = create(alice.clone(), json!({"slug": "team-w", "name": "W"})).await;
    assert_eq!((over.status, over.code()), (429, "quota_exceeded"));
    assert_eq!(
        over.body["error"]["limit"],
        json!({"name": "self_service_max_tenants", "value": 2}),
        "{}",
        over.body
    );
    assert_eq!(
        create(bob.clone(), json!({"slug": "team-w", "name": "W"}))
            .await
            .status,
        201
    );
}
