//! Instances made ahead of their decisions, and stores dropped after them,
//! on a background thread (`ward-warm`).
//!
//! Every decision still runs on an instance of its own that no decision
//! used before. What moves off the decision's path is the making of that
//! instance (a new store, WASI context and instantiation) and the dropping
//! of it afterwards (returning the pool slot, which resets the pages the
//! guest dirtied). Both are work the decision would otherwise wait for.
//!
//! A ready instance is made for one tenant, one module (by sha256) and one
//! set of limits, and is handed only to a decision with all three equal.
//! It holds nothing of a request until it is taken: the tenant's data view
//! is attached at that moment, and fuel and deadline are set afresh.
//!
//! Bounds: at most `capacity` ready instances in all, rounded up to a
//! multiple of [`SHARDS`] (the set is split into shards so that tenants
//! do not share one lock), at most [`DEPTH`] per key, and at most
//! `capacity` stores waiting to be dropped. Past those
//! the caller makes or drops its own instance, as it would without this.
//! A key that is not being used loses its instances to keys that are, but
//! only after [`STALE`], so that a stream of decisions over more tenants
//! than fit cannot make the thread build instances nobody takes.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use wasmtime::component::{ComponentExportIndex, Instance};
use wasmtime::{Engine, Store};

use super::LoadedPolicy;
use super::bindings::ward::policy::types::Tenant;
use super::host::{CapturedOutput, DataLookup, LogSink, NoData, StoreState};
use super::limits::{Limiter, SandboxLimits};
use super::load::Linked;

/// Lock shards of the ready set.
const SHARDS: usize = 16;
/// Ready instances kept per tenant, module and limits.
pub(super) const DEPTH: usize = 2;
/// How long a ready instance is safe from being replaced by another key's.
const STALE: Duration = Duration::from_millis(50);

/// Pool slots (component instances) the ready set and the stores waiting
/// to be dropped may hold at once with `capacity`, on top of the
/// decisions running: the engine's pool is made that much larger.
pub(super) fn pool_slots(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    // The ready set, the stores queued for dropping, and the one being made.
    capacity.div_ceil(SHARDS) * SHARDS + capacity + 1
}

/// A store with its instance, ready for one evaluation.
pub(super) struct Ready {
    pub(super) store: Store<StoreState>,
    pub(super) instance: Instance,
    /// `evaluate` in the component the instance was made from (modules
    /// of equal sha256 loaded apart are distinct components).
    pub(super) evaluate: ComponentExportIndex,
    pub(super) stdio: CapturedOutput,
}

/// What a ready instance was made for.
#[derive(PartialEq, Eq)]
struct Key {
    sha256: String,
    tenant: String,
    limits: SandboxLimits,
}

/// What the thread needs to make a store: shared with the inline path so
/// that both make exactly the same store.
#[derive(Clone)]
pub(super) struct StoreRecipe {
    pub(super) engine: Engine,
    pub(super) max_log_bytes: usize,
    /// The engine's epoch tick, to turn a deadline in ticks into a time.
    pub(super) epoch_tick: Duration,
}

impl StoreRecipe {
    /// A new store for one evaluation of `sha256` for tenant `slug` under
    /// `limits`, reading `data`; fuel and deadline are set by [`arm`].
    pub(super) fn store(
        &self,
        sha256: &str,
        slug: &str,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
    ) -> (Store<StoreState>, CapturedOutput) {
        let stdio = CapturedOutput::new(self.max_log_bytes);
        let log = LogSink::new(
            slug.to_string(),
            sha256.get(..12).unwrap_or_default().to_string(),
            self.max_log_bytes,
        );
        let state = StoreState::new(Limiter::new(limits), data, log, &stdio);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        (store, stdio)
    }
}

/// Sets a store's budgets for one evaluation: fuel, `deadline` epoch ticks
/// (of `tick`) from now, and the host-call byte budget.
pub(super) fn arm(
    store: &mut Store<StoreState>,
    limits: &SandboxLimits,
    deadline: u64,
    tick: Duration,
) {
    let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
    store.set_epoch_deadline(deadline);
    store.data_mut().wait_until = u32::try_from(deadline)
        .ok()
        .and_then(|ticks| tick.checked_mul(ticks))
        .and_then(|wait| Instant::now().checked_add(wait));
    store.set_hostcall_fuel(usize::try_from(limits.hostcall_bytes).unwrap_or(usize::MAX));
}

