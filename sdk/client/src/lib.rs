//! An async client for Ward's HTTP API.
//!
//! Every route of the API has a method here, taking and returning the same
//! types the server uses (from the `ward-types` crate, re-exported as
//! [`types`]). Calls refused with 503, or with 429 and `Retry-After`, are
//! retried with backoff, waiting at least as long as `Retry-After` asks (a
//! 429 without it is a capacity quota, which no wait clears).
//!
//! ```no_run
//! use ward_client::Client;
//! use ward_client::types::{AuthorizeRequest, Entity, RequestAction};
//!
//! # async fn run() -> ward_client::Result<()> {
//! let ward = Client::new("http://127.0.0.1:7373", "wk_...")?;
//! let answer = ward
//!     .authorize(&AuthorizeRequest {
//!         subject: Entity::new("agent", "reporter"),
//!         action: RequestAction::new("export"),
//!         resource: Entity::new("reports", "q3"),
//!         context: None,
//!     })
//!     .await?;
//! println!("allowed: {} because {:?}", answer.decision, answer.reasons);
//! # Ok(())
//! # }
//! ```
//!
//! An operator token reaches one tenant's objects with
//! [`Client::for_tenant`], and the global scope with [`Client::global`].

#![deny(missing_docs)]

mod error;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::{Error, ErrorCode, Result};
pub use retry::RetryPolicy;
/// The request and response types of the API.
pub use ward_types as types;

use types::{
    ActivatePolicy, Agent, AgentPage, AgentStatus, ApiKeyInfo, AuditPage, AuditQuery,
    AuthorizeRequest, BatchRequest, BatchResponse, CreateKey, CreateTenant, CreatedKey,
    DataDocument, DecisionResponse, Discovery, ErrorBody, Evaluation, Evaluations, PatchTenant,
    Plan, PolicyInfo, PutAgent, Status, Tenant, UpdateTenant, UploadedPolicy, Usage,
};

/// Which agents [`Client::list_agents_filtered`] lists; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Only agents of this status.
    pub status: Option<AgentStatus>,
    /// Only agents of this type (exact match).
    pub kind: Option<String>,
    /// Page size, 1–1000 (the server's default is 100 when only a cursor
    /// is given).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The header that names the tenant an operator acts on.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// A handle on one Ward server. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    tenant: Option<HeaderValue>,
    global: bool,
}

struct Shared {
    http: reqwest::Client,
    base: Url,
    authorization: Option<HeaderValue>,
    retry: RetryPolicy,
}

/// Sets up a [`Client`].
pub struct ClientBuilder {
    base: String,
    token: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl ClientBuilder {
    /// The bearer credential: an API key, the operator token or a JWT.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How 429 and 503 answers are retried ([`RetryPolicy::none`] to
    /// never retry).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Deadline of one attempt (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Makes the client.
    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(self.base.trim_end_matches('/'))
            .map_err(|err| Error::Config(format!("invalid server URL `{}`: {err}", self.base)))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "invalid server URL `{}`: it must be http:// or https://",
                self.base
            )));
        }
        base.set_query(None);
        let authorization = self
            .token
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| Error::Config("the token has invalid characters".into()))?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("ward-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::Config(format!("cannot set up HTTP: {err}")))?;
        Ok(Client {
            shared: Arc::new(Shared {
                http,
                base,
                authorization,
                retry: self.retry,
            }),
            tenant: None,
            global: false,
        })
    }
}

/// A request body.
enum Body {
    Empty,
    Json(Bytes),
    Wasm(Bytes),
}

impl Body {
    fn json(value: &impl Serialize) -> Result<Body> {
        serde_json::to_vec(value)
            .map(|bytes| Body::Json(bytes.into()))
            .map_err(|err| Error::Config(format!("cannot encode the request: {err}")))
    }
}

