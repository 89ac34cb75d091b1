//! Tenant lifecycle: create, read, update (settings merged), suspend,
//! activate, delete (cascading).

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Map, Value, json};
use ward_types::{
    AuditKind, CreateTenant, Tenant, TenantSettings, TenantStatus, Timestamp, UpdateTenant,
};

use super::index::{Objects, TenantRecord, TenantSlot, TenantView};
use super::names::{check_display_name, check_name, check_slug};
use super::{Registry, RegistryError, Result, ScopeId};
use crate::store::{Kind, Write, scope_prefix, set_aside};

impl Registry {
    /// Creates a tenant (operator only).
    pub fn create_tenant(&self, request: CreateTenant, actor: &str) -> Result<Tenant> {
        self.create_owned_tenant(request, actor, None)
    }

    /// Creates a tenant that `owner` (with at most `max_owned` tenants)
    /// created through self-service, and may delete.
    pub fn create_owned_tenant(
        &self,
        request: CreateTenant,
        actor: &str,
        owner: Option<(ward_types::TenantOwner, usize)>,
    ) -> Result<Tenant> {
        check_slug(&request.slug)?;
        check_display_name(&request.name)?;
        let overrides = request.settings.unwrap_or_default();
        self.check_not_pinned(&request.slug, &overrides)?;
        let (plan, trial_ends_at) = self.starting_plan(request.kind);

        let _guard = self.lock()?;
        if self.directory.load().by_slug.contains_key(&request.slug) {
            return Err(RegistryError::Conflict(format!(
                "a tenant with slug `{}` exists",
                request.slug
            )));
        }
        // Counted under the write lock: concurrent creations by one user
        // never pass the cap together.
        if let Some((owner, max_owned)) = &owner {
            let owned = self
                .directory
                .load()
                .by_id
                .values()
                .filter(|slot| slot.view.load().record.owner.as_ref() == Some(owner))
                .count();
            if owned >= *max_owned {
                let refused = Err(RegistryError::QuotaExceeded {
                    quota: "self_service_max_tenants",
                    limit: *max_owned as u64,
                    message: format!("this user already owns its maximum of {max_owned} tenants"),
                });
                return self.audit_quota(&ScopeId::Global, actor, &request.slug, refused);
            }
        }
        let owner = owner.map(|(owner, _)| owner);
        let now = Timestamp::now();
        let record = TenantRecord {
            id: format!("tnt_{}", crate::ids::next_ulid()),
            slug: request.slug,
            name: request.name,
            kind: request.kind,
            status: TenantStatus::Active,
            settings: overrides,
            created_at: now,
            updated_at: now,
            owner,
            plan,
            trial_ends_at,
        };
        let (settings, sources) = self.settings_for(&record)?;
        self.check_default_policy(&settings, None, None)?;
        self.commit(vec![
            Write::put_json(Kind::Tenant, record.id.clone(), &record)?,
            Write::Put {
                kind: Kind::Slug,
                key: record.slug.clone(),
                value: record.id.clone().into_bytes(),
            },
        ])?;
        let view = TenantView::new(record, settings, Objects::default()).sourced(sources);
        let tenant = view.tenant();
        let mut directory = (**self.directory.load()).clone();
        directory
            .by_slug
            .insert(tenant.slug.clone(), tenant.id.clone());
        directory.by_id.insert(
            tenant.id.clone(),
            Arc::new(TenantSlot {
                view: ArcSwap::from_pointee(view),
            }),
        );
        self.directory.store(Arc::new(directory));
        let scope = ScopeId::Tenant(tenant.id.clone());
        self.audit_event(
            &scope,
            actor,
            AuditKind::TenantCreated,
            Some(&tenant.slug),
            json!({}),
        )?;
        Ok(tenant)
    }

    /// One tenant, by id or slug.
    pub fn get_tenant(&self, id_or_slug: &str) -> Result<Tenant> {
        self.tenant_view(id_or_slug)
            .map(|view| view.tenant())
            .ok_or_else(|| RegistryError::not_found("tenant", id_or_slug))
    }

    /// Every tenant, whatever its status, oldest first.
    pub fn list_tenants(&self) -> Vec<Tenant> {
        let mut tenants: Vec<Tenant> = self
            .directory
            .load()
            .by_id
            .values()
            .map(|slot| slot.view.load().tenant())
            .collect();
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        tenants
    }

    /// Changes a tenant's name and merges its settings (JSON merge patch:
    /// omitted fields keep their value, `null` resets one to the default).
    pub fn update_tenant(
        &self,
        id_or_slug: &str,
        update: UpdateTenant,
        actor: &str,
    ) -> Result<Tenant> {
        self.patch_tenant(id_or_slug, update, None, actor)
    }

