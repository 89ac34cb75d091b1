//! `ward serve` settings: command-line flags over an optional TOML file.
//! Unknown keys are refused so that a typo never silently changes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::audit::writer::{Durability, WriterConfig};
use crate::evaluations::MAX_EVALUATION_THREADS;
use crate::sandbox::SandboxConfig;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything `ward serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the store and the compiled-code cache live.
    pub data_dir: PathBuf,
    /// Hex sha256 of the operator token, when not given by
    /// `WARD_ADMIN_TOKEN`.
    pub admin_token_sha256: Option<String>,
    /// Limits of the HTTP layer.
    pub http: HttpConfig,
    /// Token issuers and tenant provisioning.
    pub auth: AuthConfig,
    /// Host-wide sandbox bounds.
    pub sandbox: SandboxSection,
    /// How decisions are written to the audit log.
    pub audit: AuditSection,
    /// What `/metrics` shows.
    pub metrics: MetricsSection,
    /// Where records are kept: the embedded store under `data_dir`, or a
    /// shared database.
    pub store: StoreSection,
    /// How the server logs to stderr (`--log-format` wins over it).
    pub log_format: LogFormat,
    /// Tenants' default plans and the settings this file pins for some.
    pub tenants: TenantsSection,
    /// The plans tenants may be put on.
    pub plans: Vec<PlanSection>,
    /// The file this configuration was read from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// The `[tenants]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantsSection {
    /// The plan new organization tenants are put on.
    pub default_plan: Option<String>,
    /// The plan new personal tenants (those JWTs provision included) are
    /// put on.
    pub default_personal_plan: Option<String>,
    /// Settings pinned for one tenant each, above its own.
    pub overrides: Vec<TenantOverride>,
}

/// One `[[tenants.overrides]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantOverride {
    /// The tenant's slug (it may not exist yet).
    pub slug: String,
    /// Tenant settings, by the API's names.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// One `[[plans]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSection {
    /// The plan's name.
    pub name: String,
    /// Days a tenant put on it may decide before it must change plans.
    #[serde(default)]
    pub trial_days: Option<u32>,
    /// Its tenants' default settings, by the API's names.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, coloured on a terminal only.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7373)),
            data_dir: PathBuf::from("./ward-data"),
            admin_token_sha256: None,
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            sandbox: SandboxSection::default(),
            audit: AuditSection::default(),
            metrics: MetricsSection::default(),
            store: StoreSection::default(),
            log_format: LogFormat::default(),
            tenants: TenantsSection::default(),
            plans: Vec::new(),
            path: None,
        }
    }
}

/// The store section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://user:password@host:port/database` for the shared store
    /// that several replicas run on; unset, the embedded store under
    /// `data_dir`. `--store` and `WARD_STORE_URL` win over it.
    pub url: Option<String>,
    /// How often a replica reads the shared store's change log, at most
    /// [`MAX_FOLLOW_INTERVAL_MS`].
    pub follow_interval_ms: u64,
    /// How long a request with `Ward-Min-Revision` waits for this replica
    /// to apply that revision before it is answered 503.
    pub min_revision_wait_ms: u64,
    /// How often a replica writes its usage counts and reads the other
    /// replicas' (shared store only).
    pub usage_sync_ms: u64,
}