impl Client {
    /// A client of the server at `base_url` using `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Client> {
        Client::builder(base_url).token(token).build()
    }

    /// A client to set up further (no token: only the public routes).
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base: base_url.to_string(),
            token: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
        }
    }

    /// The same client acting on tenant `tenant` (id or slug): the
    /// operator's way into a tenant's objects. A tenant credential must
    /// name its own tenant, or the server answers 403 `tenant_mismatch`.
    pub fn for_tenant(&self, tenant: &str) -> Result<Client> {
        let value = HeaderValue::from_str(tenant)
            .map_err(|_| Error::Config(format!("invalid tenant `{tenant}`")))?;
        Ok(Client {
            tenant: Some(value),
            global: false,
            ..self.clone()
        })
    }

    /// The same client working on the global scope: agents, policies,
    /// data and audit calls go to `/v1/global/…` (operator only).
    pub fn global(&self) -> Client {
        Client {
            tenant: None,
            global: true,
            ..self.clone()
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.shared.base.as_str()
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url> {
        let mut url = self.shared.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::Config("the server URL cannot take a path".into()))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// `["v1", "agents"]`, or `["v1", "global", "agents"]` on the global scope.
    fn scoped<'a>(&self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut segments = vec!["v1"];
        if self.global {
            segments.push("global");
        }
        segments.extend_from_slice(rest);
        segments
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(auth) = &self.shared.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Some(tenant) = &self.tenant {
            headers.insert(TENANT_HEADER, tenant.clone());
        }
        headers
    }

    /// Sends one call, retrying refusals the policy allows.
    async fn send(&self, method: Method, url: Url, body: Body) -> Result<reqwest::Response> {
        let retry = &self.shared.retry;
        let mut attempt = 0u32;
        loop {
            let mut request = self
                .shared
                .http
                .request(method.clone(), url.clone())
                .headers(self.headers());
            request = match &body {
                Body::Empty => request,
                Body::Json(bytes) => request
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone()),
                Body::Wasm(bytes) => request
                    .header(CONTENT_TYPE, "application/wasm")
                    .body(bytes.clone()),
            };
            let wait = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let after = retry::retry_after(response.headers());
                    // A 429 without Retry-After is a capacity quota, which
                    // no wait clears.
                    let passing = status == 503 || (status == 429 && after.is_some());
                    if !passing || attempt >= retry.max_retries {
                        return Ok(response);
                    }
                    retry.delay(attempt, after)
                }
                // Nothing reached the server: safe to try again.
                Err(err) if err.is_connect() && attempt < retry.max_retries => {
                    retry.delay(attempt, None)
                }
                Err(err) => return Err(Error::Transport(err)),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, url: Url, body: Body) -> Result<T> {
        let response = self.send(method, url, body).await?;
        let status = response.status().as_u16();
        let bytes = read(response).await?;
        serde_json::from_slice(&bytes).map_err(|err| Error::Decode {
            status,
            message: err.to_string(),
        })
    }

    async fn call_empty(&self, method: Method, url: Url) -> Result<()> {
        let response = self.send(method, url, Body::Empty).await?;
        read(response).await.map(drop)
    }

    // ---- tenants (operator) ------------------------------------------------

    /// Creates a tenant.
    pub async fn create_tenant(&self, request: &CreateTenant) -> Result<Tenant> {
        let url = self.url(&["v1", "tenants"], &[])?;
        self.call(Method::POST, url, Body::json(request)?).await
    }

    /// Every tenant, whatever its status.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let url = self.url(&["v1", "tenants"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// One tenant, by id or slug.
    pub async fn get_tenant(&self, tenant: &str) -> Result<Tenant> {
        let url = self.url(&["v1", "tenants", tenant], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Renames a tenant or changes its settings (a JSON merge patch).
    pub async fn update_tenant(&self, tenant: &str, request: &UpdateTenant) -> Result<Tenant> {
        let url = self.url(&["v1", "tenants", tenant], &[])?;
        self.call(Method::PATCH, url, Body::json(request)?).await
    }

    /// Puts a tenant on plan `plan` (its trial, if the plan has one,
    /// starting now), or on no plan (operator).
    pub async fn set_tenant_plan(&self, tenant: &str, plan: Option<&str>) -> Result<Tenant> {
        let url = self.url(&["v1", "tenants", tenant], &[])?;
        let patch = PatchTenant {
            plan: Some(plan.map(str::to_string)),
            ..PatchTenant::default()
        };
        self.call(Method::PATCH, url, Body::json(&patch)?).await
    }

    /// The plans the server's configuration defines (operator).
    pub async fn list_plans(&self) -> Result<Vec<Plan>> {
        let url = self.url(&["v1", "plans"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Suspends a tenant: its decisions become denies.
    pub async fn suspend_tenant(&self, tenant: &str) -> Result<Tenant> {
        let url = self.url(&["v1", "tenants", tenant, "suspend"], &[])?;
        self.call(Method::POST, url, Body::Empty).await
    }

    /// Serves a suspended tenant again.
    pub async fn activate_tenant(&self, tenant: &str) -> Result<Tenant> {
        let url = self.url(&["v1", "tenants", tenant, "activate"], &[])?;
        self.call(Method::POST, url, Body::Empty).await
    }

    /// Deletes a tenant and everything it owns.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<()> {
        let url = self.url(&["v1", "tenants", tenant], &[])?;
        self.call_empty(Method::DELETE, url).await
    }

    /// Creates an API key for a tenant; the secret is in the answer only.
    pub async fn create_tenant_key(&self, tenant: &str, request: &CreateKey) -> Result<CreatedKey> {
        let url = self.url(&["v1", "tenants", tenant, "keys"], &[])?;
        self.call(Method::POST, url, Body::json(request)?).await
    }

    // ---- the caller's tenant -----------------------------------------------

    /// The caller's own tenant.
    pub async fn tenant(&self) -> Result<Tenant> {
        let url = self.url(&["v1", "tenant"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Creates an API key of the caller's tenant.
    pub async fn create_key(&self, request: &CreateKey) -> Result<CreatedKey> {
        let url = self.url(&["v1", "keys"], &[])?;
        self.call(Method::POST, url, Body::json(request)?).await
    }

    /// The caller's tenant's keys (never their secrets).
    pub async fn list_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let url = self.url(&["v1", "keys"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Revokes a key at once.
    pub async fn revoke_key(&self, id: &str) -> Result<()> {
        let url = self.url(&["v1", "keys", id], &[])?;
        self.call_empty(Method::DELETE, url).await
    }

    /// This month's decisions and the tenant's limits.
    pub async fn usage(&self) -> Result<Usage> {
        let url = self.url(&["v1", "usage"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    // ---- agents ------------------------------------------------------------

    /// Creates or replaces an agent.
    pub async fn put_agent(&self, name: &str, agent: &PutAgent) -> Result<Agent> {
        let url = self.url(&self.scoped(&["agents", name]), &[])?;
        self.call(Method::PUT, url, Body::json(agent)?).await
    }

    /// Every agent visible: the tenant's own and inherited global ones.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        let url = self.url(&self.scoped(&["agents"]), &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// The agents visible that `filter` selects, by name: with neither
    /// `limit` nor `cursor` all of them in one page, else one page whose
    /// `next_cursor`, set as the next call's `cursor`, gives the next.
    pub async fn list_agents_filtered(&self, filter: &AgentFilter) -> Result<AgentPage> {
        let limit = filter.limit.map(|l| l.to_string());
        let status = filter.status.map(|s| match s {
            AgentStatus::Active => "active",
            AgentStatus::Disabled => "disabled",
        });
        let fields = [
            ("status", status),
            ("type", filter.kind.as_deref()),
            ("limit", limit.as_deref()),
            ("cursor", filter.cursor.as_deref()),
        ];
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .filter_map(|(name, value)| value.map(|v| (*name, v)))
            .collect();
        let url = self.url(&self.scoped(&["agents"]), &pairs)?;
        if filter.limit.is_none() && filter.cursor.is_none() {
            // Without paging the server answers the plain list.
            let agents = self.call(Method::GET, url, Body::Empty).await?;
            return Ok(AgentPage {
                agents,
                next_cursor: None,
            });
        }
        self.call(Method::GET, url, Body::Empty).await
    }

    /// One agent, resolved narrowest-first.
    pub async fn get_agent(&self, name: &str) -> Result<Agent> {
        let url = self.url(&self.scoped(&["agents", name]), &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Deletes an agent.
    pub async fn delete_agent(&self, name: &str) -> Result<()> {
        let url = self.url(&self.scoped(&["agents", name]), &[])?;
        self.call_empty(Method::DELETE, url).await
    }

    // ---- policies ----------------------------------------------------------

    /// Uploads a policy component as a new version; `activate: false`
    /// stages it without serving it.
    pub async fn upload_policy(
        &self,
        name: &str,
        wasm: impl Into<Bytes>,
        activate: bool,
    ) -> Result<UploadedPolicy> {
        let activate = if activate { "true" } else { "false" };
        let url = self.url(&self.scoped(&["policies", name]), &[("activate", activate)])?;
        self.call(Method::PUT, url, Body::Wasm(wasm.into())).await
    }

    /// Every policy visible, with versions.
    pub async fn list_policies(&self) -> Result<Vec<PolicyInfo>> {
        let url = self.url(&self.scoped(&["policies"]), &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// One policy.
    pub async fn get_policy(&self, name: &str) -> Result<PolicyInfo> {
        let url = self.url(&self.scoped(&["policies", name]), &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Makes `version` the one served (rollback or roll forward).
    pub async fn activate_policy(&self, name: &str, version: u32) -> Result<PolicyInfo> {
        let url = self.url(&self.scoped(&["policies", name, "activate"]), &[])?;
        let body = Body::json(&ActivatePolicy { version })?;
        self.call(Method::POST, url, body).await
    }

    /// Sets the configuration passed to the policy with every request.
    pub async fn configure_policy(&self, name: &str, config: &Value) -> Result<PolicyInfo> {
        let url = self.url(&self.scoped(&["policies", name, "config"]), &[])?;
        self.call(Method::PUT, url, Body::json(config)?).await
    }

    /// Deletes a policy and all its versions.
    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        let url = self.url(&self.scoped(&["policies", name]), &[])?;
        self.call_empty(Method::DELETE, url).await
    }

    // ---- data --------------------------------------------------------------

    /// Stores a data document.
    pub async fn put_data(&self, key: &str, value: &Value) -> Result<DataDocument> {
        let url = self.url(&self.scoped(&["data", key]), &[])?;
        self.call(Method::PUT, url, Body::json(value)?).await
    }

    /// One data document, resolved narrowest-first.
    pub async fn get_data(&self, key: &str) -> Result<DataDocument> {
        let url = self.url(&self.scoped(&["data", key]), &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Deletes a data document.
    pub async fn delete_data(&self, key: &str) -> Result<()> {
        let url = self.url(&self.scoped(&["data", key]), &[])?;
        self.call_empty(Method::DELETE, url).await
    }

    // ---- audit -------------------------------------------------------------

    /// One page of the audit log, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        let fields = [
            ("kind", &query.kind),
            ("agent", &query.agent),
            ("decision", &query.decision),
            ("since", &query.since),
            ("until", &query.until),
            ("limit", &query.limit),
            ("cursor", &query.cursor),
        ];
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .filter_map(|(name, value)| value.as_deref().map(|v| (*name, v)))
            .collect();
        let url = self.url(&self.scoped(&["audit"]), &pairs)?;
        self.call(Method::GET, url, Body::Empty).await
    }

    // ---- decisions ---------------------------------------------------------

    /// One decision.
    pub async fn authorize(&self, request: &AuthorizeRequest) -> Result<DecisionResponse> {
        let url = self.url(&["v1", "authorize"], &[])?;
        self.call(Method::POST, url, Body::json(request)?).await
    }

    /// Up to 100 decisions in one call, answered in order.
    pub async fn authorize_batch(
        &self,
        requests: &[AuthorizeRequest],
    ) -> Result<Vec<DecisionResponse>> {
        let items = requests
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| Error::Config(format!("cannot encode the request: {err}")))?;
        let url = self.url(&["v1", "authorize", "batch"], &[])?;
        let answer: BatchResponse = self
            .call(Method::POST, url, Body::json(&BatchRequest { items })?)
            .await?;
        Ok(answer.results)
    }

    /// An OpenID AuthZEN access evaluation.
    pub async fn evaluation(&self, request: &AuthorizeRequest) -> Result<Evaluation> {
        let url = self.url(&["access", "v1", "evaluation"], &[])?;
        self.call(Method::POST, url, Body::json(request)?).await
    }

    /// OpenID AuthZEN access evaluations: `body` has the optional
    /// top-level defaults, `evaluations` and `options`.
    pub async fn evaluations(&self, body: &Value) -> Result<Evaluations> {
        let url = self.url(&["access", "v1", "evaluations"], &[])?;
        self.call(Method::POST, url, Body::json(body)?).await
    }

    /// The AuthZEN discovery document, of one tenant when `tenant_slug`
    /// is given.
    pub async fn discovery(&self, tenant_slug: Option<&str>) -> Result<Discovery> {
        let mut segments = vec![".well-known", "authzen-configuration"];
        segments.extend(tenant_slug);
        let url = self.url(&segments, &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    // ---- operations --------------------------------------------------------

    /// Liveness.
    pub async fn healthz(&self) -> Result<Status> {
        let url = self.url(&["healthz"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// Readiness: the store answers.
    pub async fn readyz(&self) -> Result<Status> {
        let url = self.url(&["readyz"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }

    /// The Prometheus metrics, as text (operator token).
    pub async fn metrics(&self) -> Result<String> {
        let url = self.url(&["metrics"], &[])?;
        let response = self.send(Method::GET, url, Body::Empty).await?;
        let bytes = read(response).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The OpenAPI document of the server.
    pub async fn openapi(&self) -> Result<Value> {
        let url = self.url(&["openapi.json"], &[])?;
        self.call(Method::GET, url, Body::Empty).await
    }
}

/// The body of a successful answer, or the server's error.
async fn read(response: reqwest::Response) -> Result<Bytes> {
    let status = response.status();
    let retry_after = retry::retry_after(response.headers());
    let bytes = response.bytes().await.map_err(Error::Transport)?;
    if status.is_success() {
        return Ok(bytes);
    }
    Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => Error::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
            retry_after,
        },
        Err(_) => Error::Api {
            status: status.as_u16(),
            code: ErrorCode::Other(String::from("http_error")),
            message: status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_string(),
            retry_after,
        },
    })
}
