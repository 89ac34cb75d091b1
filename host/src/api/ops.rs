//! Liveness and readiness.

use axum::extract::State;
use serde::Serialize;

use super::{ApiError, AppState, blocking};
use crate::store::Kind;

/// A probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = Status)))]
pub async fn healthz() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

/// The store answers: ready for traffic.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, body = Status), (status = 500)))]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Status>, ApiError> {
    let registry = state.registry.clone();
    blocking(move || {
        registry.store().get(Kind::Meta, "readiness-probe")?;
        Ok(axum::Json(Status { status: "ready" }))
    })
    .await
}
