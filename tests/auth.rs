//! Who may call what: every route against every kind of credential, and
//! JWTs signed here with real keys.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::server::{Body, OPERATOR, TestServer};

/// Who a route is for.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Needs {
    Operator,
    Admin,
    AnyTenantRole,
}

/// Every authenticated route, with a body that gets past authentication.
fn routes() -> Vec<(&'static str, &'static str, Needs, Option<Value>)> {
    use Needs::*;
    vec![
        (
            "POST",
            "/v1/tenants",
            Operator,
            Some(json!({"slug": "new-one", "name": "n"})),
        ),
        ("GET", "/v1/tenants", Operator, None),
        ("GET", "/v1/tenants/acme", Operator, None),
        ("PATCH", "/v1/tenants/acme", Operator, Some(json!({}))),
        ("POST", "/v1/tenants/acme/suspend", Operator, None),
        ("POST", "/v1/tenants/acme/activate", Operator, None),
        (
            "POST",
            "/v1/tenants/acme/keys",
            Operator,
            Some(json!({"name": "k", "role": "admin"})),
        ),
        ("DELETE", "/v1/tenants/no-such", Operator, None),
        ("GET", "/v1/tenant", AnyTenantRole, None),
        (
            "PUT",
            "/v1/agents/bot",
            Admin,
            Some(json!({"type": "service"})),
        ),
        ("GET", "/v1/agents", Admin, None),
        ("GET", "/v1/agents/bot", Admin, None),
        ("DELETE", "/v1/agents/nobody", Admin, None),
        ("PUT", "/v1/policies/p", Admin, None),
        ("GET", "/v1/policies", Admin, None),
        ("GET", "/v1/policies/permissions", Admin, None),
        (
            "POST",
            "/v1/policies/nope/activate",
            Admin,
            Some(json!({"version": 1})),
        ),
        ("PUT", "/v1/policies/nope/config", Admin, Some(json!({}))),
        ("DELETE", "/v1/policies/nope", Admin, None),
        ("PUT", "/v1/data/d", Admin, Some(json!(1))),
        ("GET", "/v1/data/d", Admin, None),
        ("DELETE", "/v1/data/nope", Admin, None),
        (
            "POST",
            "/v1/keys",
            Admin,
            Some(json!({"name": "k", "role": "authorize"})),
        ),
        ("GET", "/v1/keys", Admin, None),
        ("DELETE", "/v1/keys/key_nope", Admin, None),
        ("GET", "/v1/audit", Admin, None),
        (
            "PUT",
            "/v1/global/agents/g",
            Operator,
            Some(json!({"type": "service"})),
        ),
        ("GET", "/v1/global/agents", Operator, None),
        ("GET", "/v1/global/agents/g", Operator, None),
        ("DELETE", "/v1/global/agents/nope", Operator, None),
        ("PUT", "/v1/global/policies/gp", Operator, None),
        ("GET", "/v1/global/policies", Operator, None),
        ("GET", "/v1/global/policies/permissions", Operator, None),
        (
            "POST",
            "/v1/global/policies/nope/activate",
            Operator,
            Some(json!({"version": 1})),
        ),
        (
            "PUT",
            "/v1/global/policies/nope/config",
            Operator,
            Some(json!({})),
        ),
        ("DELETE", "/v1/global/policies/nope", Operator, None),
        ("PUT", "/v1/global/data/gd", Operator, Some(json!(1))),
        ("GET", "/v1/global/data/gd", Operator, None),
        ("DELETE", "/v1/global/data/nope", Operator, None),
        ("GET", "/v1/global/audit", Operator, None),
        (
            "POST",
            "/v1/authorize",
            AnyTenantRole,
            Some(json!({"agent": "a", "action": "b", "resource": "c:d"})),
        ),
        (
            "POST",
            "/v1/authorize/batch",
            AnyTenantRole,
            Some(json!({"items": [{"agent": "a", "action": "b", "resource": "c:d"}]})),
        ),
        (
            "POST",
            "/access/v1/evaluation",
            AnyTenantRole,
            Some(
                json!({"subject": {"type": "agent", "id": "a"}, "action": {"name": "b"}, "resource": {"type": "c", "id": "d"}}),
            ),
        ),
        (
            "POST",
            "/access/v1/evaluations",
            AnyTenantRole,
            Some(
                json!({"subject": {"type": "agent", "id": "a"}, "action": {"name": "b"}, "resource": {"type": "c", "id": "d"}}),
            ),
        ),
    ]
}

