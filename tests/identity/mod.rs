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

mod headers;
mod realms;
mod self_service;
mod tokens;
mod trust;

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
