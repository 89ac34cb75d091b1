//! The sandbox: one wasmtime engine for the process, policies loaded once
//! and instantiated afresh for every decision under the calling tenant's
//! limits.
//!
//! - [`Sandbox::load`] validates, compiles (or takes from the disk cache)
//!   and type-checks a policy component.
//! - [`Sandbox::evaluate`] runs one decision on a new instance and always
//!   returns a decision; a misbehaving policy yields a deny with reason
//!   `policy_error:<kind>`.

mod bindings;
mod cache;
mod engine;
mod evaluate;
mod host;
mod limits;
mod load;
mod optimiser;
mod places;
mod producers;
mod request;
mod resident;
mod warm;
mod wasi;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub use bindings::ward::policy::types::{
    Action, Agent, Decision, Entity, Permission, Request, Scope, Tenant,
};
pub use evaluate::{Batch, Consumed, INLINE_TICKS, Outcome, PolicyErrorKind, PolicyFailure, Slice};
pub use host::{DataLookup, MemoryData, NoData};
pub use limits::SandboxLimits;
pub use load::{COMPILE_STEP_BYTES, LoadedPolicy, compile_timeout};
pub use producers::language as component_language;
pub use request::{ActionView, AgentView, EntityView, RequestView};

use bindings::Policy;
use cache::ArtifactCache;
use evaluate::OutputLimits;
use host::StoreState;

/// Errors that stop the sandbox from starting.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The engine could not be configured or started.
    #[error("cannot start the wasm engine: {0}")]
    Engine(String),
    /// The compiled-code cache directory cannot be used.
    #[error("cannot use compiled-code cache `{path}`")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for sandbox start-up.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Why an uploaded module was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Larger than the tenant's (or the host's) module size limit.
    #[error("module is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// Not a WebAssembly binary at all.
    #[error("not a WebAssembly component: {0}")]
    NotComponent(String),
    /// A core module where a component is needed.
    #[error(
        "a core WebAssembly module, not a component; build for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// Fails WebAssembly validation or compilation.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// Compilation took longer than allowed.
    #[error("compilation took longer than {limit_ms} ms")]
    CompileTimeout {
        /// The bound.
        limit_ms: u64,
    },
    /// Imports something outside WASI 0.2 and `ward:policy`.
    #[error("imports `{0}`, which is outside WASI 0.2 and ward:policy")]
    ForbiddenImport(String),
    /// Imports an allowed interface with the wrong shape.
    #[error("an import does not match what Ward provides: {0}")]
    ImportMismatch(String),
    /// Does not export `evaluate` as the `ward:policy` world defines it.
    #[error("does not export `evaluate` of world ward:policy/policy@0.1.0: {0}")]
    MissingExport(String),
    /// Too many compilations are running; try again shortly.
    #[error("too many policies are being compiled right now")]
    Busy,
    /// Something on the host side failed (not the module's fault).
    #[error("internal error while loading: {0}")]
    Internal(String),
}

