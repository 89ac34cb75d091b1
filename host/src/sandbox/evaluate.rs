//! One decision: a fresh store and instance from the policy's `InstancePre`,
//! the tenant's limits, the call, and a strict check of what came back.
//! Every failure becomes a deny that names its kind; none escapes as an
//! error, and none outlives its own store.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use wasmtime::component::{ComponentExportIndex, Instance};
use wasmtime::{Store, Trap};

use super::bindings::ward::policy::types::Decision;
use super::bindings::ward::policy::types::Tenant;
use super::host::{CapturedOutput, DataLookup, StoreState};
use super::limits::SandboxLimits;
use super::request::RequestView;
use super::warm::arm;
use super::{LoadedPolicy, Sandbox};

/// Why a policy produced no usable decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyErrorKind {
    /// The guest trapped: a panic, `unreachable`, an out-of-bounds access.
    Trap,
    /// The evaluation ran past the tenant's `timeout_ms`.
    Timeout,
    /// The evaluation used up the tenant's `fuel`.
    FuelExhausted,
    /// The guest tried to grow its memory past the tenant's `memory_bytes`.
    MemoryLimit,
    /// The guest exhausted its call stack.
    StackOverflow,
    /// The guest returned an error instead of a decision.
    GuestError,
    /// The decision's context is not a JSON object.
    MalformedOutput,
    /// The guest passed the host more than it may: too many or too long
    /// reasons, too large a context, or more than `hostcall_bytes` in one
    /// host call (its decision included).
    OutputTooLarge,
    /// The instance could not be created (e.g. every instance slot is busy).
    Instantiate,
}

impl PolicyErrorKind {
    /// The kind as it appears in reasons: `policy_error:<kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyErrorKind::Trap => "trap",
            PolicyErrorKind::Timeout => "timeout",
            PolicyErrorKind::FuelExhausted => "fuel_exhausted",
            PolicyErrorKind::MemoryLimit => "memory_limit",
            PolicyErrorKind::StackOverflow => "stack_overflow",
            PolicyErrorKind::GuestError => "guest_error",
            PolicyErrorKind::MalformedOutput => "malformed_output",
            PolicyErrorKind::OutputTooLarge => "output_too_large",
            PolicyErrorKind::Instantiate => "instantiate",
        }
    }

    /// The deny reason for this kind.
    pub fn reason(self) -> String {
        format!("policy_error:{}", self.as_str())
    }
}

impl fmt::Display for PolicyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy failure and what is known about its cause (for the audit log
/// and the host log; never shown to other tenants).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyFailure {
    /// What kind of failure.
    pub kind: PolicyErrorKind,
    /// The trap message, the guest's error text, or what was wrong with
    /// the output.
    pub detail: String,
}

/// What one evaluation consumed: time, fuel, memory, log room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Consumed {
    /// Wall-clock time from the start of the evaluation to the checked
    /// result (an instance made ahead of time is not counted).
    pub duration: Duration,
    /// Fuel consumed, when the tenant has a fuel limit.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory the guest grew to.
    pub peak_memory_bytes: u64,
    /// Whether some of the guest's log output was dropped at the cap.
    pub log_truncated: bool,
}

/// The result of one evaluation. Always a decision: on failure, a deny
/// whose single reason is `policy_error:<kind>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether the request is allowed.
    pub allow: bool,
    /// The policy's reasons, or `policy_error:<kind>`.
    pub reasons: Vec<String>,
    /// The policy's context: the text of a JSON object.
    pub context: String,
    /// Set when the policy failed.
    pub failure: Option<PolicyFailure>,
    /// What the evaluation cost.
    pub usage: Consumed,
}

/// Bounds on what a policy may answer, from [`super::SandboxConfig`].
#[derive(Debug, Clone, Copy)]
pub(super) struct OutputLimits {
    pub(super) max_reasons: usize,
    pub(super) max_reason_bytes: usize,
    pub(super) max_context_bytes: usize,
}

/// How long one evaluation may hold the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice {
    /// Up to the tenant's `timeout_ms`: for threads that may block.
    Full,
    /// At most [`INLINE_TICKS`] epoch ticks (1–2 ms with the default
    /// tick): for an async worker, which must not be held longer.
    Inline,
}

/// Epoch ticks an evaluation may run under [`Slice::Inline`].
pub const INLINE_TICKS: u64 = 2;

/// The instance the items of one batch call share (see
/// [`Sandbox::evaluate_in`]). Never outlives its call: a guest may keep
/// state from one item to the next of the same call, never into another
/// call, tenant or policy. Hand it to [`Sandbox::finish`] when the call is
/// decided.
#[derive(Default)]
pub struct Batch {
    live: Option<Live>,
}

