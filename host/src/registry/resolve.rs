//! Narrowest-first resolution, written once: a tenant's own object, else
//! the global one of that name. Management reads, the decision pipeline
//! and a policy's `data-get` all resolve through [`Scopes`].

use std::collections::HashMap;
use std::sync::Arc;

use ward_types::Scope;

use super::{Objects, Registry, RegistryError, Result, ScopeId, TenantView};
use crate::sandbox::DataLookup;

/// What one reader sees: a tenant's own objects (when reading for a
/// tenant) and the global ones; never another tenant's.
pub(crate) struct Scopes {
    /// The tenant, when reading for one.
    pub tenant: Option<Arc<TenantView>>,
    /// The global scope.
    pub global: Arc<Objects>,
}

impl Scopes {
    /// The first of the tenant's then the global scope's objects that
    /// `pick` finds, with the scope it came from.
    pub fn resolve<'a, T>(
        &'a self,
        pick: impl Fn(&'a Objects) -> Option<&'a T>,
    ) -> Option<(&'a T, Scope)> {
        self.tenant
            .as_ref()
            .and_then(|view| pick(&view.scope))
            .map(|found| (found, Scope::Tenant))
            .or_else(|| pick(&self.global).map(|found| (found, Scope::Global)))
    }

    /// The tenant's objects and the global ones they do not shadow, by name.
    pub fn merged<'a, T: 'a>(
        &'a self,
        all: impl Fn(&'a Objects) -> &'a HashMap<String, Arc<T>>,
    ) -> Vec<&'a Arc<T>> {
        let own = self.tenant.as_ref().map(|view| all(&view.scope));
        let mut names: Vec<&String> = all(&self.global)
            .keys()
            .chain(own.into_iter().flat_map(|map| map.keys()))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| {
                own.and_then(|map| map.get(name))
                    .or_else(|| all(&self.global).get(name))
            })
            .collect()
    }
}

/// A policy's `data-get`: the tenant's document, else the global one.
impl DataLookup for Scopes {
    fn data_get(&self, key: &str) -> Option<String> {
        self.resolve(|index| index.data.get(key))
            .map(|(entry, _)| entry.json.clone())
    }
}

impl Registry {
    /// The scopes a read in `scope` sees: a tenant sees its own objects
    /// and then the global ones; the global scope sees only its own.
    pub(crate) fn scopes(&self, scope: &ScopeId) -> Result<Scopes> {
        let tenant = match scope {
            ScopeId::Global => None,
            ScopeId::Tenant(id) => Some(
                self.tenant_view(id)
                    .ok_or_else(|| RegistryError::not_found("tenant", id))?,
            ),
        };
        Ok(Scopes {
            tenant,
            global: self.global_index(),
        })
    }

    /// What a decision for tenant `id_or_slug` sees, as of now.
    pub(crate) fn tenant_scopes(&self, id_or_slug: &str) -> Option<Scopes> {
        Some(Scopes {
            tenant: Some(self.tenant_view(id_or_slug)?),
            global: self.global_index(),
        })
    }
}
