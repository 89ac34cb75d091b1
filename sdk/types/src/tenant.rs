use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Timestamp;

/// A tenant: the unit of isolation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// `tnt_` followed by a ULID.
    pub id: String,
    /// Unique short name, `^[a-z0-9]+(?:-[a-z0-9]+)*$`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Organization or personal workspace.
    pub kind: TenantKind,
    /// Active or suspended.
    pub status: TenantStatus,
    /// The effective settings: the host's defaults, then the plan's, then
    /// the tenant's own, then the config file's overrides for it.
    pub settings: TenantSettings,
    /// Where each setting's value comes from: `default`, `plan:<name>`,
    /// `tenant` (set through the API) or `file` (pinned by the server's
    /// config file).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings_source: BTreeMap<String, String>,
    /// The plan the tenant is on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// When the plan's trial ends; past it, authorize calls answer 402
    /// `billing_required` until the plan changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<Timestamp>,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
    /// The user who created it through self-service, who may delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<TenantOwner>,
}

/// A user, as a self-service issuer names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantOwner {
    /// The issuer (its `issuer`, or the `iss` a pattern matched).
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
}

/// The settings a tenant's own admins may change (`PATCH /v1/tenant`);
/// every other one is the operator's.
pub const TENANT_ADJUSTABLE_SETTINGS: [&str; 3] = [
    "default_policy",
    "audit_retention_days",
    "allowed_agent_types",
];

/// A plan of the server's configuration (`[[plans]]`, `GET /v1/plans`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Its name, as tenants' `plan` names it.
    pub name: String,
    /// A trial plan: a tenant put on it may decide for this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
    /// The default settings of its tenants (above the host's defaults,
    /// below the tenant's own); `max_decisions_per_month` is its monthly
    /// allowance.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Map<String, Value>,
}

/// Who is calling and where it may act (`GET /v1/me`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// As the audit log names it: `operator`, `key:<id>` or `jwt:<sub>`.
    pub actor: String,
    /// Whether the caller is the operator.
    pub operator: bool,
    /// The tenants it may act in, with its roles there.
    pub tenants: Vec<MyTenant>,
}

/// One tenant a caller may act in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MyTenant {
    /// Its id.
    pub id: String,
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// The caller's roles there: `admin`, `authorize`, `owner`.
    pub roles: Vec<String>,
}

/// What a tenant stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TenantKind {
    /// A company or team.
    #[default]
    Organization,
    /// One user's own workspace.
    Personal,
}

/// Whether a tenant is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Decisions are made.
    #[default]
    Active,
    /// Every decision is a deny with reason `tenant_suspended`.
    Suspended,
}

/// A tenant's limits and defaults. Every field has a default; a tenant
/// stores only what it overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Most agents in the tenant's scope.
    pub max_agents: u64,
    /// Most policies (names) in the tenant's scope.
    pub max_policies: u64,
    /// Largest policy module upload, in bytes.
    pub max_module_bytes: u64,
    /// Total size of the tenant's data documents, in bytes.
    pub max_data_bytes: u64,
    /// When set, agent `type`s must be one of these.
    pub allowed_agent_types: Option<Vec<String>>,
    /// Audit entries older than this many days are pruned.
    pub audit_retention_days: u32,
    /// Sustained authorize calls per second.
    pub rate_limit_per_sec: u32,
    /// Authorize calls allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Decisions per calendar month (UTC); `None` is unlimited.
    pub max_decisions_per_month: Option<u64>,
    /// Evaluations running at once for this tenant.
    pub max_concurrent_evaluations: u32,
    /// Policy used for agents without a bound policy, and for subjects
    /// that are not agents.
    pub default_policy: Option<String>,
    /// The sandbox limits of every evaluation.
    pub sandbox: SandboxLimits,
    /// Monthly spend budgets by unit, for all the tenant's agents together.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub budgets: crate::Budgets,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            max_agents: 10_000,
            max_policies: 100,
            max_module_bytes: 32 << 20,
            max_data_bytes: 16 << 20,
            allowed_agent_types: None,
            audit_retention_days: 90,
            rate_limit_per_sec: 1_000,
            burst: 2_000,
            max_decisions_per_month: None,
            max_concurrent_evaluations: 64,
            default_policy: None,
            sandbox: SandboxLimits::default(),
            budgets: crate::Budgets::new(),
        }
    }
}

impl TenantSettings {
    /// The settings that result from applying `overrides` (a JSON object of
    /// explicitly set fields) to the defaults.
    pub fn from_overrides(overrides: &Map<String, Value>) -> Result<Self, serde_json::Error> {
        serde_json::from_value(Value::Object(overrides.clone()))
    }
}

