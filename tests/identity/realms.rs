//! Per-realm keys: rotation, outages, OIDC discovery.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_realms_key_never_signs_for_another_realm() {
    let idp = Idp::start().await;
    let (acme_key, globex_key) = (Key::new("acme-1"), Key::new("globex-1"));
    idp.set("tenant-acme", &[&acme_key]);
    idp.set("tenant-globex", &[&globex_key]);
    let base = idp.base();
    let server = TestServer::start_with(&format!(
        r#"
[[auth.jwt]]
issuer_pattern = "{base}/realms/tenant-{{slug}}"
jwks_uri = "{base}/realms/tenant-{{slug}}/certs"
audience = ["ward"]
algorithms = ["HS256"]
"#
    ))
    .await;
    server.tenant("acme").await;
    server.tenant("globex").await;
    let acme = |key: &Key| key.sign(claims(&format!("{base}/realms/tenant-acme"), json!({})));
    let globex = |key: &Key| key.sign(claims(&format!("{base}/realms/tenant-globex"), json!({})));

    assert_eq!(status(&server, &acme(&acme_key)).await.0, 200);
    assert_eq!(status(&server, &globex(&globex_key)).await.0, 200);
    // Signed with acme's key (its kid too), naming globex's realm.
    assert_eq!(
        status(&server, &globex(&acme_key)).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        status(&server, &acme(&globex_key)).await,
        (401, "invalid_token".into())
    );
    // A token without a kid is checked against its own realm's keys only.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = None;
    let kidless = jsonwebtoken::encode(
        &header,
        &claims(&format!("{base}/realms/tenant-globex"), json!({})),
        &EncodingKey::from_secret(&acme_key.secret),
    )
    .unwrap();
    assert_eq!(status(&server, &kidless).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_an_idp_outage_neither_stops_nor_opens_ward() {
    let idp = Idp::start().await;
    let base = idp.base();
    let iss = format!("{base}/realms/corp");
    // Down from the start: Ward starts anyway and refuses the issuer's
    // tokens until its keys can be read.
    idp.down.store(true, Ordering::SeqCst);
    let server = TestServer::start_with(&format!(
        r#"
[[auth.jwt]]
issuer = "{iss}"
jwks_uri = "{base}/realms/corp/certs"
audience = ["ward"]
algorithms = ["HS256"]
jwks_min_interval_secs = 0
"#
    ))
    .await;
    let (first, second, third) = (Key::new("k1"), Key::new("k2"), Key::new("k3"));
    idp.set("corp", &[&first]);
    server.tenant("acme").await;
    let token = |key: &Key| key.sign(claims(&iss, json!({"tenant": "acme"})));
    assert_eq!(
        status(&server, &token(&first)).await.0,
        401,
        "keys not known yet"
    );

    idp.down.store(false, Ordering::SeqCst);
    assert_eq!(status(&server, &token(&first)).await.0, 200);

    // Rotation: the IdP publishes k2 and retires k1. A token with the new
    // kid makes Ward read the set again.
    idp.set("corp", &[&second]);
    let fetches = idp.fetches.load(Ordering::SeqCst);
    assert_eq!(status(&server, &token(&second)).await.0, 200);
    assert!(
        idp.fetches.load(Ordering::SeqCst) > fetches,
        "refetched on an unknown kid"
    );
    assert_eq!(
        status(&server, &token(&first)).await.0,
        401,
        "a retired key"
    );

    // An outage keeps the keys already read (stale-if-error), and a key
    // never seen stays refused.
    idp.down.store(true, Ordering::SeqCst);
    idp.set("corp", &[&second, &third]);
    assert_eq!(status(&server, &token(&second)).await.0, 200);
    assert_eq!(status(&server, &token(&third)).await.0, 401);
    idp.down.store(false, Ordering::SeqCst);
    assert_eq!(status(&server, &token(&third)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_discovery_finds_each_realms_keys() {
    let idp = Idp::start().await;
    let base = idp.base();
    let (acme_key, other_key) = (Key::new("a"), Key::new("o"));
    idp.set("acme", &[&acme_key]);
    idp.set("other", &[&other_key]);
    let server = TestServer::start_with(&format!(
        r#"
[[auth.jwt]]
issuer_pattern = "{base}/realms/{{slug}}"
discovery = true
audience = ["ward"]
algorithms = ["HS256"]
"#
    ))
    .await;
    server.tenant("acme").await;
    let iss = format!("{base}/realms/acme");
    assert_eq!(
        status(&server, &acme_key.sign(claims(&iss, json!({}))))
            .await
            .0,
        200
    );
    assert_eq!(
        status(&server, &other_key.sign(claims(&iss, json!({}))))
            .await
            .0,
        401
    );
}
