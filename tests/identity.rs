//! Identity you can trust: each issuer's keys sign for that issuer only,
//! its trust is bounded by configuration, and tenants are provisioned only
//! for tokens that passed every check, never from a token older than a
//! delete. Tokens are signed here; keys are served by a real JWKS server on
//! loopback that rotates them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::{Value, json};

use crate::server::{Body, OPERATOR, TestServer};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 key made for one test: its id and secret.
#[derive(Clone)]
struct Key {
    kid: String,
    secret: Vec<u8>,
}

impl Key {
    fn new(kid: &str) -> Key {
        let mut secret = vec![0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Key {
            kid: kid.to_string(),
            secret,
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "oct", "alg": "HS256", "kid": self.kid, "k": URL_SAFE_NO_PAD.encode(&self.secret)})
    }

    fn sign(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&self.secret)).unwrap()
    }
}

/// Claims of a tenant admin token from `iss`, with `extra` merged in.
fn claims(iss: &str, extra: Value) -> Value {
    let mut base = json!({"iss": iss, "aud": "ward", "sub": "alice", "iat": now(),
                          "exp": now() + 600, "roles": ["admin"]});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// A JWKS server on loopback: one key set per realm, served at
/// `/realms/{realm}/certs`, with an OIDC discovery document beside it.
#[derive(Clone, Default)]
struct Idp {
    sets: Arc<Mutex<HashMap<String, Vec<Key>>>>,
    down: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
    base: Arc<Mutex<String>>,
}

impl Idp {
    async fn start() -> Idp {
        let idp = Idp::default();
        let app = axum::Router::new()
            .route("/realms/{realm}/certs", axum::routing::get(certs))
            .route(
                "/realms/{realm}/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .with_state(idp.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *idp.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        idp
    }

    fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }

    fn set(&self, realm: &str, keys: &[&Key]) {
        self.sets.lock().unwrap().insert(
            realm.to_string(),
            keys.iter().map(|k| (*k).clone()).collect(),
        );
    }
}

async fn certs(State(idp): State<Idp>, Path(realm): Path<String>) -> axum::response::Response {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    if idp.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys: Vec<Value> = idp
        .sets
        .lock()
        .unwrap()
        .get(&realm)
        .map(|keys| keys.iter().map(Key::jwk).collect())
        .unwrap_or_default();
    axum::Json(json!({"keys": keys})).into_response()
}

async fn discovery(State(idp): State<Idp>, Path(realm): Path<String>) -> axum::response::Response {
    if idp.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let base = idp.base();
    axum::Json(json!({"issuer": format!("{base}/realms/{realm}"),
                      "jwks_uri": format!("{base}/realms/{realm}/certs")}))
    .into_response()
}

async fn status(server: &TestServer, token: &str) -> (u16, String) {
    let reply = server.get("/v1/tenant", token).await;
    (reply.status, reply.code().to_string())
}

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

/// A shared consumer realm, an enterprise realm and an operators' realm,
/// with file keys.
async fn bounded_server(dir: &std::path::Path) -> (TestServer, Key, Key, Key) {
    let keys = [
        Key::new("consumer"),
        Key::new("enterprise"),
        Key::new("ops"),
    ];
    let mut toml = String::new();
    for (key, extra) in keys.iter().zip([
        "tenants = [\"u-*\"]\nauto_provision = true\nprovision_kind = \"personal\"",
        "tenants = [\"acme\"]",
        "operator = true",
    ]) {
        let path = dir.join(format!("{}.json", key.kid));
        std::fs::write(&path, json!({"keys": [key.jwk()]}).to_string()).unwrap();
        toml.push_str(&format!(
            "[[auth.jwt]]\nissuer = \"https://{}.test\"\njwks_file = {:?}\naudience = [\"ward\"]\nalgorithms = [\"HS256\"]\n{extra}\n\n",
            key.kid,
            path.display().to_string()
        ));
    }
    let server = TestServer::start_with(&toml).await;
    let [consumer, enterprise, ops] = keys;
    (server, consumer, enterprise, ops)
}

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
    assert_eq!((over.status, over.code()), (403, "quota_exceeded"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_verify_against_their_issuers_jwks() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;

    let ec_key = || {
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "ec-1",
                         "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                         "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())});
        let der = secret.to_pkcs8_der().unwrap();
        (EncodingKey::from_ec_der(der.as_bytes()), jwk)
    };
    let (signing, jwk) = ec_key();
    let (stranger, _) = ec_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ec.json");
    std::fs::write(&path, json!({"keys": [jwk]}).to_string()).unwrap();
    let server = TestServer::start_with(&format!(
        "[[auth.jwt]]\nissuer = \"https://ec.test\"\njwks_file = {:?}\naudience = [\"ward\"]\nalgorithms = [\"ES256\"]\n",
        path.display().to_string()
    ))
    .await;
    server.tenant("acme").await;
    let sign = |key: &EncodingKey, alg: Algorithm| {
        let mut header = Header::new(alg);
        header.kid = Some(String::from("ec-1"));
        jsonwebtoken::encode(
            &header,
            &claims("https://ec.test", json!({"tenant": "acme"})),
            key,
        )
        .unwrap()
    };
    assert_eq!(
        status(&server, &sign(&signing, Algorithm::ES256)).await.0,
        200
    );
    assert_eq!(
        status(&server, &sign(&stranger, Algorithm::ES256)).await.0,
        401
    );
    // HS256 "signed" with the public key's JSON: refused by algorithm.
    let confused = EncodingKey::from_secret(jwk.to_string().as_bytes());
    assert_eq!(
        status(&server, &sign(&confused, Algorithm::HS256)).await.0,
        401
    );
}

