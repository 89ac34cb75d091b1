//! How a scope's audit entries are grouped in the store.
//!
//! The writer stores the entries of one group commit as chunks: one record
//! per run of up to [`MAX_ENTRIES`] entries (or [`MAX_BYTES`] of them),
//! keyed `scope/<smallest id in it>` and holding a JSON array of the
//! entries in id order. Inserting one record per entry cost sled about
//! 10 µs each, the largest single cost of a decision served over HTTP; a
//! chunk of 16 or more costs under 1.5 µs an entry (docs/DECISIONS.md).
//!
//! The invariant every reader relies on: an entry's id is at least its
//! chunk's key and below the next chunk's key. The chunks of a scope thus
//! split its ids into ranges, so that the entries below an id are exactly
//! those in chunks keyed below it. A record holding a single JSON object
//! is a chunk of one entry (stores written before chunks were).

use ward_types::AuditEntry;

use crate::store::{self, Kind, StoreError, Write, scoped_key};

/// Most entries in a chunk the writer starts.
pub const MAX_ENTRIES: usize = 32;

/// A chunk the writer starts is closed once its entries reach this size.
pub const MAX_BYTES: usize = 16 << 10;

/// The entries of a chunk record, in id order.
pub fn decode(bytes: &[u8]) -> Result<Vec<AuditEntry>, StoreError> {
    match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'[') => store::decode(bytes),
        _ => Ok(vec![store::decode(bytes)?]),
    }
}

/// The store writes that add `entries` of `scope` (id and JSON object,
/// in id order, all newer than any stored) as new chunks.
pub fn writes<'a>(
    scope: &'a str,
    entries: &'a [(String, Vec<u8>)],
) -> impl Iterator<Item = Write> + 'a {
    runs(entries).map(move |run| Write::Put {
        kind: Kind::Audit,
        key: scoped_key(scope, &run[0].0),
        value: encode(run.iter().map(|(_, value)| value.as_slice())),
    })
}

/// A chunk record of entries already encoded as JSON objects, in id order.
fn encode<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut chunk = vec![b'['];
    for entry in entries {
        if chunk.len() > 1 {
            chunk.push(b',');
        }
        chunk.extend_from_slice(entry);
    }
    chunk.push(b']');
    chunk
}

/// Splits `entries` (id and JSON, in id order) into runs that each make
/// one chunk the writer starts.
fn runs<T: AsRef<[u8]>>(entries: &[(String, T)]) -> impl Iterator<Item = &[(String, T)]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut end = 0;
        while end < rest.len() && end < MAX_ENTRIES && (end == 0 || bytes < MAX_BYTES) {
            bytes += rest[end].1.as_ref().len();
            end += 1;
        }
        let (run, more) = rest.split_at(end);
        rest = more;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_close_at_the_entry_or_byte_bound() {
        let small: Vec<(String, Vec<u8>)> = (0..70)
            .map(|i| (format!("{i:03}"), b"{}".to_vec()))
            .collect();
        let lengths: Vec<usize> = runs(&small).map(<[_]>::len).collect();
        assert_eq!(lengths, [MAX_ENTRIES, MAX_ENTRIES, 70 - 2 * MAX_ENTRIES]);

        let big: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| (format!("{i:03}"), vec![b' '; MAX_BYTES / 2]))
            .collect();
        let lengths: Vec<usize> = runs(&big).map(<[_]>::len).collect();
        assert_eq!(lengths, [2, 2, 1]);

        let huge = vec![(String::from("0"), vec![b' '; MAX_BYTES * 3])];
        assert_eq!(
            runs(&huge).count(),
            1,
            "an entry larger than the bound is a chunk of its own"
        );
    }

    #[test]
    fn a_chunk_decodes_as_its_entries_and_an_old_record_as_one() {
        let entry = br#"{"id":"01J0000000000000000000000A","time":"2026-01-01T00:00:00Z","actor":"a","kind":"decision","details":{}}"#;
        let chunk = encode([&entry[..], &entry[..]]);
        assert_eq!(decode(&chunk).unwrap().len(), 2);
        assert_eq!(decode(entry).unwrap().len(), 1);
        assert!(decode(b"[1]").is_err());
    }
}
