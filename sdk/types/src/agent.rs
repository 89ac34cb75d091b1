use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Scope, Timestamp};

/// One grant: `resource` is a `type:id` pattern where `*` matches any run
/// of characters; `actions` lists action names (`*` for any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The resource pattern.
    pub resource: String,
    /// The actions granted.
    pub actions: Vec<String>,
}

/// Whether an agent may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Decisions are made for it.
    #[default]
    Active,
    /// Every decision for it is a deny with reason `agent_disabled`.
    Disabled,
}

/// A named principal: an AI agent, a service, a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    /// Unique within its scope.
    pub name: String,
    /// Where it lives.
    pub scope: Scope,
    /// Such as `ai_agent`, `service` or `user`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Active or disabled.
    pub status: AgentStatus,
    /// Free-form attributes policies can read.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    /// Grants, read by the builtin `permissions` policy.
    pub permissions: Vec<Permission>,
    /// The policy that decides for this agent, when not the default.
    pub policy: Option<String>,
    /// Monthly spend budgets of this agent alone, by unit.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub budgets: crate::Budgets,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// Body of `PUT /v1/agents/{name}`: creates or replaces the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutAgent {
    /// Such as `ai_agent`, `service` or `user`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub kind: String,
    /// Defaults to `active`.
    #[serde(default)]
    pub status: AgentStatus,
    /// Defaults to `{}`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    /// Defaults to none.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// A policy name, resolved narrowest-first at decision time.
    #[serde(default)]
    pub policy: Option<String>,
    /// Monthly spend budgets of this agent alone, by unit (on top of the
    /// tenant's). Defaults to none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub budgets: crate::Budgets,
}

/// One page of `GET /v1/agents?limit=…&cursor=…`, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentPage {
    /// The agents, sorted by name.
    pub agents: Vec<Agent>,
    /// Pass as `cursor` to get the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
