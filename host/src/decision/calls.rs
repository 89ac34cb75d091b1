//! Calls: the items of one authorize call, decided in order for one
//! tenant, stopping as the call's [`Semantic`] says. A native batch is
//! `execute_all`; AuthZEN `evaluations` may ask for `deny_on_first_deny`
//! or `permit_on_first_permit`; a single decision is a call of one.
//!
//! A call is decided against one snapshot of its tenant and the global
//! scope, taken when it starts; its items that run the same policy share
//! one instance ([`crate::sandbox::Batch`]).
//!
//! Decisions run on the async worker itself, each within
//! [`Slice::Inline`] (1–2 ms) and all of them within [`INLINE_BUDGET`]:
//! a typical policy decides in tens of microseconds, and handing it to
//! another thread would cost two thread switches, more than the decision.
//! A policy that does not finish in its slice, and whatever the budget
//! leaves, goes to the evaluation pool ([`crate::evaluations`]), where the
//! policy runs again from the start with the tenant's full `timeout_ms`,
//! one decision per turn of its tenant — so a slow policy holds a worker
//! for at most a slice, and one tenant's queue of slow decisions delays
//! another tenant's by at most one decision per pool thread. With
//! `http.inline_decisions = false` every decision goes to the pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ward_types::{AuthorizeRequest, DecisionResponse};

use super::{Decider, DecisionError};
use crate::evaluations::Step;
use crate::gates::Permit;
use crate::registry::Scopes;
use crate::sandbox::{Batch, Slice};

/// Most items in one call.
pub const MAX_BATCH: usize = 100;

/// How long one call may decide on the async worker before handing the
/// rest of its decisions to the evaluation pool.
const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// One item of a call: a request, or why it could not be read (answered
/// as is, in its place).
pub type Item = Result<AuthorizeRequest, String>;

/// One item's answer: a decision, or the reason its request was refused.
pub type ItemAnswer = Result<DecisionResponse, String>;

/// When a call stops deciding its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Semantic {
    /// Decide every item.
    #[default]
    ExecuteAll,
    /// Stop after the first deny.
    DenyOnFirstDeny,
    /// Stop after the first allow.
    PermitOnFirstPermit,
}

impl Semantic {
    /// The semantic of AuthZEN's `options.evaluations_semantic`.
    pub fn from_authzen(name: &str) -> Option<Self> {
        match name {
            "execute_all" => Some(Semantic::ExecuteAll),
            "deny_on_first_deny" => Some(Semantic::DenyOnFirstDeny),
            "permit_on_first_permit" => Some(Semantic::PermitOnFirstPermit),
            _ => None,
        }
    }

    /// Whether the call stops after `answer`.
    fn stops_after(self, answer: &ItemAnswer) -> bool {
        match (self, answer) {
            (Semantic::DenyOnFirstDeny, Ok(decision)) => !decision.decision,
            (Semantic::PermitOnFirstPermit, Ok(decision)) => decision.decision,
            _ => false,
        }
    }
}

/// Required strings must not be empty.
pub fn check_request(request: &AuthorizeRequest) -> Result<(), String> {
    let fields = [
        ("subject.type", &request.subject.kind),
        ("subject.id", &request.subject.id),
        ("action.name", &request.action.name),
        ("resource.type", &request.resource.kind),
        ("resource.id", &request.resource.id),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, value)| value.is_empty()) {
        return Err(format!("{name} must not be empty"));
    }
    crate::gates::spend::Charge::of(request).map(|_| ())
}

impl Decider {
    /// Decides one request for `tenant`.
    pub async fn decide_one(
        self: &Arc<Self>,
        tenant: &str,
        actor: &str,
        request: AuthorizeRequest,
    ) -> Result<DecisionResponse, DecisionError> {
        let mut answers = self
            .decide_call(tenant, actor, vec![Ok(request)], Semantic::ExecuteAll)
            .await?;
        match answers.pop() {
            Some(Ok(decision)) => Ok(decision),
            // A call of one request always decides it.
            _ => Err(DecisionError::Dropped),
        }
    }

    /// Decides one request for `tenant` on the calling thread, with the
    /// tenant's full `timeout_ms` and without admission: for tools that
    /// decide on their own (`ward policy test`), benchmarks and tests.
    pub fn decide_now(
        &self,
        tenant: &str,
        actor: &str,
        request: &AuthorizeRequest,
    ) -> Result<super::DecisionOutcome, DecisionError> {
        let scopes = self
            .registry
            .tenant_scopes(tenant)
            .map(Arc::new)
            .ok_or_else(|| DecisionError::TenantNotFound(tenant.to_string()))?;
        let mut batch = Batch::default();
        let decided = self.decide_item(&scopes, &mut batch, request, actor, Slice::Full);
        self.evaluator.finish(batch);
        decided?.ok_or(DecisionError::Dropped)
    }