/// Every issuer × tenant × role of the bounded server, for `GET /v1/tenant`
/// without a tenant header: the expected answer of each cell written out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_tenant_role_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let (server, consumer, enterprise, ops) = bounded_server(dir.path()).await;
    server.tenant("acme").await;
    server.tenant("globex").await;
    let issuers = [
        ("consumer", &consumer, "https://consumer.test"),
        ("enterprise", &enterprise, "https://enterprise.test"),
        ("ops", &ops, "https://ops.test"),
    ];
    // (issuer, tenant, role) → (status, code); "" for a 200.
    let expected: &[(&str, &str, &str, u16, &str)] = &[
        ("consumer", "acme", "admin", 403, "tenant_not_allowed"),
        ("consumer", "acme", "authorize", 403, "tenant_not_allowed"),
        ("consumer", "acme", "viewer", 403, "forbidden"),
        ("consumer", "acme", "ward:operator", 403, "forbidden"),
        ("consumer", "globex", "admin", 403, "tenant_not_allowed"),
        ("consumer", "globex", "authorize", 403, "tenant_not_allowed"),
        ("consumer", "globex", "viewer", 403, "forbidden"),
        ("consumer", "globex", "ward:operator", 403, "forbidden"),
        ("consumer", "u-bob", "admin", 200, ""),
        ("consumer", "u-bob", "authorize", 200, ""),
        ("consumer", "u-carol", "viewer", 403, "forbidden"),
        ("consumer", "u-dave", "ward:operator", 403, "forbidden"),
        ("enterprise", "acme", "admin", 200, ""),
        ("enterprise", "acme", "authorize", 200, ""),
        ("enterprise", "acme", "viewer", 403, "forbidden"),
        ("enterprise", "acme", "ward:operator", 403, "forbidden"),
        ("enterprise", "globex", "admin", 403, "tenant_not_allowed"),
        (
            "enterprise",
            "globex",
            "authorize",
            403,
            "tenant_not_allowed",
        ),
        ("enterprise", "globex", "viewer", 403, "forbidden"),
        ("enterprise", "globex", "ward:operator", 403, "forbidden"),
        ("enterprise", "u-erin", "admin", 403, "tenant_not_allowed"),
        (
            "enterprise",
            "u-erin",
            "authorize",
            403,
            "tenant_not_allowed",
        ),
        ("enterprise", "u-erin", "viewer", 403, "forbidden"),
        ("enterprise", "u-erin", "ward:operator", 403, "forbidden"),
        ("ops", "acme", "admin", 200, ""),
        ("ops", "acme", "authorize", 200, ""),
        ("ops", "acme", "viewer", 403, "forbidden"),
        ("ops", "acme", "ward:operator", 400, "tenant_required"),
        ("ops", "globex", "admin", 200, ""),
        ("ops", "globex", "authorize", 200, ""),
        ("ops", "globex", "viewer", 403, "forbidden"),
        ("ops", "globex", "ward:operator", 400, "tenant_required"),
        ("ops", "u-frank", "admin", 403, "forbidden"),
        ("ops", "u-frank", "authorize", 403, "forbidden"),
        ("ops", "u-frank", "viewer", 403, "forbidden"),
        ("ops", "u-frank", "ward:operator", 400, "tenant_required"),
    ];
    for (issuer, tenant, role, status_code, code) in expected {
        let (_, key, iss) = issuers.iter().find(|(name, _, _)| name == issuer).unwrap();
        let token = key.sign(claims(iss, json!({"tenant": tenant, "roles": [role]})));
        let reply = server.get("/v1/tenant", &token).await;
        let cell = format!("{issuer} × {tenant} × {role}");
        assert_eq!(reply.status, *status_code, "{cell}: {}", reply.body);
        if *status_code == 200 {
            assert_eq!(reply.body["slug"], *tenant, "{cell}");
        } else {
            assert_eq!(reply.code(), *code, "{cell}");
        }
    }
    // Only the consumer realm's admin and authorize tokens provisioned.
    let tenants = server.get("/v1/tenants", OPERATOR).await;
    let mut slugs: Vec<&str> = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    slugs.sort_unstable();
    assert_eq!(slugs, vec!["acme", "globex", "u-bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_read_again_on_an_unknown_kid() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Key::new("2025"), Key::new("2026"));
    let path = dir.path().join("keys.json");
    std::fs::write(&path, json!({"keys": [old.jwk()]}).to_string()).unwrap();
    let server = TestServer::start_with(&format!(
        "[[auth.jwt]]\nissuer = \"https://file.test\"\njwks_file = {:?}\naudience = [\"ward\"]\nalgorithms = [\"HS256\"]\njwks_min_interval_secs = 0\n",
        path.display().to_string()
    ))
    .await;
    server.tenant("acme").await;
    let token = |key: &Key| key.sign(claims("https://file.test", json!({"tenant": "acme"})));
    assert_eq!(status(&server, &token(&old)).await.0, 200);
    assert_eq!(
        status(&server, &token(&new)).await.0,
        401,
        "not published yet"
    );
    std::fs::write(&path, json!({"keys": [new.jwk()]}).to_string()).unwrap();
    assert_eq!(status(&server, &token(&new)).await.0, 200);
    assert_eq!(status(&server, &token(&old)).await.0, 401, "retired");
}