/// Host-wide sandbox settings (the operator's config, not per tenant).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where compiled code is kept across restarts; `None` keeps it in
    /// memory only.
    pub cache_dir: Option<PathBuf>,
    /// Upper bound for any tenant's `max_module_bytes`.
    pub max_module_bytes: usize,
    /// Upper bound on compiling one module, per started 8 MiB of it.
    pub compile_timeout: Duration,
    /// First compilations that may run at once (abandoned ones
    /// included); one scope takes at most all but one of them. The
    /// optimised compiles that follow quick ones run one at a time on a
    /// thread of their own, taking the scopes in turn.
    pub max_concurrent_compiles: usize,
    /// Whether one compilation may use several threads.
    pub parallel_compilation: bool,
    /// Modules of at least this many bytes that are not in the cache are
    /// compiled twice: first quickly, without optimisation, so that the
    /// upload returns and the policy decides sooner; then optimised on the
    /// background optimiser thread, whose code replaces the quick code for the
    /// decisions that follow and is what the cache keeps. `usize::MAX`
    /// compiles every module once, optimised.
    pub quick_compile_bytes: usize,
    /// Whether modules are ever optimised. `false` compiles every module
    /// quickly only, and keeps that code in the cache: for `ward policy
    /// test`, which runs a module a few times and must not spend a minute
    /// optimising a large one.
    pub optimise: bool,
    /// Instances that may exist at once across all tenants (pool size).
    pub max_concurrent_instances: u32,
    /// Upper bound for any tenant's `memory_bytes` (pool slot size).
    pub max_memory_bytes: usize,
    /// Upper bound for any tenant's `max_table_elements`.
    pub max_table_elements: usize,
    /// Native stack a guest may use.
    pub max_wasm_stack: usize,
    /// Ask the kernel which pages a guest dirtied (Linux `PAGEMAP_SCAN`)
    /// and reset only those when a pool slot is reused.
    pub pagemap_scan: bool,
    /// Bytes of each linear memory kept resident between uses of a slot.
    pub memory_keep_resident: usize,
    /// Bytes of each table kept resident between uses of a slot.
    pub table_keep_resident: usize,
    /// Resolution of evaluation timeouts.
    pub epoch_tick: Duration,
    /// Log output (log calls plus stdout/stderr) kept per evaluation.
    pub max_log_bytes: usize,
    /// Most reasons in one decision.
    pub max_reasons: usize,
    /// Longest reason, in bytes.
    pub max_reason_bytes: usize,
    /// Largest decision context, in bytes of JSON.
    pub max_context_bytes: usize,
    /// Compiled policies kept in memory; past this the least recently
    /// used are dropped and reloaded from the disk cache when needed.
    pub max_resident_policies: usize,
    /// Instances made ahead of their decisions, across all tenants, by a
    /// background thread that also drops used ones; 0 makes and drops
    /// every instance on the deciding thread. The default is
    /// [`DEFAULT_WARM_INSTANCES`] when the process may run on two cores or
    /// more, else 0: on one core the thread only takes the deciding
    /// thread's time.
    pub warm_instances: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            max_module_bytes: 64 << 20,
            compile_timeout: Duration::from_secs(20),
            max_concurrent_compiles: 2,
            parallel_compilation: true,
            quick_compile_bytes: 256 << 10,
            optimise: true,
            max_concurrent_instances: 1000,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_wasm_stack: 512 << 10,
            pagemap_scan: true,
            memory_keep_resident: 2 << 20,
            table_keep_resident: 64 << 10,
            epoch_tick: Duration::from_millis(1),
            max_log_bytes: 16 << 10,
            max_reasons: 64,
            max_reason_bytes: 1024,
            max_context_bytes: 64 << 10,
            max_resident_policies: 512,
            warm_instances: default_warm_instances(),
        }
    }
}

/// Instances made ahead by default when there is a core to spare.
pub const DEFAULT_WARM_INSTANCES: usize = 32;

fn default_warm_instances() -> usize {
    match std::thread::available_parallelism() {
        Ok(cores) if cores.get() >= 2 => DEFAULT_WARM_INSTANCES,
        _ => 0,
    }
}

/// Counters that show how policies were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxStats {
    /// Modules compiled by this process.
    pub compiled: u64,
    /// Modules taken from the on-disk cache instead.
    pub cache_hits: u64,
    /// Modules compiled quickly first whose optimised code has replaced
    /// the quick code.
    pub optimised: u64,
    /// Compilations running now (abandoned ones included), and optimised
    /// compiles waiting or running in the background.
    pub compiling: u64,
    /// Compiled policies in memory now.
    pub resident: u64,
    /// Compiled policies dropped from memory to stay within
    /// `max_resident_policies`.
    pub evictions: u64,
    /// Instances made ahead and waiting for a decision.
    pub warm: u64,
    /// Evaluations that ran on an instance made ahead.
    pub warm_taken: u64,
}

#[derive(Default)]
struct Stats {
    compiled: AtomicU64,
    cache_hits: AtomicU64,
    optimised: AtomicU64,
}

/// The process's policy runtime. Create one and share it.
pub struct Sandbox {
    engine: Engine,
    /// Compiles the first code of large modules; never runs anything.
    quick: Engine,
    linker: Linker<StoreState>,
    config: SandboxConfig,
    output_limits: OutputLimits,
    cache: Option<Arc<ArtifactCache>>,
    /// Compiled policies in memory by module hash (bounded), so that
    /// scopes uploading the same bytes share one.
    resident: Mutex<resident::Resident>,
    places: Arc<places::Places>,
    /// Compiles under way, by module hash.
    flights: places::Flights<Result<Arc<LoadedPolicy>, LoadError>>,
    optimiser: optimiser::Optimiser,
    stats: Arc<Stats>,
    recipe: warm::StoreRecipe,
    warm: warm::Warm,
    _ticker: engine::EpochTicker,
}

