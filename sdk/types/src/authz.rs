use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Scope;

/// A subject or resource, as in OpenID AuthZEN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entity {
    /// Such as `user`, `agent` or `document`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id within its type.
    pub id: String,
    /// Anything else the policy may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub properties: Option<Map<String, Value>>,
}

/// The action asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestAction {
    /// Such as `read`.
    pub name: String,
    /// Anything else the policy may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub properties: Option<Map<String, Value>>,
}

/// One authorization question in the AuthZEN shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthorizeRequest {
    /// Who asks.
    pub subject: Entity,
    /// What they want to do.
    pub action: RequestAction,
    /// To what.
    pub resource: Entity,
    /// Anything else about the circumstances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Option<Map<String, Value>>,
}

/// Which agent a decision was about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentRef {
    /// Its name.
    pub name: String,
    /// Where it was found.
    pub scope: Scope,
}

/// Which policy made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRef {
    /// Its name.
    pub name: String,
    /// Where it was found.
    pub scope: Scope,
    /// The version that ran.
    pub version: u32,
    /// Hex sha256 of the module that ran.
    pub sha256: String,
}

/// A native decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionResponse {
    /// Allowed or not.
    pub decision: bool,
    /// ULID of the audit entry.
    pub decision_id: String,
    /// Why.
    pub reasons: Vec<String>,
    /// The policy's context object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Map<String, Value>,
    /// The agent the subject resolved to, if any.
    pub agent: Option<AgentRef>,
    /// The policy that decided, if one ran.
    pub policy: Option<PolicyRef>,
}
