//! Records Ward cannot read, moved out of the way instead of stopping it.
//!
//! A reader that meets a record it cannot decode (at start, in a tenant
//! delete, in an audit read or prune) moves the record here, logs it with
//! its key at error level and counts it (`ward_records_set_aside_total` in
//! `/metrics`), then carries on without it. The audit writer does the same
//! with an entry it cannot store. The bytes are kept as they were, so an
//! operator can look at them (`ward store check`, `GET /v1/set-aside`)
//! and remove them; a tenant delete removes the tenant's.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Kind, Result, Store, Write};

/// One record set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetAside {
    /// Its id among the records set aside: `<kind>/<key>`.
    pub id: String,
    /// The tree (or table) it was in, e.g. `agents` or `audit`.
    pub kind: String,
    /// Its key there.
    pub key: String,
    /// Why it was set aside.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub set_aside_at_ms: u64,
    /// Its bytes, hex-encoded.
    pub bytes_hex: String,
}

/// Records set aside since this process started.
static SET_ASIDE_TOTAL: AtomicU64 = AtomicU64::new(0);

/// How many records this process has set aside.
pub fn total() -> u64 {
    SET_ASIDE_TOTAL.load(Ordering::Relaxed)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// Longest reason kept (a decode error quotes little, but bound it).
const MAX_REASON: usize = 1024;

fn record(kind: Kind, key: &str, bytes: &[u8], reason: &str) -> SetAside {
    let mut reason = reason.to_string();
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    SetAside {
        id: format!("{}/{key}", kind.name()),
        kind: kind.name().to_string(),
        key: key.to_string(),
        reason,
        set_aside_at_ms: now_ms(),
        bytes_hex: hex::encode(bytes),
    }
}

/// The set-aside record of `bytes`, counted and logged loudly with `what`
/// happened.
fn announce(kind: Kind, key: &str, bytes: &[u8], reason: &str, what: &str) -> SetAside {
    let aside = record(kind, key, bytes, reason);
    SET_ASIDE_TOTAL.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        kind = kind.name(),
        key,
        reason = %aside.reason,
        "{what}; it is set aside (see `ward store check`)"
    );
    aside
}

/// The store write that keeps `bytes` (of `key` in `kind`) set aside.
fn keep(aside: &SetAside) -> Result<Write> {
    Write::put_json(Kind::SetAside, aside.id.clone(), aside)
}

/// Moves the record `key` of `kind` (whose bytes are `bytes`) out of its
/// tree into the set-aside tree, in one atomic write, and says so loudly.
/// Never fails: if even the move cannot be written, the record stays where
/// it was and the failure is logged.
pub fn move_aside(store: &dyn Store, kind: Kind, key: &str, bytes: &[u8], reason: &str) {
    let aside = announce(kind, key, bytes, reason, "a stored record cannot be read");
    let written = keep(&aside).and_then(|put| store.write(vec![put, Write::delete(kind, key)]));
    if let Err(err) = written {
        tracing::error!(%err, kind = kind.name(), key, "could not set the record aside");
    }
}

/// Keeps `bytes`, which were never stored as `key` of `kind`, in the
/// set-aside tree (the audit writer's entries it cannot store).
pub fn keep_unstored(
    store: &dyn Store,
    kind: Kind,
    key: &str,
    bytes: &[u8],
    reason: &str,
) -> Result<()> {
    let aside = announce(kind, key, bytes, reason, "a record cannot be stored");
    store.write(vec![keep(&aside)?])
}

/// Decodes `bytes`, the record `key` of `kind`; a record that does not
/// decode is set aside and `None` returned.
pub fn decode_or_set_aside<T: DeserializeOwned>(
    store: &dyn Store,
    kind: Kind,
    key: &str,
    bytes: &[u8],
) -> Option<T> {
    match super::decode(bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            move_aside(store, kind, key, bytes, &err.to_string());
            None
        }
    }
}

/// Every record set aside, in id order.
pub fn list(store: &dyn Store) -> Result<Vec<SetAside>> {
    let mut listed = Vec::new();
    for (id, bytes) in store.scan(Kind::SetAside, "")? {
        match super::decode::<SetAside>(&bytes) {
            Ok(aside) => listed.push(aside),
            // Written by this module only; should one be damaged anyway,
            // it is still listed so that it can be removed.
            Err(err) => listed.push(SetAside {
                id: id.clone(),
                kind: String::new(),
                key: id,
                reason: format!("the set-aside record itself is unreadable: {err}"),
                set_aside_at_ms: 0,
                bytes_hex: hex::encode(&bytes),
            }),
        }
    }
    Ok(listed)
}

/// Removes the record set aside as `id`; whether there was one.
pub fn remove(store: &dyn Store, id: &str) -> Result<bool> {
    if store.get(Kind::SetAside, id)?.is_none() {
        return Ok(false);
    }
    store.write(vec![Write::delete(Kind::SetAside, id)])?;
    Ok(true)
}

/// Removes every record set aside that belonged to the tenant `tenant_id`
/// (its key, or its key's scope, is the tenant id); returns how many.
pub fn forget_tenant(store: &dyn Store, tenant_id: &str) -> Result<usize> {
    let scoped = super::scope_prefix(tenant_id);
    let deletes: Vec<Write> = store
        .scan(Kind::SetAside, "")?
        .into_iter()
        .filter_map(|(id, _)| {
            let (_, key) = id.split_once('/')?;
            (key == tenant_id || key.starts_with(&scoped))
                .then(|| Write::delete(Kind::SetAside, id))
        })
        .collect();
    let removed = deletes.len();
    if removed > 0 {
        store.write(deletes)?;
    }
    Ok(removed)
}
