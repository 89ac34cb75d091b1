use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__bindings::ward::policy::types as raw;
use crate::{Error, Result};

/// One authorization question: may `subject` do `action` on `resource`?
///
/// JSON-valued parts (properties, context, attributes, config) are parsed
/// only when asked for, so a policy pays only for what it reads.
#[derive(Debug, Clone)]
pub struct Request {
    tenant: Tenant,
    subject: Entity,
    agent: Option<Agent>,
    action: Action,
    resource: Entity,
    context: String,
    config: String,
}

impl Request {
    pub(crate) fn from_raw(raw: raw::Request) -> Self {
        Request {
            tenant: Tenant {
                id: raw.tenant.id,
                slug: raw.tenant.slug,
            },
            subject: Entity::from_raw(raw.subject),
            agent: raw.agent.map(Agent::from_raw),
            action: Action {
                name: raw.action.name,
                properties: raw.action.properties,
            },
            resource: Entity::from_raw(raw.resource),
            context: raw.context,
            config: raw.config,
        }
    }

    /// The tenant this decision is made for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Who asks.
    pub fn subject(&self) -> &Entity {
        &self.subject
    }

    /// The agent Ward resolved for the subject, if the subject is a known
    /// agent.
    pub fn agent(&self) -> Option<&Agent> {
        self.agent.as_ref()
    }

    /// What the subject wants to do.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// What the subject wants to do it to.
    pub fn resource(&self) -> &Entity {
        &self.resource
    }

    /// The request context, parsed into `T`.
    pub fn context<T: DeserializeOwned>(&self) -> Result<T> {
        parse(&self.context)
    }

    /// One field of the request context, if present.
    pub fn context_field(&self, name: &str) -> Option<Value> {
        field(&self.context, name)
    }

    /// The policy's configuration, parsed into `T`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        parse(&self.config)
    }

    /// The policy's configuration as JSON text (`null` when unset).
    pub fn config_json(&self) -> &str {
        &self.config
    }
}

/// The tenant a decision is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// `tnt_` followed by a ULID.
    pub id: String,
    /// The tenant's unique short name.
    pub slug: String,
}

/// A subject or a resource.
#[derive(Debug, Clone)]
pub struct Entity {
    kind: String,
    id: String,
    properties: String,
}

impl Entity {
    fn from_raw(raw: raw::Entity) -> Self {
        Entity {
            kind: raw.type_,
            id: raw.id,
            properties: raw.properties,
        }
    }

    /// The entity's type, such as `agent`, `user` or `document`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The entity's id within its type.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `type:id`, the form permission patterns match against.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }

    /// All properties, parsed into `T`.
    pub fn properties<T: DeserializeOwned>(&self) -> Result<T> {
        parse(&self.properties)
    }

    /// One property, if present.
    pub fn property(&self, name: &str) -> Option<Value> {
        field(&self.properties, name)
    }
}

/// The action asked for.
#[derive(Debug, Clone)]
pub struct Action {
    name: String,
    properties: String,
}

impl Action {
    /// The action's name, such as `read` or `export`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All properties, parsed into `T`.
    pub fn properties<T: DeserializeOwned>(&self) -> Result<T> {
        parse(&self.properties)
    }

    /// One property, if present.
    pub fn property(&self, name: &str) -> Option<Value> {
        field(&self.properties, name)
    }
}

/// Where a named object was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Operator-managed, inherited by every tenant.
    Global,
    /// The calling tenant's own.
    Tenant,
}

/// A grant held by an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// A `type:id` pattern in which `*` matches any run of characters.
    pub resource: String,
    /// Action names; `*` allows any action.
    pub actions: Vec<String>,
}

impl Permission {
    /// Whether this grant's pattern matches `resource` (`type:id`).
    pub fn matches_resource(&self, resource: &str) -> bool {
        crate::glob_match(&self.resource, resource)
    }

    /// Whether this grant names `action` (or `*`).
    pub fn allows_action(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }

    /// Whether this grant allows `action` on `resource`.
    pub fn grants(&self, resource: &str, action: &str) -> bool {
        self.matches_resource(resource) && self.allows_action(action)
    }
}

/// A registered agent, as Ward resolved it for the subject.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The agent's name.
    pub name: String,
    /// Where the agent was found.
    pub scope: Scope,
    /// The agent's type, such as `ai_agent` or `service`.
    pub kind: String,
    /// The agent's grants.
    pub permissions: Vec<Permission>,
    attributes: String,
}

impl Agent {
    fn from_raw(raw: raw::Agent) -> Self {
        Agent {
            name: raw.name,
            scope: match raw.scope {
                raw::Scope::Global => Scope::Global,
                raw::Scope::Tenant => Scope::Tenant,
            },
            kind: raw.type_,
            permissions: raw
                .permissions
                .into_iter()
                .map(|p| Permission {
                    resource: p.resource,
                    actions: p.actions,
                })
                .collect(),
            attributes: raw.attributes,
        }
    }

    /// All attributes, parsed into `T`.
    pub fn attributes<T: DeserializeOwned>(&self) -> Result<T> {
        parse(&self.attributes)
    }

    /// One attribute, if present.
    pub fn attribute(&self, name: &str) -> Option<Value> {
        field(&self.attributes, name)
    }
}

fn parse<T: DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(Error::from)
}

fn field(json: &str, name: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(mut map)) => map.remove(name),
        _ => None,
    }
}