/// The slowest a replica may follow the change log: a write must be in
/// force everywhere within a second.
pub const MAX_FOLLOW_INTERVAL_MS: u64 = 500;

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            url: None,
            follow_interval_ms: 100,
            min_revision_wait_ms: 2000,
            usage_sync_ms: 1000,
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The plans and per-tenant overrides, for the registry.
    pub fn catalog(&self) -> crate::registry::Catalog {
        crate::registry::Catalog {
            plans: self
                .plans
                .iter()
                .map(|plan| {
                    let plan = ward_types::Plan {
                        name: plan.name.clone(),
                        trial_days: plan.trial_days,
                        settings: plan.settings.clone(),
                    };
                    (plan.name.clone(), plan)
                })
                .collect(),
            default_plan: self.tenants.default_plan.clone(),
            default_personal_plan: self.tenants.default_personal_plan.clone(),
            overrides: self
                .tenants
                .overrides
                .iter()
                .map(|entry| (entry.slug.clone(), entry.settings.clone()))
                .collect(),
            origin: self.path.as_ref().map_or_else(
                || String::from("the server's configuration"),
                |path| path.display().to_string(),
            ),
        }
    }

    /// Checks `[tenants]` and `[[plans]]`: names unique, default plans
    /// among the plans, settings by known names (their ranges, which
    /// depend on the host, are checked when the registry takes them).
    fn check_tenants(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let mut names = std::collections::HashSet::new();
        for plan in &self.plans {
            if !names.insert(plan.name.as_str()) {
                return invalid(format!("plan `{}` is defined twice", plan.name));
            }
            if plan.trial_days == Some(0) {
                return invalid(format!("plan `{}`: trial_days must be positive", plan.name));
            }
            if let Err(err) = ward_types::TenantSettings::from_overrides(&plan.settings) {
                return invalid(format!("plan `{}` settings: {err}", plan.name));
            }
        }
        for name in [
            &self.tenants.default_plan,
            &self.tenants.default_personal_plan,
        ]
        .into_iter()
        .flatten()
        {
            if !names.contains(name.as_str()) {
                return invalid(format!(
                    "tenants: the default plan `{name}` is not one of [[plans]]"
                ));
            }
        }
        let mut slugs = std::collections::HashSet::new();
        for entry in &self.tenants.overrides {
            if !slugs.insert(entry.slug.as_str()) {
                return invalid(format!(
                    "[[tenants.overrides]]: `{}` is listed twice",
                    entry.slug
                ));
            }
            if let Err(err) = ward_types::TenantSettings::from_overrides(&entry.settings) {
                return invalid(format!(
                    "[[tenants.overrides]] `{}` settings: {err}",
                    entry.slug
                ));
            }
        }
        Ok(())
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks values that the types alone do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(hash) = &self.admin_token_sha256
            && (hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::Invalid(String::from(
                "admin_token_sha256 must be 64 hex digits",
            )));
        }
        if self.http.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid(String::from(
                "http.request_timeout_ms must be positive",
            )));
        }
        if self.sandbox.compile_timeout_ms == 0 {
            return Err(ConfigError::Invalid(String::from(
                "sandbox.compile_timeout_ms must be positive",
            )));
        }
        if self.sandbox.max_concurrent_compiles == 0 {
            return Err(ConfigError::Invalid(String::from(
                "sandbox.max_concurrent_compiles must be positive",
            )));
        }
        if self.sandbox.max_resident_policies == 0 {
            return Err(ConfigError::Invalid(String::from(
                "sandbox.max_resident_policies must be positive",
            )));
        }
        if let Some(threads) = self.http.evaluation_threads
            && !(1..=MAX_EVALUATION_THREADS).contains(&threads)
        {
            return Err(ConfigError::Invalid(format!(
                "http.evaluation_threads must be between 1 and {MAX_EVALUATION_THREADS}"
            )));
        }
        if self.sandbox.warm_instances > Some(MAX_WARM_INSTANCES) {
            return Err(ConfigError::Invalid(format!(
                "sandbox.warm_instances must be at most {MAX_WARM_INSTANCES}"
            )));
        }
        for issuer in &self.auth.jwt {
            issuer.check()?;
        }
        if let Some(url) = &self.store.url
            && !crate::store::postgres::is_postgres_url(url)
        {
            return Err(ConfigError::Invalid(format!(
                "store.url must be a postgres:// URL, not `{}`",
                crate::store::postgres::redacted(url)
            )));
        }
        if !(10..=MAX_FOLLOW_INTERVAL_MS).contains(&self.store.follow_interval_ms) {
            return Err(ConfigError::Invalid(format!(
                "store.follow_interval_ms must be between 10 and {MAX_FOLLOW_INTERVAL_MS}"
            )));
        }
        if self.store.min_revision_wait_ms > 60_000 {
            return Err(ConfigError::Invalid(String::from(
                "store.min_revision_wait_ms must be at most 60000",
            )));
        }
        if !(100..=10_000).contains(&self.store.usage_sync_ms) {
            return Err(ConfigError::Invalid(String::from(
                "store.usage_sync_ms must be between 100 and 10000",
            )));
        }
        if let Some(header) = &self.auth.operator_tenant_header
            && axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return Err(ConfigError::Invalid(String::from(
                "auth.operator_tenant_header must be a header name",
            )));
        }
        self.check_tenants()
    }

    /// The sandbox settings, with the cache under the data directory.
    pub fn sandbox_config(&self) -> SandboxConfig {
        let defaults = SandboxConfig::default();
        SandboxConfig {
            cache_dir: Some(self.data_dir.join("compiled")),
            max_module_bytes: self.sandbox.max_module_bytes,
            compile_timeout: Duration::from_millis(self.sandbox.compile_timeout_ms),
            max_concurrent_compiles: self.sandbox.max_concurrent_compiles,
            quick_compile_bytes: self.sandbox.quick_compile_bytes,
            max_concurrent_instances: self.sandbox.max_concurrent_instances,
            max_memory_bytes: self.sandbox.max_memory_bytes,
            max_resident_policies: self.sandbox.max_resident_policies,
            warm_instances: self
                .sandbox
                .warm_instances
                .unwrap_or(defaults.warm_instances),
            ..defaults
        }
    }
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest JSON body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered with 503.
    pub request_timeout_ms: u64,
    /// A call refused by its tenant's limits is answered after this pause
    /// (never longer than its `Retry-After`): it could not succeed sooner,
    /// and a client retrying in a tight loop is slowed down instead of
    /// taking the CPU that other tenants' decisions need. 0 answers at once.
    pub refusal_delay_ms: u64,
    /// Decide on the async worker first, each decision within a 1-2 ms
    /// slice (the rest in the evaluation pool). `false` sends every
    /// decision to the evaluation pool.
    pub inline_decisions: bool,
    /// Threads of the evaluation pool, which runs the decisions that do
    /// not finish inline, the tenants in turn; unset: one per core this
    /// process may use.
    pub evaluation_threads: Option<usize>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1 << 20,
            request_timeout_ms: 30_000,
            refusal_delay_ms: 100,
            inline_decisions: true,
            evaluation_threads: None,
        }
    }
}

