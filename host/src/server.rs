//! Putting Ward together from a [`Config`] and serving it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::audit::AuditLog;
use crate::auth::jwt::{IssuerError, JwtVerifier};
use crate::auth::{self, Authenticator};
use crate::config::{Config, ConfigError};
use crate::decision::{Decider, Evaluate, Sandboxed, Schedule};
use crate::evaluations::EvaluationPool;
use crate::gates::Gates;
use crate::registry::keys::ApiKeys;
use crate::registry::{Registry, RegistryError};
use crate::sandbox::{Sandbox, SandboxError};
use crate::store::{PostgresStore, SledStore, Store, StoreError};

/// Why Ward could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be made Ward's alone.
    #[error("cannot secure the data directory `{dir}`: {source}")]
    DataDir {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory cannot be used.
    #[error("cannot open the store in `{dir}`: {source}")]
    Store {
        /// The directory.
        dir: String,
        /// Why.
        source: StoreError,
    },
    /// The sandbox cannot start.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Loading the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A JWT issuer's keys cannot be loaded.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// Reading stored data (keys, the audit journal) failed.
    #[error(transparent)]
    Data(#[from] StoreError),
    /// The evaluation threads cannot be started.
    #[error("cannot start the evaluation threads: {0}")]
    Threads(std::io::Error),
}

/// How long requests in flight may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a stop waits for the audit writer to store what is queued.
pub const AUDIT_DRAIN: Duration = Duration::from_secs(10);

/// How often the server looks whether policies changed that need compiling
/// ahead of their decisions.
const PREPARE_INTERVAL: Duration = Duration::from_secs(1);

/// Ward's parts over one store, each made once and handed to those that
/// use it. [`Ward`] serves them; tools that decide without a server (the
/// policy case runner), benchmarks and tests use them directly.
pub struct Parts {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Every scope's audit log.
    pub audit: Arc<AuditLog>,
    /// Per-tenant admission state and counters.
    pub gates: Arc<Gates>,
    /// Every tenant's API keys.
    pub keys: Arc<ApiKeys>,
    /// Tenants and their objects.
    pub registry: Arc<Registry>,
    /// The evaluation threads.
    pub evaluations: Arc<EvaluationPool>,
    /// Decisions.
    pub decider: Arc<Decider>,
}

impl Parts {
    /// Loads everything from `store`: the registry and the keys, with
    /// admission going by `clock` and `threads` evaluation threads.
    pub fn assemble(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        audit: Arc<AuditLog>,
        clock: Arc<dyn crate::gates::Clock>,
        schedule: Schedule,
        threads: usize,
    ) -> Result<Self, StartError> {
        Self::assemble_with(store, sandbox, audit, clock, schedule, threads, None)
    }

    /// [`Parts::assemble`] with decisions evaluated by `evaluator` when
    /// given, instead of in the sandbox (which still checks uploads).
    pub fn assemble_with(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        audit: Arc<AuditLog>,
        clock: Arc<dyn crate::gates::Clock>,
        schedule: Schedule,
        threads: usize,
        evaluator: Option<Arc<dyn Evaluate>>,
    ) -> Result<Self, StartError> {
        let gates = Arc::new(Gates::new(Arc::clone(&store), clock));
        let keys = Arc::new(ApiKeys::new(Arc::clone(&store)));
        let registry = Arc::new(Registry::open(
            Arc::clone(&store),
            Arc::clone(&sandbox),
            Arc::clone(&audit),
            Arc::clone(&gates),
            Arc::clone(&keys),
        )?);
        let evaluations = Arc::new(EvaluationPool::start(threads).map_err(StartError::Threads)?);
        let evaluator =
            evaluator.unwrap_or_else(|| Arc::new(Sandboxed::new(Arc::clone(&registry), sandbox)));
        let decider = Arc::new(Decider::new(
            Arc::clone(&registry),
            evaluator,
            Arc::clone(&audit),
            Arc::clone(&gates),
            Arc::clone(&evaluations),
            schedule,
        ));
        Ok(Parts {
            store,
            audit,
            gates,
            keys,
            registry,
            evaluations,
            decider,
        })
    }

    /// [`Parts::assemble`] with the system clock, inline decisions and
    /// one evaluation thread.
    pub fn local(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        audit: Arc<AuditLog>,
    ) -> Result<Self, StartError> {
        let schedule = Schedule {
            inline: true,
            refusal_delay: Duration::ZERO,
        };
        Self::assemble(
            store,
            sandbox,
            audit,
            Arc::new(crate::gates::SystemClock),
            schedule,
            1,
        )
    }
}

/// Reloads the tenant part of the configuration: see
/// [`Ward::reload_tenants`].
#[derive(Clone)]
pub struct TenantReloader {
    registry: Arc<Registry>,
}

impl TenantReloader {
    /// Checks `config` and puts its plans and per-tenant overrides in
    /// force; returns what changed.
    pub fn reload(&self, config: &Config) -> Result<Vec<String>, StartError> {
        config.check()?;
        Ok(self.registry.set_catalog(config.catalog())?)
    }
}

/// A Ward instance, ready to serve.
pub struct Ward {
    state: AppState,
    prune_interval: Duration,
    store_section: crate::config::StoreSection,
    /// The operator token generated on this first start, to show once.
    pub generated_operator_token: Option<String>,
}

impl Ward {
    /// Opens the store under `config.data_dir`, loads everything and
    /// prepares authentication. `env_operator_token` is `WARD_ADMIN_TOKEN`.
    pub fn open(config: &Config, env_operator_token: Option<&str>) -> Result<Self, StartError> {
        Self::open_with_clock(
            config,
            env_operator_token,
            Arc::new(crate::gates::SystemClock),
        )
    }

    /// [`Ward::open`] with the clock that rate limits, monthly budgets and
    /// audit retention go by (a test's manual clock).
    pub fn open_with_clock(
        config: &Config,
        env_operator_token: Option<&str>,
        clock: Arc<dyn crate::gates::Clock>,
    ) -> Result<Self, StartError> {
        config.check()?;
        crate::datadir::secure(&config.data_dir).map_err(|source| StartError::DataDir {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
        let store = open_store(config)?;
        let replica =
            crate::datadir::replica_id(&config.data_dir).map_err(|source| StartError::DataDir {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        let sandbox = Arc::new(Sandbox::new(config.sandbox_config())?);
        let journal = config.data_dir.join("audit.journal");
        let audit = Arc::new(
            AuditLog::with_writer(Arc::clone(&store), config.audit.writer(), Some(&journal))?
                .keeping_access_entries_for(config.audit.min_retention_days),
        );
        let threads = config
            .http
            .evaluation_threads
            .unwrap_or_else(EvaluationPool::default_threads);
        let schedule = Schedule {
            inline: config.http.inline_decisions,
            refusal_delay: Duration::from_millis(config.http.refusal_delay_ms),
        };
        let parts = Parts::assemble(Arc::clone(&store), sandbox, audit, clock, schedule, threads)?;
        parts.registry.set_catalog(config.catalog())?;
        parts.gates.set_replica(&replica);
        parts.audit.writer().set_replica(&replica);
        let jwt = JwtVerifier::new(&config.auth.jwt)?;
        let (operator_hash, generated) = auth::operator_token(
            env_operator_token,
            config.admin_token_sha256.as_deref(),
            store.as_ref(),
        )?;
        let auth = Arc::new(
            Authenticator::new(
                operator_hash,
                Arc::clone(&parts.keys),
                jwt,
                Arc::clone(&parts.registry),
                Arc::clone(&parts.audit),
            )
            .with_operator_tenant_header(config.auth.operator_tenant_header.as_deref()),
        );
        Ok(Ward {
            state: AppState {
                registry: parts.registry,
                decider: parts.decider,
                audit: parts.audit,
                store: parts.store,
                gates: parts.gates,
                evaluations: parts.evaluations,
                auth,
                http: Arc::new(config.http.clone()),
                upload_limit: config.sandbox.max_module_bytes.saturating_add(1024),
                upload_deadline: Duration::from_millis(config.http.request_timeout_ms)
                    .saturating_add(crate::sandbox::compile_timeout(
                        Duration::from_millis(config.sandbox.compile_timeout_ms),
                        config.sandbox.max_module_bytes,
                    )),
                tenant_labels: config.metrics.tenant_labels,
                min_revision_wait: Duration::from_millis(config.store.min_revision_wait_ms),
            },
            prune_interval: Duration::from_secs(config.audit.prune_interval_secs.max(1)),
            store_section: config.store.clone(),
            generated_operator_token: generated,
        })
    }

    /// Background upkeep: monthly counts written every second (and, on a
    /// shared store, the other replicas' read every `usage_sync_ms`), audit
    /// entries past retention pruned every `prune_interval` by one replica
    /// of the cluster.
    fn start_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let (registry, gates) = (
            Arc::clone(&self.state.registry),
            Arc::clone(&self.state.gates),
        );
        let prune_every = self.prune_interval;
        let sync_every = Duration::from_millis(self.store_section.usage_sync_ms);
        let tick = sync_every.min(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut since_prune = Duration::ZERO;
            loop {
                tokio::time::sleep(tick).await;
                since_prune += tick;
                let prune = since_prune >= prune_every;
                if prune {
                    since_prune = Duration::ZERO;
                }
                let (registry, gates) = (Arc::clone(&registry), Arc::clone(&gates));
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(err) = gates.persist() {
                        tracing::warn!(%err, "could not persist usage counters");
                    }
                    if let Err(err) = gates.sync_cluster(sync_every.as_millis() as u64) {
                        tracing::warn!(%err, "could not read the other replicas' usage");
                    }
                    if prune {
                        let every_ms = prune_every.as_millis() as u64;
                        match registry.prune_audit_once(gates.replica(), every_ms) {
                            Ok(None | Some(0)) => {}
                            Ok(Some(removed)) => {
                                tracing::info!(removed, "pruned audit entries past retention")
                            }
                            Err(err) => tracing::warn!(%err, "could not prune the audit log"),
                        }
                    }
                })
                .await;
            }
        })
    }

    /// On a shared store: applies other replicas' changes every
    /// `follow_interval_ms`.
    fn start_follower(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !self.state.store.shared() {
            return None;
        }
        let registry = Arc::clone(&self.state.registry);
        let every = Duration::from_millis(self.store_section.follow_interval_ms);
        Some(tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(every).await;
                let registry = Arc::clone(&registry);
                let followed = tokio::task::spawn_blocking(move || registry.follow()).await;
                match followed {
                    Ok(Ok(())) => failing = false,
                    Ok(Err(err)) => {
                        // Once per episode: the database may be down a while.
                        if !failing {
                            tracing::error!(%err, "cannot follow the store's change log");
                        }
                        failing = true;
                    }
                    Err(err) => tracing::error!(%err, "the change-log follower failed"),
                }
            }
        }))
    }

    /// Compiles, on a blocking thread, the active policies whose code is
    /// neither in memory nor in the disk cache: at start, and again
    /// whenever the applied revision moved (another replica's upload).
    fn start_preparer(&self) -> tokio::task::JoinHandle<()> {
        let registry = Arc::clone(&self.state.registry);
        tokio::spawn(async move {
            let mut prepared_at = None;
            loop {
                let revision = registry.applied_revision();
                if prepared_at != Some(revision) {
                    let registry = Arc::clone(&registry);
                    match tokio::task::spawn_blocking(move || registry.prepare_policies()).await {
                        Ok(0) => {}
                        Ok(compiled) => {
                            tracing::info!(compiled, "compiled policies ahead of their decisions")
                        }
                        Err(err) => tracing::error!(%err, "preparing policies failed"),
                    }
                    prepared_at = Some(revision);
                }
                tokio::time::sleep(PREPARE_INTERVAL).await;
            }
        })
    }

    /// Puts `config`'s `[tenants]` and `[[plans]]` in force (the rest of
    /// it needs a restart); returns what changed. A config the registry
    /// refuses changes nothing.
    pub fn reload_tenants(&self, config: &Config) -> Result<Vec<String>, StartError> {
        self.tenant_reloader().reload(config)
    }

    /// A handle that reloads `[tenants]` and `[[plans]]` while [`Ward::serve`]
    /// runs (which takes the `Ward`).
    pub fn tenant_reloader(&self) -> TenantReloader {
        TenantReloader {
            registry: Arc::clone(&self.state.registry),
        }
    }

    /// The API router.
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// The shared state (for embedding and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` completes, then lets requests
    /// in flight finish and flushes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.state
            .evaluations
            .attach(tokio::runtime::Handle::current());
        let router = self.router();
        let maintenance = self.start_maintenance();
        let follower = self.start_follower();
        let preparer = self.start_preparer();
        serve_http1(listener, router, shutdown).await;
        maintenance.abort();
        preparer.abort();
        if let Some(follower) = follower {
            follower.abort();
        }
        let (store, audit, gates) = (
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.audit),
            Arc::clone(&self.state.gates),
        );
        tokio::task::spawn_blocking(move || {
            let writer = audit.writer();
            if !writer.flush_within(AUDIT_DRAIN) {
                tracing::error!(
                    queued = writer
                        .stats()
                        .depth
                        .load(std::sync::atomic::Ordering::Relaxed),
                    "the audit writer could not store every queued entry in time; \
                     entries it had journaled are replayed at the next start"
                );
            }
            gates.persist().map_err(std::io::Error::other)?;
            store.flush().map_err(std::io::Error::other)
        })
        .await
        .map_err(std::io::Error::other)??;
        tracing::info!("stopped; store flushed");
        Ok(())
    }
}

