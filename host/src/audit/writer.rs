//! Group commit for audit entries: callers hand entries to one writer
//! thread through a bounded queue; the writer stores each batch with one
//! write and one flush, as chunks of entries (see [`super::chunk`]). A
//! full queue makes callers wait: nothing is ever dropped. In `sync` mode
//! a caller also waits until its entry is durable; concurrent callers
//! share the flush.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use ward_types::AuditEntry;

use super::chunk;
use super::journal::Journal;
use super::queue::Queue;
use crate::store::{Kind, Store, StoreError, Write, scope_prefix, scoped_key, set_aside};

/// When a decision's audit entry is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Answered at once; written within the flush interval.
    Batched,
    /// Answered only once the entry is on disk.
    Sync,
}

/// Settings of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Batched or sync.
    pub durability: Durability,
    /// In batched mode, the longest an entry waits before its batch is
    /// written and flushed.
    pub flush_interval: Duration,
    /// Entries that may wait in the queue; callers block beyond it.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            durability: Durability::Batched,
            flush_interval: Duration::from_millis(50),
            queue: 10_000,
        }
    }
}

/// Set when a batch is durable (or failed for good).
#[derive(Default)]
struct Done {
    state: Mutex<bool>,
    ready: Condvar,
}

impl Done {
    fn finish(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.ready.notify_all();
    }