/// Host-wide sandbox bounds (tenants choose within them).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSection {
    /// Largest module any tenant may upload.
    pub max_module_bytes: usize,
    /// Longest a compilation may take.
    pub compile_timeout_ms: u64,
    /// Compilations at once; an upload past them is answered 503 `busy`.
    pub max_concurrent_compiles: usize,
    /// Modules at least this large are compiled quickly first, then
    /// optimised in the background (above `max_module_bytes`: never).
    pub quick_compile_bytes: usize,
    /// Instances alive at once across all tenants.
    pub max_concurrent_instances: u32,
    /// Largest memory any tenant may allow its policies.
    pub max_memory_bytes: usize,
    /// Compiled policies kept in memory (least recently used dropped and
    /// reloaded from the disk cache).
    pub max_resident_policies: usize,
    /// Instances made ahead of their decisions (0: none); unset: 32 when
    /// the process may use two cores or more, else 0.
    pub warm_instances: Option<usize>,
}

/// Most instances `sandbox.warm_instances` may keep ready.
pub const MAX_WARM_INSTANCES: usize = 1024;

impl Default for SandboxSection {
    fn default() -> Self {
        let defaults = SandboxConfig::default();
        SandboxSection {
            max_module_bytes: defaults.max_module_bytes,
            compile_timeout_ms: u64::try_from(defaults.compile_timeout.as_millis())
                .unwrap_or(u64::MAX),
            max_concurrent_compiles: defaults.max_concurrent_compiles,
            quick_compile_bytes: defaults.quick_compile_bytes,
            max_concurrent_instances: defaults.max_concurrent_instances,
            max_memory_bytes: defaults.max_memory_bytes,
            max_resident_policies: defaults.max_resident_policies,
            warm_instances: None,
        }
    }
}

