//! The audit journal: an append-only file of decision entries, synced once
//! per group commit before any caller is answered. It is what makes
//! "answered means durable" true, whatever the store's own flush does; the
//! store is a queryable copy, and the journal is replayed into it at start
//! and truncated once the store has flushed.
//!
//! Record: `u32 length (LE) | u32 crc32 (LE) | u32 key length | key | value`
//! (length and crc cover everything after the crc). Replay stops at the
//! first record that is short or fails its checksum: a torn tail.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};

use crate::store::{Kind, Store, StoreError, Write};

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    bytes: u64,
}

/// A journal larger than this is checkpointed (store flushed, journal
/// truncated) after the batch that crossed it.
pub const CHECKPOINT_BYTES: u64 = 8 << 20;

impl Journal {
    /// Replays what `path` holds into `store` (skipping entries of scopes
    /// that no longer exist), flushes the store, and opens the journal
    /// empty.
    pub fn open(path: &Path, store: &dyn Store) -> Result<Self, StoreError> {
        let io = |err: io::Error| {
            StoreError::Backend(format!("audit journal `{}`: {err}", path.display()))
        };
        let mut replayed = 0;
        if let Ok(mut file) = File::open(path) {
            let mut data = Vec::new();
            file.read_to_end(&mut data).map_err(io)?;
            let mut writes = Vec::new();
            // Asked once a scope: on a shared store each is a round trip.
            let mut alive_scopes = std::collections::HashMap::new();
            for (key, value) in records(&data) {
                let scope = key.split('/').next().unwrap_or("").to_string();
                let alive = match alive_scopes.get(&scope) {
                    Some(alive) => *alive,
                    None => {
                        let alive = scope == "global" || store.get(Kind::Tenant, &scope)?.is_some();
                        alive_scopes.insert(scope, alive);
                        alive
                    }
                };
                if alive {
                    writes.push(Write::Put {
                        kind: Kind::Audit,
                        key,
                        value,
                    });
                }
            }
            replayed = writes.len();
            for chunk in writes.chunks(4096) {
                store.write_buffered(chunk)?;
            }
            store.flush()?;
        }
        if replayed > 0 {
            tracing::info!(replayed, "audit entries replayed from the journal");
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            bytes: 0,
        })
    }

    /// Appends `writes` (puts) and syncs the data to disk.
    pub fn append(&mut self, writes: &[Write]) -> io::Result<()> {
        let size = writes
            .iter()
            .map(|write| match write {
                Write::Put { key, value, .. } => 12 + key.len() + value.len(),
                Write::Delete { .. } => 0,
            })
            .sum();
        let mut buffer = Vec::with_capacity(size);
        for write in writes {
            if let Write::Put { key, value, .. } = write {
                // The body is written in place after a header whose crc is
                // filled in once the body is there.
                let header = buffer.len();
                buffer.extend_from_slice(&[0; 8]);
                buffer.extend_from_slice(&(key.len() as u32).to_le_bytes());
                buffer.extend_from_slice(key.as_bytes());
                buffer.extend_from_slice(value);
                let body = header + 8;
                let length = (buffer.len() - body) as u32;
                let crc = crc32(&buffer[body..]);
                buffer[header..header + 4].copy_from_slice(&length.to_le_bytes());
                buffer[header + 4..body].copy_from_slice(&crc.to_le_bytes());
            }
        }
        if buffer.is_empty() {
            return Ok(());
        }
        self.file.write_all(&buffer)?;
        self.file.sync_data()?;
        self.bytes += buffer.len() as u64;
        Ok(())
    }

    /// Whether the journal has grown enough to checkpoint.
    pub fn wants_checkpoint(&self) -> bool {
        self.bytes >= CHECKPOINT_BYTES
    }

    /// Empties the journal; call only after the store has flushed every
    /// entry it held.
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        // Appends continue at the new end.
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.file.sync_all()?;
        self.bytes = 0;
        Ok(())
    }
}

/// The intact records at the start of `data`.
fn records(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    let word = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    while let (Some(length), Some(crc)) = (word(at), word(at + 4)) {
        let Some(body) = data.get(at + 8..at + 8 + length) else {
            break;
        };
        if crc32(body) as usize != crc {
            break;
        }
        let Some(key_length) = word(at + 8) else {
            break;
        };
        let (Some(key), Some(value)) = (body.get(4..4 + key_length), body.get(4 + key_length..))
        else {
            break;
        };
        let Ok(key) = String::from_utf8(key.to_vec()) else {
            break;
        };
        out.push((key, value.to_vec()));
        at += 8 + length;
    }
    out
}

/// CRC-32 (IEEE). Every entry passes through it on the writer thread, so
/// it uses the processor's carry-less multiply where there is one (a
/// bitwise loop cost some 2 µs per entry).
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn replay_stops_at_a_torn_or_corrupt_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let store = crate::store::SledStore::open(&dir.path().join("db")).unwrap();
        let mut journal = Journal::open(&path, &store).unwrap();
        let put = |key: &str| Write::Put {
            kind: Kind::Audit,
            key: key.into(),
            value: b"{}".to_vec(),
        };
        journal.append(&[put("global/A"), put("global/B")]).unwrap();
        journal.append(&[put("global/C")]).unwrap();
        drop(journal);
        let mut data = std::fs::read(&path).unwrap();
        let intact = records(&data);
        assert_eq!(intact.len(), 3);
        data.truncate(data.len() - 1);
        assert_eq!(records(&data).len(), 2, "a torn last record is dropped");
        data[9] ^= 0xff;
        assert_eq!(
            records(&data).len(),
            0,
            "a corrupt first record stops replay"
        );

        std::fs::write(&path, std::fs::read(&path).unwrap()).unwrap();
        let journal = Journal::open(&path, &store).unwrap();
        assert_eq!(
            store.scan(Kind::Audit, "global/").unwrap().len(),
            3,
            "replayed into the store"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "and emptied");
        drop(journal);
    }
}
