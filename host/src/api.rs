//! The HTTP API (docs/API.md): one module per resource, routes next to their
//! handlers, `/openapi.json` generated from the same definitions.

mod audit;
mod authzen;
mod decide;
mod doc;
mod error;
mod extract;
mod head;
mod objects;
mod ops;
mod parse;
mod set_aside;
mod tenants;

use std::sync::Arc;
use std::time::Duration;
use ward_types::ErrorCode;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use extract::TENANT_HEADER;
pub use head::{
    MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES, PARSER_BUFFER_BYTES, PARSER_MAX_HEADERS,
};

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::config::HttpConfig;
use crate::decision::Decider;
use crate::evaluations::EvaluationPool;
use crate::gates::Gates;
use crate::registry::Registry;
use crate::store::Store;

/// Everything a handler needs, each part held directly.
#[derive(Clone)]
pub struct AppState {
    /// Tenants and their objects.
    pub registry: Arc<Registry>,
    /// Decisions.
    pub decider: Arc<Decider>,
    /// Every scope's audit log.
    pub audit: Arc<AuditLog>,
    /// The store, for readiness and set-aside records.
    pub store: Arc<dyn Store>,
    /// Per-tenant admission state and counters, for `/metrics`.
    pub gates: Arc<Gates>,
    /// The threads that run decisions which do not finish inline, for
    /// `/metrics`.
    pub evaluations: Arc<EvaluationPool>,
    /// Credentials.
    pub auth: Arc<Authenticator>,
    /// HTTP limits.
    pub http: Arc<HttpConfig>,
    /// Largest policy upload body (the host's module limit plus room).
    pub upload_limit: usize,
    /// Deadline of a policy upload: the request's, plus the time the
    /// largest module may take to compile.
    pub upload_deadline: Duration,
    /// Whether `/metrics` labels series by tenant.
    pub tenant_labels: bool,
    /// How long a request with `Ward-Min-Revision` waits for it.
    pub min_revision_wait: Duration,
}

/// A 201 answer with a JSON body.
pub struct Created<T>(pub T);

/// A 204 answer.
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Runs store writes and evaluations off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(ApiError::internal(format!("request task failed: {err}"))))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Ward", description = "Multi-tenant WebAssembly policy host"),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ward_types::ErrorBody, ward_types::ErrorDetail, ward_types::Limit)),
    tags(
        (name = "tenants", description = "Tenants (operator)"),
        (name = "agents"), (name = "policies"), (name = "data"), (name = "keys"), (name = "audit"),
        (name = "authorize", description = "Native decisions"),
        (name = "authzen", description = "OpenID AuthZEN 1.0"),
        (name = "global", description = "The global scope (operator)"),
        (name = "operations"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole API, ready to serve.
pub fn router(state: AppState) -> Router {
    let uploads = OpenApiRouter::new()
        .routes(routes!(
            objects::tenant_upload_policy,
            objects::tenant_get_policy,
            objects::tenant_delete_policy
        ))
        .routes(routes!(
            objects::global_upload_policy,
            objects::global_get_policy,
            objects::global_delete_policy
        ))
        // The tenant's own limit is checked against the actual size.
        .layer(DefaultBodyLimit::max(state.upload_limit));

    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::activate))
        .routes(routes!(tenants::create_key))
        .routes(routes!(tenants::own, tenants::update_own))
        .routes(routes!(tenants::me))
        .routes(routes!(tenants::plans))
        .routes(routes!(tenants::create_own_key, tenants::list_keys))
        .routes(routes!(tenants::revoke_key))
        .routes(routes!(objects::tenant_list_agents))
        .routes(routes!(
            objects::tenant_put_agent,
            objects::tenant_get_agent,
            objects::tenant_delete_agent
        ))
        .routes(routes!(objects::tenant_list_policies))
        .routes(routes!(objects::tenant_activate_policy))
        .routes(routes!(objects::tenant_configure_policy))
        .routes(routes!(
            objects::tenant_put_data,
            objects::tenant_get_data,
            objects::tenant_delete_data
        ))
        .routes(routes!(objects::global_list_agents))
        .routes(routes!(
            objects::global_put_agent,
            objects::global_get_agent,
            objects::global_delete_agent
        ))
        .routes(routes!(objects::global_list_policies))
        .routes(routes!(objects::global_activate_policy))
        .routes(routes!(objects::global_configure_policy))
        .routes(routes!(
            objects::global_put_data,
            objects::global_get_data,
            objects::global_delete_data
        ))
        .routes(routes!(audit::tenant))
        .routes(routes!(audit::global))
        .routes(routes!(decide::authorize))
        .routes(routes!(decide::batch))
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(authzen::discovery))
        .routes(routes!(authzen::tenant_discovery))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::usage))
        .routes(routes!(ops::metrics))
        .routes(routes!(set_aside::list, set_aside::remove))
        .layer(DefaultBodyLimit::max(state.http.max_body_bytes))
        .merge(uploads)
        .split_for_parts();

    let mut openapi = openapi;
    doc::declare_headers(&mut openapi, &state.auth.request_headers());
    doc::declare_errors(&mut openapi);
    let openapi = Arc::new(openapi);
    api.route(
        "/openapi.json",
        axum::routing::get(move || {
            let openapi = Arc::clone(&openapi);
            async move { axum::Json(openapi.as_ref().clone()) }
        }),
    )
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(middleware::from_fn_with_state(state.clone(), revisions))
    .layer(middleware::from_fn(head::limit_head))
    .layer(middleware::from_fn(head::json_errors))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        request_context,
    ))
    .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// Header carrying the request's id, accepted from the caller or made up.
