//! The records Ward set aside because it could not read (or store) them:
//! listed and removed by the operator (see [`crate::store::set_aside`]).

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, NoContent, blocking};
use crate::auth::Caller;
use crate::store::set_aside;

/// One record set aside, without its bytes (`ward store check --show`
/// prints them, with the server stopped).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetAsideInfo {
    /// Its id: `<kind>/<key>`.
    pub id: String,
    /// The tree it was in, e.g. `agents` or `audit`.
    pub kind: String,
    /// Its key there.
    pub key: String,
    /// Why it was set aside.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub set_aside_at_ms: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Which record to remove.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Which {
    /// The record's id, as listed.
    pub id: String,
}

/// Every record set aside, oldest id first.
#[utoipa::path(get, path = "/v1/set-aside", tag = "operations", responses((status = 200, body = Vec<SetAsideInfo>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<SetAsideInfo>>, ApiError> {
    caller.require_operator()?;
    let store = state.store.clone();
    blocking(move || {
        let listed = set_aside::list(store.as_ref())?;
        Ok(axum::Json(
            listed
                .into_iter()
                .map(|aside| SetAsideInfo {
                    size: (aside.bytes_hex.len() / 2) as u64,
                    id: aside.id,
                    kind: aside.kind,
                    key: aside.key,
                    reason: aside.reason,
                    set_aside_at_ms: aside.set_aside_at_ms,
                })
                .collect(),
        ))
    })
    .await
}

/// Removes one record set aside, for good.
#[utoipa::path(delete, path = "/v1/set-aside", tag = "operations", params(Which), responses((status = 204)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Query(which): Query<Which>,
) -> Result<NoContent, ApiError> {
    caller.require_operator()?;
    let store = state.store.clone();
    blocking(move || {
        if set_aside::remove(store.as_ref(), &which.id)? {
            Ok(NoContent)
        } else {
            Err(ApiError::not_found("no record is set aside with that id"))
        }
    })
    .await
}
