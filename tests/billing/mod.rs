//! Plans, trials and the config file's per-tenant overrides.

mod overrides;
mod plans;

use serde_json::Value;

use crate::server::{Body, Reply, TestServer};

/// `PATCH path` with `body`.
async fn patch(server: &TestServer, path: &str, token: &str, body: Value) -> Reply {
    server
        .call("PATCH", path, Some(token), None, Body::Json(body))
        .await
}
