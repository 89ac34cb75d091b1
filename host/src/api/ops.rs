//! Liveness and readiness.

use axum::extract::State;
use ward_types::Status;

use super::{ApiError, AppState, blocking};
use crate::store::Kind;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = Status)))]
pub async fn healthz() -> axum::Json<Status> {
    axum::Json(Status {
        status: "ok".into(),
    })
}

/// How long a replica of a shared store may go without reading the
/// change log before `/readyz` says it is not ready.
const FOLLOW_STALE: std::time::Duration = std::time::Duration::from_secs(3);

/// The store answers: ready for traffic.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, body = Status), (status = 500)))]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Status>, ApiError> {
    let (store, audit) = (state.store.clone(), state.audit.clone());
    // A replica that cannot follow the shared store's change log may be
    // serving revoked keys and deleted tenants: out of the pool with it.
    if store.shared() && state.registry.behind_for() > FOLLOW_STALE {
        return Err(ApiError::new(
            ward_types::ErrorCode::Unavailable,
            "this replica cannot follow the store's change log",
        ));
    }
    blocking(move || {
        store.get(Kind::Meta, "readiness-probe")?;
        // Behind on the audit log: answered decisions would pile up
        // unwritten, so a load balancer should send traffic elsewhere.
        if !audit.writer().keeping_up() {
            return Err(ApiError::new(
                ward_types::ErrorCode::AuditBehind,
                "the audit writer is behind; decisions may wait",
            ));
        }
        Ok(axum::Json(Status {
            status: "ready".into(),
        }))
    })
    .await
}

/// This month's decisions and the tenant's limits, and its spend.
#[utoipa::path(get, path = "/v1/usage", tag = "audit", responses((status = 200, body = ward_types::Usage)))]
pub async fn usage(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<axum::Json<ward_types::Usage>, ApiError> {
    let scope = caller.admin_scope()?;
    let mut usage = state.decider.usage(scope.key())?;
    let spent = state.decider.spend_report(scope.key())?;
    usage.spend = spent.spend;
    usage.agents = spent.agents;
    Ok(axum::Json(usage))
}

/// Prometheus metrics (operator): they name every tenant and its counts,
/// so anonymous callers get none.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    caller.require_operator()?;
    let body = render_metrics(&state);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    ))
}

fn render_metrics(state: &AppState) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;

    use crate::gates::Gates;
    use crate::metrics::header;

    let mut out = String::new();
    let gates = state.gates.all();
    let mut tenants: Vec<_> = gates.iter().collect();
    tenants.sort_by(|a, b| a.0.cmp(b.0));

    header(
        &mut out,
        "ward_decisions_total",
        "counter",
        "Decisions by tenant and outcome.",
    );
    tenant_counters(
        &mut out,
        &tenants,
        state.tenant_labels,
        (
            "ward_decisions_total",
            "outcome",
            &["allow", "deny", "error"],
        ),
        |gate| &gate.outcomes,
    );

    header(
        &mut out,
        "ward_rejections_total",
        "counter",
        "Calls refused by a tenant limit, by code.",
    );
    tenant_counters(
        &mut out,
        &tenants,
        state.tenant_labels,
        (
            "ward_rejections_total",
            "code",
            &Gates::refusal_codes().each_ref().map(|code| code.as_str()),
        ),
        |gate| &gate.refused,
    );

    header(
        &mut out,
        "ward_decision_duration_seconds",
        "histogram",
        "Time from request to decision.",
    );
    state
        .decider
        .metrics()
        .latency
        .render(&mut out, "ward_decision_duration_seconds", "");

    header(
        &mut out,
        "ward_policy_errors_total",
        "counter",
        "Policy failures by kind.",
    );
    let errors = state
        .decider
        .metrics()
        .policy_errors
        .lock()
        .map(|errors| errors.clone())
        .unwrap_or_default();
    let mut errors: Vec<_> = errors.into_iter().collect();
    errors.sort();
    for (kind, count) in errors {
        let _ = writeln!(out, "ward_policy_errors_total{{kind=\"{kind}\"}} {count}");
    }

    header(
        &mut out,
        "ward_evaluations_waiting",
        "gauge",
        "Decisions waiting for a thread of the evaluation pool.",
    );
    let _ = writeln!(
        out,
        "ward_evaluations_waiting {}",
        state.evaluations.waiting()
    );

    let writer = state.audit.writer().stats();
    header(
        &mut out,
        "ward_audit_queue_depth",
        "gauge",
        "Decision entries waiting to be written.",
    );
    let _ = writeln!(
        out,
        "ward_audit_queue_depth {}",
        writer.depth.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "ward_audit_flush_duration_seconds",
        "histogram",
        "Time to write and flush one batch of audit entries.",
    );
    writer
        .flush_us
        .render(&mut out, "ward_audit_flush_duration_seconds", "");
    header(
        &mut out,
        "ward_records_set_aside_total",
        "counter",
        "Stored records that could not be read, and audit entries that could not be stored, set aside since start.",
    );
    let _ = writeln!(
        out,
        "ward_records_set_aside_total {}",
        crate::store::set_aside::total()
    );
    header(
        &mut out,
        "ward_store_revision",
        "gauge",
        "The store revision whose changes are all in force on this server.",
    );
    let _ = writeln!(
        out,
        "ward_store_revision {}",
        state.registry.applied_revision()
    );
    header(
        &mut out,
        "ward_replicas_live",
        "gauge",
        "Replicas of the shared store this one counts as alive (1 on the embedded store).",
    );
    let _ = writeln!(out, "ward_replicas_live {}", state.gates.live_replicas());
    out
}

/// One counter family kept per tenant: a series per tenant and `key`
/// value, or (without tenant labels) one per value, summed.
fn tenant_counters(
    out: &mut String,
    tenants: &[(&String, &std::sync::Arc<crate::gates::TenantGate>)],
    tenant_labels: bool,
    (name, key, values): (&str, &str, &[&str]),
    counters: impl Fn(&crate::gates::TenantGate) -> &[std::sync::atomic::AtomicU64; 3],
) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;

    let mut totals = [0u64; 3];
    for (tenant, gate) in tenants {
        for (i, value) in values.iter().enumerate() {
            let count = counters(gate)[i].load(Ordering::Relaxed);
            totals[i] += count;
            if tenant_labels {
                let _ = writeln!(
                    out,
                    "{name}{{tenant=\"{}\",{key}=\"{value}\"}} {count}",
                    crate::metrics::label(tenant)
                );
            }
        }
    }
    if !tenant_labels {
        for (value, count) in values.iter().zip(totals) {
            let _ = writeln!(out, "{name}{{{key}=\"{value}\"}} {count}");
        }
    }
}
