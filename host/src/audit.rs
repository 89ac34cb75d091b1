//! Each scope's audit log: appended by decisions and management events,
//! queried newest first with filters and a cursor.
//!
//! Entries are stored in chunks keyed `scope/ULID` (see [`chunk`]), so one
//! scope's log is one range in time order. Every entry goes through the
//! group-commit [`writer`]; a management event waits until it is durable.

pub mod chunk;
pub mod journal;
mod queue;
pub mod writer;

use std::sync::Arc;

use serde_json::Value;
use ulid::Ulid;
use ward_types::{AuditEntry, AuditKind, AuditPage, Timestamp};

use crate::store::{Kind, Store, StoreError, Write, scope_prefix, scoped_key, set_aside};
use journal::Journal;
use writer::{AuditWriter, WriterConfig};

/// Most entries one query returns.
pub const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;
/// Chunks read from the store at a time (each holds up to
/// [`chunk::MAX_ENTRIES`] entries)...
const SCAN_CHUNKS: usize = 8;
/// ...or, on a shared store, where each holds one entry.
const SCAN_SHARED: usize = 256;
const DAY_MS: u64 = 86_400_000;
/// Chunks deleted with one store write when pruning.
const PRUNE_CHUNKS: usize = 256;

/// Filters of an audit query; all optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries at or before this time.
    pub until: Option<Timestamp>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only decisions about this agent.
    pub agent: Option<String>,
    /// Only decisions with this outcome.
    pub decision: Option<bool>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Audit failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The query is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The audit log of every scope.
pub struct AuditLog {
    store: Arc<dyn Store>,
    writer: AuditWriter,
    /// The fewest milliseconds an `admin_cross_tenant_access` entry is
    /// kept, whatever its scope's retention.
    access_retention_ms: u64,
}

/// Default of [`AuditLog::keeping_access_entries_for`]: a year.
const ACCESS_RETENTION_DAYS: u32 = 365;

impl AuditLog {
    /// The log kept in `store`, with the default (batched) writer.
    pub fn new(store: Arc<dyn Store>) -> std::io::Result<Self> {
        Self::with_writer(store, WriterConfig::default(), None).map_err(std::io::Error::other)
    }

    /// The log kept in `store`, with decision entries written as `config`
    /// says, through the journal at `journal` when given (what the server
    /// does): its entries are replayed into the store first.
    pub fn with_writer(
        store: Arc<dyn Store>,
        config: WriterConfig,
        journal: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let journal = journal
            .map(|path| Journal::open(path, store.as_ref()))
            .transpose()?;
        let writer = AuditWriter::start(Arc::clone(&store), config, journal)
            .map_err(|err| StoreError::Backend(format!("cannot start the audit writer: {err}")))?;
        Ok(AuditLog {
            store,
            writer,
            access_retention_ms: u64::from(ACCESS_RETENTION_DAYS) * DAY_MS,
        })
    }

    /// Keeps `admin_cross_tenant_access` entries at least `days`, however
    /// short their tenant's retention.
    pub fn keeping_access_entries_for(mut self, days: u32) -> Self {
        self.access_retention_ms = u64::from(days) * DAY_MS;
        self
    }

    /// The decision writer (for its measurements).
    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// Returns once every decision entry queued so far is durable.
    pub fn flush(&self) {
        self.writer.flush();
    }

    /// Discards queued entries of a deleted scope.
    pub fn forget_scope(&self, scope: &str) {
        self.writer.forget_scope(scope);
    }

