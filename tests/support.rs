//! Shared helpers: built guests, requests, and a small sandbox.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ward::audit::AuditLog;
use ward::decision::{DecisionError, DecisionOutcome, Schedule};
use ward::gates::{Clock, Permit, SystemClock};
use ward::registry::Registry;
use ward::sandbox::{
    Action, Agent, Entity, LoadedPolicy, Permission, Request, Sandbox, SandboxConfig, Scope, Tenant,
};
use ward::server::Parts;
use ward::store::{SledStore, Store};

/// Bytes of a policy or test guest of `plugins/`, built on first use.
pub fn guest(name: &str) -> Vec<u8> {
    let path = guest_path(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

pub fn guest_path(name: &str) -> PathBuf {
    crate::plugins_build::guests().join(format!("{name}.wasm"))
}

/// A sandbox with a small pool, suitable for running many tests at once
/// (each test thread may be compiling).
pub fn small_config() -> SandboxConfig {
    SandboxConfig {
        max_concurrent_compiles: 16,
        max_concurrent_instances: 64,
        ..SandboxConfig::default()
    }
}

/// One sandbox shared by the tests that need no special host settings.
pub fn shared_sandbox() -> &'static Arc<Sandbox> {
    static SANDBOX: OnceLock<(Arc<Sandbox>, Arc<LoadedPolicy>)> = OnceLock::new();
    let (sandbox, _builtin) = SANDBOX.get_or_init(|| {
        let sandbox = Arc::new(Sandbox::new(small_config()).expect("sandbox starts"));
        // Held for the whole run so that every registry shares this one
        // compilation of the builtin policy instead of compiling its own.
        let builtin = sandbox
            .load(ward::plugins::PERMISSIONS_WASM, usize::MAX)
            .expect("builtin loads");
        (sandbox, builtin)
    });
    sandbox
}

/// Ward's parts without a server: the registry (which it derefs to), and
/// decisions made on the test's thread.
pub struct Local(pub Parts);

impl std::ops::Deref for Local {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.0.registry
    }
}

impl Local {
    /// Opens the sled store in `dir` with `sandbox` and `clock`.
    pub fn open(dir: &std::path::Path, sandbox: &Arc<Sandbox>, clock: Arc<dyn Clock>) -> Local {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
        let audit = Arc::new(AuditLog::new(Arc::clone(&store)).unwrap());
        let schedule = Schedule {
            inline: true,
            refusal_delay: std::time::Duration::ZERO,
        };
        Local(Parts::assemble(store, Arc::clone(sandbox), audit, clock, schedule, 1).unwrap())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.0.audit
    }

    /// One decision, without admission.
    pub fn authorize(
        &self,
        tenant: &str,
        request: &ward_types::AuthorizeRequest,
        actor: &str,
    ) -> Result<DecisionOutcome, DecisionError> {
        self.0.decider.decide_now(tenant, actor, request)
    }

    pub fn admit(
        &self,
        tenant: &str,
        decisions: usize,
        actor: &str,
    ) -> Result<Permit, DecisionError> {
        self.0.decider.admit_now(tenant, decisions, actor)
    }

    pub fn usage(&self, tenant: &str) -> Result<ward_types::Usage, DecisionError> {
        self.0.decider.usage(tenant)
    }

    pub fn persist_usage(&self) {
        self.0.gates.persist().unwrap();
    }
}

/// A registry on a fresh sled store in a temporary directory.
pub fn registry() -> (tempfile::TempDir, Local) {
    let dir = tempfile::tempdir().unwrap();
    let registry = open_registry(dir.path());
    (dir, registry)
}

/// A registry on the sled store in `dir`.
pub fn open_registry(dir: &std::path::Path) -> Local {
    Local::open(dir, shared_sandbox(), Arc::new(SystemClock))
}

pub fn load(name: &str) -> Arc<LoadedPolicy> {
    shared_sandbox()
        .load(&guest(name), usize::MAX)
        .unwrap_or_else(|err| panic!("{name} loads: {err}"))
}

