//! The background optimisation of modules that were compiled quickly
//! first, shared fairly between the scopes that upload them.
//!
//! Compiling a large module takes a core for tens of seconds, so one
//! tenant uploading several must not keep every other tenant's upload
//! waiting (see [`places`](super::places) for the first compiles). The
//! optimised compile that follows a quick one holds no place. It waits in
//! a queue of its scope, and one background thread takes the scopes'
//! queues in turn, one module each, so a scope's backlog delays another
//! scope's optimisation by at most one module. Each scope's queued bytes,
//! and all of them together, are bounded: past that an upload that would
//! need optimising is refused as busy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::Stats;
use super::cache::ArtifactCache;
use super::host::StoreState;
use super::load::{LoadedPolicy, link};
use super::places::lock;

/// A module waiting for its optimised compile.
struct Job {
    sha256: String,
    bytes: Vec<u8>,
    /// The policy running its quick code; gone when nothing uses it.
    policy: Weak<LoadedPolicy>,
}

#[derive(Default)]
struct Queues {
    by_owner: HashMap<String, OwnerQueue>,
    /// Owners with jobs, in the order they are served.
    turn: VecDeque<String>,
    queued_bytes: usize,
    /// Whether the thread is compiling a job now.
    running: bool,
    closed: bool,
}

#[derive(Default)]
struct OwnerQueue {
    jobs: VecDeque<Job>,
    bytes: usize,
}

impl Queues {
    /// The next job, taking owners in turn.
    fn next(&mut self) -> Option<Job> {
        let owner = self.turn.pop_front()?;
        let queue = self.by_owner.get_mut(&owner)?;
        let job = queue.jobs.pop_front()?;
        queue.bytes -= job.bytes.len();
        self.queued_bytes -= job.bytes.len();
        if queue.jobs.is_empty() {
            self.by_owner.remove(&owner);
        } else {
            self.turn.push_back(owner);
        }
        Some(job)
    }

    /// Queues `job` behind `owner`'s others.
    fn push(&mut self, owner: &str, job: Job) {
        let size = job.bytes.len();
        let queue = self.by_owner.entry(owner.to_string()).or_default();
        queue.bytes += size;
        queue.jobs.push_back(job);
        if queue.jobs.len() == 1 {
            self.turn.push_back(owner.to_string());
        }
        self.queued_bytes += size;
    }

    /// Drops `owner`'s jobs whose policy is gone.
    fn forget_unused(&mut self, owner: &str) {
        let Some(queue) = self.by_owner.get_mut(owner) else {
            return;
        };
        let before = queue.bytes;
        queue.jobs.retain(|job| job.policy.strong_count() > 0);
        queue.bytes = queue.jobs.iter().map(|job| job.bytes.len()).sum();
        self.queued_bytes -= before - queue.bytes;
        if queue.jobs.is_empty() {
            self.by_owner.remove(owner);
            self.turn.retain(|turn| turn != owner);
        }
    }
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
}

/// What the optimiser thread compiles with.
pub(super) struct Tools {
    pub engine: Engine,
    pub linker: Linker<StoreState>,
    pub cache: Option<Arc<ArtifactCache>>,
    pub stats: Arc<Stats>,
}

/// The background optimiser: one thread, the scopes' queues in turn.
pub(super) struct Optimiser {
    shared: Arc<Shared>,
    max_owner_bytes: usize,
    max_bytes: usize,
}

impl Optimiser {
    /// Starts the thread. At most `max_owner_bytes` of modules wait per
    /// scope and `max_bytes` in all.
    pub(super) fn start(
        tools: Tools,
        max_owner_bytes: usize,
        max_bytes: usize,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queues: Mutex::default(),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        thread::Builder::new()
            .name("ward-optimise".into())
            .spawn(move || {
                super::places::lower_priority();
                while let Some(job) = worker.wait_for_job() {
                    optimise(&tools, &job);
                    lock(&worker.queues).running = false;
                    if let Some(policy) = job.policy.upgrade()
                        && policy.is_optimised()
                    {
                        tools.stats.optimised.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(Optimiser {
            shared,
            max_owner_bytes,
            max_bytes,
        })
    }

    /// Whether `owner` may queue a module of `size` bytes.
    pub(super) fn has_room(&self, owner: &str, size: usize) -> bool {
        let mut queues = lock(&self.shared.queues);
        queues.forget_unused(owner);
        let own = queues.by_owner.get(owner).map_or(0, |queue| queue.bytes);
        own + size <= self.max_owner_bytes && queues.queued_bytes + size <= self.max_bytes
    }

    /// Queues `policy`'s optimised compile for `owner`.
    pub(super) fn queue(
        &self,
        owner: &str,
        sha256: &str,
        bytes: &[u8],
        policy: Weak<LoadedPolicy>,
    ) {
        let job = Job {
            sha256: sha256.to_string(),
            bytes: bytes.to_vec(),
            policy,
        };
        lock(&self.shared.queues).push(owner, job);
        self.shared.wake.notify_one();
    }

    /// Optimised compiles waiting or running.
    pub(super) fn pending(&self) -> usize {
        let queues = lock(&self.shared.queues);
        queues
            .by_owner
            .values()
            .map(|queue| queue.jobs.len())
            .sum::<usize>()
            + usize::from(queues.running)
    }
}

impl Drop for Optimiser {
    fn drop(&mut self) {
        lock(&self.shared.queues).closed = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    /// The next job whose policy is still used, marked running; `None`
    /// once the optimiser is dropped.
    fn wait_for_job(&self) -> Option<Job> {
        let mut queues = lock(&self.queues);
        loop {
            if queues.closed {
                return None;
            }
            match queues.next() {
                Some(job) if job.policy.strong_count() > 0 => {
                    queues.running = true;
                    return Some(job);
                }
                Some(_) => {}
                None => {
                    queues = self
                        .wake
                        .wait(queues)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }
}

/// Compiles `job`'s module optimised, keeps the code in the cache, and
/// swaps it into the policy. Should it fail, the quick code stays and the
/// next process compiles the module again.
fn optimise(tools: &Tools, job: &Job) {
    let sha256 = &job.sha256;
    let linked = Component::new(&tools.engine, &job.bytes)
        .map_err(|err| format!("{err:#}"))
        .and_then(|component| {
            if let Some(cache) = &tools.cache {
                cache.put(sha256, &component);
            }
            link(&tools.engine, &tools.linker, &component).map_err(|err| err.to_string())
        });
    match linked {
        Ok(linked) => {
            if let Some(policy) = job.policy.upgrade() {
                policy.swap_in_optimised(linked);
            }
        }
        Err(err) => {
            tracing::warn!(sha256, %err, "optimising a policy failed; it keeps its quick code");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_served_in_turn() {
        let mut queues = Queues::default();
        for (owner, sha) in [
            ("a", "a1"),
            ("a", "a2"),
            ("a", "a3"),
            ("b", "b1"),
            ("c", "c1"),
        ] {
            let job = Job {
                sha256: sha.to_string(),
                bytes: vec![0; 10],
                policy: Weak::new(),
            };
            queues.push(owner, job);
        }
        let order: Vec<String> = std::iter::from_fn(|| queues.next())
            .map(|job| job.sha256)
            .collect();
        assert_eq!(order, ["a1", "b1", "c1", "a2", "a3"]);
        assert_eq!(queues.queued_bytes, 0);
        assert!(queues.by_owner.is_empty() && queues.turn.is_empty());
    }
}
