//! Persistence behind a small trait: [`SledStore`] is the embedded
//! default, [`PostgresStore`] the shared store that several Ward replicas
//! run on.
//!
//! Records are grouped by [`Kind`]. Keys of scoped kinds start with the
//! scope (`global` or a tenant id) and a `/`, so one tenant's records of a
//! kind are one key range.
//!
//! Management writes go through [`Store::commit`]: each one bumps the
//! store's revision and records which scopes it changed, in the same
//! atomic write. Replicas follow that change log ([`Store::changes`]) to
//! keep their in-memory indexes current.

pub mod copy;
pub mod postgres;
pub mod set_aside;
mod sled;

pub use self::postgres::PostgresStore;
pub use self::sled::SledStore;

/// Kinds of record: one tree (or table) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// `tenant id/key id` → when the key was last used (ms, decimal). Kept
    /// apart from the key record so that noting a use can never bring a
    /// revoked key back.
    KeyUse,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 15] = [
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
        Kind::KeyUse,
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
            Kind::KeyUse => "key_uses",
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
    /// A commit expected a revision the store has moved past: another
    /// writer committed in between.
    #[error("the store is at revision {actual}, not the expected {expected}")]
    Conflict {
        /// The revision the writer had applied.
        expected: u64,
        /// The store's revision.
        actual: u64,
    },
}

/// One committed management write: its revision and the scopes (`global`
/// or tenant ids) whose records it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The store's revision after it.
    pub revision: u64,
    /// What it changed.
    pub scopes: Vec<String>,
}

/// Holds the store's cluster-wide write lock while alive (see
/// [`Store::lock_writes`]).
pub trait WriteLock: Send {}

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

    /// Applies `writes` atomically and durably as the next revision, if
    /// the store is still at revision `expected`; records `scopes` as what
    /// it changed. Returns the new revision, or [`StoreError::Conflict`].
    fn commit(&self, expected: u64, writes: Vec<Write>, scopes: &[String]) -> Result<u64>;

    /// The revision of the last commit (0 before any).
    fn revision(&self) -> Result<u64>;

    /// Up to `limit` commits after revision `after`, oldest first; `None`
    /// when the log no longer reaches back that far (the reader must load
    /// everything again).
    fn changes(&self, after: u64, limit: usize) -> Result<Option<Vec<Change>>>;

    /// Takes the lock that serializes management writes across every
    /// process sharing the store, waiting for it; `None` when only this
    /// process writes (the caller's own lock suffices).
    fn lock_writes(&self) -> Result<Option<Box<dyn WriteLock>>>;

    /// Whether `holder` holds (or now takes) the lease `name` until
    /// `now_ms + ttl_ms`: for work one replica of a cluster does at a
    /// time, such as pruning. Always true on a store only one process
    /// opens.
    fn lease(&self, name: &str, holder: &str, now_ms: u64, ttl_ms: u64) -> Result<bool>;

    /// Adds up to `want` to the counter kept as a decimal in record
    /// (`kind`, `key`), never taking it past `limit`, in one atomic step
    /// across every process sharing the store; returns how much it added.
    fn take(&self, kind: Kind, key: &str, want: u64, limit: u64) -> Result<u64>;

    /// Whether several processes share this store (each then keeps its
    /// own usage counts and one audit record per entry).
    fn shared(&self) -> bool {
        false
    }
}

/// The smallest key above every key that starts with `prefix`; `None`
/// when no key is (the prefix is all `0xFF`).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A counter record's value (see [`Store::take`]); 0 when absent.
pub fn counter_value(bytes: Option<&[u8]>) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| StoreError::Corrupt(String::from("a counter record"))),
    }
}

/// How much a counter at `current` may grow towards `want` under `limit`.
pub fn grant(current: u64, want: u64, limit: u64) -> u64 {
    want.min(limit.saturating_sub(current))
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
