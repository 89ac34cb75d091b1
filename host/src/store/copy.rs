//! Moving an embedded installation into a shared store: every record of
//! every kind copied as it is, audit chunks split into one record per
//! entry (the shared store's layout), then checked by counting.

use std::collections::{BTreeMap, BTreeSet};

use super::{Kind, Result, Store, StoreError, Write, scoped_key};

/// Records written to the target at a time.
const BATCH: usize = 1000;

/// `Kind::Meta` keys that belong to one store, never copied: the embedded
/// store's own revision, and replicas' heartbeats.
fn local_meta(key: &str) -> bool {
    key == "store/revision" || key.starts_with("replica/")
}

/// The entries of an audit chunk (a JSON array of entries, or one entry)
/// with their ids. Read as plain JSON: a copy moves entries, whatever
/// fields this version of Ward knows.
fn audit_entries(bytes: &[u8]) -> Result<Vec<(String, serde_json::Value)>> {
    let entries = match super::decode::<serde_json::Value>(bytes)? {
        serde_json::Value::Array(entries) => entries,
        entry => vec![entry],
    };
    entries
        .into_iter()
        .map(|entry| match entry.get("id").and_then(|id| id.as_str()) {
            Some(id) => Ok((id.to_string(), entry.clone())),
            None => Err(StoreError::Corrupt(String::from(
                "an audit entry without an id",
            ))),
        })
        .collect()
}

/// What a copy moved, by kind name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Records copied, by kind (audit: entries).
    pub copied: BTreeMap<&'static str, usize>,
    /// Tenants copied.
    pub tenants: usize,
}

/// Copies everything in `from` into `to`, which must hold no tenant yet;
/// then checks that `to` holds every copied record, kind by kind, and
/// announces the copied scopes in `to`'s change log so that replicas
/// already running load them.
pub fn copy_store(from: &dyn Store, to: &dyn Store) -> Result<CopyReport> {
    let existing = to.scan(Kind::Tenant, "")?.len();
    if existing > 0 {
        return Err(StoreError::Backend(format!(
            "the target already holds {existing} tenant(s): a copy goes only into a store \
             without tenants, so that nothing is copied twice (was it copied before?)"
        )));
    }
    let mut report = CopyReport::default();
    let mut scopes = BTreeSet::from([String::from("global")]);
    for kind in Kind::ALL {
        let before: BTreeSet<String> = to.scan(kind, "")?.into_iter().map(|(k, _)| k).collect();
        let mut keys = before.clone();
        let mut writes = Vec::new();
        let mut copied = 0;
        for (key, value) in from.scan(kind, "")? {
            if kind == Kind::Meta && local_meta(&key) {
                continue;
            }
            if kind == Kind::Tenant {
                scopes.insert(key.clone());
            }
            if kind == Kind::Audit {
                let scope = key.split('/').next().unwrap_or("").to_string();
                match audit_entries(&value) {
                    Ok(entries) => {
                        for (id, entry) in entries {
                            let entry_key = scoped_key(&scope, &id);
                            let value = serde_json::to_vec(&entry)
                                .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                            keys.insert(entry_key.clone());
                            writes.push(Write::Put {
                                kind,
                                key: entry_key,
                                value,
                            });
                            copied += 1;
                        }
                    }
                    Err(err) => {
                        // Copied as it is: the target sets it aside when
                        // it meets it, as the source would have.
                        tracing::warn!(%err, key, "an audit chunk that cannot be read is copied as is");
                        keys.insert(key.clone());
                        writes.push(Write::Put { kind, key, value });
                        copied += 1;
                    }
                }
            } else {
                keys.insert(key.clone());
                writes.push(Write::Put { kind, key, value });
                copied += 1;
            }
            if writes.len() >= BATCH {
                to.write(std::mem::take(&mut writes))?;
            }
        }
        to.write(writes)?;
        let after = to.scan(kind, "")?.len();
        if after != keys.len() {
            return Err(StoreError::Backend(format!(
                "after the copy the target holds {after} `{}` record(s), expected {}",
                kind.name(),
                keys.len()
            )));
        }
        if kind == Kind::Tenant {
            report.tenants = copied;
        }
        report.copied.insert(kind.name(), copied);
    }
    let scopes: Vec<String> = scopes.into_iter().collect();
    let revision = to.revision()?;
    to.commit(revision, Vec::new(), &scopes)?;
    Ok(report)
}
