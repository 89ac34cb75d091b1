//! Following the store's change log: what another replica committed is
//! applied to this one's indexes, one changed scope at a time.
//!
//! A commit records which scopes (`global` or a tenant id) it changed; the
//! follower reads each such scope again from the store, whole. Management
//! writes are rare next to decisions, and a scope read whole can never be
//! half-applied.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use ward_types::TenantSettings;

use super::index::{TenantRecord, TenantSlot, TenantView};
use super::{Registry, Result, scope_of};
use crate::store::set_aside::{self, decode_or_set_aside};
use crate::store::{Kind, Write};

/// Changes read from the log at a time.
const CHANGES_PER_READ: usize = 1000;

/// The scopes whose indexes `writes` change: a tenant's record, keys or
/// objects, or the global scope's objects. (Slugs and key hashes change
/// only with their tenant's records; modules, usage and audit are not
/// indexed.)
pub(super) fn touched(writes: &[Write]) -> Vec<String> {
    let mut scopes = BTreeSet::new();
    for write in writes {
        let (kind, key) = match write {
            Write::Put { kind, key, .. } | Write::Delete { kind, key } => (*kind, key),
        };
        match kind {
            Kind::Tenant => {
                scopes.insert(key.clone());
            }
            Kind::Agent | Kind::Policy | Kind::Data | Kind::ApiKey => {
                scopes.insert(scope_of(key));
            }
            _ => {}
        }
    }
    scopes.into_iter().collect()
}

impl Registry {
    /// Applies what other processes committed since this one last looked,
    /// if no write of this process is under way (that write catches up
    /// itself). Called by the server's follower every few hundred
    /// milliseconds.
    pub fn follow(&self) -> Result<()> {
        let Ok(local) = self.write_lock.try_lock() else {
            return Ok(());
        };
        if self.store.revision()? > self.head.load(Ordering::Acquire) {
            self.catch_up()?;
        }
        drop(local);
        self.announce();
        self.followed_at_ms
            .store(ward_types::Timestamp::now().millis(), Ordering::Release);
        Ok(())
    }

    /// How long since this process last knew it had every change of the
    /// store applied: a replica cut off from the database keeps deciding
    /// on what it has, and says so in `/readyz`.
    pub fn behind_for(&self) -> std::time::Duration {
        let since = ward_types::Timestamp::now()
            .millis()
            .saturating_sub(self.followed_at_ms.load(Ordering::Acquire));
        std::time::Duration::from_millis(since)
    }

    /// Brings the indexes to the store's revision (write lock held).
    pub(super) fn catch_up(&self) -> Result<()> {
        loop {
            let head = self.head.load(Ordering::Acquire);
            let Some(changes) = self.store.changes(head, CHANGES_PER_READ)? else {
                tracing::warn!(
                    revision = head,
                    "the store's change log no longer reaches this replica's revision; \
                     loading everything again"
                );
                return self.load_all();
            };
            let Some(last) = changes.last().map(|change| change.revision) else {
                return Ok(());
            };
            let scopes: BTreeSet<&String> =
                changes.iter().flat_map(|change| &change.scopes).collect();
            for scope in scopes {
                self.reload_scope(scope)?;
            }
            self.head.store(last, Ordering::Release);
            if changes.len() < CHANGES_PER_READ {
                return Ok(());
            }
        }
    }

    /// Reads one scope again from the store and serves it as read.
    fn reload_scope(&self, scope: &str) -> Result<()> {
        let mut objects = self.read_objects(&crate::store::scope_prefix(scope))?;
        let objects = objects.remove(scope).unwrap_or_default();
        if scope == "global" {
            self.global.store(Arc::new(objects));
            return Ok(());
        }
        let store = self.store.as_ref();
        let record = match store.get(Kind::Tenant, scope)? {
            Some(bytes) => decode_or_set_aside::<TenantRecord>(store, Kind::Tenant, scope, &bytes)
                .map(|record| (record, bytes)),
            None => None,
        };
        let settings = record.and_then(|(record, bytes)| {
            match TenantSettings::from_overrides(&record.settings) {
                Ok(_) => {
                    let effective = self.settings_or_own(&record);
                    Some((record, effective))
                }
                Err(err) => {
                    let reason = format!("tenant `{}` settings: {err}", record.id);
                    set_aside::move_aside(store, Kind::Tenant, scope, &bytes, &reason);
                    None
                }
            }
        });
        let mut directory = (**self.directory.load()).clone();
        match settings {
            None => {
                if let Some(slot) = directory.by_id.remove(scope) {
                    directory.by_slug.remove(&slot.view.load().record.slug);
                    self.directory.store(Arc::new(directory));
                }
                self.keys.forget_tenant(scope);
                self.audit.forget_scope(scope);
                self.gates.forget(scope);
            }
            Some((record, (settings, sources))) => {
                let view = TenantView::new(record, settings, objects).sourced(sources);
                match directory.by_id.get(scope) {
                    Some(slot) => slot.view.store(Arc::new(view)),
                    None => {
                        directory
                            .by_slug
                            .insert(view.record.slug.clone(), view.record.id.clone());
                        directory.by_id.insert(
                            view.record.id.clone(),
                            Arc::new(TenantSlot {
                                view: ArcSwap::from_pointee(view),
                            }),
                        );
                        self.directory.store(Arc::new(directory));
                    }
                }
                self.keys.reload_tenant(scope)?;
            }
        }
        Ok(())
    }
}