/// A store and instance kept for the next item of a batch.
struct Live {
    key: u64,
    policy: Arc<LoadedPolicy>,
    tenant: String,
    limits: SandboxLimits,
    store: Store<StoreState>,
    stdio: CapturedOutput,
    instance: Instance,
    evaluate: ComponentExportIndex,
}

type Kept = (
    Store<StoreState>,
    CapturedOutput,
    Instance,
    ComponentExportIndex,
);

impl Live {
    fn fits(
        &self,
        key: u64,
        policy: &Arc<LoadedPolicy>,
        tenant: &Tenant,
        limits: &SandboxLimits,
    ) -> bool {
        self.key == key
            && Arc::ptr_eq(&self.policy, policy)
            && self.tenant == tenant.id
            && self.limits == *limits
    }
}

impl Sandbox {
    /// Evaluates `request` with `policy` on a fresh instance, under
    /// `limits`, with `data` as what `data-get` reads.
    ///
    /// A new `Store` and instance are made from the policy's cached
    /// `InstancePre` for every call and dropped afterwards, so a guest can
    /// never carry state from one request into another, and a trap,
    /// timeout or memory blow-up touches only this one decision. Runs on
    /// the calling thread for at most `limits.timeout_ms` (plus one epoch
    /// tick). `request` is a [`Request`](super::Request) or the borrowed
    /// [`RequestView`].
    pub fn evaluate<'r>(
        &self,
        policy: &LoadedPolicy,
        request: impl Into<RequestView<'r>>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
    ) -> Outcome {
        let deadline = self.deadline_ticks(limits.timeout_ms);
        self.run(policy, &request.into(), limits, data, deadline, false)
            .0
    }

    /// Like [`Sandbox::evaluate`], within `slice`. `None` when an
    /// [`Slice::Inline`] evaluation did not finish in its slice: nothing of
    /// it was kept (not even its log lines), and the caller runs it again
    /// with [`Slice::Full`] on a thread that may block. Policies are pure
    /// functions of their input on a fresh instance, so the second run
    /// decides exactly as the first would have.
    pub fn evaluate_within<'r>(
        &self,
        policy: &LoadedPolicy,
        request: impl Into<RequestView<'r>>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        slice: Slice,
    ) -> Option<Outcome> {
        let (deadline, full) = self.slice_ticks(limits, slice);
        match self.run(
            policy,
            &request.into(),
            limits,
            data,
            deadline,
            deadline < full,
        ) {
            (_, true) => None,
            (outcome, false) => Some(outcome),
        }
    }

    /// Like [`Sandbox::evaluate_within`], for one item of a batch call:
    /// consecutive items of `batch` that run the same policy (the same
    /// `policy_key`, the caller's identity for a policy version, and the same
    /// loaded module, for the same tenant, under the same limits) share
    /// one instance, made for the first of them, so that a batch pays
    /// instantiation once. Fuel, deadline and log budget are
    /// each item's own. An item whose evaluation fails (or is abandoned)
    /// drops the instance: the next item starts on a fresh one.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_in<'r>(
        &self,
        batch: &mut Batch,
        policy_key: u64,
        policy: &Arc<LoadedPolicy>,
        request: impl Into<RequestView<'r>>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        slice: Slice,
    ) -> Option<Outcome> {
        let (deadline, full) = self.slice_ticks(limits, slice);
        let request = request.into();
        let reusable = batch.live.take().and_then(|live| {
            match live.fits(policy_key, policy, request.tenant, limits) {
                true => Some(live),
                false => {
                    self.warm.retire(live.store);
                    None
                }
            }
        });
        let (outcome, abandoned, kept) = self.run_on(
            reusable,
            policy,
            &request,
            limits,
            data,
            deadline,
            deadline < full,
        );
        batch.live = kept.map(|(store, stdio, instance, evaluate)| Live {
            key: policy_key,
            policy: Arc::clone(policy),
            tenant: request.tenant.id.clone(),
            limits: limits.clone(),
            store,
            stdio,
            instance,
            evaluate,
        });
        (!abandoned).then_some(outcome)
    }

    /// Drops the instance `batch` holds (on the sandbox's thread).
    pub fn finish(&self, batch: Batch) {
        if let Some(live) = batch.live {
            self.warm.retire(live.store);
        }
    }

    /// One evaluation with `deadline` epoch ticks. With `abandon`, an
    /// evaluation that deadline interrupts is abandoned: `true` is returned
    /// with an empty outcome, and its logs are dropped.
    fn run(
        &self,
        policy: &LoadedPolicy,
        request: &RequestView<'_>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        deadline: u64,
        abandon: bool,
    ) -> (Outcome, bool) {
        let (outcome, abandoned, kept) =
            self.run_on(None, policy, request, limits, data, deadline, abandon);
        if let Some((store, ..)) = kept {
            self.warm.retire(store);
        }
        (outcome, abandoned)
    }

    /// [`Sandbox::run`] on `live` when given, else on a ready or new
    /// instance; the instance is handed back when the evaluation
    /// succeeded, and retired otherwise.
    #[allow(clippy::too_many_arguments)]
    fn run_on(
        &self,
        live: Option<Live>,
        policy: &LoadedPolicy,
        request: &RequestView<'_>,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        deadline: u64,
        abandon: bool,
    ) -> (Outcome, bool, Option<Kept>) {
        let started = Instant::now();
        let slug = request.tenant.slug.as_str();
        // Fuel and deadline count from here, whenever the instance was made.
        let (mut store, stdio, instance) = match live {
            Some(mut live) => {
                let state = live.store.data_mut();
                state.data = data;
                state.log.restart(self.recipe.max_log_bytes);
                arm(&mut live.store, limits, deadline, self.config.epoch_tick);
                (live.store, live.stdio, Ok((live.instance, live.evaluate)))
            }
            None => {
                match self
                    .warm
                    .take(policy, request.tenant, limits, Arc::clone(&data), deadline)
                {
                    Some(mut ready) => {
                        arm(&mut ready.store, limits, deadline, self.config.epoch_tick);
                        let made = Ok((ready.instance, ready.evaluate));
                        (ready.store, ready.stdio, made)
                    }
                    None => {
                        let (mut store, stdio) =
                            self.recipe.store(&policy.sha256, slug, limits, data);
                        arm(&mut store, limits, deadline, self.config.epoch_tick);
                        let linked = policy.linked.load();
                        let instance = linked.pre.instance_pre().instantiate(&mut store);
                        (store, stdio, instance.map(|made| (made, linked.evaluate)))
                    }
                }
            }
        };
        let fuel = limits.fuel.unwrap_or(u64::MAX);
        let called = match &instance {
            Ok((instance, evaluate)) => call(&mut store, instance, *evaluate, request),
            Err(err) => Err(classify(err, &store, PolicyErrorKind::Instantiate)),
        };

        let result = match called {
            Ok(Ok(decision)) => check_decision(decision, &self.output_limits),
            // Engines of garbage-collected languages (JavaScript, Python)
            // turn a refused memory growth into an exception the guest
            // reports as its error: the cause is still the limit.
            Ok(Err(message)) => Err(PolicyFailure {
                kind: if store.data().limiter.memory_refused {
                    PolicyErrorKind::MemoryLimit
                } else {
                    PolicyErrorKind::GuestError
                },
                detail: truncate(message, self.output_limits.max_reason_bytes),
            }),
            Err(failure) => Err(failure),
        };

        let interrupted = matches!(&result, Err(f) if f.kind == PolicyErrorKind::Timeout);
        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.data_mut();
        if interrupted && abandon {
            let outcome = Outcome {
                allow: false,
                reasons: Vec::new(),
                context: String::new(),
                failure: None,
                usage: Consumed::default(),
            };
            self.warm.retire(store);
            return (outcome, true, None);
        }
        state.log.emit_stdio(&stdio);
        state.log.flush();
        let usage = Consumed {
            duration: started.elapsed(),
            fuel_consumed: limits.fuel.map(|_| fuel - fuel_left),
            peak_memory_bytes: state.limiter.peak_memory as u64,
            log_truncated: state.log.dropped,
        };
        let outcome = match result {
            Ok((allow, reasons, context)) => Outcome {
                allow,
                reasons,
                context,
                failure: None,
                usage,
            },
            Err(failure) => {
                tracing::warn!(
                    tenant = %state.log.tenant,
                    policy = %state.log.policy,
                    kind = %failure.kind,
                    detail = %failure.detail,
                    "policy failed; denying"
                );
                Outcome {
                    allow: false,
                    reasons: vec![failure.kind.reason()],
                    context: String::from("{}"),
                    failure: Some(failure),
                    usage,
                }
            }
        };
        match (outcome.failure.is_none(), instance) {
            (true, Ok((instance, evaluate))) => {
                (outcome, false, Some((store, stdio, instance, evaluate)))
            }
            _ => {
                self.warm.retire(store);
                (outcome, false, None)
            }
        }
    }

    /// The deadline of an evaluation within `slice`, and the tenant's
    /// full deadline, in epoch ticks.
    fn slice_ticks(&self, limits: &SandboxLimits, slice: Slice) -> (u64, u64) {
        let full = self.deadline_ticks(limits.timeout_ms);
        match slice {
            Slice::Full => (full, full),
            Slice::Inline => (full.min(INLINE_TICKS), full),
        }
    }

    fn deadline_ticks(&self, timeout_ms: u64) -> u64 {
        let tick = self.config.epoch_tick.as_micros().max(1);
        let timeout = u128::from(timeout_ms) * 1000;
        // One extra tick: the current one may be almost over already.
        u64::try_from(timeout.div_ceil(tick) + 1).unwrap_or(u64::MAX)
    }
}

