//! Policies: versions of a module by content, one active at a time, plus a
//! config passed to every evaluation. Modules are stored once by sha256 and
//! shared between every scope that uploads the same bytes.

use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ward_types::{AuditKind, PolicyInfo, PolicyVersion, Timestamp, UploadedPolicy};

use super::index::{Objects, PolicyEntry};
use super::names::check_name;
use super::{Registry, RegistryError, Result, ScopeId, check_count};
use crate::plugins::PERMISSIONS_WASM;
use crate::sandbox::{LoadError, LoadedPolicy};
use crate::store::{self, Kind, Write, scoped_key};

/// The builtin policy: installed in the global scope, and used when
/// neither the agent nor the tenant names one.
pub const BUILTIN_POLICY: &str = "permissions";

/// How an upload is stored.
#[derive(Clone, Copy)]
struct Upload {
    /// Make it the active version.
    activate: bool,
    /// Store nothing when it is the active version already.
    unless_active: bool,
}

/// Versions one policy may keep; delete and re-upload to start over.
pub const MAX_VERSIONS: usize = 100;
/// Largest policy config, in bytes of JSON.
const MAX_CONFIG_BYTES: usize = 256 << 10;

/// `Kind::Meta` key of the sha256 of the builtin `permissions` module that
/// Ward itself installed last.
const BUILTIN_META_KEY: &str = "builtin/permissions";

