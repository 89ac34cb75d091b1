use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Scope;

/// A subject or resource, as in OpenID AuthZEN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entity {
    /// Such as `user`, `agent` or `document`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub kind: String,
    /// Its id within its type.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
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
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
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
    /// The language that module was written in, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
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
    /// For a request with a `cost`: what is left this month of each
    /// budgeted unit it names (the least of the tenant's and the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<crate::Cost>,
}

/// Body of `POST /v1/authorize/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchRequest {
    /// 1 to 100 requests, each an [`AuthorizeRequest`] or the short form
    /// `{"agent", "action", "resource": "type:id", "context"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub items: Vec<Value>,
}

/// Answer to a native batch: one decision per item, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResponse {
    /// The decisions.
    pub results: Vec<DecisionResponse>,
}

/// One AuthZEN decision: only what the specification allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evaluation {
    /// Allowed or not.
    pub decision: bool,
    /// Present when the policy returned one, or for an item that was
    /// refused (`{"error": {"status", "message"}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Map<String, Value>>,
}

impl From<DecisionResponse> for Evaluation {
    fn from(response: DecisionResponse) -> Self {
        Evaluation {
            decision: response.decision,
            context: (!response.context.is_empty()).then_some(response.context),
        }
    }
}

/// Answer to an AuthZEN batch with an `evaluations` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evaluations {
    /// One per item, in order (fewer under a short-circuit semantic).
    pub evaluations: Vec<Evaluation>,
}

/// AuthZEN PDP metadata (`/.well-known/authzen-configuration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Discovery {
    /// The PDP's identifier: its base URL, or `{base}/{tenant_slug}` in a
    /// tenant's document (the identifier that document's URL was built
    /// from).
    pub policy_decision_point: String,
    /// Where single evaluations go.
    pub access_evaluation_endpoint: String,
    /// Where batches go.
    pub access_evaluations_endpoint: String,
}

impl Entity {
    /// An entity with no properties.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Entity {
            kind: kind.into(),
            id: id.into(),
            properties: None,
        }
    }

    /// The entity named by `type:id` (the id may itself hold colons);
    /// `None` unless both parts are non-empty.
    pub fn parse_qualified(text: &str) -> Option<Self> {
        text.split_once(':')
            .filter(|(kind, id)| !kind.is_empty() && !id.is_empty())
            .map(|(kind, id)| Entity::new(kind, id))
    }
}

impl RequestAction {
    /// An action with no properties.
    pub fn new(name: impl Into<String>) -> Self {
        RequestAction {
            name: name.into(),
            properties: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Entity;

    #[test]
    fn a_qualified_name_splits_at_its_first_colon_and_needs_both_parts() {
        assert_eq!(
            Entity::parse_qualified("reports:q3:2026"),
            Some(Entity::new("reports", "q3:2026"))
        );
        for text in ["reports", ":q3", "reports:", ""] {
            assert_eq!(Entity::parse_qualified(text), None, "{text}");
        }
    }
}
