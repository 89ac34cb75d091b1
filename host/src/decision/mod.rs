//! The decision room: everything between a parsed authorize request and
//! its answer, the pipeline DESIGN calls "authorize" (see
//! docs/ARCHITECTURE.md):
//!
//! 1. [`admit`]: the tenant's rate limit, running-evaluation cap and
//!    monthly budget, before any work;
//! 2. [`calls`]: a call's items in order, on the async worker within an
//!    inline budget, the rest in the evaluation pool, stopping as the
//!    batch semantic says (native batches and AuthZEN `evaluations` alike);
//! 3. [`pipeline`]: one item: tenant status, the agent and the policy
//!    resolved narrowest-first, the sandboxed evaluation, fail-closed at
//!    every step;
//! 4. [`entry`]: the decision's audit entry, queued before the answer.
//!
//! The [`Decider`] holds what a decision needs and nothing else. It knows
//! nothing of HTTP: it answers with decisions or a [`DecisionError`].

mod admit;
mod calls;
mod entry;
mod pipeline;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ward_types::{ErrorCode, Scope};

use crate::audit::AuditLog;
use crate::evaluations::EvaluationPool;
use crate::gates::{Gates, Refusal};
use crate::metrics::Histogram;
use crate::registry::{PolicyEntry, Registry};
use crate::sandbox::{Batch, DataLookup, Outcome, RequestView, Sandbox, SandboxLimits, Slice};
use crate::store::StoreError;

pub use calls::{Item, ItemAnswer, MAX_BATCH, Semantic, check_request};
pub use pipeline::DecisionOutcome;

/// Why a call got no decisions.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// The tenant does not exist (any more).
    #[error("tenant `{0}` not found")]
    TenantNotFound(String),
    /// A tenant limit refused the call.
    #[error("{}", refusal.reason.message())]
    Refused {
        /// Which limit, and when to retry.
        refusal: Refusal,
    },
    /// More decisions in one call than the tenant's burst: it could never
    /// be admitted, however long the client waited.
    #[error(
        "this call asks for {asked} decisions and this tenant's burst is {burst}; send at most {burst} at once"
    )]
    BatchExceedsBurst {
        /// Decisions asked for.
        asked: usize,
        /// The tenant's burst.
        burst: u32,
    },
    /// The tenant's trial has ended and it is still on the trial plan.
    #[error(
        "the trial of plan `{plan}` ended; authorize calls are refused until the tenant's plan changes"
    )]
    BillingRequired {
        /// The trial plan.
        plan: String,
    },
    /// The audit log refused an entry: the decision is not answered.
    #[error("cannot write the audit log")]
    Audit(#[source] StoreError),
    /// The evaluation pool dropped the call (the server is stopping).
    #[error("the evaluation was dropped")]
    Dropped,
}

impl DecisionError {
    /// The error's stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecisionError::TenantNotFound(_) => ErrorCode::NotFound,
            DecisionError::Refused { refusal } => refusal.reason.code(),
            DecisionError::BatchExceedsBurst { .. } => ErrorCode::BatchExceedsBurst,
            DecisionError::BillingRequired { .. } => ErrorCode::BillingRequired,
            DecisionError::Audit(_) | DecisionError::Dropped => ErrorCode::Internal,
        }
    }
}

/// How calls are scheduled (`[http]` settings).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Decide on the async worker first (`http.inline_decisions`).
    pub inline: bool,
    /// How long a refused call waits before its answer, at most its
    /// `Retry-After` (`http.refusal_delay_ms`).
    pub refusal_delay: Duration,
}

/// Decision measurements that are not per tenant.
#[derive(Default)]
pub struct DecisionMetrics {
    /// Time from the start of the pipeline to the decision.
    pub latency: Histogram,
    /// Policy failures by kind.
    pub policy_errors: Mutex<HashMap<&'static str, u64>>,
}