/// How decisions are written to the audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSection {
    /// `batched`: a decision is answered at once and its entry is durable
    /// within `flush_interval_ms`; `sync`: answered only once durable.
    pub durability: Durability,
    /// Longest an entry waits for its batch to be flushed (batched mode).
    pub flush_interval_ms: u64,
    /// Entries that may wait to be written; callers wait beyond it.
    pub queue: usize,
    /// How often entries past their tenant's retention are pruned.
    pub prune_interval_secs: u64,
    /// The fewest days an `admin_cross_tenant_access` entry is kept,
    /// whatever its tenant's `audit_retention_days`: the evidence of an
    /// operator acting inside a tenant is the operator's to keep.
    pub min_retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            durability: Durability::Batched,
            flush_interval_ms: 50,
            queue: 10_000,
            prune_interval_secs: 3600,
            min_retention_days: 365,
        }
    }
}

impl AuditSection {
    /// The writer's settings.
    pub fn writer(&self) -> WriterConfig {
        WriterConfig {
            durability: self.durability,
            flush_interval: Duration::from_millis(self.flush_interval_ms.max(1)),
            queue: self.queue.max(1),
        }
    }
}

/// What `/metrics` shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Label per-tenant series with the tenant id; turn off with very many
    /// tenants to keep the series count bounded.
    pub tenant_labels: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            tenant_labels: true,
        }
    }
}

/// Token issuers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Trusted JWT issuers.
    pub jwt: Vec<JwtIssuer>,
    /// Another header an operator may name the tenant to act in with,
    /// beside `X-Tenant-ID` (for platforms whose gateways already send
    /// one, e.g. `X-Aegis-Tenant`).
    pub operator_tenant_header: Option<String>,
}

/// One trusted JWT issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuer {
    /// The exact `iss` value; or use `issuer_pattern`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// An `iss` pattern with one `{slug}` placeholder, for one identity
    /// realm per tenant (`https://idp.example/realms/tenant-{slug}`): the
    /// tenant is the slug the token's issuer matches.
    #[serde(default)]
    pub issuer_pattern: Option<String>,
    /// Accepted `aud` values (at least one must be present in the token).
    pub audience: Vec<String>,
    /// Accepted algorithms: `HS256`, `RS256`, `ES256`, `EdDSA`… Tokens
    /// with any other `alg` (including `none`) are refused.
    pub algorithms: Vec<String>,
    /// Shared secret, for HS algorithms.
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM file of the public key, for RS/ES/EdDSA.
    #[serde(default)]
    pub public_key_pem: Option<PathBuf>,
    /// JWKS file of public keys, chosen by the token's `kid`. With an
    /// `issuer_pattern` it names each realm's own file through `{slug}`
    /// (`/etc/ward/realms/{slug}.json`). Read again when a token names a
    /// `kid` it lacks, so a rotated file is picked up.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// URL of the issuer's JWKS, fetched and cached; with an
    /// `issuer_pattern` it names each realm's own through `{slug}`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Find the JWKS through OIDC discovery: the `jwks_uri` of
    /// `{iss}/.well-known/openid-configuration`, for the token's own `iss`.
    #[serde(default)]
    pub discovery: bool,
    /// How long fetched keys are used before they are fetched again.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// After a fetch fails, how long the keys fetched before stay in use.
    #[serde(default = "default_jwks_stale")]
    pub jwks_stale_secs: u64,
    /// The fewest seconds between two fetches of one key set, whatever
    /// unknown `kid`s tokens name.
    #[serde(default = "default_jwks_min_interval")]
    pub jwks_min_interval_secs: u64,
    /// Whether this issuer's operator role counts. Without it, a token of
    /// this issuer claiming the operator role is an ordinary token.
    #[serde(default)]
    pub operator: bool,
    /// The tenants (slugs, `*` matching any run of characters) this
    /// issuer's tokens may name; any when absent.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// The kind of the tenants this issuer provisions.
    #[serde(default)]
    pub provision_kind: ward_types::TenantKind,
    /// The header a caller with this issuer's tokens names its tenant in
    /// (machine callers' gateways often have their own, e.g. `snc-tenant`).
    #[serde(default = "default_tenant_header")]
    pub tenant_header: String,
    /// Whether every request with this issuer's tokens must name its
    /// tenant in `tenant_header` (a missing header is 403).
    #[serde(default)]
    pub require_tenant_header: bool,
    /// A header naming the user a machine caller acts for; its value is
    /// recorded in the audit log as `on_behalf_of`.
    #[serde(default)]
    pub acting_user_header: Option<String>,
    /// Whether this issuer's users may create organization tenants of their
    /// own (`POST /v1/tenants` with their token), owning and able to
    /// delete them.
    #[serde(default)]
    pub self_service: bool,
    /// How many tenants one user of a self-service issuer may own.
    #[serde(default = "default_self_service_max_tenants")]
    pub self_service_max_tenants: usize,
    /// Claim naming the tenant (slug or id), or a list of memberships:
    /// strings, or objects `{"tenant": "...", "roles": [...]}`.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim holding the roles (a list of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The role that makes the bearer an operator.
    #[serde(default = "default_operator_role")]
    pub operator_role: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Create the tenant named by a valid token on first sight.
    #[serde(default)]
    pub auto_provision: bool,
}