    /// Deletes `scope`'s entries older than `keep_ms` as of `now_ms`;
    /// returns how many. A chunk goes once all its entries are older: the
    /// newest chunk that starts before the cutoff may hold newer ones, and
    /// then stays. `admin_cross_tenant_access` entries younger than the
    /// operator's minimum are kept, rewritten as a chunk of their own.
    pub fn prune(&self, scope: &str, now_ms: u64, keep_ms: u64) -> Result<usize, StoreError> {
        let cutoff = Ulid::from_parts(now_ms.saturating_sub(keep_ms), 0).to_string();
        let access_cutoff =
            Ulid::from_parts(now_ms.saturating_sub(self.access_retention_ms), 0).to_string();
        let prefix = scope_prefix(scope);
        let mut before = scoped_key(scope, &cutoff);
        let mut newest = true;
        let mut removed = 0;
        loop {
            let old = self
                .store
                .scan_rev(Kind::Audit, &prefix, Some(&before), PRUNE_CHUNKS)?;
            let Some((last, _)) = old.last() else {
                return Ok(removed);
            };
            before = last.clone();
            let exhausted = old.len() < PRUNE_CHUNKS;
            let mut deletes = Vec::with_capacity(old.len());
            for (key, bytes) in old {
                let Some(entries) = self.readable_chunk(&key, &bytes) else {
                    continue;
                };
                let keep = std::mem::take(&mut newest) && entries.iter().any(|e| e.id >= cutoff);
                if !keep {
                    let evidence: Vec<AuditEntry> = entries
                        .iter()
                        .filter(|e| {
                            e.kind == AuditKind::AdminCrossTenantAccess && e.id >= access_cutoff
                        })
                        .cloned()
                        .collect();
                    removed += entries.len() - evidence.len();
                    deletes.push(Write::delete(Kind::Audit, key));
                    // Keyed by its own first id, which lies inside the
                    // deleted chunk's range: the chunks still split ids.
                    if let Some(first) = evidence.first() {
                        deletes.push(Write::put_json(
                            Kind::Audit,
                            scoped_key(scope, &first.id),
                            &evidence,
                        )?);
                    }
                }
            }
            if !deletes.is_empty() {
                self.store.write(deletes)?;
            }
            if exhausted {
                return Ok(removed);
            }
        }
    }

    /// The entries of the chunk `key`; a chunk that cannot be read is set
    /// aside, so that the log around it stays readable and prunable.
    fn readable_chunk(&self, key: &str, bytes: &[u8]) -> Option<Vec<AuditEntry>> {
        match chunk::decode(bytes) {
            Ok(entries) => Some(entries),
            Err(err) => {
                set_aside::move_aside(
                    self.store.as_ref(),
                    Kind::Audit,
                    key,
                    bytes,
                    &err.to_string(),
                );
                None
            }
        }
    }

    /// Appends a management event to `scope`'s log, durably.
    pub fn record_event(
        &self,
        scope: &str,
        actor: &str,
        kind: AuditKind,
        target: Option<&str>,
        details: Value,
    ) -> Result<(), StoreError> {
        let entry = event_entry(actor, kind, target, details);
        self.writer
            .append_durable(scope, &entry.id, encode(&entry)?)
    }

    /// Queues an event to `scope`'s log through the decision writer: never
    /// dropped, durable as decisions are, and without waiting for the
    /// disk (for events on the decision path, such as limit refusals).
    pub fn queue_event(
        &self,
        scope: &str,
        actor: &str,
        kind: AuditKind,
        details: Value,
    ) -> Result<(), StoreError> {
        let entry = event_entry(actor, kind, None, details);
        self.record_decision(scope, &entry.id, &entry)
    }

    /// Appends a decision to `scope`'s log through the group-commit
    /// writer: waits while its queue is full, and in `sync` mode until the
    /// entry is durable. `entry` (with id `id`) must encode as an
    /// [`AuditEntry`].
    pub fn record_decision(
        &self,
        scope: &str,
        id: &str,
        entry: &impl serde::Serialize,
    ) -> Result<(), StoreError> {
        self.writer.append(scope, id, encode(entry)?)
    }

