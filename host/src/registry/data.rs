//! Data documents: named JSON values that policies read with `data-get`.

use std::sync::Arc;

use serde_json::{Value, json};
use ward_types::{AuditKind, DataDocument, Timestamp};

use super::index::DataEntry;
use super::names::check_name;
use super::{Registry, RegistryError, Result, ScopeId};
use crate::store::{Kind, Write, scoped_key};

/// Largest single document, in bytes of JSON.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

impl Registry {
    /// Creates or replaces document `key` in `scope`.
    pub fn put_data(
        &self,
        scope: &ScopeId,
        key: &str,
        value: Value,
        actor: &str,
    ) -> Result<DataDocument> {
        let result = self.write_data(scope, key, value, actor);
        self.audit_quota(scope, actor, key, result)
    }

    fn write_data(
        &self,
        scope: &ScopeId,
        key: &str,
        value: Value,
        actor: &str,
    ) -> Result<DataDocument> {
        check_name("data", key)?;
        let size = value.to_string().len() as u64;
        if size > MAX_DOCUMENT_BYTES as u64 {
            return Err(RegistryError::Invalid(format!(
                "a data document is at most {MAX_DOCUMENT_BYTES} bytes of JSON"
            )));
        }
        let settings = self.settings_of(scope)?;

        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let replaced = index
            .data
            .get(key)
            .map_or(0, |entry| entry.json.len() as u64);
        let total = index.data_bytes - replaced + size;
        if let Some(settings) = &settings
            && total > settings.max_data_bytes
        {
            return Err(RegistryError::QuotaExceeded {
                quota: "max_data_bytes",
                limit: settings.max_data_bytes,
                message: format!(
                    "this tenant's data documents would take {total} bytes, more than its maximum of {}",
                    settings.max_data_bytes
                ),
            });
        }
        let doc = DataDocument {
            key: key.to_string(),
            scope: scope.scope(),
            value,
            updated_at: Timestamp::now(),
        };
        self.commit(vec![Write::put_json(
            Kind::Data,
            scoped_key(scope.key(), key),
            &doc,
        )?])?;
        index.data_bytes = total;
        index
            .data
            .insert(key.to_string(), Arc::new(DataEntry::new(doc.clone())));
        self.publish(scope, index)?;
        self.audit_event(
            scope,
            actor,
            AuditKind::DataPut,
            Some(key),
            json!({"bytes": size}),
        )?;
        Ok(doc)
    }

    /// Document `key` as `scope` sees it.
    pub fn get_data(&self, scope: &ScopeId, key: &str) -> Result<DataDocument> {
        let scopes = self.scopes(scope)?;
        scopes
            .resolve(|index| index.data.get(key))
            .map(|(entry, _)| entry.doc.clone())
            .ok_or_else(|| RegistryError::not_found("data document", key))
    }

    /// Deletes document `key` from `scope`.
    pub fn delete_data(&self, scope: &ScopeId, key: &str, actor: &str) -> Result<()> {
        let _guard = self.lock()?;
        let mut index = self.scope_index(scope)?;
        let in_global = self.global_index().data.contains_key(key);
        self.check_owned(
            scope,
            index.data.contains_key(key),
            in_global,
            "data document",
            key,
        )?;
        self.commit(vec![Write::delete(
            Kind::Data,
            scoped_key(scope.key(), key),
        )])?;
        if let Some(entry) = index.data.remove(key) {
            index.data_bytes -= entry.json.len() as u64;
        }
        self.publish(scope, index)?;
        self.audit_event(scope, actor, AuditKind::DataDeleted, Some(key), Value::Null)?;
        Ok(())
    }
}
