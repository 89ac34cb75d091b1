//! Persistence behind a small trait, so that a shared database can back
//! several Ward replicas later; [`SledStore`] is the embedded default.
//!
//! Records are grouped by [`Kind`]. Keys of scoped kinds start with the
//! scope (`global` or a tenant id) and a `/`, so one tenant's records of a
//! kind are one key range.

pub mod set_aside;
mod sled;

pub use self::sled::SledStore;

/// Kinds of record: one tree (or table) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `tenant id` → tenant record.
    Tenant,
    /// `slug` → tenant id.
    Slug,
    /// `scope/name` → agent.
    Agent,
    /// `scope/name` → policy record (versions, active version, config).
    Policy,
    /// `sha256` → module bytes, shared by every scope that uploads them.
    Module,
    /// `sha256` → number of policy versions that use the module.
    ModuleRefs,
    /// `scope/key` → data document.
    Data,
    /// `tenant id/key id` → API key record (hash only).
    ApiKey,
    /// `secret hash` → `tenant id/key id`.
    ApiKeyHash,
    /// `tenant id/YYYY-MM` → usage counters.
    Usage,
    /// `scope/ULID` → audit entry.
    Audit,
    /// Host-wide settings, such as the operator token hash.
    Meta,
    /// `tenant id` → marker of a delete that must be finished.
    PendingDelete,
    /// `kind/key` → a record that could not be read, moved out of the way
    /// (see [`set_aside`]).
    SetAside,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 14] = [
        Kind::Tenant,
        Kind::Slug,
        Kind::Agent,
        Kind::Policy,
        Kind::Module,
        Kind::ModuleRefs,
        Kind::Data,
        Kind::ApiKey,
        Kind::ApiKeyHash,
        Kind::Usage,
        Kind::Audit,
        Kind::Meta,
        Kind::PendingDelete,
        Kind::SetAside,
    ];

    /// Kinds whose keys start with a scope.
    pub const SCOPED: [Kind; 5] = [
        Kind::Agent,
        Kind::Policy,
        Kind::Data,
        Kind::Usage,
        Kind::Audit,
    ];

    /// The name of its tree (or table).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tenant => "tenants",
            Kind::Slug => "tenant_slugs",
            Kind::Agent => "agents",
            Kind::Policy => "policies",
            Kind::Module => "modules",
            Kind::ModuleRefs => "module_refs",
            Kind::Data => "data",
            Kind::ApiKey => "api_keys",
            Kind::ApiKeyHash => "api_key_hashes",
            Kind::Usage => "usage",
            Kind::Audit => "audit",
            Kind::Meta => "meta",
            Kind::PendingDelete => "pending_deletes",
            Kind::SetAside => "set_aside",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// The key of a record that lives in `scope`.
pub fn scoped_key(scope: &str, name: &str) -> String {
    format!("{scope}/{name}")
}

/// The key prefix of everything of one scope.
pub fn scope_prefix(scope: &str) -> String {
    format!("{scope}/")
}

/// One change in an atomic [`Store::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace.
    Put {
        /// Which kind.
        kind: Kind,
        /// Its key.
        key: String,
        /// Its bytes.
        value: Vec<u8>,
    },
    /// Remove if present.
    Delete {
        /// Which kind.
        kind: Kind,
        /// Its key.
        key: String,
    },
}

impl Write {
    /// A put of `value` serialized as JSON.
    pub fn put_json(
        kind: Kind,
        key: impl Into<String>,
        value: &impl serde::Serialize,
    ) -> Result<Self> {
        Ok(Write::Put {
            kind,
            key: key.into(),
            value: serde_json::to_vec(value).map_err(|err| StoreError::Corrupt(err.to_string()))?,
        })
    }

    /// A delete.
    pub fn delete(kind: Kind, key: impl Into<String>) -> Self {
        Write::Delete {
            kind,
            key: key.into(),
        }
    }
}

/// Storage failures. None of them is the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("storage failure: {0}")]
    Backend(String),
    /// A stored record could not be read back.
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

/// Result alias for storage calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where Ward keeps everything.
pub trait Store: Send + Sync {
    /// One record.
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>>;

    /// Every record whose key starts with `prefix`, in key order.
    fn scan(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Up to `limit` records whose key starts with `prefix` and sorts
    /// before `before` (all of them when `None`), in reverse key order.
    fn scan_rev(
        &self,
        kind: Kind,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;

    /// Applies every change or none, and returns once they are durable.
    fn write(&self, writes: Vec<Write>) -> Result<()>;

    /// Applies every change or none without waiting for durability; a later
    /// [`Store::flush`] (or the backend's own periodic flush) makes them
    /// durable. For high-volume appends that batch their own flushes.
    fn write_buffered(&self, writes: &[Write]) -> Result<()>;

    /// Removes every record of `kind` whose key starts with `prefix`;
    /// returns how many. Durable on return.
    fn delete_prefix(&self, kind: Kind, prefix: &str) -> Result<usize>;

    /// Makes every earlier write durable.
    fn flush(&self) -> Result<()>;
}

/// Reads a JSON record.
pub fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    kind: Kind,
    key: &str,
) -> Result<Option<T>> {
    store
        .get(kind, key)?
        .map(|bytes| decode(&bytes))
        .transpose()
}

/// Decodes a JSON record, however deeply it nests.
///
/// serde_json refuses input nested deeper than 128 levels, and a record
/// wraps what a client sent in a level or more of its own, so a reader
/// with that limit could refuse a record that its writer produced from
/// accepted input. Records are therefore read without the limit, on a
/// stack that grows with the nesting: whatever was written reads back.
/// (What may be written is bounded at the doors, see [`crate::nesting`].)
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    json.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut json))
        .and_then(|value| json.end().map(|()| value));
    value.map_err(|err| StoreError::Corrupt(err.to_string()))
}