/// Make a ready instance for `key`.
struct Fill {
    key: Key,
    slug: String,
    linked: Arc<Linked>,
    deadline: u64,
}

enum Job {
    Fill(Box<Fill>),
    Drop(Store<StoreState>),
    /// Drops what fills queued before it made for a forgotten module.
    Forget(String),
}

struct Slot {
    key: Key,
    made: Instant,
    ready: Ready,
}

struct Shared {
    shards: Vec<Mutex<VecDeque<Slot>>>,
    per_shard: usize,
    /// Jobs sent and not yet done (fills and drops).
    queued: AtomicUsize,
    /// Set by the thread just before it parks.
    sleeping: AtomicBool,
    /// Evaluations that ran on an instance made ahead.
    taken: AtomicU64,
    hasher: RandomState,
    no_data: Arc<dyn DataLookup>,
}

impl Shared {
    fn forget(&self, sha256: &str) {
        for shard in &self.shards {
            let forgotten: VecDeque<Slot> = {
                let mut slots = lock(shard);
                let (gone, kept) = slots.drain(..).partition(|slot| slot.key.sha256 == sha256);
                *slots = kept;
                gone
            };
            drop(forgotten);
        }
    }

    fn shard(&self, sha256: &str, tenant: &str) -> &Mutex<VecDeque<Slot>> {
        let mut hasher = self.hasher.build_hasher();
        sha256.hash(&mut hasher);
        tenant.hash(&mut hasher);
        let index = (hasher.finish() % SHARDS as u64) as usize;
        &self.shards[index]
    }
}

fn lock(shard: &Mutex<VecDeque<Slot>>) -> std::sync::MutexGuard<'_, VecDeque<Slot>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The ready set and its thread. With a capacity of 0 it does nothing and
/// every decision makes and drops its own instance.
pub(super) struct Warm {
    shared: Arc<Shared>,
    capacity: usize,
    jobs: Option<Sender<Job>>,
    thread: Option<Thread>,
}

impl Warm {
    pub(super) fn start(recipe: StoreRecipe, capacity: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Mutex::new(VecDeque::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            queued: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            hasher: RandomState::new(),
            no_data: Arc::new(NoData),
        });
        if capacity == 0 {
            return Ok(Warm {
                shared,
                capacity,
                jobs: None,
                thread: None,
            });
        }
        let (sender, receiver) = mpsc::channel();
        let worker = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("ward-warm".into())
            .spawn(move || work(&worker, &recipe, &receiver))?;
        Ok(Warm {
            shared,
            capacity,
            jobs: Some(sender),
            thread: Some(handle.thread().clone()),
        })
    }

    /// A ready instance of `policy` for `tenant` under `limits`, with
    /// `data` attached, and a request to make the next one. `None` when
    /// there is none: the caller makes its own.
    pub(super) fn take(
        &self,
        policy: &LoadedPolicy,
        tenant: &Tenant,
        limits: &SandboxLimits,
        data: Arc<dyn DataLookup>,
        deadline: u64,
    ) -> Option<Ready> {
        self.jobs.as_ref()?;
        let taken = {
            let mut slots = lock(self.shared.shard(&policy.sha256, &tenant.id));
            let found = slots.iter().position(|slot| {
                slot.key.sha256 == policy.sha256
                    && slot.key.tenant == tenant.id
                    && slot.key.limits == *limits
            });
            found.and_then(|index| slots.remove(index))
        };
        // With no room in the queue the next decision makes its own.
        let _ = self.send(Job::Fill(Box::new(Fill {
            key: Key {
                sha256: policy.sha256.clone(),
                tenant: tenant.id.clone(),
                limits: limits.clone(),
            },
            slug: tenant.slug.clone(),
            linked: policy.linked.load_full(),
            deadline,
        })));
        let mut ready = taken?.ready;
        self.shared.taken.fetch_add(1, Ordering::Relaxed);
        ready.store.data_mut().data = data;
        Some(ready)
    }

    /// Drops `store` on the thread, or here when the thread is behind.
    pub(super) fn retire(&self, store: Store<StoreState>) {
        if let Err(Job::Drop(store)) = self.send(Job::Drop(store)) {
            drop(store);
        }
    }

    /// Drops every ready instance of module `sha256`, now and, through
    /// the queue, those that fills already queued make.
    pub(super) fn forget(&self, sha256: &str) {
        self.shared.forget(sha256);
        if let Some(jobs) = &self.jobs {
            // Past the queue's bound: forgetting is rare and must not be lost.
            self.shared.queued.fetch_add(1, Ordering::SeqCst);
            if jobs.send(Job::Forget(sha256.to_string())).is_err() {
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            } else {
                self.wake();
            }
        }
    }

    /// Ready instances now, and evaluations so far that ran on one.
    pub(super) fn counts(&self) -> (usize, u64) {
        let ready = self
            .shared
            .shards
            .iter()
            .map(|shard| lock(shard).len())
            .sum();
        (ready, self.shared.taken.load(Ordering::Relaxed))
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        let Some(jobs) = &self.jobs else {
            return Err(job);
        };
        // Reserve a place atomically: stores queued for dropping hold pool
        // slots, and the pool was sized for at most `capacity` of them.
        let capacity = self.capacity;
        let reserved =
            self.shared
                .queued
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |queued| {
                    (queued < capacity).then_some(queued + 1)
                });
        if reserved.is_err() {
            return Err(job);
        }
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(job);
        }
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if self.shared.sleeping.swap(false, Ordering::SeqCst)
            && let Some(thread) = &self.thread
        {
            thread.unpark();
        }
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has drained it.
        self.jobs = None;
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