    /// One page of `scope`'s log, newest first. Entries still queued in the
    /// writer are written first, so a read sees every decision already
    /// answered.
    pub fn query(&self, scope: &str, query: &AuditQuery) -> Result<AuditPage, AuditError> {
        self.writer.flush();
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(AuditError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        // Entries are listed from just below `below`, an id: the cursor
        // or the first id after `until`, whichever is lower.
        let mut below = match &query.cursor {
            Some(cursor) => Some(
                Ulid::from_string(cursor)
                    .map_err(|_| {
                        AuditError::Invalid(String::from("cursor is not one this server gave out"))
                    })?
                    .to_string(),
            ),
            None => None,
        };
        if let Some(until) = query.until {
            // The smallest id of the next millisecond bounds `until` inclusively.
            let bound = Ulid::from_parts(until.millis() + 1, 0).to_string();
            below = Some(match below {
                Some(cursor) if cursor < bound => cursor,
                _ => bound,
            });
        }

        // The chunks keyed below `below` hold exactly the entries below it
        // (and the first of them, some at or above it, skipped).
        let prefix = scope_prefix(scope);
        let mut before = below.as_ref().map(|id| scoped_key(scope, id));
        let mut entries = Vec::new();
        let scan = if self.store.shared() {
            SCAN_SHARED
        } else {
            SCAN_CHUNKS
        };
        loop {
            let chunks = self
                .store
                .scan_rev(Kind::Audit, &prefix, before.as_deref(), scan)?;
            let exhausted = chunks.len() < scan;
            for (key, bytes) in chunks {
                let held = self.readable_chunk(&key, &bytes).unwrap_or_default();
                for entry in held.into_iter().rev() {
                    if below.as_ref().is_some_and(|below| entry.id >= *below) {
                        continue;
                    }
                    if query.since.is_some_and(|since| entry.time < since) {
                        return Ok(AuditPage {
                            entries,
                            next_cursor: None,
                        });
                    }
                    if matches(query, &entry) {
                        entries.push(entry);
                        if entries.len() == limit {
                            let next_cursor = entries.last().map(|e| e.id.clone());
                            return Ok(AuditPage {
                                entries,
                                next_cursor,
                            });
                        }
                    }
                }
                before = Some(key);
            }
            if exhausted {
                return Ok(AuditPage {
                    entries,
                    next_cursor: None,
                });
            }
        }
    }
}

/// An entry as the JSON object the writer stores.
fn encode(entry: &impl serde::Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(entry).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn matches(query: &AuditQuery, entry: &AuditEntry) -> bool {
    query.kind.is_none_or(|kind| entry.kind == kind)
        && query.decision.is_none_or(|d| entry.decision == Some(d))
        && query
            .agent
            .as_ref()
            .is_none_or(|name| entry.agent.as_ref().is_some_and(|a| &a.name == name))
}

/// A management event entry, stamped now.
/// Joins an actor and the user it acts for into the one actor string that
/// travels with a request to the audit log (see [`split_actor`]).
pub fn acting_for(actor: &str, user: &str) -> String {
    format!("{actor}{ACTING_FOR}{user}")
}

/// The actor and, when it acted for a user, that user.
pub fn split_actor(actor: &str) -> (&str, Option<&str>) {
    match actor.split_once(ACTING_FOR) {
        Some((actor, user)) => (actor, Some(user)),
        None => (actor, None),
    }
}

/// Separates an actor from the user it acts for; a control character, so
/// it occurs in neither (both are checked to be printable).
const ACTING_FOR: char = '\u{1f}';

fn event_entry(actor: &str, kind: AuditKind, target: Option<&str>, details: Value) -> AuditEntry {
    let (actor, on_behalf_of) = split_actor(actor);
    AuditEntry {
        id: crate::ids::next_ulid().to_string(),
        time: Timestamp::now(),
        actor: actor.to_string(),
        on_behalf_of: on_behalf_of.map(str::to_string),
        kind,
        target: target.map(str::to_string),
        decision: None,
        reasons: Vec::new(),
        agent: None,
        policy: None,
        duration_us: None,
        replica: None,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn entry(id: &Ulid) -> AuditEntry {
        AuditEntry {
            id: id.to_string(),
            time: Timestamp(id.timestamp_ms()),
            ..event_entry("system", AuditKind::Decision, None, Value::Null)
        }
    }

    fn record(log: &AuditLog, entry: AuditEntry) {
        log.record_decision("t1", &entry.id, &entry).unwrap();
    }

    fn log() -> (Arc<dyn Store>, AuditLog) {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let log = AuditLog::new(Arc::clone(&store)).unwrap();
        (store, log)
    }

    /// Every id of `scope`'s log, newest first, read in pages of `limit`.
    fn all_ids(log: &AuditLog, scope: &str, limit: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let query = AuditQuery {
                limit: Some(limit),
                cursor: cursor.take(),
                ..AuditQuery::default()
            };
            let page = log.query(scope, &query).unwrap();
            ids.extend(page.entries.into_iter().map(|e| e.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return ids,
            }
        }
    }

    #[test]
    fn entries_stored_in_chunks_page_newest_first_without_gaps() {
        let (store, log) = log();
        let mut written = Vec::new();
        for round in 0..5 {
            for _ in 0..37 {
                let entry = entry(&crate::ids::next_ulid());
                log.record_decision("t1", &entry.id, &entry).unwrap();
                written.push(entry.id);
            }
            // A management event between batches, durable on return.
            log.record_event("t1", "operator", AuditKind::AgentPut, None, Value::Null)
                .unwrap();
            if round % 2 == 0 {
                log.flush();
            }
        }
        log.flush();
        let records = store.scan(Kind::Audit, "t1/").unwrap().len();
        let ids = all_ids(&log, "t1", 7);
        assert_eq!(ids.len(), 5 * 38, "every entry listed once");
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
        assert!(written.iter().all(|id| ids.contains(id)));
        assert!(
            records < ids.len() / 4,
            "{records} records for {} entries",
            ids.len()
        );
        assert_eq!(
            all_ids(&log, "t2", 7),
            Vec::<String>::new(),
            "other scopes see none"
        );
    }

    #[test]
    fn an_entry_queued_after_a_newer_one_joins_the_chunk_that_holds_its_id() {
        let (store, log) = log();
        let ids: Vec<Ulid> = (0..7).map(|_| crate::ids::next_ulid()).collect();
        let write = |log: &AuditLog, order: &[usize]| {
            for &i in order {
                record(log, entry(&ids[i]));
            }
            log.flush();
        };
        write(&log, &[1, 3, 5]);
        // 2 and 0: their callers were slow, and newer entries are stored.
        write(&log, &[2, 0, 6]);
        // After a restart the newest id stored comes from the store.
        drop(log);
        let log = AuditLog::new(Arc::clone(&store)).unwrap();
        write(&log, &[4]);

        let expected: Vec<String> = ids.iter().rev().map(Ulid::to_string).collect();
        assert_eq!(all_ids(&log, "t1", 2), expected);
        assert_eq!(all_ids(&log, "t1", 100), expected);
        let keys: Vec<String> = store
            .scan(Kind::Audit, "t1/")
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let key = |i: usize| scoped_key("t1", &ids[i].to_string());
        assert_eq!(
            keys,
            [key(0), key(1), key(6)],
            "2 and 4 joined 1's chunk; 0 made one of its own"
        );
    }

    #[test]
    fn until_and_cursor_bound_the_listing_inside_a_chunk() {
        let (_, log) = log();
        let ids: Vec<Ulid> = (0..10u64)
            .map(|i| Ulid::from_parts(1_000 * (i + 1), 7))
            .collect();
        for id in &ids {
            record(&log, entry(id));
        }
        let page = log
            .query(
                "t1",
                &AuditQuery {
                    until: Some(Timestamp(5_000)),
                    since: Some(Timestamp(3_000)),
                    ..AuditQuery::default()
                },
            )
            .unwrap();
        let listed: Vec<String> = page.entries.iter().map(|e| e.id.clone()).collect();
        let expected: Vec<String> = ids[2..5].iter().rev().map(Ulid::to_string).collect();
        assert_eq!(listed, expected);
    }

    #[test]
    fn prune_removes_the_chunks_wholly_older_than_the_cutoff() {
        let (store, log) = log();
        let at = |second: u64| Ulid::from_parts(second * 1_000, 1);
        for second in [1, 2, 3] {
            record(&log, entry(&at(second)));
        }
        log.flush();
        for second in [4, 6] {
            record(&log, entry(&at(second)));
        }
        log.flush();
        // An entry stored before chunks: a record of one object.
        let old = entry(&Ulid::from_parts(500, 1));
        store
            .write(vec![
                Write::put_json(Kind::Audit, scoped_key("t1", &old.id), &old).unwrap(),
            ])
            .unwrap();
        assert_eq!(all_ids(&log, "t1", 100).len(), 6);

        // Chunk [1,2,3] and the single old record go; [4,6] straddles 5 s.
        assert_eq!(log.prune("t1", 5_000, 0).unwrap(), 4);
        let left: Vec<String> = [6, 4].iter().map(|s| at(*s).to_string()).collect();
        assert_eq!(all_ids(&log, "t1", 100), left);
        assert_eq!(log.prune("t1", 5_000, 0).unwrap(), 0);
        assert_eq!(log.prune("t1", 7_000, 0).unwrap(), 2);
        assert!(all_ids(&log, "t1", 100).is_empty());
    }

    #[test]
    fn cross_tenant_access_outlives_a_short_retention() {
        let (_store, log) = log();
        let log = log.keeping_access_entries_for(2);
        let at = |second: u64| Ulid::from_parts(second * 1_000, 1);
        let access = |id: &Ulid| AuditEntry {
            kind: AuditKind::AdminCrossTenantAccess,
            ..entry(id)
        };
        record(&log, entry(&at(1)));
        record(&log, access(&at(2)));
        record(&log, entry(&at(3)));
        log.flush();
        record(&log, entry(&at(10)));
        log.flush();

        // A retention of 0 removes the decisions of the first chunk, but
        // not the access entry: it stays until it is two days old.
        assert_eq!(log.prune("t1", 5_000, 0).unwrap(), 2);
        let left: Vec<String> = [10, 2].iter().map(|s| at(*s).to_string()).collect();
        assert_eq!(all_ids(&log, "t1", 100), left);
        assert_eq!(
            log.prune("t1", 11_000, 0).unwrap(),
            1,
            "only the newest decision"
        );
        let two_days = 2 * DAY_MS + 2_000;
        assert_eq!(log.prune("t1", two_days + 1, 0).unwrap(), 1);
        assert!(all_ids(&log, "t1", 100).is_empty());
    }
}