/// The policy the pipeline chose for a decision, at its active version.
pub struct Chosen<'a> {
    /// Its name.
    pub name: &'a str,
    /// Where it was found.
    pub scope: Scope,
    /// The active version.
    pub version: u32,
    /// That version's module, by sha256.
    pub sha256: &'a str,
    pub(super) entry: &'a PolicyEntry,
}

/// What runs the chosen policy for the pipeline: [`Sandboxed`] in Ward.
/// The seam lets a benchmark measure the pipeline with a policy in plain
/// Rust, and unit tests check resolution, policy choice and failure
/// mapping with a double and no Wasm.
pub trait Evaluate: Send + Sync {
    /// Evaluates `request` with `policy` within `slice`, on `batch`'s
    /// instance when it runs the same policy; `Ok(None)` when the policy
    /// did not finish in its inline slice (as [`Sandbox::evaluate_in`]).
    /// `Err` says why the policy cannot run at all (its module cannot be
    /// loaded): the decision is then a deny `policy_error:unavailable`.
    fn evaluate(
        &self,
        batch: &mut Batch,
        policy: &Chosen<'_>,
        request: RequestView<'_>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        slice: Slice,
    ) -> Result<Option<Outcome>, String>;

    /// Ends a call's batch, as [`Sandbox::finish`] does.
    fn finish(&self, batch: Batch);
}

/// Policies run in the sandbox, their code taken from the registry
/// (memory, the disk cache, or compiled from the stored module).
pub struct Sandboxed {
    registry: Arc<Registry>,
    sandbox: Arc<Sandbox>,
}

impl Sandboxed {
    /// Runs `registry`'s policies in `sandbox`.
    pub fn new(registry: Arc<Registry>, sandbox: Arc<Sandbox>) -> Self {
        Sandboxed { registry, sandbox }
    }
}

impl Evaluate for Sandboxed {
    fn evaluate(
        &self,
        batch: &mut Batch,
        policy: &Chosen<'_>,
        request: RequestView<'_>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        slice: Slice,
    ) -> Result<Option<Outcome>, String> {
        // A policy whose code is neither in memory nor in the disk cache
        // (another replica uploaded it, or this one restarted before
        // optimising it) is compiled on a thread that may block.
        let compiled = self
            .registry
            .compiled(policy.entry, slice == Slice::Full)
            .map_err(|err| err.to_string())?;
        let Some(compiled) = compiled else {
            return Ok(None);
        };
        // The chosen entry identifies the policy version within a call:
        // the call's snapshot holds every entry it chose, and an entry
        // is replaced, never changed, when its policy is.
        let key = std::ptr::from_ref(policy.entry) as u64;
        Ok(self
            .sandbox
            .evaluate_in(batch, key, &compiled, request, limits, data, slice))
    }

    fn finish(&self, batch: Batch) {
        self.sandbox.finish(batch);
    }
}

/// Decides authorize calls. One per process.
pub struct Decider {
    registry: Arc<Registry>,
    evaluator: Arc<dyn Evaluate>,
    audit: Arc<AuditLog>,
    gates: Arc<Gates>,
    evaluations: Arc<EvaluationPool>,
    schedule: Schedule,
    metrics: DecisionMetrics,
}

impl Decider {
    /// A decider reading `registry`'s indexes, running policies with
    /// `evaluator` (the sandbox), admitting through `gates`, writing to `audit`, and
    /// handing slow decisions to `evaluations`.
    pub fn new(
        registry: Arc<Registry>,
        evaluator: Arc<dyn Evaluate>,
        audit: Arc<AuditLog>,
        gates: Arc<Gates>,
        evaluations: Arc<EvaluationPool>,
        schedule: Schedule,
    ) -> Self {
        Decider {
            registry,
            evaluator,
            audit,
            gates,
            evaluations,
            schedule,
            metrics: DecisionMetrics::default(),
        }
    }

    /// Decision latency and policy failures, for `/metrics`.
    pub fn metrics(&self) -> &DecisionMetrics {
        &self.metrics
    }
}
