//! API keys: `wk_<id>_<secret>` bearer tokens that belong to one tenant.
//! Only the sha256 of a key is stored; the secret is shown once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ward_types::{ApiKeyInfo, KeyRole, Timestamp};

use crate::store::{self, Kind, Store, StoreError, Write, scoped_key};

/// How often `last_used_at` is written back, at most.
const LAST_USED_RESOLUTION_MS: u64 = 60_000;

/// A stored key: its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key_` + ULID.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// A label.
    pub name: String,
    /// What it may do.
    pub role: KeyRole,
    /// Hex sha256 of the whole token.
    pub hash: String,
    /// When created.
    pub created_at: Timestamp,
    /// When last used (to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// A live key in the in-memory index.
pub struct KeyEntry {
    /// The stored record (as of creation or the last write-back).
    pub record: ApiKeyRecord,
    last_used: AtomicU64,
    written_back: AtomicU64,
}

impl KeyEntry {
    fn new(record: ApiKeyRecord) -> Self {
        let last = record.last_used_at.map_or(0, Timestamp::millis);
        KeyEntry {
            record,
            last_used: AtomicU64::new(last),
            written_back: AtomicU64::new(last),
        }
    }

    fn info(&self) -> ApiKeyInfo {
        let last = self.last_used.load(Ordering::Relaxed);
        ApiKeyInfo {
            id: self.record.id.clone(),
            name: self.record.name.clone(),
            role: self.record.role,
            created_at: self.record.created_at,
            last_used_at: (last > 0).then_some(Timestamp(last)),
        }
    }
}

/// Every tenant's keys, indexed by hash for the request path.
pub struct ApiKeys {
    store: Arc<dyn Store>,
    by_hash: ArcSwap<HashMap<String, Arc<KeyEntry>>>,
}

