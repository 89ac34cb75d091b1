//! A store that drops what the audit writer stores: for measuring Ward
//! without the cost of writing its audit log. The entries are still made,
//! queued and handed to the writer thread, as in `ward serve`.

use std::sync::Arc;

use ward::store::{Change, Kind, Result, Store, Write, WriteLock};

/// `inner` as the audit log's store, every audit write dropped. Give it
/// to the audit log only: its flushes do nothing.
pub struct AuditOff(pub Arc<dyn Store>);

fn kept(writes: &[Write]) -> Vec<Write> {
    writes
        .iter()
        .filter(|write| {
            let kind = match write {
                Write::Put { kind, .. } | Write::Delete { kind, .. } => kind,
            };
            *kind != Kind::Audit
        })
        .cloned()
        .collect()
}

impl Store for AuditOff {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        self.0.get(kind, key)
    }

    fn scan(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.0.scan(kind, prefix)
    }

    fn scan_rev(
        &self,
        kind: Kind,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.0.scan_rev(kind, prefix, before, limit)
    }

    fn write(&self, writes: Vec<Write>) -> Result<()> {
        self.0.write(kept(&writes))
    }

    fn write_buffered(&self, writes: &[Write]) -> Result<()> {
        self.0.write_buffered(&kept(writes))
    }

    fn delete_prefix(&self, kind: Kind, prefix: &str) -> Result<usize> {
        self.0.delete_prefix(kind, prefix)
    }

    /// Nothing to make durable: only the audit log writes through here.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn commit(&self, expected: u64, writes: Vec<Write>, scopes: &[String]) -> Result<u64> {
        self.0.commit(expected, writes, scopes)
    }

    fn revision(&self) -> Result<u64> {
        self.0.revision()
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Option<Vec<Change>>> {
        self.0.changes(after, limit)
    }

    fn lock_writes(&self) -> Result<Option<Box<dyn WriteLock>>> {
        self.0.lock_writes()
    }

    fn lease(&self, name: &str, holder: &str, now_ms: u64, ttl_ms: u64) -> Result<bool> {
        self.0.lease(name, holder, now_ms, ttl_ms)
    }

    fn take(&self, kind: Kind, key: &str, want: u64, limit: u64) -> Result<u64> {
        self.0.take(kind, key, want, limit)
    }
}
