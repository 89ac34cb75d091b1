//! Putting Ward together from a [`Config`] and serving it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::audit::AuditLog;
use crate::auth::jwt::{IssuerError, JwtVerifier};
use crate::auth::keys::ApiKeys;
use crate::auth::{self, Authenticator};
use crate::config::{Config, ConfigError};
use crate::evaluations::EvaluationPool;
use crate::registry::{Registry, RegistryError};
use crate::sandbox::{Sandbox, SandboxError};
use crate::store::{SledStore, Store, StoreError};

/// Why Ward could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
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

/// A Ward instance, ready to serve.
pub struct Ward {
    state: AppState,
    store: Arc<dyn Store>,
    prune_interval: Duration,
    /// The operator token generated on this first start, to show once.
    pub generated_operator_token: Option<String>,
}

impl Ward {
    /// Opens the store under `config.data_dir`, loads everything and
    /// prepares authentication. `env_operator_token` is `WARD_ADMIN_TOKEN`.
    pub fn open(config: &Config, env_operator_token: Option<&str>) -> Result<Self, StartError> {
        config.check()?;
        let store_dir = config.data_dir.join("db");
        let store: Arc<dyn Store> =
            Arc::new(
                SledStore::open(&store_dir).map_err(|source| StartError::Store {
                    dir: store_dir.display().to_string(),
                    source,
                })?,
            );
        let sandbox = Arc::new(Sandbox::new(config.sandbox_config())?);
        let journal = config.data_dir.join("audit.journal");
        let audit = Arc::new(AuditLog::with_writer(
            Arc::clone(&store),
            config.audit.writer(),
            Some(&journal),
        )?);
        let registry = Arc::new(Registry::open(Arc::clone(&store), sandbox, audit)?);
        let keys = Arc::new(ApiKeys::load(Arc::clone(&store))?);
        let jwt = JwtVerifier::new(&config.auth.jwt)?;
        let (operator_hash, generated) = auth::operator_token(
            env_operator_token,
            config.admin_token_sha256.as_deref(),
            store.as_ref(),
        )?;
        let auth = Arc::new(Authenticator::new(
            operator_hash,
            keys,
            jwt,
            Arc::clone(&registry),
        ));
        let threads = config
            .http
            .evaluation_threads
            .unwrap_or_else(EvaluationPool::default_threads);
        let evaluations = Arc::new(EvaluationPool::start(threads).map_err(StartError::Threads)?);
        Ok(Ward {
            state: AppState {
                registry,
                evaluations,
                auth,
                http: Arc::new(config.http.clone()),
                upload_limit: config.sandbox.max_module_bytes.saturating_add(1024),
                tenant_labels: config.metrics.tenant_labels,
            },
            prune_interval: Duration::from_secs(config.audit.prune_interval_secs.max(1)),
            store,
            generated_operator_token: generated,
        })
    }

    /// Background upkeep: monthly counts written every second, audit
    /// entries past retention pruned every `prune_interval`.
    fn start_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let registry = Arc::clone(&self.state.registry);
        let prune_every = self.prune_interval;
        tokio::spawn(async move {
            let mut since_prune = Duration::ZERO;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                since_prune += Duration::from_secs(1);
                let prune = since_prune >= prune_every;
                if prune {
                    since_prune = Duration::ZERO;
                }
                let registry = Arc::clone(&registry);
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(err) = registry.persist_usage() {
                        tracing::warn!(%err, "could not persist usage counters");
                    }
                    if prune {
                        match registry.prune_audit() {
                            Ok(0) => {}
                            Ok(removed) => {
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
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        maintenance.abort();
        let (store, registry) = (Arc::clone(&self.store), Arc::clone(&self.state.registry));
        tokio::task::spawn_blocking(move || {
            registry.audit().flush();
            registry.persist_usage().map_err(std::io::Error::other)?;
            store.flush().map_err(std::io::Error::other)
        })
        .await
        .map_err(std::io::Error::other)??;
        tracing::info!("stopped; store flushed");
        Ok(())
    }
}