impl Sandbox {
    /// Starts the engine and its epoch ticker, and opens the cache.
    pub fn new(config: SandboxConfig) -> Result<Self> {
        let engine = engine::build(&config)?;
        let quick = engine::build_quick(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|err| SandboxError::Engine(format!("cannot link WASI: {err}")))?;
        wasi::link(&mut linker)
            .map_err(|err| SandboxError::Engine(format!("cannot link WASI: {err}")))?;
        Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|err| SandboxError::Engine(format!("cannot link host imports: {err}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(Arc::new(ArtifactCache::open(dir, &engine).map_err(
                |source| SandboxError::Cache {
                    path: dir.clone(),
                    source,
                },
            )?)),
            None => None,
        };
        let ticker = engine::EpochTicker::start(&engine, config.epoch_tick)?;
        let recipe = warm::StoreRecipe {
            engine: engine.clone(),
            max_log_bytes: config.max_log_bytes,
            epoch_tick: config.epoch_tick,
        };
        let warm = warm::Warm::start(recipe.clone(), config.warm_instances).map_err(|err| {
            SandboxError::Engine(format!("cannot start the instance thread: {err}"))
        })?;
        let stats = Arc::<Stats>::default();
        let optimiser = optimiser::Optimiser::start(
            optimiser::Tools {
                engine: engine.clone(),
                linker: linker.clone(),
                cache: cache.clone(),
                stats: Arc::clone(&stats),
            },
            config.max_module_bytes.saturating_mul(2),
            config.max_module_bytes.saturating_mul(8),
        )
        .map_err(|err| SandboxError::Engine(format!("cannot start the optimiser thread: {err}")))?;
        Ok(Sandbox {
            output_limits: OutputLimits {
                max_reasons: config.max_reasons,
                max_reason_bytes: config.max_reason_bytes,
                max_context_bytes: config.max_context_bytes,
            },
            resident: Mutex::new(resident::Resident::new(config.max_resident_policies)),
            engine,
            quick,
            linker,
            config,
            cache,
            places: Arc::default(),
            flights: places::Flights::default(),
            optimiser,
            stats,
            recipe,
            warm,
            _ticker: ticker,
        })
    }

    /// The host-wide settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// How many modules were compiled, and how many came from the cache.
    pub fn stats(&self) -> SandboxStats {
        let (warm, warm_taken) = self.warm.counts();
        let resident = self.lock_resident();
        SandboxStats {
            compiled: self.stats.compiled.load(Ordering::Relaxed),
            cache_hits: self.stats.cache_hits.load(Ordering::Relaxed),
            optimised: self.stats.optimised.load(Ordering::Relaxed),
            compiling: (self.places.taken() + self.optimiser.pending()) as u64,
            resident: resident.len() as u64,
            evictions: resident.evictions,
            warm: warm as u64,
            warm_taken,
        }
    }

    /// Checks tenant limits against what this host allows.
    pub fn check_limits(&self, limits: &SandboxLimits) -> std::result::Result<(), String> {
        if limits.memory_bytes > self.config.max_memory_bytes as u64 {
            return Err(format!(
                "sandbox.memory_bytes {} is above the host's limit of {}",
                limits.memory_bytes, self.config.max_memory_bytes
            ));
        }
        if limits.timeout_ms == 0 || limits.timeout_ms > 60_000 {
            return Err(String::from(
                "sandbox.timeout_ms must be between 1 and 60000",
            ));
        }
        if limits.fuel == Some(0) {
            return Err(String::from("sandbox.fuel must be positive when set"));
        }
        if limits.max_table_elements as usize > self.config.max_table_elements {
            return Err(format!(
                "sandbox.max_table_elements {} is above the host's limit of {}",
                limits.max_table_elements, self.config.max_table_elements
            ));
        }
        Ok(())
    }

    /// Drops the on-disk compiled code of a module no scope uses any more.
    pub fn forget(&self, sha256: &str) {
        self.lock_resident().remove(sha256);
        self.warm.forget(sha256);
        if let Some(cache) = &self.cache {
            cache.remove(sha256);
        }
    }

    fn lock_resident(&self) -> std::sync::MutexGuard<'_, resident::Resident> {
        self.resident.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether module `sha256` would load without compiling: its code is
    /// in memory or in the disk cache.
    pub fn has_code(&self, sha256: &str) -> bool {
        self.lock_resident().get(sha256).is_some()
            || self.cache.as_ref().is_some_and(|cache| cache.holds(sha256))
    }

    fn loaded_by_hash(&self, sha256: &str) -> Option<Arc<LoadedPolicy>> {
        self.lock_resident().get(sha256)
    }

    fn remember(&self, policy: &Arc<LoadedPolicy>) {
        self.lock_resident().insert(policy);
    }
}