fn default_self_service_max_tenants() -> usize {
    10
}

fn default_tenant_header() -> String {
    String::from("x-tenant-id")
}

fn default_tenant_claim() -> String {
    String::from("tenant")
}

fn default_roles_claim() -> String {
    String::from("roles")
}

fn default_operator_role() -> String {
    String::from("ward:operator")
}

fn default_leeway() -> u64 {
    30
}

fn default_jwks_refresh() -> u64 {
    300
}

fn default_jwks_stale() -> u64 {
    3600
}

fn default_jwks_min_interval() -> u64 {
    10
}

impl JwtIssuer {
    fn check(&self) -> Result<(), ConfigError> {
        let name = self
            .issuer
            .as_deref()
            .or(self.issuer_pattern.as_deref())
            .unwrap_or("?");
        let invalid =
            |message: &str| Err(ConfigError::Invalid(format!("issuer `{name}`: {message}")));
        match (&self.issuer, &self.issuer_pattern) {
            (Some(_), None) => {}
            (None, Some(pattern)) if pattern.matches("{slug}").count() == 1 => {}
            (None, Some(_)) => return invalid("issuer_pattern needs exactly one `{slug}`"),
            _ => return invalid("set exactly one of issuer and issuer_pattern"),
        }
        if self.audience.is_empty() {
            return invalid("audience must list at least one value");
        }
        if self.algorithms.is_empty() {
            return invalid("algorithms must list at least one algorithm");
        }
        let keys = [
            self.secret.is_some(),
            self.public_key_pem.is_some(),
            self.jwks_file.is_some(),
            self.jwks_uri.is_some(),
            self.discovery,
        ];
        if keys.iter().filter(|set| **set).count() != 1 {
            return invalid(
                "set exactly one of secret, public_key_pem, jwks_file, jwks_uri and discovery",
            );
        }
        let per_realm = |source: &Option<String>| {
            source
                .as_deref()
                .is_some_and(|source| source.matches("{slug}").count() == 1)
        };
        let realm_keys = per_realm(&self.jwks_file) || per_realm(&self.jwks_uri) || self.discovery;
        if self.issuer_pattern.is_some() && !realm_keys {
            // One key for every realm would let any realm sign for any
            // tenant: each realm's keys must come from that realm.
            return invalid(
                "with issuer_pattern, keys must be per realm: a jwks_file or jwks_uri with one \
                 `{slug}`, or discovery = true (a secret or public_key_pem would let one realm \
                 sign tokens for every tenant)",
            );
        }
        let names_slug = |source: &Option<String>| {
            source
                .as_deref()
                .is_some_and(|source| source.contains("{slug}"))
        };
        if self.issuer_pattern.is_none()
            && (names_slug(&self.jwks_file) || names_slug(&self.jwks_uri))
        {
            return invalid("`{slug}` in a key source needs an issuer_pattern");
        }
        let headers = std::iter::once(&self.tenant_header).chain(&self.acting_user_header);
        for header in headers {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return invalid("tenant_header and acting_user_header must be header names");
            }
        }
        if let Some(patterns) = &self.tenants
            && patterns.iter().any(|p| p.is_empty() || p.len() > 128)
        {
            return invalid("tenants lists slug patterns of 1 to 128 characters");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::from_toml("listen = \"127.0.0.1:1\"\n").is_ok());
        let err = Config::from_toml("lisen = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        assert!(Config::from_toml("[http]\nmax_body = 1\n").is_err());
    }