    /// [`Registry::update_tenant`], and when `plan` is given, puts the
    /// tenant on that plan (`Some(None)`: none), its trial starting now if
    /// the plan has one. A settings change the config file pins for the
    /// tenant is refused.
    pub fn patch_tenant(
        &self,
        id_or_slug: &str,
        update: UpdateTenant,
        plan: Option<Option<String>>,
        actor: &str,
    ) -> Result<Tenant> {
        if let Some(name) = &update.name {
            check_display_name(name)?;
        }
        let new_plan = plan
            .as_ref()
            .map(|plan| self.plan_named(plan.as_deref()))
            .transpose()?;
        let _guard = self.lock()?;
        let slot = self.tenant_slot(id_or_slug)?;
        let current = slot.view.load_full();
        let mut record = current.record.clone();
        if let Some(patch) = &update.settings {
            self.check_not_pinned(&record.slug, patch)?;
        }
        if let Some(name) = update.name.clone() {
            record.name = name;
        }
        if let Some(patch) = &update.settings {
            merge_patch(&mut record.settings, patch);
        }
        if let Some((plan, trial_ends_at)) = new_plan {
            record.plan = plan;
            record.trial_ends_at = trial_ends_at;
        }
        let (settings, sources) = self.settings_for(&record)?;
        self.check_default_policy(
            &settings,
            Some(&current.scope),
            current.settings.default_policy.as_deref(),
        )?;
        let mut details = json!({"name": update.name, "settings": update.settings});
        if let Some(plan) = &plan {
            details["plan"] = json!(plan);
        }
        self.replace_tenant(
            &slot,
            record,
            (settings, sources),
            &current,
            actor,
            AuditKind::TenantUpdated,
            details,
        )
    }

    /// Suspends or reactivates a tenant. Takes effect for the next decision.
    pub fn set_tenant_status(
        &self,
        id_or_slug: &str,
        status: TenantStatus,
        actor: &str,
    ) -> Result<Tenant> {
        let _guard = self.lock()?;
        let slot = self.tenant_slot(id_or_slug)?;
        let current = slot.view.load_full();
        let mut record = current.record.clone();
        record.status = status;
        let kind = match status {
            TenantStatus::Active => AuditKind::TenantActivated,
            TenantStatus::Suspended => AuditKind::TenantSuspended,
        };
        let settings = (current.settings.clone(), current.sources.clone());
        self.replace_tenant(&slot, record, settings, &current, actor, kind, json!({}))
    }

    /// Stores a changed tenant record, publishes its new view (objects
    /// unchanged) and audits the change. Lock held.
    #[allow(clippy::too_many_arguments)]
    fn replace_tenant(
        &self,
        slot: &TenantSlot,
        mut record: TenantRecord,
        (settings, sources): (TenantSettings, super::plans::Sources),
        current: &TenantView,
        actor: &str,
        kind: AuditKind,
        details: Value,
    ) -> Result<Tenant> {
        record.updated_at = Timestamp::now();
        self.commit(vec![Write::put_json(
            Kind::Tenant,
            record.id.clone(),
            &record,
        )?])?;
        let view = TenantView::new(record, settings, current.scope.clone()).sourced(sources);
        let tenant = view.tenant();
        slot.view.store(Arc::new(view));
        let scope = ScopeId::Tenant(tenant.id.clone());
        self.audit_event(&scope, actor, kind, Some(&tenant.slug), details)?;
        Ok(tenant)
    }

    /// Deletes a tenant and everything it owns: API keys (revoked at once),
    /// agents, policies and the modules only they used, data, usage and
    /// audit log, and compiled code.
    ///
    /// One atomic write removes the tenant, its slug and its key hashes and
    /// leaves a marker; from then on nothing of the tenant resolves. The
    /// sweep of its records follows before this returns; if the process
    /// dies first, [`Registry::open`] finishes it.
    pub fn delete_tenant(&self, id_or_slug: &str, actor: &str) -> Result<()> {
        let _guard = self.lock()?;
        let slot = self.tenant_slot(id_or_slug)?;
        let record = slot.view.load().record.clone();

        let mut tombstone = vec![
            Write::delete(Kind::Tenant, record.id.clone()),
            Write::delete(Kind::Slug, record.slug.clone()),
            Write::Put {
                kind: Kind::PendingDelete,
                key: record.id.clone(),
                value: record.slug.clone().into_bytes(),
            },
            // Kept after the tenant is gone: a token issued before now
            // never provisions the slug again.
            Write::Put {
                kind: Kind::Meta,
                key: deleted_slug_key(&record.slug),
                value: Timestamp::now().millis().to_string().into_bytes(),
            },
        ];
        tombstone.extend(self.keys.revoke_all_writes(&record.id)?);
        self.commit(tombstone)?;

        let mut directory = (**self.directory.load()).clone();
        directory.by_id.remove(&record.id);
        directory.by_slug.remove(&record.slug);
        self.directory.store(Arc::new(directory));

        self.keys.forget_tenant(&record.id);
        self.audit.forget_scope(&record.id);
        self.gates.forget(&record.id);
        self.forget_billing(&record.id);
        self.sweep_tenant(&record.id)?;
        self.audit_event(
            &ScopeId::Global,
            actor,
            AuditKind::TenantDeleted,
            Some(&record.slug),
            json!({"tenant_id": record.id}),
        )?;
        Ok(())
    }

    /// When the last tenant with `slug` was deleted, in milliseconds.
    pub fn deleted_at_ms(&self, slug: &str) -> Option<u64> {
        let stored = self.store.get(Kind::Meta, &deleted_slug_key(slug)).ok()??;
        std::str::from_utf8(&stored).ok()?.parse().ok()
    }