/// The sha256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl ApiKeys {
    /// No keys yet, kept in `store`: [`crate::registry::Registry::open`]
    /// loads them with everything else.
    pub fn new(store: Arc<dyn Store>) -> Self {
        ApiKeys {
            store,
            by_hash: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Loads every key from the store.
    fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let mut by_hash = HashMap::new();
        let uses: HashMap<String, u64> = store
            .scan(Kind::KeyUse, "")?
            .into_iter()
            .filter_map(|(key, value)| {
                let ms = std::str::from_utf8(&value).ok()?.parse().ok()?;
                Some((key, ms))
            })
            .collect();
        for (key, bytes) in store.scan(Kind::ApiKey, "")? {
            // An unreadable key record is set aside: that key stops working,
            // every other still does.
            let Some(record) = store::set_aside::decode_or_set_aside::<ApiKeyRecord>(
                store.as_ref(),
                Kind::ApiKey,
                &key,
                &bytes,
            ) else {
                continue;
            };
            let mut record = record;
            if let Some(&used) = uses.get(&key)
                && record.last_used_at.is_none_or(|at| at.millis() < used)
            {
                record.last_used_at = Some(Timestamp(used));
            }
            by_hash.insert(record.hash.clone(), Arc::new(KeyEntry::new(record)));
        }
        Ok(ApiKeys {
            store,
            by_hash: ArcSwap::from_pointee(by_hash),
        })
    }

    /// A new key for `tenant_id` and its token, not yet stored: the
    /// registry commits [`ApiKeys::stored_writes`] and then
    /// [`ApiKeys::insert`]s it.
    fn mint(tenant_id: &str, name: &str, role: KeyRole) -> (ApiKeyRecord, String) {
        let id = format!("key_{}", crate::ids::next_ulid());
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!(
            "wk_{}_{}",
            id.trim_start_matches("key_").to_lowercase(),
            hex::encode(secret)
        );
        let record = ApiKeyRecord {
            id,
            tenant_id: tenant_id.to_string(),
            name: name.to_string(),
            role,
            hash: token_hash(&token),
            created_at: Timestamp::now(),
            last_used_at: None,
        };
        (record, token)
    }

    /// The writes that store `record`.
    fn stored_writes(record: &ApiKeyRecord) -> Result<Vec<Write>, StoreError> {
        let key = scoped_key(&record.tenant_id, &record.id);
        Ok(vec![
            Write::put_json(Kind::ApiKey, key.clone(), record)?,
            Write::Put {
                kind: Kind::ApiKeyHash,
                key: record.hash.clone(),
                value: key.into_bytes(),
            },
        ])
    }

    /// Serves a stored key; its info.
    fn insert(&self, record: ApiKeyRecord) -> ApiKeyInfo {
        let entry = Arc::new(KeyEntry::new(record));
        let info = entry.info();
        self.by_hash.rcu(|current| {
            let mut next = (**current).clone();
            next.insert(entry.record.hash.clone(), Arc::clone(&entry));
            next
        });
        info
    }

    /// The tenant's keys, oldest first.
    pub fn list(&self, tenant_id: &str) -> Vec<ApiKeyInfo> {
        let mut keys: Vec<ApiKeyInfo> = self
            .by_hash
            .load()
            .values()
            .filter(|entry| entry.record.tenant_id == tenant_id)
            .map(|entry| entry.info())
            .collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys
    }

    /// Key `key_id` of `tenant_id`, if it has one.
    fn find(&self, tenant_id: &str, key_id: &str) -> Option<Arc<KeyEntry>> {
        self.by_hash
            .load()
            .values()
            .find(|entry| entry.record.tenant_id == tenant_id && entry.record.id == key_id)
            .cloned()
    }

    /// The writes that revoke `entry`.
    fn revoke_writes(entry: &KeyEntry) -> Vec<Write> {
        vec![
            Write::delete(
                Kind::ApiKey,
                scoped_key(&entry.record.tenant_id, &entry.record.id),
            ),
            Write::delete(Kind::ApiKeyHash, entry.record.hash.clone()),
            Write::delete(
                Kind::KeyUse,
                scoped_key(&entry.record.tenant_id, &entry.record.id),
            ),
        ]
    }

    /// Stops serving the key with this hash.
    fn remove(&self, hash: &str) {
        self.by_hash.rcu(|current| {
            let mut next = (**current).clone();
            next.remove(hash);
            next
        });
    }

    /// Serves every key as the store now has it (after this process fell
    /// too far behind the change log to follow it).
    pub(super) fn reload_all(&self) -> Result<(), StoreError> {
        let fresh = Self::load(Arc::clone(&self.store))?;
        let current = self.by_hash.load();
        let next: HashMap<String, Arc<KeyEntry>> = fresh
            .by_hash
            .load()
            .iter()
            .map(|(hash, entry)| {
                let kept = current.get(hash).cloned();
                (hash.clone(), kept.unwrap_or_else(|| Arc::clone(entry)))
            })
            .collect();
        self.by_hash.store(Arc::new(next));
        Ok(())
    }

    /// Serves tenant `tenant_id`'s keys as the store now has them: new
    /// ones added, revoked ones (or every one, when the tenant is gone)
    /// dropped. Another replica changed them.
    pub(super) fn reload_tenant(&self, tenant_id: &str) -> Result<(), StoreError> {
        let prefix = format!("{tenant_id}/");
        let mut stored = HashMap::new();
        for (key, bytes) in self.store.scan(Kind::ApiKey, &prefix)? {
            if let Some(record) = store::set_aside::decode_or_set_aside::<ApiKeyRecord>(
                self.store.as_ref(),
                Kind::ApiKey,
                &key,
                &bytes,
            ) {
                stored.insert(record.hash.clone(), record);
            }
        }
        self.by_hash.rcu(|current| {
            let mut next = (**current).clone();
            next.retain(|hash, entry| {
                entry.record.tenant_id != tenant_id || stored.contains_key(hash)
            });
            for (hash, record) in &stored {
                if !next.contains_key(hash) {
                    next.insert(hash.clone(), Arc::new(KeyEntry::new(record.clone())));
                }
            }
            next
        });
        Ok(())
    }

    /// The writes that make every key of tenant `tenant_id` stop working:
    /// their hash entries, the lookups tokens are checked through. (The
    /// key records go with the rest of the tenant's records.) A key record
    /// that cannot be read is set aside and its hash found by value: a
    /// delete never stops half-way.
    pub(super) fn revoke_all_writes(&self, tenant_id: &str) -> Result<Vec<Write>, StoreError> {
        let store = self.store.as_ref();
        let mut writes = Vec::new();
        for (key, bytes) in store.scan(Kind::ApiKey, &format!("{tenant_id}/"))? {
            match store::decode::<ApiKeyRecord>(&bytes) {
                Ok(record) => writes.push(Write::delete(Kind::ApiKeyHash, record.hash)),
                Err(_) => {
                    store::set_aside::move_aside(
                        store,
                        Kind::ApiKey,
                        &key,
                        &bytes,
                        "unreadable API key record of a tenant being deleted",
                    );
                    let owner = key.as_bytes();
                    for (hash, target) in store.scan(Kind::ApiKeyHash, "")? {
                        if target == owner {
                            writes.push(Write::delete(Kind::ApiKeyHash, hash));
                        }
                    }
                }
            }
        }
        Ok(writes)
    }

    /// Drops a deleted tenant's keys from memory (the store's are gone
    /// with the tenant).
    pub(super) fn forget_tenant(&self, tenant_id: &str) {
        self.by_hash.rcu(|current| {
            let mut next = (**current).clone();
            next.retain(|_, entry| entry.record.tenant_id != tenant_id);
            next
        });
    }

    /// The live key whose token this is, noting its use.
    pub fn lookup(&self, token: &str) -> Option<Arc<KeyEntry>> {
        let entry = self.by_hash.load().get(&token_hash(token)).cloned()?;
        let now = Timestamp::now().millis();
        entry.last_used.store(now, Ordering::Relaxed);
        let written = entry.written_back.load(Ordering::Relaxed);
        if now.saturating_sub(written) >= LAST_USED_RESOLUTION_MS
            && entry
                .written_back
                .compare_exchange(written, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.write_back(&entry, now);
        }
        Some(entry)
    }

    fn write_back(&self, entry: &KeyEntry, now: u64) {
        // A record of its own: a use noted as the key is revoked elsewhere
        // leaves a stray time, never a key that works again.
        let key = scoped_key(&entry.record.tenant_id, &entry.record.id);
        let write = Write::Put {
            kind: Kind::KeyUse,
            key,
            value: now.to_string().into_bytes(),
        };
        if let Err(err) = self.store.write_buffered(&[write]) {
            tracing::warn!(%err, "could not record an API key's last use");
        }
    }
}