/// The host's bounds that a tenant's settings must stay within (from the
/// server's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBounds {
    /// The host's largest module (`sandbox.max_module_bytes` of the
    /// server's configuration).
    pub max_module_bytes: u64,
    /// The host's largest policy memory (`sandbox.max_memory_bytes`).
    pub max_memory_bytes: u64,
    /// The host's largest table.
    pub max_table_elements: u64,
}

// The floors of the sandbox limits leave a wide margin above what a Rust
// `wasm32-wasip2` policy built with the SDK needs to start and decide (the
// test guest `probe`: about 1.1 MiB of memory, its 1 MiB stack included,
// 3 core instances, 2 tables, 100 table elements, under a million fuel, a
// few KiB through a host call; the builtin `permissions` needs less).
// Below them every decision such a policy makes would fail.

/// Least `sandbox.memory_bytes`.
pub const MIN_MEMORY_BYTES: u64 = 2 << 20;
/// Least `sandbox.max_instances`.
pub const MIN_INSTANCES: u32 = 8;
/// Least `sandbox.max_tables`.
pub const MIN_TABLES: u32 = 4;
/// Least `sandbox.max_table_elements`.
pub const MIN_TABLE_ELEMENTS: u32 = 1_000;
/// Least `sandbox.fuel` when set.
pub const MIN_FUEL: u64 = 10_000_000;
/// Least `sandbox.hostcall_bytes`.
pub const MIN_HOSTCALL_BYTES: u64 = 64 << 10;
/// Longest `sandbox.timeout_ms`.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Longest `audit_retention_days` (a century).
pub const MAX_AUDIT_RETENTION_DAYS: u32 = 36_500;

impl TenantSettings {
    /// Checks the settings against the host's bounds and against values
    /// with which every decision (or every upload) would fail; the error
    /// names the field.
    pub fn check(&self, host: &HostBounds) -> Result<(), String> {
        crate::check_budgets(&self.budgets).map_err(|err| format!("budgets: {err}"))?;
        let between = |name: &str, value: u64, least: u64, most: u64| {
            if (least..=most).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be between {least} and {most}; it is {value}"
                ))
            }
        };
        between(
            "max_module_bytes",
            self.max_module_bytes,
            1,
            host.max_module_bytes,
        )?;
        between(
            "audit_retention_days",
            u64::from(self.audit_retention_days),
            1,
            u64::from(MAX_AUDIT_RETENTION_DAYS),
        )?;
        between(
            "rate_limit_per_sec",
            u64::from(self.rate_limit_per_sec),
            1,
            u64::from(u32::MAX),
        )?;
        between("burst", u64::from(self.burst), 1, u64::from(u32::MAX))?;
        between(
            "max_concurrent_evaluations",
            u64::from(self.max_concurrent_evaluations),
            1,
            u64::from(u32::MAX),
        )?;
        let sandbox = &self.sandbox;
        between(
            "sandbox.memory_bytes",
            sandbox.memory_bytes,
            MIN_MEMORY_BYTES,
            host.max_memory_bytes,
        )?;
        between("sandbox.timeout_ms", sandbox.timeout_ms, 1, MAX_TIMEOUT_MS)?;
        if let Some(fuel) = sandbox.fuel {
            between("sandbox.fuel", fuel, MIN_FUEL, u64::MAX)?;
        }
        between(
            "sandbox.hostcall_bytes",
            sandbox.hostcall_bytes,
            MIN_HOSTCALL_BYTES,
            u64::MAX,
        )?;
        between(
            "sandbox.max_instances",
            u64::from(sandbox.max_instances),
            u64::from(MIN_INSTANCES),
            u64::from(u32::MAX),
        )?;
        between(
            "sandbox.max_tables",
            u64::from(sandbox.max_tables),
            u64::from(MIN_TABLES),
            u64::from(u32::MAX),
        )?;
        between(
            "sandbox.max_table_elements",
            u64::from(sandbox.max_table_elements),
            u64::from(MIN_TABLE_ELEMENTS),
            host.max_table_elements,
        )?;
        Ok(())
    }
}

