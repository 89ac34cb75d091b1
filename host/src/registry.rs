//! Tenants and their objects (agents, policies, data documents): durable in
//! the [`Store`], served from in-memory indexes that every write keeps
//! current, and resolved narrowest-first: the tenant's own, then global.
//!
//! Management writes are serialized by one lock and durable when they
//! return. Decisions never take that lock: they read immutable snapshots.

mod agents;
mod data;
mod follow;
mod index;
pub mod keys;
mod names;
mod plans;

pub(crate) use names::{check_slug, clip};
mod policies;
mod resolve;
mod tenants;

pub use plans::Catalog;
pub use policies::BUILTIN_POLICY;
pub(crate) use resolve::Scopes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use ward_types::{Agent, DataDocument, PolicyInfo, Scope, TenantSettings};

use crate::audit::AuditLog;
use crate::gates::Gates;
use crate::sandbox::{LoadError, Sandbox};
use crate::store::set_aside::{self, decode_or_set_aside};
use crate::store::{self, Kind, Store, StoreError};
use keys::ApiKeys;

use index::{AgentEntry, DataEntry, TenantRecord};
pub(crate) use index::{Directory, PolicyEntry, TenantSlot};
pub(crate) use index::{Objects, TenantView};

/// Errors of registry calls, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such object (or not visible to the caller, which looks the same).
    #[error("{what} `{name}` not found")]
    NotFound {
        /// What kind of object.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The name is taken.
    #[error("{0}")]
    Conflict(String),
    /// Malformed or out-of-range input.
    #[error("{0}")]
    Invalid(String),
    /// A quota would be exceeded.
    #[error("{message}")]
    QuotaExceeded {
        /// The setting that holds the quota.
        quota: &'static str,
        /// Its value.
        limit: u64,
        /// What would have passed it.
        message: String,
    },
    /// A tenant tried to change a global object.
    #[error("`{0}` is a global object and cannot be changed by a tenant")]
    GlobalReadOnly(String),
    /// The uploaded module was refused.
    #[error(transparent)]
    Module(#[from] LoadError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// The error's stable `snake_case` code.
    pub fn code(&self) -> ward_types::ErrorCode {
        use ward_types::ErrorCode;
        match self {
            RegistryError::NotFound { .. } => ErrorCode::NotFound,
            RegistryError::Conflict(_) => ErrorCode::Conflict,
            RegistryError::Invalid(_) => ErrorCode::InvalidInput,
            RegistryError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            RegistryError::GlobalReadOnly(_) => ErrorCode::GlobalReadOnly,
            RegistryError::Module(LoadError::TooLarge { .. }) => ErrorCode::TooLarge,
            RegistryError::Module(LoadError::Busy) => ErrorCode::Busy,
            RegistryError::Module(LoadError::Internal(_)) => ErrorCode::Internal,
            RegistryError::Module(_) => ErrorCode::InvalidModule,
            RegistryError::Store(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn not_found(what: &'static str, name: &str) -> Self {
        RegistryError::NotFound {
            what,
            name: names::clip(name),
        }
    }
}

/// Result alias for registry calls.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Which scope, by its key: the global scope or one tenant by id (the
/// scope a write goes to, or a read is made for). The API's
/// [`ward_types::Scope`] only says which kind of scope an object came
/// from; `Objects` are one scope's objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeId {
    /// The operator's global scope.
    Global,
    /// One tenant, by id.
    Tenant(String),
}

impl ScopeId {
    /// The store key prefix of this scope: `global` or the tenant id.
    pub fn key(&self) -> &str {
        match self {
            ScopeId::Global => "global",
            ScopeId::Tenant(id) => id,
        }
    }

    fn scope(&self) -> Scope {
        match self {
            ScopeId::Global => Scope::Global,
            ScopeId::Tenant(_) => Scope::Tenant,
        }
    }
}

/// The registry. Create one per process with [`Registry::open`].
pub struct Registry {
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    audit: Arc<AuditLog>,
    gates: Arc<Gates>,
    keys: Arc<ApiKeys>,
    global: ArcSwap<Objects>,
    directory: ArcSwap<Directory>,
    write_lock: Mutex<()>,
    /// The store revision the indexes hold, as writers see them (changed
    /// only under `write_lock`).
    head: AtomicU64,
    /// The revision every change up to which is in force for decisions:
    /// `head` once the write that moved it has published its indexes.
    applied: tokio::sync::watch::Sender<u64>,
    /// When this process last knew it was current with the store's change
    /// log (ms since the epoch).
    followed_at_ms: AtomicU64,
    /// Plans and the config file's overrides.
    catalog: ArcSwap<Catalog>,
    /// Trial ends already audited.
    billing_episodes: plans::BillingEpisodes,
}

/// Held by a management write: this process's write lock, and the
/// store's cluster-wide one when several processes share the store. The
/// revisions it committed are announced when it is dropped, once their
/// indexes are published.
pub(crate) struct WriteGuard<'a> {
    registry: &'a Registry,
    _cluster: Option<Box<dyn store::WriteLock>>,
    _local: MutexGuard<'a, ()>,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.registry.announce();
    }
}

impl Registry {
    /// Loads every index from `store`, finishes tenant deletes a crash
    /// interrupted, and installs the builtin `permissions` policy in the
    /// global scope if it is missing. Policy modules are compiled (or
    /// taken from the sandbox's disk cache) lazily, on first use.
    ///
    /// The registry owns each tenant's life: a tenant delete also forgets
    /// its API `keys`, its admission state in `gates` and its audit scope
    /// in `audit`.
    pub fn open(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        audit: Arc<AuditLog>,
        gates: Arc<Gates>,
        keys: Arc<ApiKeys>,
    ) -> Result<Self> {
        let registry = Self::open_without_builtins(store, sandbox, audit, gates, keys)?;
        registry.install_builtins()?;
        Ok(registry)
    }

    fn open_without_builtins(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        audit: Arc<AuditLog>,
        gates: Arc<Gates>,
        keys: Arc<ApiKeys>,
    ) -> Result<Self> {
        let registry = Registry {
            gates,
            keys,
            store,
            sandbox,
            audit,
            global: ArcSwap::from_pointee(Objects::default()),
            directory: ArcSwap::from_pointee(Directory::default()),
            write_lock: Mutex::new(()),
            head: AtomicU64::new(0),
            applied: tokio::sync::watch::Sender::new(0),
            followed_at_ms: AtomicU64::new(ward_types::Timestamp::now().millis()),
            catalog: ArcSwap::from_pointee(Catalog::default()),
            billing_episodes: plans::BillingEpisodes::default(),
        };
        {
            let _local = registry.lock_local();
            registry.load_all()?;
        }
        registry.announce();
        // After the load: tenants being deleted are already gone from it
        // (their tenant records go first), and the sweep takes the
        // cluster's write lock, which needs the indexes current.
        registry.finish_pending_deletes()?;
        Ok(registry)
    }

    /// [`Registry::open`] on a temporary store, without the builtin
    /// policy: for unit tests that run no Wasm (the builtin would be
    /// compiled).
    #[cfg(test)]
    pub(crate) fn for_tests(sandbox: Arc<Sandbox>, clock: Arc<dyn crate::gates::Clock>) -> Self {
        let store: Arc<dyn Store> =
            Arc::new(store::SledStore::temporary().expect("a temporary store"));
        let audit = Arc::new(AuditLog::new(Arc::clone(&store)).expect("an audit log"));
        let gates = Arc::new(Gates::new(Arc::clone(&store), clock));
        let keys = Arc::new(ApiKeys::new(Arc::clone(&store)));
        Self::open_without_builtins(store, sandbox, audit, gates, keys).expect("a registry")
    }

    /// The audit log, admission gates and keys of a registry made by
    /// [`Registry::for_tests`], to make its decider with.
    #[cfg(test)]
    pub(crate) fn parts_for_tests(&self) -> (Arc<AuditLog>, Arc<Gates>) {
        (Arc::clone(&self.audit), Arc::clone(&self.gates))
    }

    /// Deletes every tenant's audit entries older than its
    /// `audit_retention_days`, as of the registry's clock; returns how many.
    pub fn prune_audit(&self) -> Result<usize> {
        let now = self.gates.clock().now_ms();
        let mut removed = 0;
        for slot in self.directory.load().by_id.values() {
            let view = slot.view.load();
            // A day at least: a setting of 0 stored before the floor
            // existed never erases the log.
            let keep_ms = u64::from(view.settings.audit_retention_days.max(1)) * 86_400_000;
            removed += self.audit.prune(&view.record.id, now, keep_ms)?;
        }
        Ok(removed)
    }

    /// [`Registry::prune_audit`], if `holder` holds the cluster's prune
    /// lease for the next `every_ms` (always, on a store one process
    /// opens): retention is pruned once per cluster, not once per replica.
    pub fn prune_audit_once(&self, holder: &str, every_ms: u64) -> Result<Option<usize>> {
        let now = self.gates.clock().now_ms();
        // Held a little longer than the interval, so that the holder renews
        // it before another replica may take it.
        if !self
            .store
            .lease("audit-prune", holder, now, every_ms + every_ms / 2)?
        {
            return Ok(None);
        }
        self.prune_audit().map(Some)
    }

    fn lock_local(&self) -> MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the write locks for a management write, and brings the
    /// indexes up to the store's revision first when other processes
    /// write it too: the checks a write makes (names taken, quotas,
    /// versions) then see every committed change, as in one process.
    fn lock(&self) -> Result<WriteGuard<'_>> {
        let local = self.lock_local();
        let cluster = self.store.lock_writes()?;
        if cluster.is_some() {
            self.catch_up()?;
        }
        Ok(WriteGuard {
            registry: self,
            _cluster: cluster,
            _local: local,
        })
    }

    /// Stores `writes` as the next revision (write lock held): a change
    /// other replicas apply. The revision is in force once the guard is
    /// dropped.
    fn commit(&self, writes: Vec<store::Write>) -> Result<u64> {
        let scopes = follow::touched(&writes);
        let expected = self.head.load(Ordering::Acquire);
        let revision = self.store.commit(expected, writes, &scopes)?;
        self.head.store(revision, Ordering::Release);
        Ok(revision)
    }

    /// Makes `head` the applied revision, waking whoever waits for it.
    fn announce(&self) {
        let head = self.head.load(Ordering::Acquire);
        self.applied.send_if_modified(|applied| {
            let newer = head > *applied;
            if newer {
                *applied = head;
            }
            newer
        });
    }

    /// The revision whose changes are all in force here.
    pub fn applied_revision(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the applied revision reaches `revision`, at most
    /// `limit`; whether it did.
    pub async fn wait_for_revision(&self, revision: u64, limit: std::time::Duration) -> bool {
        let mut watch = self.applied.subscribe();
        tokio::time::timeout(limit, watch.wait_for(|applied| *applied >= revision))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// Loads every index from the store, as of its current revision
    /// (write lock held).
    fn load_all(&self) -> Result<()> {
        let revision = self.store.revision()?;
        self.load()?;
        self.keys.reload_all()?;
        self.head.store(revision, Ordering::Release);
        Ok(())
    }

    /// Every scope's objects whose keys start with `prefix`, by scope.
    fn read_objects(&self, prefix: &str) -> Result<HashMap<String, Objects>> {
        let mut scopes: HashMap<String, Objects> = HashMap::new();
        // A record that does not decode is set aside (store::set_aside):
        // one tenant's unreadable record never stops the start.
        let store = self.store.as_ref();
        for (key, bytes) in store.scan(Kind::Agent, prefix)? {
            let Some(agent) = decode_or_set_aside::<Agent>(store, Kind::Agent, &key, &bytes) else {
                continue;
            };
            let scope = scope_of(&key);
            scopes
                .entry(scope)
                .or_default()
                .agents
                .insert(agent.name.clone(), Arc::new(AgentEntry::new(agent)));
        }
        for (key, bytes) in store.scan(Kind::Policy, prefix)? {
            let Some(info) = decode_or_set_aside::<PolicyInfo>(store, Kind::Policy, &key, &bytes)
            else {
                continue;
            };
            scopes
                .entry(scope_of(&key))
                .or_default()
                .policies
                .insert(info.name.clone(), Arc::new(PolicyEntry::new(info)));
        }
        for (key, bytes) in store.scan(Kind::Data, prefix)? {
            let Some(doc) = decode_or_set_aside::<DataDocument>(store, Kind::Data, &key, &bytes)
            else {
                continue;
            };
            let index = scopes.entry(scope_of(&key)).or_default();
            let entry = DataEntry::new(doc);
            index.data_bytes += entry.json.len() as u64;
            index.data.insert(entry.doc.key.clone(), Arc::new(entry));
        }
        Ok(scopes)
    }

    fn load(&self) -> Result<()> {
        let mut scopes = self.read_objects("")?;
        let store = self.store.as_ref();

        let mut directory = Directory::default();
        for (key, bytes) in store.scan(Kind::Tenant, "")? {
            let Some(record) =
                decode_or_set_aside::<TenantRecord>(store, Kind::Tenant, &key, &bytes)
            else {
                continue;
            };
            if let Err(err) = TenantSettings::from_overrides(&record.settings) {
                let reason = format!("tenant `{}` settings: {err}", record.id);
                set_aside::move_aside(store, Kind::Tenant, &key, &bytes, &reason);
                continue;
            }
            let (settings, sources) = self.settings_or_own(&record);
            let scope = scopes.remove(&record.id).unwrap_or_default();
            directory
                .by_slug
                .insert(record.slug.clone(), record.id.clone());
            directory.by_id.insert(
                record.id.clone(),
                Arc::new(TenantSlot {
                    view: ArcSwap::from_pointee(
                        TenantView::new(record, settings, scope).sourced(sources),
                    ),
                }),
            );
        }
        self.global
            .store(Arc::new(scopes.remove("global").unwrap_or_default()));
        self.directory.store(Arc::new(directory));
        Ok(())
    }

    /// The current view of a tenant, by id or slug.
    pub(crate) fn tenant_view(&self, id_or_slug: &str) -> Option<Arc<TenantView>> {
        self.directory
            .load()
            .find(id_or_slug)
            .map(|slot| slot.view.load_full())
    }

    fn tenant_slot(&self, id_or_slug: &str) -> Result<Arc<TenantSlot>> {
        self.directory
            .load()
            .find(id_or_slug)
            .cloned()
            .ok_or_else(|| RegistryError::not_found("tenant", id_or_slug))
    }

    /// The global scope's current objects.
    pub(crate) fn global_index(&self) -> Arc<Objects> {
        self.global.load_full()
    }

    /// The index of `scope`, for reading before a write (lock held).
    fn scope_index(&self, scope: &ScopeId) -> Result<Objects> {
        match scope {
            ScopeId::Global => Ok((**self.global.load()).clone()),
            ScopeId::Tenant(id) => Ok(self.tenant_slot(id)?.view.load().scope.clone()),
        }
    }

    /// Publishes a changed index of `scope` (lock held).
    fn publish(&self, scope: &ScopeId, index: Objects) -> Result<()> {
        match scope {
            ScopeId::Global => self.global.store(Arc::new(index)),
            ScopeId::Tenant(id) => {
                let slot = self.tenant_slot(id)?;
                let current = slot.view.load();
                slot.view.store(Arc::new(
                    TenantView::new(current.record.clone(), current.settings.clone(), index)
                        .sourced(current.sources.clone()),
                ));
            }
        }
        Ok(())
    }

    /// A tenant's effective settings, or `None` for the global scope.
    fn settings_of(&self, scope: &ScopeId) -> Result<Option<TenantSettings>> {
        match scope {
            ScopeId::Global => Ok(None),
            ScopeId::Tenant(id) => Ok(Some(self.tenant_slot(id)?.view.load().settings.clone())),
        }
    }

    /// Writes a management event to the scope's audit log (durably).
    fn audit_event(
        &self,
        scope: &ScopeId,
        actor: &str,
        kind: ward_types::AuditKind,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> Result<()> {
        self.audit
            .record_event(scope.key(), actor, kind, target, details)
            .map_err(RegistryError::from)
    }
}

impl Registry {
    /// Passes `result` on, writing a `quota_exceeded` event to the scope's
    /// audit log, and for a tenant to the operator's global log too, when
    /// it is that refusal.
    fn audit_quota<T>(
        &self,
        scope: &ScopeId,
        actor: &str,
        target: &str,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(RegistryError::QuotaExceeded {
            quota,
            limit,
            message,
        }) = &result
        {
            let mut details =
                serde_json::json!({"message": message, "quota": quota, "limit": limit});
            self.audit_event(
                scope,
                actor,
                ward_types::AuditKind::QuotaExceeded,
                Some(target),
                details.clone(),
            )?;
            if let ScopeId::Tenant(id) = scope {
                details["tenant_id"] = serde_json::Value::String(id.clone());
                self.audit_event(
                    &ScopeId::Global,
                    actor,
                    ward_types::AuditKind::QuotaExceeded,
                    Some(target),
                    details,
                )?;
            }
        }
        result
    }
}

/// Refuses one more object when a tenant already has `limit` of them
/// (the global scope has no such limit).
fn check_count(current: usize, limit: Option<u64>, quota: &'static str, what: &str) -> Result<()> {
    match limit {
        Some(limit) if current as u64 >= limit => Err(RegistryError::QuotaExceeded {
            quota,
            limit,
            message: format!("this tenant already has its maximum of {limit} {what}"),
        }),
        _ => Ok(()),
    }
}

fn scope_of(key: &str) -> String {
    key.split_once('/')
        .map_or(key, |(scope, _)| scope)
        .to_string()
}

impl Registry {
    /// Refuses changing `name` in `scope` when the scope does not own it:
    /// `global_read_only` when only the global scope has it, else
    /// `not_found`.
    fn check_owned(
        &self,
        scope: &ScopeId,
        owned: bool,
        in_global: bool,
        what: &'static str,
        name: &str,
    ) -> Result<()> {
        match (owned, scope) {
            (true, _) => Ok(()),
            (false, ScopeId::Tenant(_)) if in_global => {
                Err(RegistryError::GlobalReadOnly(names::clip(name)))
            }
            (false, _) => Err(RegistryError::not_found(what, name)),
        }
    }
}

/// Reads every record whose shape Ward knows (tenants and their settings,
/// agents, policies, data documents, API keys, audit chunks) and sets
/// aside each one that does not decode; returns how many it set aside.
/// For `ward store check`, on a store no server has open.
pub fn check_records(store: &dyn Store) -> Result<usize> {
    fn typed<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<(), String> {
        store::decode::<T>(bytes)
            .map(|_| ())
            .map_err(|err| err.to_string())
    }
    let tenant = |bytes: &[u8]| {
        let record: TenantRecord = store::decode(bytes).map_err(|err| err.to_string())?;
        TenantSettings::from_overrides(&record.settings)
            .map(|_| ())
            .map_err(|err| format!("tenant `{}` settings: {err}", record.id))
    };
    let chunk = |bytes: &[u8]| {
        crate::audit::chunk::decode(bytes)
            .map(|_| ())
            .map_err(|err| err.to_string())
    };
    type Check<'a> = &'a dyn Fn(&[u8]) -> std::result::Result<(), String>;
    let checks: [(Kind, Check); 6] = [
        (Kind::Tenant, &tenant),
        (Kind::Agent, &typed::<Agent>),
        (Kind::Policy, &typed::<PolicyInfo>),
        (Kind::Data, &typed::<DataDocument>),
        (Kind::ApiKey, &typed::<keys::ApiKeyRecord>),
        (Kind::Audit, &chunk),
    ];
    let mut set = 0;
    for (kind, check) in checks {
        for (key, bytes) in store.scan(kind, "")? {
            if let Err(reason) = check(&bytes) {
                set_aside::move_aside(store, kind, &key, &bytes, &reason);
                set += 1;
            }
        }
    }
    Ok(set)
}
