//! The in-memory indexes the decision path reads: immutable snapshots
//! swapped whole by writers, so a reader never takes a lock and never sees
//! half of a change, and an evaluation keeps the versions it started with.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ward_types::{
    Agent, DataDocument, PolicyInfo, PolicyVersion, Scope, Tenant, TenantKind, TenantOwner,
    TenantSettings, TenantStatus, Timestamp,
};

use crate::sandbox::{self, LoadedPolicy};

/// What the store keeps of a tenant: the overrides, not the effective
/// settings, so that changed defaults reach tenants that never set them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub kind: TenantKind,
    pub status: TenantStatus,
    pub settings: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<TenantOwner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<Timestamp>,
}

/// One scope's objects.
#[derive(Default, Clone)]
pub(crate) struct Objects {
    pub agents: HashMap<String, Arc<AgentEntry>>,
    pub policies: HashMap<String, Arc<PolicyEntry>>,
    pub data: HashMap<String, Arc<DataEntry>>,
    pub data_bytes: u64,
}

pub(crate) struct AgentEntry {
    pub agent: Agent,
    /// The agent as policies receive it, built once per write.
    pub wit: sandbox::Agent,
}

impl AgentEntry {
    pub fn new(agent: Agent) -> Self {
        let wit = sandbox::Agent {
            name: agent.name.clone(),
            scope: match agent.scope {
                Scope::Global => sandbox::Scope::Global,
                Scope::Tenant => sandbox::Scope::Tenant,
            },
            type_: agent.kind.clone(),
            attributes: Value::Object(agent.attributes.clone()).to_string(),
            permissions: agent
                .permissions
                .iter()
                .map(|p| sandbox::Permission {
                    resource: p.resource.clone(),
                    actions: p.actions.clone(),
                })
                .collect(),
        };
        AgentEntry { agent, wit }
    }
}

pub(crate) struct PolicyEntry {
    pub info: PolicyInfo,
    /// The active version's compiled module while the sandbox keeps it
    /// resident; loaded again (from the disk cache) after it was evicted.
    compiled: ArcSwap<Weak<LoadedPolicy>>,
    /// The config as policies receive it.
    pub config_json: String,
}

impl PolicyEntry {
    pub fn new(info: PolicyInfo) -> Self {
        PolicyEntry {
            config_json: info.config.to_string(),
            info,
            compiled: ArcSwap::from_pointee(Weak::new()),
        }
    }

    /// The active version's compiled module, if it is in memory.
    pub fn resident(&self) -> Option<Arc<LoadedPolicy>> {
        let policy = self.compiled.load().upgrade()?;
        policy.touch();
        Some(policy)
    }

    /// Remembers where the active version's compiled module is.
    pub fn keep(&self, policy: &Arc<LoadedPolicy>) {
        self.compiled.store(Arc::new(Arc::downgrade(policy)));
    }

    /// The active version, if any: (number, sha256).
    pub fn active(&self) -> Option<(u32, &str)> {
        self.active_version()
            .map(|v| (v.version, v.sha256.as_str()))
    }

    /// The active version's record, if any.
    pub fn active_version(&self) -> Option<&PolicyVersion> {
        let number = self.info.active_version?;
        self.info.versions.iter().find(|v| v.version == number)
    }
}

pub(crate) struct DataEntry {
    pub doc: DataDocument,
    /// The document as JSON text, as `data-get` returns it.
    pub json: String,
}

impl DataEntry {
    pub fn new(doc: DataDocument) -> Self {
        DataEntry {
            json: doc.value.to_string(),
            doc,
        }
    }
}

/// Where each effective setting comes from, by name (`default`,
/// `plan:<name>`, `tenant`, `file`).
pub(crate) type Sources = std::collections::BTreeMap<String, String>;

/// Everything about one tenant that a decision reads.
pub(crate) struct TenantView {
    pub record: TenantRecord,
    pub settings: TenantSettings,
    /// Where each setting comes from (`default`, `plan:<name>`, …).
    pub sources: Sources,
    pub wit: sandbox::Tenant,
    pub scope: Objects,
}

impl TenantView {
    pub fn new(record: TenantRecord, settings: TenantSettings, scope: Objects) -> Self {
        TenantView {
            wit: sandbox::Tenant {
                id: record.id.clone(),
                slug: record.slug.clone(),
            },
            record,
            settings,
            sources: Sources::new(),
            scope,
        }
    }

    /// The view, with where each setting comes from.
    pub fn sourced(mut self, sources: Sources) -> Self {
        self.sources = sources;
        self
    }

    pub fn tenant(&self) -> Tenant {
        Tenant {
            id: self.record.id.clone(),
            slug: self.record.slug.clone(),
            name: self.record.name.clone(),
            kind: self.record.kind,
            status: self.record.status,
            settings: self.settings.clone(),
            settings_source: self.sources.clone(),
            plan: self.record.plan.clone(),
            trial_ends_at: self.record.trial_ends_at,
            created_at: self.record.created_at,
            updated_at: self.record.updated_at,
            owner: self.record.owner.clone(),
        }
    }
}

/// A tenant's current view; swapped on every change to that tenant only.
pub(crate) struct TenantSlot {
    pub view: ArcSwap<TenantView>,
}

/// Every tenant by id, and ids by slug; swapped when tenants come or go.
#[derive(Default, Clone)]
pub(crate) struct Directory {
    pub by_id: HashMap<String, Arc<TenantSlot>>,
    pub by_slug: HashMap<String, String>,
}

impl Directory {
    pub fn find(&self, id_or_slug: &str) -> Option<&Arc<TenantSlot>> {
        self.by_id.get(id_or_slug).or_else(|| {
            self.by_slug
                .get(id_or_slug)
                .and_then(|id| self.by_id.get(id))
        })
    }
}
