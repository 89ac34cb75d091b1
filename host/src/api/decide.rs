//! Native decisions: `POST /v1/authorize` (short or AuthZEN-shaped form)
//! and `POST /v1/authorize/batch`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_types::ErrorCode;

use axum::extract::State;
use ward_types::{AuthorizeRequest, BatchRequest, BatchResponse, DecisionResponse};

use super::extract::ApiJson;
use super::form::{Incoming, IncomingBatch};
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::evaluations::Step;
use crate::limits::Permit;
use crate::registry::{Admission, Registry, RegistryError};
use crate::sandbox::Slice;

/// Most items in one batch.
pub const MAX_BATCH: usize = 100;

/// Required strings must not be empty.
pub fn check_request(request: &AuthorizeRequest) -> Result<(), String> {
    let fields = [
        ("subject.type", &request.subject.kind),
        ("subject.id", &request.subject.id),
        ("action.name", &request.action.name),
        ("resource.type", &request.resource.kind),
        ("resource.id", &request.resource.id),
    ];
    match fields.iter().find(|(_, value)| value.is_empty()) {
        Some((name, _)) => Err(format!("{name} must not be empty")),
        None => Ok(()),
    }
}

/// How long one call may decide on the async worker before handing the
/// rest of its decisions to the evaluation pool.
const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// One item of a call: a request, or why it could not be read (answered
/// as is, in its place).
pub type Item = Result<AuthorizeRequest, String>;

/// Decides `items` in order for the caller's tenant, stopping after the
/// first decision for which `stop` is true.
///
/// The tenant's limits are checked first, on the async worker: a refusal
/// is only arithmetic on in-memory counters (plus one audit event per
/// episode), so a tenant flooding past its limits never occupies a thread
/// that others' decisions need.
///
/// Decisions then run on the async worker itself, each within
/// [`Slice::Inline`] (1–2 ms) and all of them within [`INLINE_BUDGET`]:
/// a typical policy decides in tens of microseconds, and handing it to
/// another thread would cost two thread switches, more than the decision.
/// A policy that does not finish in its slice, and whatever the budget
/// leaves, goes to the evaluation pool ([`crate::evaluations`]), where
/// the policy runs again from the start with the tenant's full
/// `timeout_ms`, one decision per turn of its tenant — so a slow policy
/// holds a worker for at most a slice, and one tenant's queue of slow
/// decisions delays another tenant's by at most one decision per pool
/// thread. With `http.inline_decisions = false` every decision goes to
/// the pool.
pub async fn decide_all(
    state: &AppState,
    caller: &Caller,
    items: Vec<Item>,
    stop: fn(&DecisionResponse) -> bool,
) -> Result<Vec<Result<DecisionResponse, String>>, ApiError> {
    let tenant = caller.decision_tenant()?;
    let permit = admit(state, caller, &tenant, items.len()).await?;
    let registry = state.registry.clone();
    let actor = caller.actor.clone();
    let began = Instant::now();
    let mut out = Vec::with_capacity(items.len());
    let mut items = items.into_iter();
    let mut unfinished = None;
    while state.http.inline_decisions && began.elapsed() < INLINE_BUDGET {
        let Some(item) = items.next() else {
            return Ok(out);
        };
        match decide_item(&registry, &tenant, &actor, &item, Slice::Inline) {
            Ok(answer) => {
                let done = answer.as_ref().is_ok_and(stop);
                out.push(answer);
                if done {
                    return Ok(out);
                }
            }
            Err(RegistryError::Unfinished) => {
                unfinished = Some(item);
                break;
            }
            Err(err) => return Err(err.into()),
        }
    }
    let rest: Vec<Item> = unfinished.into_iter().chain(items).collect();
    if rest.is_empty() {
        return Ok(out);
    }
    let (answer, answered) = tokio::sync::oneshot::channel();
    let pending = Pending {
        registry,
        tenant: tenant.clone(),
        actor,
        rest: rest.into_iter(),
        out,
        stop,
        answer,
        permit,
    };
    state
        .evaluations
        .submit(&tenant, Box::new(move || pending.step()));
    answered
        .await
        .unwrap_or_else(|_| Err(ApiError::internal("the evaluation was dropped")))
}

/// What is left of a call's decisions, run one per turn of its tenant in
/// the evaluation pool.
struct Pending {
    registry: Arc<Registry>,
    tenant: String,
    actor: String,
    rest: std::vec::IntoIter<Item>,
    out: Vec<Result<DecisionResponse, String>>,
    stop: fn(&DecisionResponse) -> bool,
    answer: tokio::sync::oneshot::Sender<Result<Vec<Result<DecisionResponse, String>>, ApiError>>,
    /// Held until the last decision is made.
    permit: Permit,
}