pub const REQUEST_ID: &str = "x-request-id";
/// Response header: the store revision whose changes are all in force on
/// the replica that answered (for a write: at least the write's own).
pub const REVISION: &str = "ward-revision";
/// Request header: answer only once this replica has applied this
/// revision (a client reading its own writes through any replica).
pub const MIN_REVISION: &str = "ward-min-revision";

/// Holds a request with `Ward-Min-Revision` until the replica has applied
/// that revision (at most `min_revision_wait`, then 503
/// `revision_unavailable`), and tells every answer's revision.
async fn revisions(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get(MIN_REVISION) {
        let wanted = value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        let Some(wanted) = wanted else {
            return ApiError::new(
                ErrorCode::InvalidRequest,
                "Ward-Min-Revision must be a revision number (an unsigned integer)",
            )
            .into_response();
        };
        if !state
            .registry
            .wait_for_revision(wanted, state.min_revision_wait)
            .await
        {
            let applied = state.registry.applied_revision();
            let mut response = ApiError::new(
                ErrorCode::RevisionUnavailable,
                format!(
                    "this replica has applied revision {applied}, not yet {wanted}; \
                     try again"
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(REVISION, HeaderValue::from(applied));
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(1));
            return response;
        }
    }
    let mut response = next.run(request).await;
    let applied = state.registry.applied_revision();
    response
        .headers_mut()
        .insert(REVISION, HeaderValue::from(applied));
    response
}

/// `PUT /v1/policies/{name}` or `PUT /v1/global/policies/{name}`.
fn is_policy_upload(request: &Request) -> bool {
    if request.method() != axum::http::Method::PUT {
        return false;
    }
    let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["v1", "policies", _] | ["v1", "global", "policies", _]
    )
}

/// Per request: an id (echoed), a tracing span, and a deadline.
async fn request_context(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| crate::ids::next_ulid().to_string());
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id);
    let deadline = if is_policy_upload(&request) {
        state.upload_deadline
    } else {
        Duration::from_millis(state.http.request_timeout_ms)
    };
    let mut response =
        match tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => {
                ApiError::new(ErrorCode::Timeout, "the request took too long").into_response()
            }
        };
    let status = response.status().as_u16();
    match response.extensions_mut().remove::<error::InternalCause>() {
        // Every server failure once, with its cause and the request's span.
        Some(error::InternalCause(cause)) => {
            span.in_scope(|| tracing::error!(status, %cause, "request failed"))
        }
        None => span.in_scope(|| tracing::debug!(status, "answered")),
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