fn work(shared: &Shared, recipe: &StoreRecipe, jobs: &Receiver<Job>) {
    loop {
        match jobs.try_recv() {
            Ok(job) => {
                run(shared, recipe, job);
                shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                shared.sleeping.store(true, Ordering::SeqCst);
                // A job sent between the check above and this one has
                // cleared `sleeping` and unparked us, or is seen here.
                match jobs.try_recv() {
                    Ok(job) => {
                        shared.sleeping.store(false, Ordering::SeqCst);
                        run(shared, recipe, job);
                        shared.queued.fetch_sub(1, Ordering::SeqCst);
                    }
                    Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => thread::park(),
                }
            }
        }
    }
}

fn run(shared: &Shared, recipe: &StoreRecipe, job: Job) {
    match job {
        Job::Drop(store) => drop(store),
        Job::Forget(sha256) => shared.forget(&sha256),
        Job::Fill(job) => fill(shared, recipe, *job),
    }
}

/// Makes one ready instance for `key` if the key is short of [`DEPTH`] and
/// there is room, or a stale slot of another key to give up.
fn fill(shared: &Shared, recipe: &StoreRecipe, job: Fill) {
    let Fill {
        key,
        slug,
        linked,
        deadline,
    } = job;
    let shard = shared.shard(&key.sha256, &key.tenant);
    {
        let slots = lock(shard);
        let have = slots.iter().filter(|slot| slot.key == key).count();
        let full = slots.len() >= shared.per_shard;
        let stale = slots
            .front()
            .is_some_and(|slot| slot.made.elapsed() >= STALE);
        if have >= DEPTH || (full && !stale) {
            return;
        }
    }
    let (mut store, stdio) =
        recipe.store(&key.sha256, &slug, &key.limits, Arc::clone(&shared.no_data));
    arm(&mut store, &key.limits, deadline, recipe.epoch_tick);
    // A policy that cannot be instantiated is left to the decision, which
    // reports why.
    let Ok(instance) = linked.pre.instance_pre().instantiate(&mut store) else {
        return;
    };
    let slot = Slot {
        key,
        made: Instant::now(),
        ready: Ready {
            store,
            instance,
            evaluate: linked.evaluate,
            stdio,
        },
    };
    let evicted = {
        let mut slots = lock(shard);
        slots.push_back(slot);
        if slots.len() > shared.per_shard {
            slots.pop_front()
        } else {
            None
        }
    };
    drop(evicted);
}
