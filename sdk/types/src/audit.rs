use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AgentRef, PolicyRef, Timestamp};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// An authorize decision.
    Decision,
    /// A tenant was created.
    TenantCreated,
    /// A tenant's name or settings changed.
    TenantUpdated,
    /// A tenant was suspended.
    TenantSuspended,
    /// A tenant was reactivated.
    TenantActivated,
    /// A tenant was deleted (written to the operator log).
    TenantDeleted,
    /// A policy version was uploaded.
    PolicyUploaded,
    /// A policy version was activated.
    PolicyActivated,
    /// A policy's config was set.
    PolicyConfigured,
    /// A policy was deleted.
    PolicyDeleted,
    /// An agent was created or replaced.
    AgentPut,
    /// An agent was deleted.
    AgentDeleted,
    /// A data document was written.
    DataPut,
    /// A data document was deleted.
    DataDeleted,
    /// An API key was created.
    KeyCreated,
    /// An API key was revoked.
    KeyRevoked,
    /// An operator acted inside the tenant.
    AdminCrossTenantAccess,
    /// Calls were refused by the rate limit.
    RateLimited,
    /// Calls were refused because the monthly budget is spent.
    BudgetExhausted,
    /// A spend budget with `action: warn` reached 80% or 100%.
    BudgetWarning,
    /// Calls were refused because too many evaluations were running.
    TooManyEvaluations,
    /// A write was refused by a quota.
    QuotaExceeded,
    /// Authorize calls were refused because the tenant's trial ended.
    BillingRequired,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// ULID: sortable by time.
    pub id: String,
    /// When.
    pub time: Timestamp,
    /// Who: `key:<id>`, `jwt:<sub>`, `operator` or `system`.
    pub actor: String,
    /// The user a machine caller acted for, from its issuer's
    /// `acting_user_header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// What happened.
    pub kind: AuditKind,
    /// The object concerned (agent, policy, key…), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For decisions: allowed or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<bool>,
    /// For decisions: why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// For decisions: the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,
    /// For decisions: the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// For decisions: time from request to decision, in µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Anything else: for decisions the request and sandbox usage.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub details: Value,
    /// The replica that answered, when several share one store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` to get the next (older) page; absent at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of `GET /v1/audit`, all optional, as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// `decision`, `agent_put`, `admin_cross_tenant_access`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only decisions about this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `true` or `false`: only decisions with this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<bool>))]
    pub decision: Option<String>,
    /// RFC 3339: entries at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// RFC 3339: entries at or before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub until: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<u32>, minimum = 1, maximum = 1000))]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