fn body_for(method: &str, path: &str, body: &Option<Value>) -> Body {
    match body {
        Some(value) => Body::Json(value.clone()),
        // An empty component: authentication is decided before the module
        // is looked at, and a small body keeps a refused upload from being
        // cut off mid-write when the server answers early.
        None if method == "PUT" && path.contains("/policies/") => {
            Body::Raw("application/wasm", b"\0asm\x0d\0\x01\0".to_vec())
        }
        None => Body::None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const SECRET: &str = "a-shared-secret-for-tests-only-32b";

struct RsaKeys {
    private_pem: String,
    public_pem: String,
    n: String,
    e: String,
}

fn rsa_keys() -> &'static RsaKeys {
    static KEYS: OnceLock<RsaKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let public = private.to_public_key();
        RsaKeys {
            private_pem: private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }
    })
}

fn hs256(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    let key = EncodingKey::from_rsa_pem(rsa_keys().private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(extra: Value) -> Value {
    let mut base = json!({"iss": "https://idp.test", "aud": "ward", "sub": "alice", "iat": now(), "exp": now() + 600, "roles": ["admin"], "tenant": "acme"});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// A server trusting an HS256 issuer, an RS256 issuer (PEM), a JWKS issuer,
/// and a realm-per-tenant issuer that provisions tenants.
async fn jwt_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("rs.pem");
    std::fs::write(&pem, &rsa_keys().public_pem).unwrap();
    let jwks = dir.path().join("keys.json");
    let set = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": rsa_keys().n, "e": rsa_keys().e}]});
    std::fs::write(&jwks, set.to_string()).unwrap();
    // Each realm has its own key file; only `newco`'s exists.
    std::fs::create_dir(dir.path().join("realms")).unwrap();
    let realm_key =
        json!({"keys": [{"kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(SECRET)}]});
    std::fs::write(dir.path().join("realms/newco.json"), realm_key.to_string()).unwrap();
    let realms = format!("{}/realms/{{slug}}.json", dir.path().display());
    let toml = format!(
        r#"
[[auth.jwt]]
issuer = "https://idp.test"
audience = ["ward"]
algorithms = ["HS256"]
secret = "{SECRET}"
operator = true

[[auth.jwt]]
issuer = "https://rsa.test"
audience = ["ward"]
algorithms = ["RS256"]
public_key_pem = {pem:?}

[[auth.jwt]]
issuer = "https://jwks.test"
audience = ["ward"]
algorithms = ["RS256"]
jwks_file = {jwks:?}

[[auth.jwt]]
issuer_pattern = "https://realms.test/tenant-{{slug}}"
audience = ["ward"]
algorithms = ["HS256"]
jwks_file = {realms:?}
auto_provision = true
"#
    );
    let server = TestServer::start_with(&toml).await;
    std::mem::forget(dir);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_over_every_route() {
    let server = jwt_server().await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let (_, foreign_admin, _) = server.tenant("globex").await;
    let expired = hs256(claims(json!({"exp": now() - 3600})));
    let wrong_aud = hs256(claims(json!({"aud": "someone-else"})));
    let wrong_iss = hs256(claims(json!({"iss": "https://evil.test"})));
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
    let alg_none = format!("{header_none}.{payload}.");
    // HS256 "signed" with the RS256 issuer's public key as the secret.
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({"iss": "https://rsa.test"})),
        &EncodingKey::from_secret(rsa_keys().public_pem.as_bytes()),
    )
    .unwrap();

    for (method, path, needs, body) in routes() {
        let call = |token: Option<String>, tenant: Option<&'static str>| {
            let body = body_for(method, path, &body);
            let server = &server;
            async move {
                server
                    .call(method, path, token.as_deref(), tenant, body)
                    .await
            }
        };
        let what = format!("{method} {path}");
        let reply = call(None, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (401, "unauthenticated"),
            "{what}: no token"
        );
        assert!(reply.headers.contains_key("www-authenticate"));
        for (name, token, code) in [
            ("garbage", "garbage-token".to_string(), "invalid_token"),
            (
                "unknown key",
                "wk_01abc_deadbeef".to_string(),
                "invalid_token",
            ),
            ("expired JWT", expired.clone(), "token_expired"),
            ("wrong aud", wrong_aud.clone(), "invalid_token"),
            ("wrong iss", wrong_iss.clone(), "invalid_token"),
            ("alg none", alg_none.clone(), "invalid_token"),
            ("HS/RS confusion", confused.clone(), "invalid_token"),
        ] {
            let reply = call(Some(token), None).await;
            assert_eq!((reply.status, reply.code()), (401, code), "{what}: {name}");
        }

        let as_authorize = call(Some(authorize.clone()), None).await;
        let as_admin = call(Some(admin.clone()), None).await;
        let as_operator = call(Some(OPERATOR.to_string()), None).await;
        let as_operator_in_tenant = call(Some(OPERATOR.to_string()), Some("acme")).await;
        let mismatch = call(Some(admin.clone()), Some("globex")).await;
        assert_eq!(
            (mismatch.status, mismatch.code()),
            (403, "tenant_mismatch"),
            "{what}: foreign X-Tenant-ID"
        );
        let matching = call(Some(foreign_admin.clone()), Some("globex")).await;
        assert!(
            matching.status != 401 && matching.code() != "tenant_mismatch",
            "{what}: own X-Tenant-ID"
        );
        let unknown_tenant = call(Some(OPERATOR.to_string()), Some("no-such-tenant")).await;
        assert_eq!(
            (unknown_tenant.status, unknown_tenant.code()),
            (404, "not_found"),
            "{what}"
        );

        let passed = |reply: &crate::server::Reply| {
            reply.status < 400
                || !matches!(
                    reply.code(),
                    "forbidden" | "tenant_required" | "unauthenticated" | "invalid_token"
                )
        };
        match needs {
            Needs::Operator => {
                assert_eq!(
                    (as_admin.status, as_admin.code()),
                    (403, "forbidden"),
                    "{what}: tenant key on operator route"
                );
                assert_eq!(
                    (as_authorize.status, as_authorize.code()),
                    (403, "forbidden"),
                    "{what}"
                );
                assert!(
                    passed(&as_operator),
                    "{what}: operator: {}",
                    as_operator.body
                );
            }
            Needs::Admin => {
                assert_eq!(
                    (as_authorize.status, as_authorize.code()),
                    (403, "forbidden"),
                    "{what}: authorize key on admin route"
                );
                assert!(passed(&as_admin), "{what}: admin: {}", as_admin.body);
                assert_eq!(
                    (as_operator.status, as_operator.code()),
                    (400, "tenant_required"),
                    "{what}: operator without X-Tenant-ID"
                );
                assert!(
                    passed(&as_operator_in_tenant),
                    "{what}: operator with X-Tenant-ID: {}",
                    as_operator_in_tenant.body
                );
            }
            Needs::AnyTenantRole => {
                assert!(
                    passed(&as_authorize),
                    "{what}: authorize key: {}",
                    as_authorize.body
                );
                assert!(passed(&as_admin), "{what}: admin key");
                assert_eq!(
                    (as_operator.status, as_operator.code()),
                    (400, "tenant_required"),
                    "{what}: operator without X-Tenant-ID"
                );
                assert!(
                    passed(&as_operator_in_tenant),
                    "{what}: operator with X-Tenant-ID"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_name_their_tenant_and_role() {
    let server = jwt_server().await;
    server.tenant("acme").await;
    server.tenant("globex").await;

    let admin = hs256(claims(json!({})));
    assert_eq!(server.get("/v1/tenant", &admin).await.body["slug"], "acme");
    let agent = server
        .put("/v1/agents/jwt-bot", &admin, json!({"type": "service"}))
        .await;
    assert_eq!(agent.status, 201);
    let log = server.get("/v1/audit?kind=agent_put", &admin).await;
    assert_eq!(log.body["entries"][0]["actor"], "jwt:alice");

    let reader = hs256(claims(json!({"roles": ["authorize"]})));
    assert_eq!(server.get("/v1/agents", &reader).await.code(), "forbidden");
    let decided = server
        .post(
            "/v1/authorize",
            &reader,
            json!({"agent": "jwt-bot", "action": "a", "resource": "b:c"}),
        )
        .await;
    assert_eq!(decided.status, 200);
    let no_role = hs256(claims(json!({"roles": ["viewer"]})));
    assert_eq!(server.get("/v1/tenant", &no_role).await.code(), "forbidden");

    // Several memberships: X-Tenant-ID chooses, and must be one of them.
    let member = hs256(claims(
        json!({"roles": [], "tenant": [{"tenant": "acme", "roles": ["admin"]}, {"tenant": "globex", "roles": ["authorize"]}]}),
    ));
    assert_eq!(
        server.get("/v1/tenant", &member).await.code(),
        "tenant_required"
    );
    let in_acme = server
        .call("GET", "/v1/agents", Some(&member), Some("acme"), Body::None)
        .await;
    assert_eq!(in_acme.status, 200);
    let in_globex = server
        .call(
            "GET",
            "/v1/agents",
            Some(&member),
            Some("globex"),
            Body::None,
        )
        .await;
    assert_eq!(in_globex.code(), "forbidden", "only authorize in globex");
    server.tenant("initech").await;
    let elsewhere = server
        .call(
            "GET",
            "/v1/tenant",
            Some(&member),
            Some("initech"),
            Body::None,
        )
        .await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (403, "tenant_mismatch")
    );

    // Operators by role.
    let operator = hs256(claims(json!({"roles": ["ward:operator"], "tenant": null})));
    assert_eq!(server.get("/v1/tenants", &operator).await.status, 200);

    // RS256 by PEM, and by JWKS with a kid.
    let rs = rs256(claims(json!({"iss": "https://rsa.test"})), None);
    assert_eq!(server.get("/v1/tenant", &rs).await.body["slug"], "acme");
    let jwks = rs256(claims(json!({"iss": "https://jwks.test"})), Some("k1"));
    assert_eq!(server.get("/v1/tenant", &jwks).await.body["slug"], "acme");
    let not_yet = hs256(claims(json!({"nbf": now() + 3600})));
    assert_eq!(server.get("/v1/tenant", &not_yet).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realm_per_tenant_issuer_provisions_tenants_on_first_sight() {
    let server = jwt_server().await;
    let token = hs256(claims(
        json!({"iss": "https://realms.test/tenant-newco", "tenant": "ignored"}),
    ));
    let own = server.get("/v1/tenant", &token).await;
    assert_eq!(
        (own.status, own.body["slug"].clone()),
        (200, json!("newco"))
    );
    assert_eq!(server.get("/v1/tenants/newco", OPERATOR).await.status, 200);
    let bad_realm = hs256(claims(
        json!({"iss": "https://realms.test/tenant-Bad_Slug"}),
    ));
    assert_eq!(server.get("/v1/tenant", &bad_realm).await.status, 401);
}