/// A tenant's keys, through the registry: the tenant must exist, and each
/// change is written to its audit log.
impl super::Registry {
    /// Creates an API key for tenant `tenant` (id or slug); returns it
    /// with its secret, which is shown this once.
    pub fn create_key(
        &self,
        tenant: &str,
        name: &str,
        role: KeyRole,
        actor: &str,
    ) -> super::Result<(ApiKeyInfo, String)> {
        let name_ok = !name.trim().is_empty()
            && name.chars().count() <= 200
            && !name.chars().any(char::is_control);
        if !name_ok {
            return Err(super::RegistryError::Invalid(String::from(
                "key name must be 1-200 characters without control characters",
            )));
        }
        let _guard = self.lock()?;
        let tenant_id = self.tenant_slot(tenant)?.view.load().record.id.clone();
        let (record, secret) = ApiKeys::mint(&tenant_id, name, role);
        self.commit(ApiKeys::stored_writes(&record)?)?;
        let key = self.keys.insert(record);
        self.audit
            .record_event(
                &tenant_id,
                actor,
                ward_types::AuditKind::KeyCreated,
                Some(&key.id),
                serde_json::json!({"name": key.name, "role": key.role}),
            )
            .map_err(super::RegistryError::from)?;
        Ok((key, secret))
    }

    /// Tenant `tenant`'s keys (never their secrets), oldest first.
    pub fn list_keys(&self, tenant: &str) -> super::Result<Vec<ApiKeyInfo>> {
        let tenant_id = self.tenant_slot(tenant)?.view.load().record.id.clone();
        Ok(self.keys.list(&tenant_id))
    }

    /// Revokes key `key_id` of tenant `tenant` at once.
    pub fn revoke_key(&self, tenant: &str, key_id: &str, actor: &str) -> super::Result<()> {
        let _guard = self.lock()?;
        let tenant_id = self.tenant_slot(tenant)?.view.load().record.id.clone();
        let Some(entry) = self.keys.find(&tenant_id, key_id) else {
            return Err(super::RegistryError::not_found("API key", key_id));
        };
        self.commit(ApiKeys::revoke_writes(&entry))?;
        self.keys.remove(&entry.record.hash);
        self.audit
            .record_event(
                &tenant_id,
                actor,
                ward_types::AuditKind::KeyRevoked,
                Some(key_id),
                serde_json::Value::Null,
            )
            .map_err(super::RegistryError::from)?;
        Ok(())
    }
}