    #[test]
    fn warm_instances_are_bounded() {
        let at = |n: usize| Config::from_toml(&format!("[sandbox]\nwarm_instances = {n}\n"));
        assert_eq!(at(0).unwrap().sandbox_config().warm_instances, 0);
        assert!(at(MAX_WARM_INSTANCES).is_ok());
        let err = at(MAX_WARM_INSTANCES + 1).unwrap_err();
        assert!(err.to_string().contains("warm_instances"), "{err}");
    }

    #[test]
    fn evaluation_threads_are_bounded() {
        let at = |n: usize| Config::from_toml(&format!("[http]\nevaluation_threads = {n}\n"));
        assert!(at(1).is_ok());
        assert!(at(MAX_EVALUATION_THREADS).is_ok());
        for bad in [0, MAX_EVALUATION_THREADS + 1] {
            let err = at(bad).unwrap_err();
            assert!(err.to_string().contains("evaluation_threads"), "{err}");
        }
    }

    #[test]
    fn sandbox_counts_and_times_must_be_positive() {
        for key in [
            "compile_timeout_ms",
            "max_concurrent_compiles",
            "max_resident_policies",
        ] {
            let err = Config::from_toml(&format!("[sandbox]\n{key} = 0\n")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let config = Config::from_toml(
            "[sandbox]\ncompile_timeout_ms = 1\nmax_concurrent_compiles = 1\nmax_resident_policies = 1\n",
        )
        .unwrap()
        .sandbox_config();
        assert_eq!(
            (
                config.compile_timeout,
                config.max_concurrent_compiles,
                config.max_resident_policies
            ),
            (Duration::from_millis(1), 1, 1)
        );
    }

    #[test]
    fn issuers_need_one_key_source_and_one_issuer_form() {
        let base = "[[auth.jwt]]\naudience = [\"ward\"]\nalgorithms = [\"HS256\"]\n";
        assert!(Config::from_toml(&format!("{base}issuer = \"i\"\nsecret = \"s\"\n")).is_ok());
        assert!(Config::from_toml(&format!("{base}issuer = \"i\"\n")).is_err());
        assert!(Config::from_toml(&format!("{base}secret = \"s\"\n")).is_err());
        assert!(
            Config::from_toml(&format!(
                "{base}issuer_pattern = \"https://x/\"\nsecret = \"s\"\n"
            ))
            .is_err()
        );
        // One secret (or PEM) for every realm would let any realm sign for
        // any tenant: realms need keys of their own.
        let shared = Config::from_toml(&format!(
            "{base}issuer_pattern = \"https://x/{{slug}}\"\nsecret = \"s\"\n"
        ))
        .unwrap_err();
        assert!(shared.to_string().contains("per realm"), "{shared}");
        for source in [
            "jwks_file = \"/keys/{slug}.json\"",
            "jwks_uri = \"https://x/{slug}/certs\"",
            "discovery = true",
        ] {
            assert!(
                Config::from_toml(&format!(
                    "{base}issuer_pattern = \"https://x/{{slug}}\"\n{source}\n"
                ))
                .is_ok(),
                "{source}"
            );
        }
        let no_slug = Config::from_toml(&format!(
            "{base}issuer_pattern = \"https://x/{{slug}}\"\njwks_uri = \"https://x/certs\"\n"
        ));
        assert!(no_slug.is_err());
        let slug_without_pattern = Config::from_toml(&format!(
            "{base}issuer = \"i\"\njwks_file = \"/keys/{{slug}}.json\"\n"
        ));
        assert!(slug_without_pattern.is_err());
    }
}
