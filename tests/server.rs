//! A real Ward listening on a loopback port for the HTTP tests.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use ward::config::Config;
use ward::server::Ward;

pub const OPERATOR: &str = "test-operator-token";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// Starts with extra TOML appended to the test defaults.
    pub async fn start_with(extra_toml: &str) -> Self {
        Self::start_with_clock(extra_toml, Arc::new(ward::gates::SystemClock)).await
    }

    /// [`TestServer::start_with`], its limits going by `clock`.
    pub async fn start_with_clock(extra_toml: &str, clock: Arc<dyn ward::gates::Clock>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[sandbox]\nmax_concurrent_instances = 64\n{extra_toml}",
            dir.path().display().to_string()
        );
        let config = Config::from_toml(&toml).unwrap();
        let ward =
            tokio::task::block_in_place(|| Ward::open_with_clock(&config, Some(OPERATOR), clock))
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(ward.serve(listener, async {
            let _ = rx.await;
        }));
        TestServer {
            base,
            client: reqwest::Client::new(),
            _dir: dir,
            shutdown: Some(tx),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        tenant: Option<&str>,
        body: Body,
    ) -> Reply {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = tenant {
            request = request.header("x-tenant-id", tenant);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, bytes) => {
                request.header("content-type", content_type).body(bytes)
            }
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        assert_ne!(status, 500, "a 500 is never an answer to a client: {body}");
        Reply {
            status,
            body,
            headers,
        }
    }

    /// Sends only the headers of a request declaring a `length`-byte body,
    /// and reads the answer: how a server refuses an oversized body without
    /// making the client send it.
    pub async fn declare_body(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        length: usize,
    ) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None, Body::None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), None, Body::Json(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(token), None, Body::Json(body))
            .await
    }

    /// A tenant with an admin key and an authorize-only key.
    pub async fn tenant(&self, slug: &str) -> (String, String, String) {
        let created = self
            .post("/v1/tenants", OPERATOR, json!({"slug": slug, "name": slug}))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_string();
        let key = |role: &'static str| async move {
            let reply = self
                .post(
                    &format!("/v1/tenants/{slug}/keys"),
                    OPERATOR,
                    json!({"name": role, "role": role}),
                )
                .await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.body["secret"].as_str().unwrap().to_string()
        };
        let admin = key("admin").await;
        let authorize = key("authorize").await;
        (id, admin, authorize)
    }

    pub async fn upload(&self, path: &str, token: &str, wasm: Vec<u8>) -> Reply {
        self.call(
            "PUT",
            path,
            Some(token),
            None,
            Body::Raw("application/wasm", wasm),
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
