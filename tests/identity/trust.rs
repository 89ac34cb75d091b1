//! An issuer's trust is bounded by configuration; provisioning only after every
//! check.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_issuers_trust_is_bounded_by_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (server, consumer, enterprise, ops) = bounded_server(dir.path()).await;
    server.tenant("acme").await;
    server.tenant("globex").await;
    let enterprise_token = |extra: Value| enterprise.sign(claims("https://enterprise.test", extra));

    // The operator role counts only from the issuer trusted with it.
    let fake_operator = enterprise_token(json!({"roles": ["ward:operator"], "tenant": "acme"}));
    let listed = server.get("/v1/tenants", &fake_operator).await;
    assert_eq!((listed.status, listed.code()), (403, "forbidden"));
    let cross = server
        .call(
            "GET",
            "/v1/agents",
            Some(&fake_operator),
            Some("globex"),
            Body::None,
        )
        .await;
    assert_eq!(cross.status, 403);
    let real_operator = ops.sign(claims(
        "https://ops.test",
        json!({"roles": ["ward:operator"]}),
    ));
    assert_eq!(server.get("/v1/tenants", &real_operator).await.status, 200);

    // An issuer names only its tenants.
    assert_eq!(
        status(&server, &enterprise_token(json!({"tenant": "acme"})))
            .await
            .0,
        200
    );
    assert_eq!(
        status(&server, &enterprise_token(json!({"tenant": "globex"}))).await,
        (403, "tenant_not_allowed".into())
    );
    let consumer_token = |tenant: &str| {
        consumer.sign(claims(
            "https://consumer.test",
            json!({"tenant": tenant, "sub": tenant}),
        ))
    };
    assert_eq!(
        status(&server, &consumer_token("acme")).await,
        (403, "tenant_not_allowed".into())
    );
    assert_eq!(server.get("/v1/tenants/acme", OPERATOR).await.status, 200);

    // Within its bounds, the consumer realm provisions personal tenants.
    assert_eq!(status(&server, &consumer_token("u-bob")).await.0, 200);
    let bob = server.get("/v1/tenants/u-bob", OPERATOR).await;
    assert_eq!(bob.body["kind"], "personal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_provisioned_only_for_a_token_that_passed_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let (server, consumer, _, _) = bounded_server(dir.path()).await;
    server.tenant("u-other").await;
    let token = |extra: Value| consumer.sign(claims("https://consumer.test", extra));
    let refused = [
        (
            "no Ward role",
            token(json!({"tenant": "u-a", "roles": ["viewer"]})),
            None,
        ),
        (
            "three tenants",
            token(json!({"tenant": ["u-b", "u-c", "u-d"]})),
            None,
        ),
        (
            "header mismatch",
            token(json!({"tenant": "u-e"})),
            Some("u-other"),
        ),
        ("no iat", token(json!({"tenant": "u-f", "iat": null})), None),
    ];
    for (what, token, header) in refused {
        let reply = server
            .call("GET", "/v1/tenant", Some(&token), header, Body::None)
            .await;
        assert!(
            reply.status == 401 || reply.status == 403 || reply.status == 400,
            "{what}: {}",
            reply.body
        );
    }
    let tenants = server.get("/v1/tenants", OPERATOR).await;
    let slugs: Vec<&str> = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec!["u-other"], "nothing was provisioned");

    // Twenty first requests at once: one tenant.
    let server = Arc::new(server);
    let first = token(json!({"tenant": "u-many"}));
    let mut calls = Vec::new();
    for _ in 0..20 {
        let (server, first) = (Arc::clone(&server), first.clone());
        calls.push(tokio::spawn(async move { status(&server, &first).await.0 }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let tenants = server.get("/v1/tenants", OPERATOR).await;
    let many = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["slug"] == "u-many")
        .count();
    assert_eq!(many, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_is_never_resurrected_and_a_reused_slug_inherits_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, consumer, _, _) = bounded_server(dir.path()).await;
    let old = consumer.sign(claims("https://consumer.test", json!({"tenant": "u-zed"})));
    assert_eq!(status(&server, &old).await.0, 200);
    let deleted = server
        .call(
            "DELETE",
            "/v1/tenants/u-zed",
            Some(OPERATOR),
            None,
            Body::None,
        )
        .await;
    assert_eq!(deleted.status, 204);

    assert_eq!(status(&server, &old).await.0, 401, "not re-created");
    assert_eq!(server.get("/v1/tenants/u-zed", OPERATOR).await.status, 404);

    let reused = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "u-zed", "name": "new owner"}),
        )
        .await;
    assert_eq!(reused.status, 201);
    assert_eq!(
        status(&server, &old).await.0,
        401,
        "an old token of the slug"
    );
    // Issued after the delete: the new tenant's own.
    let fresh = consumer.sign(claims(
        "https://consumer.test",
        json!({"tenant": "u-zed", "iat": now() + 1}),
    ));
    let own = server.get("/v1/tenant", &fresh).await;
    assert_eq!(
        (own.status, own.body["id"].clone()),
        (200, reused.body["id"].clone())
    );
}