/// Calls the instance's `evaluate` with `request`, lowered from the
/// borrowed values.
fn call(
    store: &mut Store<StoreState>,
    instance: &Instance,
    evaluate: ComponentExportIndex,
    request: &RequestView<'_>,
) -> Result<Result<Decision, String>, PolicyFailure> {
    let not_callable = |detail: String| PolicyFailure {
        kind: PolicyErrorKind::Instantiate,
        detail,
    };
    let func = instance
        .get_func(&mut *store, evaluate)
        .ok_or_else(|| not_callable(String::from("the instance has no `evaluate`")))?;
    let typed = func
        .typed::<(&RequestView<'_>,), (Result<Decision, String>,)>(&*store)
        .map_err(|err| not_callable(format!("{err:#}")))?;
    typed
        .call(&mut *store, (request,))
        .map(|(result,)| result)
        .map_err(|err| classify(&err, store, PolicyErrorKind::Trap))
}

fn classify(
    err: &wasmtime::Error,
    store: &Store<StoreState>,
    otherwise: PolicyErrorKind,
) -> PolicyFailure {
    let memory_refused = store.data().limiter.memory_refused;
    let kind = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PolicyErrorKind::Timeout,
        Some(Trap::OutOfFuel) => PolicyErrorKind::FuelExhausted,
        Some(Trap::StackOverflow) => PolicyErrorKind::StackOverflow,
        _ if memory_refused => PolicyErrorKind::MemoryLimit,
        Some(_) => PolicyErrorKind::Trap,
        None if hostcall_fuel_exhausted(err) => PolicyErrorKind::OutputTooLarge,
        None => otherwise,
    };
    PolicyFailure {
        kind,
        detail: truncate(format!("{err:#}"), 2048),
    }
}

