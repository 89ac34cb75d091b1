//! Each scope's audit log: appended by decisions and management events,
//! queried newest first with filters and a cursor.
//!
//! Keys are `scope/ULID`, so one scope's log is one range in time order.
//! Decision entries go through the group-commit [`writer`]; management
//! events are written (and flushed) directly.

pub mod journal;
pub mod writer;

use std::sync::Arc;

use serde_json::Value;
use ulid::Ulid;
use ward_types::{AuditEntry, AuditKind, AuditPage, Timestamp};

use crate::store::{self, Kind, Store, StoreError, Write, scope_prefix, scoped_key};
use journal::Journal;
use writer::{AuditWriter, WriterConfig};

/// Most entries one query returns.
pub const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;
const SCAN_BATCH: usize = 256;

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
}

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
        Ok(AuditLog { store, writer })
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

    /// Deletes `scope`'s entries older than `cutoff_ms`; returns how many.
    pub fn prune(&self, scope: &str, cutoff_ms: u64) -> Result<usize, StoreError> {
        let bound = scoped_key(scope, &Ulid::from_parts(cutoff_ms, 0).to_string());
        let prefix = scope_prefix(scope);
        let mut removed = 0;
        loop {
            let old = self
                .store
                .scan_rev(Kind::Audit, &prefix, Some(&bound), SCAN_BATCH * 16)?;
            if old.is_empty() {
                return Ok(removed);
            }
            removed += old.len();
            self.store.write(
                old.into_iter()
                    .map(|(key, _)| Write::delete(Kind::Audit, key))
                    .collect(),
            )?;
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
        self.store.write(vec![Write::put_json(
            Kind::Audit,
            scoped_key(scope, &entry.id),
            &entry,
        )?])
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
        self.record_decision(scope, &event_entry(actor, kind, None, details))
    }

    /// Appends a decision to `scope`'s log through the group-commit
    /// writer: waits while its queue is full, and in `sync` mode until the
    /// entry is durable.
    pub fn record_decision(&self, scope: &str, entry: &AuditEntry) -> Result<(), StoreError> {
        let write = Write::put_json(Kind::Audit, scoped_key(scope, &entry.id), entry)?;
        self.writer.append(scope, write)
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
        let prefix = scope_prefix(scope);
        let mut before = match &query.cursor {
            Some(cursor) => {
                let id = Ulid::from_string(cursor).map_err(|_| {
                    AuditError::Invalid(String::from("cursor is not one this server gave out"))
                })?;
                Some(scoped_key(scope, &id.to_string()))
            }
            None => None,
        };
        if let Some(until) = query.until {
            // The smallest id of the next millisecond bounds `until` inclusively.
            let bound = scoped_key(scope, &Ulid::from_parts(until.millis() + 1, 0).to_string());
            before = Some(match before {
                Some(cursor) if cursor < bound => cursor,
                _ => bound,
            });
        }

        let mut entries = Vec::new();
        loop {
            let batch = self
                .store
                .scan_rev(Kind::Audit, &prefix, before.as_deref(), SCAN_BATCH)?;
            let exhausted = batch.len() < SCAN_BATCH;
            for (key, bytes) in batch {
                let entry: AuditEntry = store::decode(&bytes)?;
                before = Some(key);
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
            if exhausted {
                return Ok(AuditPage {
                    entries,
                    next_cursor: None,
                });
            }
        }
    }
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
fn event_entry(actor: &str, kind: AuditKind, target: Option<&str>, details: Value) -> AuditEntry {
    AuditEntry {
        id: crate::ids::next_ulid().to_string(),
        time: Timestamp::now(),
        actor: actor.to_string(),
        kind,
        target: target.map(str::to_string),
        decision: None,
        reasons: Vec::new(),
        agent: None,
        policy: None,
        duration_us: None,
        details,
    }
}