impl Registry {
    /// Installs the builtin `permissions` policy in a new store, and brings
    /// it up to date after Ward is upgraded: when the module this binary
    /// ships differs from the one Ward installed last, and that one is still
    /// the active version, the shipped module becomes a new active version.
    /// An operator who activated another version keeps it.
    pub(super) fn install_builtins(&self) -> Result<()> {
        let shipped = hex::encode(Sha256::digest(PERMISSIONS_WASM));
        let installed: Option<String> =
            store::get_json(self.store.as_ref(), Kind::Meta, BUILTIN_META_KEY)?;
        let current = self.global.load().policies.get(BUILTIN_POLICY).cloned();
        let active = current
            .as_ref()
            .and_then(|entry| entry.active())
            .map(|(_, sha256)| sha256.to_string());
        let ours = installed.clone().or_else(|| {
            // Stores made before the key existed: Ward installed version 1
            // when it created the store.
            let first = current.as_ref()?.info.versions.first()?;
            Some(first.sha256.clone())
        });
        let upgrade = current.is_none() || (active.as_ref() != Some(&shipped) && active == ours);
        if upgrade {
            // Replicas starting together each decide to install it; the
            // first one's version stands (see `unless_active`).
            let result = self.store_policy(
                &ScopeId::Global,
                BUILTIN_POLICY,
                PERMISSIONS_WASM,
                Upload {
                    activate: true,
                    unless_active: true,
                },
                "system",
            );
            match self.audit_quota(&ScopeId::Global, "system", BUILTIN_POLICY, result) {
                Ok(_) => {}
                Err(RegistryError::QuotaExceeded { message, .. }) => {
                    tracing::warn!(%message, "the builtin `permissions` policy was not updated");
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
        if (upgrade || active.as_ref() == Some(&shipped)) && installed.as_ref() != Some(&shipped) {
            self.store.write(vec![Write::put_json(
                Kind::Meta,
                BUILTIN_META_KEY.to_string(),
                &shipped,
            )?])?;
        }
        Ok(())
    }

    /// Validates and compiles `module`, stores it as the next version of
    /// policy `name` in `scope`, and makes it active unless `activate` is
    /// false (or it is the first version, which is always activated when
    /// `activate` is true). Nothing is stored if the module is refused.
    pub fn upload_policy(
        &self,
        scope: &ScopeId,
        name: &str,
        module: &[u8],
        activate: bool,
        actor: &str,
    ) -> Result<UploadedPolicy> {
        let upload = Upload {
            activate,
            unless_active: false,
        };
        let result = self.store_policy(scope, name, module, upload, actor);
        self.audit_quota(scope, actor, name, result)
    }

    fn store_policy(
        &self,
        scope: &ScopeId,
        name: &str,
        module: &[u8],
        upload: Upload,
        actor: &str,
    ) -> Result<UploadedPolicy> {
        let activate = upload.activate;
        check_name("policy", name)?;
        let settings = self.settings_of(scope)?;
        let max_bytes = settings.as_ref().map_or(usize::MAX, |s| {
            usize::try_from(s.max_module_bytes).unwrap_or(usize::MAX)
        });
        // Compile before taking the write lock: it is the slow part.
        let compiled = self.sandbox.load_for(scope.key(), module, max_bytes)?;
        let sha256 = compiled.sha256().to_string();

        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let previous = index.policies.get(name).cloned();
        if upload.unless_active
            && let Some((version, active)) = previous.as_ref().and_then(|p| p.active())
            && active == sha256
        {
            return Ok(UploadedPolicy {
                name: name.to_string(),
                version,
                sha256,
                size: module.len() as u64,
                active: true,
            });
        }
        if previous.is_none() {
            check_count(
                index.policies.len(),
                settings.as_ref().map(|s| s.max_policies),
                "max_policies",
                "policies",
            )?;
        }
        let now = Timestamp::now();
        let mut info = match &previous {
            Some(entry) => entry.info.clone(),
            None => PolicyInfo {
                name: name.to_string(),
                scope: scope.scope(),
                active_version: None,
                versions: Vec::new(),
                config: Value::Null,
                created_at: now,
                updated_at: now,
            },
        };
        if info.versions.len() >= MAX_VERSIONS {
            return Err(RegistryError::QuotaExceeded {
                quota: "max_policy_versions",
                limit: MAX_VERSIONS as u64,
                message: format!("policy `{name}` already has {MAX_VERSIONS} versions"),
            });
        }
        let version = info.versions.last().map_or(1, |v| v.version + 1);
        info.versions.push(PolicyVersion {
            version,
            sha256: sha256.clone(),
            size: module.len() as u64,
            created_at: now,
            language: crate::sandbox::component_language(module),
        });
        if activate {
            info.active_version = Some(version);
        }
        info.updated_at = now;

        let refs = self.module_refs(&sha256)?;
        let mut writes = vec![
            Write::put_json(Kind::Policy, scoped_key(scope.key(), name), &info)?,
            Write::put_json(Kind::ModuleRefs, sha256.clone(), &(refs + 1))?,
        ];
        if refs == 0 {
            writes.push(Write::Put {
                kind: Kind::Module,
                key: sha256.clone(),
                value: module.to_vec(),
            });
        }
        self.commit(writes)?;

        let entry = PolicyEntry::new(info);
        if activate {
            entry.keep(&compiled);
        } else if let Some(compiled) = previous.as_ref().and_then(|p| p.resident()) {
            entry.keep(&compiled);
        }
        index.policies.insert(name.to_string(), Arc::new(entry));
        self.publish(scope, index)?;
        let details =
            json!({"version": version, "sha256": sha256, "size": module.len(), "active": activate});
        self.audit_event(scope, actor, AuditKind::PolicyUploaded, Some(name), details)?;
        Ok(UploadedPolicy {
            name: name.to_string(),
            version,
            sha256,
            size: module.len() as u64,
            active: activate,
        })
    }

    /// Records policy `name` in `scope` with one active version whose
    /// module is neither stored nor compiled: for unit tests that decide
    /// through a double and run no Wasm.
    #[cfg(test)]
    pub(crate) fn put_policy_unchecked(&self, scope: &ScopeId, name: &str) -> Result<()> {
        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let now = Timestamp::now();
        let info = PolicyInfo {
            name: name.to_string(),
            scope: scope.scope(),
            active_version: Some(1),
            versions: vec![PolicyVersion {
                version: 1,
                sha256: hex::encode(Sha256::digest(name.as_bytes())),
                size: 0,
                created_at: now,
                language: None,
            }],
            config: Value::Null,
            created_at: now,
            updated_at: now,
        };
        index
            .policies
            .insert(name.to_string(), Arc::new(PolicyEntry::new(info)));
        self.publish(scope, index)
    }

    /// Makes `version` the active version of policy `name` (rollback or
    /// roll forward). Decisions already running finish on the version they
    /// started with.
    pub fn activate_policy(
        &self,
        scope: &ScopeId,
        name: &str,
        version: u32,
        actor: &str,
    ) -> Result<PolicyInfo> {
        self.change_policy(scope, name, actor, AuditKind::PolicyActivated, |info| {
            if !info.versions.iter().any(|v| v.version == version) {
                return Err(RegistryError::not_found(
                    "policy version",
                    &version.to_string(),
                ));
            }
            info.active_version = Some(version);
            Ok(json!({"version": version}))
        })
    }

    /// Sets the config passed to policy `name` with every request.
    pub fn configure_policy(
        &self,
        scope: &ScopeId,
        name: &str,
        config: Value,
        actor: &str,
    ) -> Result<PolicyInfo> {
        if config.to_string().len() > MAX_CONFIG_BYTES {
            return Err(RegistryError::Invalid(format!(
                "a policy config is at most {MAX_CONFIG_BYTES} bytes of JSON"
            )));
        }
        self.change_policy(scope, name, actor, AuditKind::PolicyConfigured, |info| {
            info.config = config;
            Ok(Value::Null)
        })
    }

    fn change_policy(
        &self,
        scope: &ScopeId,
        name: &str,
        actor: &str,
        kind: AuditKind,
        change: impl FnOnce(&mut PolicyInfo) -> Result<Value>,
    ) -> Result<PolicyInfo> {
        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let in_global = self.global_index().policies.contains_key(name);
        let previous = index.policies.get(name).cloned();
        self.check_owned(scope, previous.is_some(), in_global, "policy", name)?;
        let previous = previous.ok_or_else(|| RegistryError::not_found("policy", name))?;
        let mut info = previous.info.clone();
        let details = change(&mut info)?;
        info.updated_at = Timestamp::now();
        self.commit(vec![Write::put_json(
            Kind::Policy,
            scoped_key(scope.key(), name),
            &info,
        )?])?;
        let entry = PolicyEntry::new(info.clone());
        if previous.active() == entry.active()
            && let Some(compiled) = previous.resident()
        {
            entry.keep(&compiled);
        }
        index.policies.insert(name.to_string(), Arc::new(entry));
        self.publish(scope, index)?;
        self.audit_event(scope, actor, kind, Some(name), details)?;
        Ok(info)
    }

    /// Refuses deleting the builtin policy, and policy `name` from `scope`
    /// while a tenant names it as its `default_policy` and would be left
    /// without it: every
    /// decision that falls to the default would become
    /// `policy_not_found`. A tenant's own policy may go when a global one
    /// of that name takes its place (`in_global`); a global one may go
    /// when every tenant naming it has its own.
    fn check_not_a_default(&self, scope: &ScopeId, name: &str, in_global: bool) -> Result<()> {
        if *scope == ScopeId::Global && name == BUILTIN_POLICY {
            return Err(RegistryError::Conflict(format!(
                "the builtin `{BUILTIN_POLICY}` policy decides for every agent without a \
                 policy of its own and cannot be deleted; upload or activate another version"
            )));
        }
        let names_it =
            |view: &super::TenantView| view.settings.default_policy.as_deref() == Some(name);
        let stranded: Vec<String> = match scope {
            ScopeId::Tenant(id) => {
                let slot = self.tenant_slot(id)?;
                let view = slot.view.load();
                if names_it(&view) && !in_global {
                    vec![view.record.slug.clone()]
                } else {
                    Vec::new()
                }
            }
            ScopeId::Global => self
                .directory
                .load()
                .by_id
                .values()
                .map(|slot| slot.view.load_full())
                .filter(|view| names_it(view) && !view.scope.policies.contains_key(name))
                .map(|view| view.record.slug.clone())
                .collect(),
        };
        match stranded.first() {
            None => Ok(()),
            Some(first) => Err(RegistryError::Conflict(format!(
                "policy `{}` is the default_policy of {} tenant(s), `{first}` among them: \
                 change their default_policy first",
                super::clip(name),
                stranded.len()
            ))),
        }
    }

    /// Policy `name` as `scope` sees it.
    pub fn get_policy(&self, scope: &ScopeId, name: &str) -> Result<PolicyInfo> {
        let scopes = self.scopes(scope)?;
        scopes
            .resolve(|index| index.policies.get(name))
            .map(|(entry, _)| entry.info.clone())
            .ok_or_else(|| RegistryError::not_found("policy", name))
    }

    /// Every policy `scope` sees, by name.
    pub fn list_policies(&self, scope: &ScopeId) -> Result<Vec<PolicyInfo>> {
        let scopes = self.scopes(scope)?;
        Ok(scopes
            .merged(|index| &index.policies)
            .into_iter()
            .map(|entry| entry.info.clone())
            .collect())
    }

    /// Deletes policy `name` and every version of it; modules no other
    /// policy uses are deleted with their compiled code.
    pub fn delete_policy(&self, scope: &ScopeId, name: &str, actor: &str) -> Result<()> {
        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let in_global = self.global_index().policies.contains_key(name);
        self.check_owned(
            scope,
            index.policies.contains_key(name),
            in_global,
            "policy",
            name,
        )?;
        self.check_not_a_default(scope, name, in_global)?;
        let Some(entry) = index.policies.remove(name) else {
            return Err(RegistryError::not_found("policy", name));
        };
        let shas: Vec<String> = entry
            .info
            .versions
            .iter()
            .map(|v| v.sha256.clone())
            .collect();
        let mut writes = vec![Write::delete(Kind::Policy, scoped_key(scope.key(), name))];
        let forgotten = self.release_modules(&shas, &mut writes)?;
        self.commit(writes)?;
        for sha in forgotten {
            self.sandbox.forget(&sha);
        }
        self.publish(scope, index)?;
        self.audit_event(
            scope,
            actor,
            AuditKind::PolicyDeleted,
            Some(name),
            Value::Null,
        )?;
        Ok(())
    }

    /// The compiled active version of a policy: from memory, else from the
    /// disk cache, else compiled from the stored module when `may_compile`
    /// (`None` when it would have to be and may not: compiling takes
    /// seconds, which no async worker may spend).
    pub(crate) fn compiled(
        &self,
        entry: &PolicyEntry,
        may_compile: bool,
    ) -> Result<Option<Arc<LoadedPolicy>>> {
        if let Some(compiled) = entry.resident() {
            return Ok(Some(compiled));
        }
        let Some(active) = entry.active_version() else {
            return Err(RegistryError::not_found(
                "active policy version",
                &entry.info.name,
            ));
        };
        let sha256 = active.sha256.as_str();
        let size = usize::try_from(active.size).unwrap_or(usize::MAX);
        if let Some(compiled) = self.sandbox.load_cached(sha256, size) {
            entry.keep(&compiled);
            return Ok(Some(compiled));
        }
        if !may_compile {
            return Ok(None);
        }
        let compiled = self.sandbox.load(&self.module(sha256)?, usize::MAX)?;
        entry.keep(&compiled);
        Ok(Some(compiled))
    }

    /// The stored bytes of module `sha256`.
    fn module(&self, sha256: &str) -> Result<Vec<u8>> {
        Ok(self.store.get(Kind::Module, sha256)?.ok_or_else(|| {
            LoadError::Internal(format!("module {sha256} is missing from the store"))
        })?)
    }

    /// Compiles every active policy whose code is neither in memory nor in
    /// the disk cache, so that no decision waits for it: after a start
    /// that found a module not yet optimised, and on a replica whose
    /// policies another replica uploaded. Returns how many it compiled.
    /// Blocks for as long as compiling takes: call it from a thread of its
    /// own.
    pub fn prepare_policies(&self) -> usize {
        let mut compiled = self.prepare_scope("global", &self.global.load());
        for slot in self.directory.load().by_id.values() {
            let view = slot.view.load_full();
            compiled += self.prepare_scope(&view.record.slug, &view.scope);
        }
        compiled
    }

    fn prepare_scope(&self, scope: &str, objects: &Objects) -> usize {
        let mut compiled = 0;
        for entry in objects.policies.values() {
            let Some((_, sha256)) = entry.active() else {
                continue;
            };
            if entry.resident().is_some() || self.sandbox.has_code(sha256) {
                continue;
            }
            let loaded = self
                .module(sha256)
                .and_then(|module| Ok(self.sandbox.load_ahead(&module)?));
            match loaded {
                Ok(policy) => {
                    entry.keep(&policy);
                    compiled += 1;
                }
                Err(err) => tracing::warn!(
                    scope,
                    policy = %entry.info.name,
                    %err,
                    "could not compile a policy ahead of its decisions"
                ),
            }
        }
        compiled
    }

    fn module_refs(&self, sha256: &str) -> Result<u64> {
        Ok(store::get_json::<u64>(self.store.as_ref(), Kind::ModuleRefs, sha256)?.unwrap_or(0))
    }

    /// Adds to `writes` the release of one reference per entry of `shas`;
    /// returns the modules that nothing references any more (their
    /// compiled code can go once `writes` are applied). Lock held.
    pub(super) fn release_modules(
        &self,
        shas: &[String],
        writes: &mut Vec<Write>,
    ) -> Result<Vec<String>> {
        let mut counts = std::collections::BTreeMap::<&str, u64>::new();
        for sha in shas {
            *counts.entry(sha).or_default() += 1;
        }
        let mut forgotten = Vec::new();
        for (sha, released) in counts {
            let remaining = self.module_refs(sha)?.saturating_sub(released);
            if remaining == 0 {
                writes.push(Write::delete(Kind::ModuleRefs, sha));
                writes.push(Write::delete(Kind::Module, sha));
                forgotten.push(sha.to_string());
            } else {
                writes.push(Write::put_json(Kind::ModuleRefs, sha, &remaining)?);
            }
        }
        Ok(forgotten)
    }
}