pub fn tenant(slug: &str) -> Tenant {
    Tenant {
        id: format!("tnt_{}", slug.to_uppercase()),
        slug: slug.to_string(),
    }
}

pub fn entity(kind: &str, id: &str) -> Entity {
    Entity {
        type_: kind.to_string(),
        id: id.to_string(),
        properties: String::from("{}"),
    }
}

pub fn agent(name: &str, permissions: &[(&str, &[&str])]) -> Agent {
    Agent {
        name: name.to_string(),
        scope: Scope::Tenant,
        type_: String::from("ai_agent"),
        attributes: String::from("{}"),
        permissions: permissions
            .iter()
            .map(|(resource, actions)| Permission {
                resource: resource.to_string(),
                actions: actions.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    }
}

/// A request from agent `subject` to do `action` on `resource` (`type:id`),
/// with the policy config `config` (JSON text).
pub fn request(agent: Option<Agent>, action: &str, resource: &str, config: &str) -> Request {
    let (kind, id) = resource.split_once(':').expect("resource is type:id");
    Request {
        tenant: tenant("acme"),
        subject: entity(
            "agent",
            agent.as_ref().map_or("nobody", |a| a.name.as_str()),
        ),
        agent,
        action: Action {
            name: action.to_string(),
            properties: String::from("{}"),
        },
        resource: entity(kind, id),
        context: String::from("{}"),
        config: config.to_string(),
    }
}

/// A request whose only interesting part is the policy config.
pub fn configured(config: &str) -> Request {
    request(None, "read", "doc:1", config)
}

/// A command that runs one `#[ignore]`d helper test of this test binary in
/// a child process (for restarts and crashes of a real second process).
pub fn child_test(name: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    command
}

/// A child process that is killed when dropped, so a failing test never
/// leaves a server running.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Kills the process now and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Asks the process to stop as an operator does (SIGTERM) and waits:
    /// it must exit cleanly.
    pub fn stop(&mut self) {
        let pid = self.0.id().to_string();
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(signalled.success());
        assert!(self.0.wait().unwrap().success(), "a clean exit on SIGTERM");
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the real `ward serve` on a free loopback port with its data in
/// `data_dir`, as a new user would (plus an optional config file and
/// operator token). Returns it with its base URL and the operator token it
/// printed, if it printed one.
pub fn spawn_ward(
    data_dir: &std::path::Path,
    config: Option<&std::path::Path>,
    operator_token: Option<&str>,
) -> (KillOnDrop, String, Option<String>) {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ward"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    match operator_token {
        Some(token) => command.env("WARD_ADMIN_TOKEN", token),
        None => command.env_remove("WARD_ADMIN_TOKEN"),
    };
    let mut child = KillOnDrop(command.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut token = None;
    let base = loop {
        let line = lines.next().expect("ward exited early").unwrap();
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("ward_op_")) {
            token = Some(t.to_string());
        }
        if line.contains("ward is serving") {
            let addr = line
                .split("listen=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            break format!("http://{addr}");
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base, token)
}

/// Makes tenant `tenant` (the body of `POST /v1/tenants`) on the server at
/// `base` with the operator token, and an admin key for it; the key.
pub async fn provision(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    tenant: serde_json::Value,
) -> String {
    let slug = tenant["slug"].as_str().unwrap().to_string();
    let made = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(operator)
        .json(&tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let key: serde_json::Value = http
        .post(format!("{base}/v1/tenants/{slug}/keys"))
        .bearer_auth(operator)
        .json(&serde_json::json!({"name": "k", "role": "admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    key["secret"].as_str().unwrap().to_string()
}

/// Tests whose replicas time one another (the cluster tests) run alone
/// among the tests that load every core for minutes (compiling 12–18 MB
/// JavaScript and Python components); those may run beside each other.
static CORES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For a test that needs the cores undisturbed.
pub fn cores_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    CORES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For a test that loads every core for a long time.
pub fn cores_busy() -> std::sync::RwLockReadGuard<'static, ()> {
    CORES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
