//! Several Ward replicas on one shared PostgreSQL store: the store trait on
//! both stores, replicas that agree, race, crash and count together, and
//! the move from an embedded installation.
//!
//! One throwaway PostgreSQL serves the whole test binary (started on first
//! use from the installed server binaries); each test takes a database of
//! its own.

mod migrate;
mod replicas;
mod store;

use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::postgres::Postgres;
use crate::support::{KillOnDrop, spawn_ward};

/// The server every test of this module shares. No PostgreSQL means a
/// failure naming the package to install, never a skip.
pub fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| Postgres::start().unwrap_or_else(|err| panic!("{err}")))
}

/// A new, empty database; its URL.
pub fn database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "ward_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    server()
        .database(&name)
        .unwrap_or_else(|err| panic!("{err}"))
}

/// The operator token every replica of a test cluster is given.
pub const OPERATOR: &str = "ward_op_cluster_tests_0123456789abcdef0123456789abcdef";

/// One `ward serve` process of a cluster.
pub struct Replica {
    pub child: KillOnDrop,
    pub base: String,
    pub dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Replica {
    /// Starts `ward serve` on `url` with its data in `dir` and `extra`
    /// config lines.
    fn start(dir: tempfile::TempDir, url: &str, extra: &str) -> Replica {
        let config = dir.path().join("ward.toml");
        let mut file = std::fs::File::create(&config).unwrap();
        write!(
            file,
            "[store]\nurl = \"{url}\"\nfollow_interval_ms = 100\nmin_revision_wait_ms = 500\nusage_sync_ms = 200\n{extra}\n"
        )
        .unwrap();
        let data = dir.path().join("data");
        let (child, base, _) = spawn_ward(&data, Some(&config), Some(OPERATOR));
        Replica {
            child,
            base,
            dir,
            config,
        }
    }

    /// Starts the process again on the same data directory and store.
    pub fn restart(&mut self) {
        self.child.kill();
        let (child, base, _) = spawn_ward(
            &self.dir.path().join("data"),
            Some(&self.config),
            Some(OPERATOR),
        );
        self.child = child;
        self.base = base;
    }
}

/// `n` replicas on one new database.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub http: reqwest::Client,
    /// Replicas time one another (heartbeats, leases): no test that
    /// loads every core for long runs beside them.
    _cores: std::sync::RwLockWriteGuard<'static, ()>,
}

impl Cluster {
    pub fn start(n: usize, extra: &str) -> Cluster {
        let cores = crate::support::cores_alone();
        let url = database();
        let replicas = (0..n)
            .map(|_| Replica::start(tempfile::tempdir().unwrap(), &url, extra))
            .collect();
        Cluster {
            _cores: cores,
            replicas,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn base(&self, replica: usize) -> &str {
        &self.replicas[replica].base
    }

    /// One call to `replica`: status, revision header and JSON body (or
    /// `Null`).
    pub async fn call(
        &self,
        replica: usize,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Answer {
        self.call_with(replica, method, path, token, body, &[])
            .await
    }

    /// [`Cluster::call`] answered once `replica` has applied `revision`.
    pub async fn call_at(
        &self,
        replica: usize,
        revision: u64,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Answer {
        let headers = [("ward-min-revision", revision.to_string())];
        self.call_with(replica, method, path, token, body, &headers)
            .await
    }

    pub async fn call_with(
        &self,
        replica: usize,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base(replica)))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let revision = response
            .headers()
            .get("ward-revision")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            revision,
            body,
        }
    }

    /// Makes tenant `slug` through replica 0 and an admin key for it.
    pub async fn tenant(&self, slug: &str, settings: Value) -> String {
        let made = self
            .call(
                0,
                Method::POST,
                "/v1/tenants",
                OPERATOR,
                Some(&serde_json::json!({"slug": slug, "name": slug, "settings": settings})),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        self.key(0, slug).await
    }

    /// A new admin key of tenant `slug`, made through `replica`, once every
    /// replica knows it.
    pub async fn key(&self, replica: usize, slug: &str) -> String {
        let key = self
            .call(
                replica,
                Method::POST,
                &format!("/v1/tenants/{slug}/keys"),
                OPERATOR,
                Some(&serde_json::json!({"name": "tests", "role": "admin"})),
            )
            .await;
        assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
        let secret = key.body["secret"].as_str().unwrap().to_string();
        // Known to every replica before the test goes on.
        let revision = key.revision.unwrap();
        for other in 0..self.replicas.len() {
            let known = self
                .call_at(other, revision, Method::GET, "/v1/usage", &secret, None)
                .await;
            assert_eq!(known.status, StatusCode::OK, "{}", known.body);
        }
        secret
    }
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub revision: Option<u64>,
    pub body: Value,
}

/// The `ward` binary's output for `args`, which must succeed.
pub fn ward(args: &[&str], dir: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(dir)
        .env_remove("WARD_STORE_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ward {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