/// The store `config` names: the shared database of `store.url`, or the
/// embedded store under the data directory.
fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    if let Some(url) = &config.store.url {
        let store = PostgresStore::open(url).map_err(|source| StartError::Store {
            dir: crate::store::postgres::redacted(url),
            source,
        })?;
        return Ok(Arc::new(store));
    }
    let store_dir = config.data_dir.join("db");
    let store = SledStore::open(&store_dir).map_err(|source| StartError::Store {
        dir: store_dir.display().to_string(),
        source,
    })?;
    Ok(Arc::new(store))
}

/// Answers HTTP/1.1 on every connection `listener` accepts until `shutdown`
/// completes; then stops accepting, lets each connection finish the
/// request it is on, and returns once all are closed.
///
/// The parser buffers request heads up to [`api::PARSER_BUFFER_BYTES`]
/// (and [`api::PARSER_MAX_HEADERS`] headers), well above the limits the
/// API enforces with a JSON 431, so that a client over those limits learns
/// why; only a head beyond the parser's bound gets the parser's bare 431.
async fn serve_http1(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let mut http = hyper::server::conn::http1::Builder::new();
    // No timer: hyper's header read timeout would also close keep-alive
    // connections idle for 30 s, which clients pooling connections see as
    // spurious failures; a request is bounded by `http.request_timeout_ms`
    // once its head is read.
    http.max_buf_size(api::PARSER_BUFFER_BYTES)
        .max_headers(api::PARSER_MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    pause_after_accept_error(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Requests in flight get a bounded time to finish once the signal
    // came; a stop never waits on a client (or a full audit queue) for
    // ever.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "requests still in flight after the grace period; stopping without them"
        );
    }
}

/// After a failed `accept`: a connection that went away before it was
/// accepted is no reason to wait; anything else (out of file descriptors,
/// most often) is given a moment to pass instead of being retried in a
/// tight loop.
async fn pause_after_accept_error(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(%err, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
