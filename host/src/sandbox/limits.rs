//! Per-tenant execution limits and the store-level limiter that enforces
//! them and remembers why it refused.

pub use ward_types::SandboxLimits;
use wasmtime::ResourceLimiter;

/// Enforces [`SandboxLimits`] inside one store and records whether a
/// refusal happened, so that the trap that follows is reported as
/// `memory_limit` rather than as a plain trap.
pub(super) struct Limiter {
    memory_bytes: usize,
    max_table_elements: usize,
    max_instances: usize,
    max_tables: usize,
    pub(super) memory_refused: bool,
    pub(super) peak_memory: usize,
}

impl Limiter {
    pub(super) fn new(limits: &SandboxLimits) -> Self {
        Limiter {
            memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            max_table_elements: limits.max_table_elements as usize,
            max_instances: limits.max_instances as usize,
            max_tables: limits.max_tables as usize,
            memory_refused: false,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes && maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.peak_memory = self.peak_memory.max(desired);
        } else {
            self.memory_refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements && maximum.is_none_or(|max| desired <= max))
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        2
    }
}
