//! The embedded store: one sled tree per [`Kind`], under `--data-dir`.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Db, Transactional, Tree};

use super::{Change, Kind, Result, Store, StoreError, Write, WriteLock};

/// sled 0.34 under a directory.
pub struct SledStore {
    db: Db,
    trees: Vec<Tree>,
    /// Commits: big-endian revision → the scopes it changed, one a line.
    changes: Tree,
    /// Serializes commits, so that the revision check and the write are
    /// one step.
    commit_lock: Mutex<()>,
}

/// Commits kept in the change log. Only this process writes the store, so
/// nothing reads far back; the log is kept for `ward store` and tests.
const CHANGES_KEPT: u64 = 10_000;

/// `Kind::Meta` key of the revision of the last commit.
const REVISION_KEY: &str = "store/revision";

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. Waits up to five seconds for
    /// the directory's lock, which a process that just closed the store
    /// (or just died) may still hold for a moment.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = sled::Config::new().path(dir).flush_every_ms(Some(200));
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                // sled reports a held lock as `ErrorKind::Other` with the
                // reason only in the message.
                Err(sled::Error::Io(err))
                    if err.to_string().contains("could not acquire lock") && attempts < 100 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(err) => return Err(backend(err)),
            }
        };
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> Result<Self> {
        let trees = Kind::ALL
            .iter()
            .map(|kind| db.open_tree(kind.name()))
            .collect::<sled::Result<Vec<_>>>()
            .map_err(backend)?;
        let changes = db.open_tree("changes").map_err(backend)?;
        Ok(SledStore {
            db,
            trees,
            changes,
            commit_lock: Mutex::new(()),
        })
    }

    /// A store in memory only, gone when dropped (for local tools such
    /// as the policy test runner).
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        Self::with_db(db)
    }

    fn tree(&self, kind: Kind) -> &Tree {
        &self.trees[kind.index()]
    }

    /// Applies `writes` atomically: as one batch when they all fall in one
    /// tree (a batch of audit entries, most often), which costs sled far
    /// less than a transaction, and as a transaction over the trees when
    /// they do not.
    fn apply(&self, writes: &[Write]) -> Result<()> {
        let kind = |write: &Write| match write {
            Write::Put { kind, .. } | Write::Delete { kind, .. } => *kind,
        };
        if let Some(first) = writes.first().map(kind)
            && writes.iter().all(|write| kind(write) == first)
        {
            let mut batch = Batch::default();
            for write in writes {
                match write {
                    Write::Put { key, value, .. } => batch.insert(key.as_bytes(), value.as_slice()),
                    Write::Delete { key, .. } => batch.remove(key.as_bytes()),
                }
            }
            return self.tree(first).apply_batch(batch).map_err(backend);
        }
        let result: Result<(), TransactionError<String>> =
            self.trees.as_slice().transaction(|trees| {
                for write in writes {
                    match write {
                        Write::Put { kind, key, value } => {
                            trees[kind.index()].insert(key.as_bytes(), value.as_slice())?;
                        }
                        Write::Delete { kind, key } => {
                            trees[kind.index()].remove(key.as_bytes())?;
                        }
                    }
                }
                Ok::<_, ConflictableTransactionError<String>>(())
            });
        result.map_err(backend)
    }
}