    pub(super) fn finish_pending_deletes(&self) -> Result<()> {
        let _guard = self.lock()?;
        for (tenant_id, _) in self.store.scan(Kind::PendingDelete, "")? {
            tracing::info!(tenant_id, "finishing an interrupted tenant delete");
            self.sweep_tenant(&tenant_id)?;
        }
        Ok(())
    }

    /// Removes every record of a tenant that is already tombstoned.
    fn sweep_tenant(&self, tenant_id: &str) -> Result<()> {
        let prefix = scope_prefix(tenant_id);
        // Policy records go in the same atomic write that releases their
        // modules, so a crash can neither release a module twice nor leak it.
        let mut modules = Vec::new();
        let mut writes = Vec::new();
        for (key, bytes) in self.store.scan(Kind::Policy, &prefix)? {
            // An unreadable policy record is set aside (and removed with the
            // tenant's other set-aside records below); the modules it used
            // keep a reference too many, which costs space, never safety.
            if let Some(info) = set_aside::decode_or_set_aside::<ward_types::PolicyInfo>(
                self.store.as_ref(),
                Kind::Policy,
                &key,
                &bytes,
            ) {
                modules.extend(info.versions.into_iter().map(|v| v.sha256));
                writes.push(Write::delete(Kind::Policy, key));
            }
        }
        let forgotten = self.release_modules(&modules, &mut writes)?;
        self.store.write(writes)?;
        for sha in forgotten {
            self.sandbox.forget(&sha);
        }
        for kind in [
            Kind::Agent,
            Kind::Data,
            Kind::ApiKey,
            Kind::Usage,
            Kind::Audit,
            Kind::KeyUse,
        ] {
            self.store.delete_prefix(kind, &prefix)?;
        }
        set_aside::forget_tenant(self.store.as_ref(), tenant_id)?;
        self.store
            .write(vec![Write::delete(Kind::PendingDelete, tenant_id)])?;
        Ok(())
    }

    /// Settings from `overrides` over the host's defaults, checked.
    pub(super) fn effective_settings(
        &self,
        overrides: &Map<String, Value>,
    ) -> Result<TenantSettings> {
        let settings = TenantSettings::from_overrides(overrides)
            .map_err(|err| RegistryError::Invalid(format!("invalid settings: {err}")))?;
        let host = self.sandbox.config();
        settings
            .check(&ward_types::HostBounds {
                max_module_bytes: host.max_module_bytes as u64,
                max_memory_bytes: host.max_memory_bytes as u64,
                max_table_elements: host.max_table_elements as u64,
            })
            .map_err(|err| RegistryError::Invalid(format!("invalid settings: {err}")))?;
        self.sandbox
            .check_limits(&settings.sandbox)
            .map_err(RegistryError::Invalid)?;
        if let Some(policy) = &settings.default_policy {
            check_name("policy", policy)?;
        }
        if settings.burst < 1 || settings.rate_limit_per_sec < 1 {
            return Err(RegistryError::Invalid(String::from(
                "rate_limit_per_sec and burst must be at least 1",
            )));
        }
        if settings.max_concurrent_evaluations < 1 {
            return Err(RegistryError::Invalid(String::from(
                "max_concurrent_evaluations must be at least 1",
            )));
        }
        Ok(settings)
    }
}

fn deleted_slug_key(slug: &str) -> String {
    format!("deleted-slug/{slug}")
}

impl Registry {
    /// Refuses a `default_policy` that names no policy the tenant sees (its
    /// own, in `own`, or a global one) when it is set or changed; one set
    /// earlier is not checked again, so that a policy deleted since does
    /// not block unrelated changes.
    fn check_default_policy(
        &self,
        settings: &TenantSettings,
        own: Option<&Objects>,
        previous: Option<&str>,
    ) -> Result<()> {
        let Some(name) = settings.default_policy.as_deref() else {
            return Ok(());
        };
        if previous == Some(name) {
            return Ok(());
        }
        let exists = own.is_some_and(|scope| scope.policies.contains_key(name))
            || self.global_index().policies.contains_key(name);
        if exists {
            Ok(())
        } else {
            Err(RegistryError::Invalid(format!(
                "invalid settings: default_policy `{}` is neither one of this tenant's policies nor a global one",
                super::clip(name)
            )))
        }
    }
}

/// RFC 7386 JSON merge patch of one object into another.
pub(crate) fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge_patch(existing, inner);
                    if existing.is_empty() {
                        target.remove(key);
                    }
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_patch;

    #[test]
    fn merge_patch_keeps_omitted_replaces_given_and_removes_nulls() {
        let mut target = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let patch = json!({"a": 9, "b": {"y": null, "z": 3}, "c": null, "d": [1]});
        merge_patch(
            &mut target,
            patch.as_object().unwrap_or(&Default::default()),
        );
        assert_eq!(
            serde_json::Value::Object(target),
            json!({"a": 9, "b": {"x": 1, "z": 3}, "d": [1]})
        );
    }
}