/// wasmtime reports an exhausted hostcall budget with a private error type;
/// its message is the only handle. `hostcall_bytes_are_obeyed_and_violated`
/// fails if a wasmtime upgrade changes it.
fn hostcall_fuel_exhausted(err: &wasmtime::Error) -> bool {
    err.chain()
        .any(|cause| cause.to_string().contains("fuel allocated for hostcalls"))
}

type Checked = (bool, Vec<String>, String);

fn check_decision(decision: Decision, limits: &OutputLimits) -> Result<Checked, PolicyFailure> {
    let too_large = |detail: String| PolicyFailure {
        kind: PolicyErrorKind::OutputTooLarge,
        detail,
    };
    if decision.reasons.len() > limits.max_reasons {
        return Err(too_large(format!(
            "{} reasons, at most {} allowed",
            decision.reasons.len(),
            limits.max_reasons
        )));
    }
    if let Some(long) = decision
        .reasons
        .iter()
        .find(|r| r.len() > limits.max_reason_bytes)
    {
        return Err(too_large(format!(
            "a reason of {} bytes, at most {} allowed",
            long.len(),
            limits.max_reason_bytes
        )));
    }
    if decision.context.len() > limits.max_context_bytes {
        return Err(too_large(format!(
            "a context of {} bytes, at most {} allowed",
            decision.context.len(),
            limits.max_context_bytes
        )));
    }
    let context = if decision.context.is_empty() {
        String::from("{}")
    } else {
        decision.context
    };
    if let Err(err) = crate::nesting::check(context.as_bytes()) {
        return Err(PolicyFailure {
            kind: PolicyErrorKind::MalformedOutput,
            detail: format!("the decision's context: {err}"),
        });
    }
    let is_object = context.trim_start().starts_with('{')
        && serde_json::from_str::<IgnoredAny>(&context).is_ok();
    if !is_object {
        return Err(PolicyFailure {
            kind: PolicyErrorKind::MalformedOutput,
            detail: String::from("the decision's context is not a JSON object"),
        });
    }
    Ok((decision.allow, decision.reasons, context))
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