impl Pending {
    /// Decides the next item; answers once all are decided.
    fn step(mut self) -> Step {
        // Nobody waits for the answer any more (the client went away or
        // the request timed out): the rest is not decided.
        if self.answer.is_closed() {
            return Step::Done;
        }
        let Some(item) = self.rest.next() else {
            return self.finish(None);
        };
        match decide_item(
            &self.registry,
            &self.tenant,
            &self.actor,
            &item,
            Slice::Full,
        ) {
            Ok(answer) => {
                let done = answer.as_ref().is_ok_and(self.stop);
                self.out.push(answer);
                if done || self.rest.len() == 0 {
                    return self.finish(None);
                }
                Step::Again(Box::new(move || self.step()))
            }
            Err(err) => self.finish(Some(err.into())),
        }
    }

    /// Answers with the decisions made (or `failed`), the tenant's
    /// evaluation slot released first: a caller that sends its next call
    /// as soon as it has this answer finds the slot free.
    fn finish(self, failed: Option<ApiError>) -> Step {
        let Pending {
            answer,
            out,
            permit,
            ..
        } = self;
        drop(permit);
        let _ = answer.send(failed.map_or(Ok(out), Err));
        Step::Done
    }
}

/// One item's answer.
fn decide_item(
    registry: &Registry,
    tenant: &str,
    actor: &str,
    item: &Item,
    slice: Slice,
) -> Result<Result<DecisionResponse, String>, RegistryError> {
    match item {
        Ok(request) => Ok(Ok(registry
            .authorize_within(tenant, request, actor, slice)?
            .response)),
        Err(message) => Ok(Err(message.clone())),
    }
}

/// Never stop early.
pub fn execute_all(_: &DecisionResponse) -> bool {
    false
}

/// Checks the tenant's limits for `decisions` more decisions. A refusal
/// is answered after `http.refusal_delay_ms` (at most its `Retry-After`).
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    decisions: usize,
) -> Result<Permit, ApiError> {
    // More decisions in one call than the tenant's burst can never be
    // admitted, however long the client waits: a client mistake, not a
    // 429 to retry.
    if decisions > 1
        && let Some(view) = state.registry.tenant_view(tenant)
        && decisions > view.settings.burst as usize
    {
        return Err(ApiError::bad_request(
            ErrorCode::BatchExceedsBurst,
            format!(
                "this call asks for {decisions} decisions and this tenant's burst is {}; send at most {} at once",
                view.settings.burst, view.settings.burst
            ),
        ));
    }
    let count = u32::try_from(decisions).unwrap_or(u32::MAX);
    match state.registry.admit(tenant, count, &caller.actor) {
        Ok(permit) => Ok(permit),
        Err(Admission::Refused(refusal)) => {
            // Jittered (half to all of the pause), so that a flood's
            // connections, refused together, do not come back together.
            let pause = Duration::from_millis(state.http.refusal_delay_ms)
                .min(Duration::from_secs(refusal.retry_after_secs))
                .mul_f64(rand::random_range(0.5..=1.0));
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            Err(Admission::Refused(refusal).into())
        }
        Err(other) => Err(other.into()),
    }
}

/// Decides one request for the caller's tenant.
pub async fn decide_one(
    state: &AppState,
    caller: &Caller,
    request: AuthorizeRequest,
) -> Result<DecisionResponse, ApiError> {
    match decide_all(state, caller, vec![Ok(request)], execute_all)
        .await?
        .pop()
    {
        Some(Ok(decision)) => Ok(decision),
        _ => Err(ApiError::internal("no decision")),
    }
}

/// Decide one request. A deny is a 200 like an allow.
#[utoipa::path(post, path = "/v1/authorize", tag = "authorize", request_body = AuthorizeRequest,
    responses((status = 200, body = DecisionResponse), (status = 429, description = "a tenant limit refused the call; retry after `Retry-After` seconds")))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(Incoming(request)): ApiJson<Incoming>,
) -> Result<axum::Json<DecisionResponse>, ApiError> {
    let request =
        request.map_err(|message| ApiError::bad_request(ErrorCode::InvalidInput, message))?;
    decide_one(&state, &caller, request).await.map(axum::Json)
}

/// Decide up to 100 requests at once.
#[utoipa::path(post, path = "/v1/authorize/batch", tag = "authorize", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse),
        (status = 400, description = "a malformed item, or more items than the tenant's burst (`batch_exceeds_burst`)"),
        (status = 429, description = "a tenant limit refused the call; retry after `Retry-After` seconds")))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IncomingBatch>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("a batch has 1 to {MAX_BATCH} items"),
        ));
    }
    let requests = body
        .items
        .into_iter()
        .enumerate()
        .map(|(i, Incoming(item))| {
            item.map(Ok).map_err(|m| {
                ApiError::bad_request(ErrorCode::InvalidInput, format!("items[{i}]: {m}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = decide_all(&state, &caller, requests, execute_all)
        .await?
        .into_iter()
        .map(|answer| answer.map_err(ApiError::internal))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(BatchResponse { results }))
}
