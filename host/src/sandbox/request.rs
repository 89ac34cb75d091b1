//! The `request` record of `ward:policy/types` as borrowed values, so that
//! a decision lowers the registry's own strings and grants straight into
//! the guest instead of copying them into an owned [`Request`] first.
//!
//! Each type here has exactly the shape of its WIT record (field names and
//! order); the generated owned types are used where a borrowed one would
//! gain nothing (the tenant, the grants). `Func::typed` checks the shape on
//! every call, so a mismatch fails every decision, and the tests with it.

use wasmtime::component::{ComponentType, Lower};

use super::bindings::ward::policy::types::{
    Action, Agent, Entity, Permission, Request, Scope, Tenant,
};

/// `record request`, borrowed.
#[derive(Debug, Clone, Copy, ComponentType, Lower)]
#[component(record)]
pub struct RequestView<'a> {
    /// The tenant the decision is made for.
    pub tenant: &'a Tenant,
    /// Who asks.
    pub subject: EntityView<'a>,
    /// The agent resolved for the subject, if any.
    pub agent: Option<AgentView<'a>>,
    /// What is asked for.
    pub action: ActionView<'a>,
    /// On what.
    pub resource: EntityView<'a>,
    /// A JSON object.
    pub context: &'a str,
    /// The policy's configuration: a JSON value.
    pub config: &'a str,
}

/// `record entity`, borrowed.
#[derive(Debug, Clone, Copy, ComponentType, Lower)]
#[component(record)]
pub struct EntityView<'a> {
    /// The entity's type.
    #[component(name = "type")]
    pub type_: &'a str,
    /// Its id.
    pub id: &'a str,
    /// A JSON object.
    pub properties: &'a str,
}

/// `record action`, borrowed.
#[derive(Debug, Clone, Copy, ComponentType, Lower)]
#[component(record)]
pub struct ActionView<'a> {
    /// The action's name.
    pub name: &'a str,
    /// A JSON object.
    pub properties: &'a str,
}

/// `record agent`, borrowed.
#[derive(Debug, Clone, Copy, ComponentType, Lower)]
#[component(record)]
pub struct AgentView<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// Where it was found.
    pub scope: Scope,
    /// Its type.
    #[component(name = "type")]
    pub type_: &'a str,
    /// A JSON object.
    pub attributes: &'a str,
    /// Its grants.
    pub permissions: &'a [Permission],
}

impl<'a> From<&'a Entity> for EntityView<'a> {
    fn from(entity: &'a Entity) -> Self {
        EntityView {
            type_: &entity.type_,
            id: &entity.id,
            properties: &entity.properties,
        }
    }
}

impl<'a> From<&'a Action> for ActionView<'a> {
    fn from(action: &'a Action) -> Self {
        ActionView {
            name: &action.name,
            properties: &action.properties,
        }
    }
}

impl<'a> From<&'a Agent> for AgentView<'a> {
    fn from(agent: &'a Agent) -> Self {
        AgentView {
            name: &agent.name,
            scope: agent.scope,
            type_: &agent.type_,
            attributes: &agent.attributes,
            permissions: &agent.permissions,
        }
    }
}

impl<'a> From<&'a Request> for RequestView<'a> {
    fn from(request: &'a Request) -> Self {
        RequestView {
            tenant: &request.tenant,
            subject: (&request.subject).into(),
            agent: request.agent.as_ref().map(AgentView::from),
            action: (&request.action).into(),
            resource: (&request.resource).into(),
            context: &request.context,
            config: &request.config,
        }
    }
}