/// The limits one evaluation runs under (tenant setting `sandbox`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Largest linear memory a policy may grow to.
    pub memory_bytes: u64,
    /// Wall-clock budget of one evaluation.
    pub timeout_ms: u64,
    /// Instruction budget of one evaluation; `None`: no fuel limit (the
    /// timeout still applies).
    pub fuel: Option<u64>,
    /// Most bytes a policy may pass to the host in one host call, its
    /// decision included.
    pub hostcall_bytes: u64,
    /// Most core instances one evaluation may create.
    pub max_instances: u32,
    /// Most tables one evaluation may create.
    pub max_tables: u32,
    /// Most elements any one table may grow to.
    pub max_table_elements: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: 16 << 20,
            timeout_ms: 100,
            fuel: None,
            hostcall_bytes: 1 << 20,
            max_instances: 64,
            max_tables: 8,
            max_table_elements: 20_000,
        }
    }
}

/// Body of `POST /v1/tenants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTenant {
    /// Unique short name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", min_length = 1, max_length = 63)
    )]
    pub slug: String,
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// Defaults to `organization`.
    #[serde(default)]
    pub kind: TenantKind,
    /// Overrides of the default settings.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Option<Map<String, Value>>,
}

/// Body of `PATCH /v1/tenants/{t}`: settings are merged (JSON merge patch).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateTenant {
    /// A new display name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    /// A merge patch: omitted fields keep their value, `null` resets one
    /// to its default.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Option<Map<String, Value>>,
}

/// Body of `PATCH /v1/tenants/{t}` and `PATCH /v1/tenant`: [`UpdateTenant`]
/// and, for the operator only, the tenant's plan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatchTenant {
    /// A new display name.
    #[serde(default)]
    pub name: Option<String>,
    /// A merge patch of the tenant's own settings.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Option<Map<String, Value>>,
    /// Absent: unchanged; a plan's name: that plan (its trial, if any,
    /// starting now); `null`: no plan.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub plan: Option<Option<String>>,
}

/// A field that is present, `null` included.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl From<PatchTenant> for UpdateTenant {
    fn from(patch: PatchTenant) -> Self {
        UpdateTenant {
            name: patch.name,
            settings: patch.settings,
        }
    }
}

/// This month's usage and the limits that apply (`GET /v1/usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// The calendar month (UTC), `YYYY-MM`.
    pub month: String,
    /// Decisions admitted this month.
    pub decisions: u64,
    /// The monthly budget, if any.
    pub max_decisions_per_month: Option<u64>,
    /// Sustained decisions per second allowed.
    pub rate_limit_per_sec: u32,
    /// Burst allowed above the sustained rate.
    pub burst: u32,
    /// Evaluations allowed at once.
    pub max_concurrent_evaluations: u32,
    /// Evaluations running now.
    pub evaluations_running: u32,
    /// Calls refused by the rate limit since the server started.
    pub rate_limited: u64,
    /// Calls refused for too many evaluations since the server started.
    pub too_many_evaluations: u64,
    /// Calls refused for an exhausted budget since the server started.
    pub budget_exhausted: u64,
    /// This month's spend by unit, against the tenant's spend budgets.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub spend: std::collections::BTreeMap<String, crate::UnitSpend>,
    /// Each agent's spend by unit, against its own budgets.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub agents:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, crate::UnitSpend>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: HostBounds = HostBounds {
        max_module_bytes: 64 << 20,
        max_memory_bytes: 256 << 20,
        max_table_elements: 20_000,
    };

    #[test]
    fn the_defaults_are_within_every_bound() {
        assert_eq!(TenantSettings::default().check(&HOST), Ok(()));
    }

    /// A field's name, and a change that takes it out of its range.
    type Spoiler = (&'static str, fn(&mut TenantSettings));

    #[test]
    fn each_value_out_of_range_is_refused_naming_its_field() {
        let cases: [Spoiler; 10] = [
            ("max_module_bytes", |s| s.max_module_bytes = (64 << 20) + 1),
            ("audit_retention_days", |s| s.audit_retention_days = 0),
            ("burst", |s| s.burst = 0),
            ("sandbox.memory_bytes", |s| s.sandbox.memory_bytes = 1),
            ("sandbox.memory_bytes", |s| s.sandbox.memory_bytes = 1 << 30),
            ("sandbox.max_instances", |s| s.sandbox.max_instances = 0),
            ("sandbox.max_tables", |s| s.sandbox.max_tables = 0),
            ("sandbox.fuel", |s| s.sandbox.fuel = Some(1)),
            ("sandbox.hostcall_bytes", |s| s.sandbox.hostcall_bytes = 0),
            ("sandbox.max_table_elements", |s| {
                s.sandbox.max_table_elements = 20_001
            }),
        ];
        for (field, spoil) in cases {
            let mut settings = TenantSettings::default();
            spoil(&mut settings);
            let refused = settings.check(&HOST).err().unwrap_or_default();
            assert!(refused.starts_with(field), "{field}: {refused}");
        }
    }
}