    fn wait(&self) {
        let mut finished = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !*finished {
            finished = self
                .ready
                .wait(finished)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits at most `limit`; whether it finished.
    fn wait_for(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut finished = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !*finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            finished = self
                .ready
                .wait_timeout(finished, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

enum Item {
    Entry {
        scope: String,
        id: String,
        /// The entry as a JSON object.
        value: Vec<u8>,
        done: Option<Arc<Done>>,
    },
    Barrier(Arc<Done>),
}

/// Measurements for `/metrics`.
#[derive(Default)]
pub struct WriterStats {
    /// Entries queued and not yet written.
    pub depth: AtomicUsize,
    /// Flush latency histogram (µs buckets, see `FLUSH_BUCKETS_US`).
    pub flush_us: crate::metrics::Histogram,
    /// Whether the last attempt to store a batch failed (the writer is
    /// retrying it).
    pub failing: std::sync::atomic::AtomicBool,
}

/// The writer's handle.
pub struct AuditWriter {
    queue: Arc<Queue<Item>>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
    forgotten: Arc<Mutex<HashSet<String>>>,
    replica: Arc<std::sync::OnceLock<String>>,
}

/// Times a whole batch is tried before its entries are stored one by one.
const BATCH_ATTEMPTS: u32 = 3;

/// A batch being gathered is written once it holds this many entries.
const MAX_BATCH: usize = 4096;
/// How often a batch being gathered looks for more entries and flush
/// requests (an audit read waits at most this long before its flush).
const POLL: Duration = Duration::from_millis(2);

/// Nice value of the writer thread: below the threads that answer
/// requests, so that a batch being written (a few milliseconds of sled
/// work) yields the core to a request that arrives meanwhile instead of
/// delaying it. Measured with the server on one core at half load
/// (docs/PERFORMANCE.md): p99 2.1 ms at nice 10 against 4.8-5.4 ms at
/// nice 0 in a quiet period, and lower in each of three paired runs in a
/// noisy one. Under contention it still gets about a tenth of the core,
/// and entries wait in the bounded queue, never dropped.
const WRITER_NICE: i32 = 10;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: `setpriority` takes plain integers and touches no memory of
    // ours; on Linux, `who = 0` with `PRIO_PROCESS` names the calling
    // thread only.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICE) };
    if result != 0 {
        tracing::debug!("could not lower the audit writer's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

impl AuditWriter {
    /// Starts the writer thread. With a `journal`, a batch is durable once
    /// the journal is synced; without one, once the store has flushed.
    pub fn start(
        store: Arc<dyn Store>,
        config: WriterConfig,
        journal: Option<Journal>,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::new(config.queue));
        let stats = Arc::new(WriterStats::default());
        let forgotten = Arc::new(Mutex::new(HashSet::new()));
        let replica = Arc::new(std::sync::OnceLock::new());
        let worker = Worker {
            replica: Arc::clone(&replica),
            journal,
            store,
            queue: Arc::clone(&queue),
            config,
            stats: Arc::clone(&stats),
            forgotten: Arc::clone(&forgotten),
            forgotten_seen: 0,
            newest: HashMap::new(),
        };
        thread::Builder::new()
            .name("ward-audit".into())
            .spawn(move || {
                lower_priority();
                worker.run()
            })?;
        Ok(AuditWriter {
            queue,
            config,
            stats,
            forgotten,
            replica,
        })
    }

    /// Names the replica whose entries these are: on a shared store each
    /// entry it stores carries `"replica"`. Set once, before the first
    /// decision.
    pub fn set_replica(&self, id: &str) {
        let _ = self.replica.set(id.to_string());
    }

    /// Queues a decision entry, `value` being entry `id` as a JSON object
    /// (waiting while the queue is full); in sync mode returns only once
    /// it is durable.
    pub fn append(&self, scope: &str, id: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.send(scope, id, value, self.config.durability == Durability::Sync)
    }

    /// Queues an entry and returns once it is durable, whatever the mode
    /// (for management events).
    pub fn append_durable(&self, scope: &str, id: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.send(scope, id, value, true)
    }

    fn send(&self, scope: &str, id: &str, value: Vec<u8>, wait: bool) -> Result<(), StoreError> {
        let done = wait.then(|| Arc::new(Done::default()));
        self.stats.depth.fetch_add(1, Ordering::Relaxed);
        let item = Item::Entry {
            scope: scope.to_string(),
            id: id.to_string(),
            value,
            done: done.clone(),
        };
        if self.queue.push(item).is_err() {
            return Err(StoreError::Backend(String::from(
                "the audit writer has stopped",
            )));
        }
        if let Some(done) = done {
            done.wait();
        }
        Ok(())
    }

    /// Returns once everything queued before this call is durable.
    pub fn flush(&self) {
        let done = Arc::new(Done::default());
        if self.queue.push(Item::Barrier(Arc::clone(&done))).is_ok() {
            done.wait();
        }
    }

    /// Like [`AuditWriter::flush`], but waits at most `limit`; whether
    /// everything queued before the call is now durable (or set aside).
    pub fn flush_within(&self, limit: Duration) -> bool {
        let done = Arc::new(Done::default());
        match self.queue.push_now(Item::Barrier(Arc::clone(&done))) {
            Ok(()) => done.wait_for(limit),
            Err(_) => false,
        }
    }

    /// Whether the writer keeps up: not retrying a failed batch, and its
    /// queue less than half full. `/readyz` answers not ready otherwise.
    pub fn keeping_up(&self) -> bool {
        !self.stats.failing.load(Ordering::Relaxed)
            && self.stats.depth.load(Ordering::Relaxed) < self.config.queue / 2
    }

    /// Entries for this scope that are still queued are discarded (its
    /// tenant was deleted).
    pub fn forget_scope(&self, scope: &str) {
        self.forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(scope.to_string());
        self.flush();
    }

    /// Measurements.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

struct Worker {
    /// This replica's id, written into each entry on a shared store.
    replica: Arc<std::sync::OnceLock<String>>,
    journal: Option<Journal>,
    store: Arc<dyn Store>,
    queue: Arc<Queue<Item>>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
    forgotten: Arc<Mutex<HashSet<String>>>,
    /// How many forgotten scopes `newest` has been cleared of.
    forgotten_seen: usize,
    /// The newest id stored for each scope written since start.
    newest: HashMap<String, String>,
}

/// Entries of one scope in a batch: id and JSON.
type Entries = Vec<(String, Vec<u8>)>;

impl Worker {
    /// Makes `writes` durable: journal synced then store written (flushed
    /// at checkpoints), or without a journal, store written and flushed.
    fn persist(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let Some(journal) = self.journal.as_mut() else {
            self.store.write_buffered(writes)?;
            return self.store.flush();
        };
        journal
            .append(writes)
            .map_err(|err| StoreError::Backend(format!("audit journal: {err}")))?;
        self.store.write_buffered(writes)?;
        if journal.wants_checkpoint() {
            self.store.flush()?;
            journal
                .truncate()
                .map_err(|err| StoreError::Backend(format!("audit journal: {err}")))?;
        }
        Ok(())
    }

    /// The store writes that add each scope's `entries` (in id order) as
    /// chunks. Entries newer than any stored start new chunks; an entry
    /// that reached the writer after a newer one of its scope was stored
    /// (its caller was slow between taking its id and queueing it) joins
    /// the chunk whose range holds it.
    ///
    /// On a store several replicas share, every entry is a record of its
    /// own, keyed by its id: replicas write a scope's log at once, so no
    /// chunk may span ids another replica writes between, and shipping
    /// an entry twice (from the journal, after a crash) stores it once.
    fn chunks(&mut self, scopes: &HashMap<String, Entries>) -> Result<Vec<Write>, StoreError> {
        let mut writes = Vec::new();
        if self.store.shared() {
            let replica = self.replica.get().map(|id| {
                serde_json::to_vec(&serde_json::json!({ "replica": id })).unwrap_or_default()
            });
            for (scope, entries) in scopes {
                writes.extend(entries.iter().map(|(id, value)| Write::Put {
                    kind: Kind::Audit,
                    key: scoped_key(scope, id),
                    value: with_field(value, replica.as_deref()),
                }));
            }
            return Ok(writes);
        }
        for (scope, entries) in scopes {
            let newest = self.newest_of(scope)?;
            let late = entries.partition_point(|(id, _)| newest.as_ref().is_some_and(|n| id <= n));
            let (late, fresh) = entries.split_at(late);
            writes.extend(chunk::writes(scope, fresh));
            if !late.is_empty() {
                self.merge_late(scope, late, &mut writes)?;
            }
        }
        Ok(writes)
    }

    /// Adds `late` entries of `scope` to the stored chunks whose ranges
    /// hold them; those older than every chunk make one of their own.
    fn merge_late(
        &self,
        scope: &str,
        late: &[(String, Vec<u8>)],
        writes: &mut Vec<Write>,
    ) -> Result<(), StoreError> {
        let prefix = scope_prefix(scope);
        let mut chunks: BTreeMap<String, Vec<AuditEntry>> = BTreeMap::new();
        let mut oldest = Vec::new();
        for (id, value) in late {
            let entry: AuditEntry = match crate::store::decode(value) {
                Ok(entry) => entry,
                Err(err) => {
                    self.set_aside(scope, id, value, &err.to_string());
                    continue;
                }
            };
            let holder =
                self.store
                    .scan_rev(Kind::Audit, &prefix, Some(&scoped_key(scope, id)), 1)?;
            match holder.into_iter().next() {
                Some((key, bytes)) => {
                    if !chunks.contains_key(&key) {
                        match chunk::decode(&bytes) {
                            Ok(held) => {
                                chunks.insert(key.clone(), held);
                            }
                            Err(err) => {
                                // Kept apart rather than lost; the log
                                // around it may list out of order.
                                tracing::error!(%err, key, "an audit chunk cannot be read");
                                chunks.insert(scoped_key(scope, id), vec![entry]);
                                continue;
                            }
                        }
                    }
                    chunks.entry(key).or_default().push(entry);
                }
                None => oldest.push(entry),
            }
        }
        if let Some(first) = oldest.first() {
            chunks.insert(scoped_key(scope, &first.id), oldest);
        }
        for (key, mut entries) in chunks {
            entries.sort_by(|a, b| a.id.cmp(&b.id));
            writes.push(Write::put_json(Kind::Audit, key, &entries)?);
        }
        Ok(())
    }

    /// The newest entry id stored for `scope`, read from the store the
    /// first time the scope is written after start.
    fn newest_of(&mut self, scope: &str) -> Result<Option<String>, StoreError> {
        if let Some(id) = self.newest.get(scope) {
            return Ok(Some(id.clone()));
        }
        let last = self
            .store
            .scan_rev(Kind::Audit, &scope_prefix(scope), None, 1)?;
        let Some((key, bytes)) = last.into_iter().next() else {
            return Ok(None);
        };
        let newest = match chunk::decode(&bytes) {
            Ok(mut entries) => entries.pop().map(|entry| entry.id),
            Err(err) => {
                // Its key is the oldest id in it: a bound good enough to
                // go on writing without losing anything.
                tracing::error!(%err, key, "the newest audit chunk cannot be read");
                key.rsplit('/').next().map(str::to_string)
            }
        };
        if let Some(id) = &newest {
            self.newest.insert(scope.to_string(), id.clone());
        }
        Ok(newest)
    }

    /// Stores a batch. A batch the store refuses is tried again a few
    /// times (a full disk may clear), then entry by entry, so that one
    /// entry that cannot be stored is set aside with its id and the reason
    /// instead of holding back every other one. Only a store that takes
    /// nothing at all, not even a set-aside record, keeps the writer
    /// retrying; `/readyz` says not ready meanwhile.
    fn store_batch(&mut self, scopes: &HashMap<String, Entries>) {
        let mut backoff = Duration::from_millis(10);
        for attempt in 1..=BATCH_ATTEMPTS {
            match self.chunks(scopes).and_then(|writes| self.persist(&writes)) {
                Ok(()) => {
                    self.stats.failing.store(false, Ordering::Relaxed);
                    return;
                }
                Err(err) => {
                    self.stats.failing.store(true, Ordering::Relaxed);
                    tracing::error!(%err, attempt, "cannot write a batch of audit entries");
                    if attempt < BATCH_ATTEMPTS {
                        thread::sleep(backoff);
                        backoff *= 4;
                    }
                }
            }
        }
        for (scope, entries) in scopes {
            for (id, value) in entries {
                self.store_alone(scope, id, value);
            }
        }
        self.stats.failing.store(false, Ordering::Relaxed);
    }

    /// Stores one entry, or sets it aside when the store refuses it; waits
    /// and tries again only while the store refuses even that.
    fn store_alone(&mut self, scope: &str, id: &str, value: &[u8]) {
        let single = HashMap::from([(scope.to_string(), vec![(id.to_string(), value.to_vec())])]);
        let reason = match self
            .chunks(&single)
            .and_then(|writes| self.persist(&writes))
        {
            Ok(()) => return,
            Err(err) => err.to_string(),
        };
        let mut backoff = Duration::from_millis(100);
        while !self.set_aside(scope, id, value, &reason) {
            self.stats.failing.store(true, Ordering::Relaxed);
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Keeps an entry that cannot be stored in the set-aside records, keyed
    /// by its scope and id; whether that worked.
    fn set_aside(&self, scope: &str, id: &str, value: &[u8], reason: &str) -> bool {
        let key = scoped_key(scope, id);
        match set_aside::keep_unstored(self.store.as_ref(), Kind::Audit, &key, value, reason) {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(%err, key, "cannot set an audit entry aside either");
                false
            }
        }
    }

    fn run(mut self) {
        let mut batch = Vec::new();
        while self.queue.wait_and_take(&mut batch) {
            if self.config.durability == Durability::Batched && !has_barrier(&batch) {
                self.collect(&mut batch);
            }
            self.commit(std::mem::take(&mut batch));
        }
    }

    /// Batched mode: gathers entries until the flush interval has passed,
    /// the batch is full or someone waits for it. It polls the queue
    /// rather than waiting on it, so that callers never wake this thread
    /// once per entry (on a busy core that costs a context switch each).
    fn collect(&self, batch: &mut Vec<Item>) {
        let deadline = Instant::now() + self.config.flush_interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if batch.len() >= MAX_BATCH || left.is_zero() || self.queue.is_closed() {
                return;
            }
            std::thread::sleep(left.min(POLL));
            let before = batch.len();
            self.queue.take_all(batch);
            if has_barrier(&batch[before..]) {
                return;
            }
        }
    }

    /// Writes and flushes one batch, retrying until the store takes it.
    fn commit(&mut self, batch: Vec<Item>) {
        let forgotten = self
            .forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if forgotten.len() != self.forgotten_seen {
            self.newest.retain(|scope, _| !forgotten.contains(scope));
            self.forgotten_seen = forgotten.len();
        }
        let mut scopes: HashMap<String, Entries> = HashMap::new();
        let mut waiting = Vec::new();
        let mut entries = 0;
        for item in batch {
            match item {
                Item::Entry {
                    scope,
                    id,
                    value,
                    done,
                } => {
                    entries += 1;
                    if !forgotten.contains(&scope) {
                        scopes.entry(scope).or_default().push((id, value));
                    }
                    waiting.extend(done);
                }
                Item::Barrier(done) => waiting.push(done),
            }
        }
        for list in scopes.values_mut() {
            list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        let started = Instant::now();
        if !scopes.is_empty() {
            self.store_batch(&scopes);
        }
        self.stats
            .flush_us
            .observe(started.elapsed().as_micros() as u64);
        for (scope, list) in scopes {
            if let Some((id, _)) = list.last() {
                let newest = self.newest.entry(scope).or_default();
                if *id > *newest {
                    *newest = id.clone();
                }
            }
        }
        self.stats.depth.fetch_sub(entries, Ordering::Relaxed);
        for done in waiting {
            done.finish();
        }
    }
}

/// `entry` (a JSON object) with the members of `object` (another one,
/// such as `{"replica":"r-…"}`) put first; `entry` as it is without one.
fn with_field(entry: &[u8], object: Option<&[u8]>) -> Vec<u8> {
    let (Some(object), Some(b'{')) = (object, entry.first()) else {
        return entry.to_vec();
    };
    let members = &object[1..object.len().saturating_sub(1)];
    let rest = &entry[1..];
    let mut joined = Vec::with_capacity(entry.len() + object.len());
    joined.push(b'{');
    joined.extend_from_slice(members);
    if rest.first() != Some(&b'}') {
        joined.push(b',');
    }
    joined.extend_from_slice(rest);
    joined
}

/// Whether a caller waits on one of `items` (a flush, or an entry that
/// must be durable, such as a management event): its batch is written at
/// once rather than at the end of the flush interval.
fn has_barrier(items: &[Item]) -> bool {
    items.iter().any(|item| match item {
        Item::Barrier(_) => true,
        Item::Entry { done, .. } => done.is_some(),
    })
}

impl Drop for AuditWriter {
    /// The writer thread writes what is queued, then stops.
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl Drop for Worker {
    /// Should the writer thread ever panic, callers get an error instead
    /// of waiting on its full queue for ever.
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests {
    use super::with_field;

    #[test]
    fn a_field_joins_an_entry_first() {
        let field = Some(&br#"{"replica":"r-1"}"#[..]);
        assert_eq!(
            with_field(br#"{"id":"x"}"#, field),
            br#"{"replica":"r-1","id":"x"}"#
        );
        assert_eq!(with_field(b"{}", field), br#"{"replica":"r-1"}"#);
        assert_eq!(with_field(br#"{"id":"x"}"#, None), br#"{"id":"x"}"#);
        assert_eq!(with_field(b"[1]", field), b"[1]");
    }
}