fn entry(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(String, Vec<u8>)> {
    let (key, value) = item.map_err(backend)?;
    let key =
        String::from_utf8(key.to_vec()).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    Ok((key, value.to_vec()))
}

impl Store for SledStore {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree(kind)
            .get(key.as_bytes())
            .map_err(backend)?
            .map(|value| value.to_vec()))
    }

    fn scan(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.tree(kind)
            .scan_prefix(prefix.as_bytes())
            .map(entry)
            .collect()
    }

    fn scan_rev(
        &self,
        kind: Kind,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let start = prefix.as_bytes().to_vec();
        let end = match before {
            Some(before) => before.as_bytes().to_vec(),
            None => super::successor(prefix.as_bytes())
                .unwrap_or_else(|| vec![u8::MAX; prefix.len() + 1]),
        };
        if end <= start {
            return Ok(Vec::new());
        }
        self.tree(kind)
            .range(start..end)
            .rev()
            .take(limit)
            .map(entry)
            .collect()
    }

    fn write(&self, writes: Vec<Write>) -> Result<()> {
        self.apply(&writes)?;
        self.flush()
    }

    fn write_buffered(&self, writes: &[Write]) -> Result<()> {
        self.apply(writes)
    }

    fn delete_prefix(&self, kind: Kind, prefix: &str) -> Result<usize> {
        let tree = self.tree(kind);
        let mut removed = 0;
        loop {
            // In bounded batches so that a huge tenant does not need one
            // huge batch in memory.
            let mut batch = Batch::default();
            let mut in_batch = 0;
            for item in tree.scan_prefix(prefix.as_bytes()).keys().take(10_000) {
                batch.remove(item.map_err(backend)?);
                in_batch += 1;
            }
            if in_batch == 0 {
                break;
            }
            tree.apply_batch(batch).map_err(backend)?;
            removed += in_batch;
        }
        self.flush()?;
        Ok(removed)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(backend)
    }

    fn commit(&self, expected: u64, writes: Vec<Write>, scopes: &[String]) -> Result<u64> {
        let _serial = self
            .commit_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let actual = self.revision()?;
        if actual != expected {
            return Err(StoreError::Conflict { expected, actual });
        }
        let revision = actual + 1;
        let mut all = writes;
        all.push(Write::Put {
            kind: Kind::Meta,
            key: REVISION_KEY.to_string(),
            value: revision.to_string().into_bytes(),
        });
        self.apply(&all)?;
        self.changes
            .insert(revision.to_be_bytes(), scopes.join("\n").into_bytes())
            .map_err(backend)?;
        if revision > CHANGES_KEPT {
            self.changes
                .remove((revision - CHANGES_KEPT).to_be_bytes())
                .map_err(backend)?;
        }
        self.flush()?;
        Ok(revision)
    }

    fn revision(&self) -> Result<u64> {
        match self.get(Kind::Meta, REVISION_KEY)? {
            None => Ok(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| StoreError::Corrupt(String::from("the store revision"))),
        }
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Option<Vec<Change>>> {
        let revision = self.revision()?;
        if after >= revision {
            return Ok(Some(Vec::new()));
        }
        let mut found = Vec::new();
        for item in self.changes.range((after + 1).to_be_bytes()..).take(limit) {
            let (key, value) = item.map_err(backend)?;
            let number = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt(String::from("a change log key")))?;
            let scopes = String::from_utf8_lossy(&value)
                .split('\n')
                .filter(|scope| !scope.is_empty())
                .map(str::to_string)
                .collect();
            found.push(Change {
                revision: number,
                scopes,
            });
        }
        // The log must start right after `after`, or it has been trimmed.
        if found
            .first()
            .is_none_or(|first| first.revision != after + 1)
        {
            return Ok(None);
        }
        Ok(Some(found))
    }

    fn lock_writes(&self) -> Result<Option<Box<dyn WriteLock>>> {
        Ok(None)
    }

    fn lease(&self, _name: &str, _holder: &str, _now_ms: u64, _ttl_ms: u64) -> Result<bool> {
        Ok(true)
    }

    fn take(&self, kind: Kind, key: &str, want: u64, limit: u64) -> Result<u64> {
        let _serial = self
            .commit_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = super::counter_value(self.get(kind, key)?.as_deref())?;
        let granted = super::grant(current, want, limit);
        if granted > 0 {
            self.write(vec![Write::Put {
                kind,
                key: key.to_string(),
                value: (current + granted).to_string().into_bytes(),
            }])?;
        }
        Ok(granted)
    }
}