    /// Decides `items` in order for `tenant`, stopping as `semantic`
    /// says, after admitting them all at once.
    pub async fn decide_call(
        self: &Arc<Self>,
        tenant: &str,
        actor: &str,
        items: Vec<Item>,
        semantic: Semantic,
    ) -> Result<Vec<ItemAnswer>, DecisionError> {
        let permit = self.admit(tenant, items.len(), actor).await?;
        let scopes = self
            .registry
            .tenant_scopes(tenant)
            .map(Arc::new)
            .ok_or_else(|| DecisionError::TenantNotFound(tenant.to_string()))?;
        let mut call = Call {
            decider: Arc::clone(self),
            scopes,
            actor: actor.to_string(),
            semantic,
            batch: Batch::default(),
            out: Vec::with_capacity(items.len()),
        };
        let began = Instant::now();
        let mut items = items.into_iter();
        let mut unfinished = None;
        while self.schedule.inline && began.elapsed() < INLINE_BUDGET {
            let Some(item) = items.next() else {
                return Ok(call.finish());
            };
            match call.decide(&item, Slice::Inline)? {
                Some(true) => return Ok(call.finish()),
                Some(false) => {}
                None => {
                    unfinished = Some(item);
                    break;
                }
            }
        }
        let rest: Vec<Item> = unfinished.into_iter().chain(items).collect();
        if rest.is_empty() {
            return Ok(call.finish());
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let pending = Pending {
            call,
            rest: rest.into_iter(),
            answer,
            permit,
        };
        self.evaluations
            .submit(tenant, Box::new(move || pending.step()));
        answered.await.unwrap_or(Err(DecisionError::Dropped))
    }
}

/// A call being decided.
struct Call {
    decider: Arc<Decider>,
    scopes: Arc<Scopes>,
    actor: String,
    semantic: Semantic,
    batch: Batch,
    out: Vec<ItemAnswer>,
}

impl Call {
    /// Decides `item` within `slice` and keeps its answer: `Some(true)`
    /// when the call stops there, `None` when the policy did not finish in
    /// its inline slice (nothing was kept).
    fn decide(&mut self, item: &Item, slice: Slice) -> Result<Option<bool>, DecisionError> {
        let answer = match item {
            Ok(request) => {
                let decided = self.decider.decide_item(
                    &self.scopes,
                    &mut self.batch,
                    request,
                    &self.actor,
                    slice,
                )?;
                match decided {
                    Some(outcome) => Ok(outcome.response),
                    None => return Ok(None),
                }
            }
            Err(message) => Err(message.clone()),
        };
        let stop = self.semantic.stops_after(&answer);
        self.out.push(answer);
        Ok(Some(stop))
    }

    /// The answers, the call's instance handed back to the sandbox.
    fn finish(self) -> Vec<ItemAnswer> {
        self.decider.evaluator.finish(self.batch);
        self.out
    }
}

/// What is left of a call's decisions, run one per turn of its tenant in
/// the evaluation pool.
struct Pending {
    call: Call,
    rest: std::vec::IntoIter<Item>,
    answer: tokio::sync::oneshot::Sender<Result<Vec<ItemAnswer>, DecisionError>>,
    /// Held until the last decision is made.
    permit: Permit,
}

impl Pending {
    /// Decides the next item; answers once all are decided.
    fn step(mut self) -> Step {
        // Nobody waits for the answer any more (the client went away or
        // the request timed out): the rest is not decided.
        if self.answer.is_closed() {
            self.call.decider.evaluator.finish(self.call.batch);
            return Step::Done;
        }
        let Some(item) = self.rest.next() else {
            return self.answer(Ok(()));
        };
        match self.call.decide(&item, Slice::Full) {
            Ok(Some(false)) if self.rest.len() > 0 => Step::Again(Box::new(move || self.step())),
            Ok(_) => self.answer(Ok(())),
            Err(err) => self.answer(Err(err)),
        }
    }

    /// Answers with the decisions made (or `failed`), the tenant's
    /// evaluation slot released first: a caller that sends its next call
    /// as soon as it has this answer finds the slot free.
    fn answer(self, outcome: Result<(), DecisionError>) -> Step {
        let Pending {
            call,
            answer,
            permit,
            ..
        } = self;
        let out = call.finish();
        drop(permit);
        let _ = answer.send(outcome.map(|()| out));
        Step::Done
    }
}
