//! The JSON types of Ward's HTTP API, shared by the server and its Rust
//! clients so that both sides agree by construction.

#![deny(missing_docs)]

mod agent;
mod audit;
mod authz;
mod error;
mod keys;
mod policy;
mod spend;
mod tenant;
mod time;

pub use agent::{Agent, AgentPage, AgentStatus, Permission, PutAgent};
pub use audit::{AuditEntry, AuditKind, AuditPage, AuditQuery};
pub use authz::{
    AgentRef, AuthorizeRequest, BatchRequest, BatchResponse, DecisionResponse, Discovery, Entity,
    Evaluation, Evaluations, PolicyRef, RequestAction,
};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, Limit};
pub use keys::{ApiKeyInfo, CreateKey, CreatedKey, KeyRole};
pub use policy::{ActivatePolicy, DataDocument, PolicyInfo, PolicyVersion, UploadedPolicy};
pub use spend::{BudgetAction, Budgets, Cost, SpendBudget, UnitSpend, check_budgets, check_cost};
pub use tenant::{
    CreateTenant, HostBounds, Me, MyTenant, PatchTenant, Plan, SandboxLimits,
    TENANT_ADJUSTABLE_SETTINGS, Tenant, TenantKind, TenantOwner, TenantSettings, TenantStatus,
    UpdateTenant, Usage,
};
/// The bounds of tenant settings that do not depend on the host.
pub mod bounds {
    pub use crate::tenant::{
        MAX_AUDIT_RETENTION_DAYS, MAX_TIMEOUT_MS, MIN_FUEL, MIN_HOSTCALL_BYTES, MIN_INSTANCES,
        MIN_MEMORY_BYTES, MIN_TABLE_ELEMENTS, MIN_TABLES,
    };
}
pub use time::Timestamp;

use serde::{Deserialize, Serialize};

/// Where a named object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Operator-managed, inherited by every tenant.
    Global,
    /// One tenant's own.
    Tenant,
}

/// A probe's answer (`/healthz`, `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    /// `ok` or `ready`.
    pub status: String,
}
