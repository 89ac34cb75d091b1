//! The one `wasmtime::Engine` of the process and the ticker that drives its
//! epoch-based timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    RegallocAlgorithm,
};

use super::{Result, SandboxConfig, SandboxError};

/// Core instances, memories and tables one policy component may create. A
/// Rust `wasm32-wasip2` component uses a handful of each (its own module
/// plus the shims `wasm-component-ld` adds); the margin is for other guest
/// languages.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
const MAX_TABLES_PER_COMPONENT: u32 = 8;

pub(super) fn build(config: &SandboxConfig) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    // Room for the decisions running plus what the instance thread holds.
    let held = u32::try_from(super::warm::pool_slots(config.warm_instances)).unwrap_or(u32::MAX);
    let instances = config.max_concurrent_instances.saturating_add(held);
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(MAX_TABLES_PER_COMPONENT))
        .total_stacks(0)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memories_per_module(1)
        .max_tables_per_module(2)
        .table_elements(config.max_table_elements)
        .max_memory_size(config.max_memory_bytes)
        // Reset only the pages a guest dirtied, and keep a small resident
        // prefix so that instantiating into a reused slot does not fault.
        .pagemap_scan(if config.pagemap_scan {
            Enabled::Auto
        } else {
            Enabled::No
        })
        .linear_memory_keep_resident(config.memory_keep_resident)
        .table_keep_resident(config.table_keep_resident);

    let mut wasm = common(config);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|err| SandboxError::Engine(err.to_string()))
}

/// An engine that only compiles, quickly: no mid-end optimisation and the
/// single-pass register allocator (about 2.5× faster to compile a large
/// module than the engine of [`build`], for slower code). Otherwise set up
/// as [`build`]'s, so that the engine of [`build`] loads what it compiles:
/// wasmtime does not count the optimisation level or the register
/// allocator among the settings a compiled module must share with the
/// engine that runs it.
pub(super) fn build_quick(config: &SandboxConfig) -> Result<Engine> {
    let mut wasm = common(config);
    wasm.cranelift_opt_level(OptLevel::None)
        .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
    Engine::new(&wasm).map_err(|err| SandboxError::Engine(err.to_string()))
}

/// What both engines share: every setting that decides how compiled code
/// behaves.
fn common(config: &SandboxConfig) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(true)
        .max_wasm_stack(config.max_wasm_stack)
        // Policies need none of these; each is attack surface.
        .wasm_gc(false)
        .wasm_stack_switching(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .parallel_compilation(config.parallel_compilation);
    wasm
}

/// Advances the engine's epoch every `tick` so that a running guest traps
/// once its deadline (a number of ticks) has passed. Stops when dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine, tick: Duration) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let stopped = Arc::clone(&stop);
        thread::Builder::new()
            .name("ward-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|err| SandboxError::Engine(format!("cannot start epoch ticker: {err}")))?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
