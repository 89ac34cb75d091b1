//! The evaluation pool: the threads that run decisions which do not finish
//! within their inline slice (or every decision, with
//! `http.inline_decisions = false`), shared by all tenants in turn.
//!
//! - One thread per core by default (`http.evaluation_threads`): a tenant
//!   with a slow policy and many connections keeps at most these busy,
//!   instead of one thread per waiting decision all taking the CPU at once.
//! - Tenants take turns: each tenant with work waiting has one place in a
//!   ring, and a free thread runs the next decision of the tenant at the
//!   front, which then goes to the back. A tenant with a thousand decisions
//!   queued delays another's next decision by at most one decision per
//!   thread, not by its whole queue.
//! - A job is one decision: a batch runs item by item, each item taking
//!   its tenant's turn again ([`Step::Again`]).
//! - The threads run at the async workers' priority. Below it (nice 10
//!   was tried), a flood of cheap inline decisions from one tenant left
//!   them so little of the CPU that another tenant's slow decisions ran
//!   past their (wall-clock) `timeout_ms`; at the same priority a long
//!   guest holds at most one core per thread, and the kernel still runs
//!   a waking worker promptly beside it (docs/PERFORMANCE.md).
//!
//! Each decision still runs on a fresh instance with its tenant's full
//! `timeout_ms` from the moment it starts; waiting in the queue does not
//! count against it.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;

/// One decision's work, for one tenant.
pub type Job = Box<dyn FnOnce() -> Step + Send>;

/// What a job asks for when its step is done.
pub enum Step {
    /// Finished.
    Done,
    /// More to do (the next item of a batch): queued again at the front
    /// of its tenant's queue, and run at the tenant's next turn.
    Again(Job),
}

/// Most evaluation threads `http.evaluation_threads` may ask for.
pub const MAX_EVALUATION_THREADS: usize = 1024;

/// The host-wide pool of evaluation threads.
pub struct EvaluationPool {
    shared: Arc<Shared>,
    threads: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The server's runtime, entered while a job runs: a guest's WASI
    /// clock waits register their timers with it (without it, wasmtime-wasi
    /// would start a runtime of its own).
    runtime: OnceLock<tokio::runtime::Handle>,
}

#[derive(Default)]
struct Queue {
    /// Waiting jobs by tenant.
    jobs: HashMap<String, VecDeque<Job>>,
    /// Tenants with waiting jobs, each once, in the order of their turns.
    ring: VecDeque<String>,
    stopping: bool,
}

impl Queue {
    fn push(&mut self, tenant: &str, job: Job, front: bool) {
        let queued = self.jobs.entry(tenant.to_string()).or_default();
        if queued.is_empty() {
            self.ring.push_back(tenant.to_string());
        }
        if front {
            queued.push_front(job);
        } else {
            queued.push_back(job);
        }
    }

    /// The next job: the front tenant's first, that tenant to the back.
    fn pop(&mut self) -> Option<(String, Job)> {
        let tenant = self.ring.pop_front()?;
        let queued = self.jobs.get_mut(&tenant)?;
        let job = queued.pop_front()?;
        if queued.is_empty() {
            self.jobs.remove(&tenant);
        } else {
            self.ring.push_back(tenant.clone());
        }
        Some((tenant, job))
    }
}

impl EvaluationPool {
    /// Starts `threads` evaluation threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let threads = threads.clamp(1, MAX_EVALUATION_THREADS);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            runtime: OnceLock::new(),
        });
        for index in 0..threads {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("ward-eval-{index}"))
                .spawn(move || work(&shared))?;
        }
        Ok(EvaluationPool { shared, threads })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The default size: one thread per core this process may use.
    pub fn default_threads() -> usize {
        thread::available_parallelism().map_or(1, |cores| cores.get())
    }

    /// Runs the jobs within `runtime` (the server's) from now on.
    pub fn attach(&self, runtime: tokio::runtime::Handle) {
        let _ = self.shared.runtime.set(runtime);
    }

    /// Queues `job` for `tenant`; it runs at the tenant's turn.
    pub fn submit(&self, tenant: &str, job: Job) {
        self.shared.lock().push(tenant, job, false);
        self.shared.ready.notify_one();
    }

    /// Decisions waiting for a thread, across all tenants.
    pub fn waiting(&self) -> usize {
        self.shared.lock().jobs.values().map(VecDeque::len).sum()
    }
}

impl Drop for EvaluationPool {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.ready.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One thread: runs jobs until the pool is dropped and nothing waits.
fn work(shared: &Shared) {
    let mut queue = shared.lock();
    loop {
        let Some((tenant, job)) = queue.pop() else {
            if queue.stopping {
                return;
            }
            queue = shared
                .ready
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        drop(queue);
        let entered = shared.runtime.get().map(tokio::runtime::Handle::enter);
        // A job that panics has dropped its answer channel (its caller
        // answers 500); the thread goes on with the others.
        let step = catch_unwind(AssertUnwindSafe(job)).unwrap_or(Step::Done);
        drop(entered);
        queue = shared.lock();
        if let Step::Again(next) = step {
            queue.push(&tenant, next, true);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::mpsc;

    use super::*;

    /// A job that records `name` (after waiting for `gate`, if given).
    fn record(
        order: &Arc<Mutex<Vec<String>>>,
        done: &mpsc::Sender<()>,
        name: &str,
        gate: Option<mpsc::Receiver<()>>,
    ) -> Job {
        let (order, done, name) = (Arc::clone(order), done.clone(), name.to_string());
        Box::new(move || {
            if let Some(gate) = gate {
                gate.recv().unwrap();
            }
            order.lock().unwrap().push(name);
            done.send(()).unwrap();
            Step::Done
        })
    }

    /// A job that records `name-1` .. `name-n`, one per turn, like a batch.
    fn batch(order: &Arc<Mutex<Vec<String>>>, done: &mpsc::Sender<()>, name: &str, n: u32) -> Job {
        fn step(
            order: Arc<Mutex<Vec<String>>>,
            done: mpsc::Sender<()>,
            name: String,
            at: u32,
            n: u32,
        ) -> Step {
            order.lock().unwrap().push(format!("{name}-{at}"));
            done.send(()).unwrap();
            if at == n {
                return Step::Done;
            }
            Step::Again(Box::new(move || step(order, done, name, at + 1, n)))
        }
        let (order, done, name) = (Arc::clone(order), done.clone(), name.to_string());
        Box::new(move || step(order, done, name, 1, n))
    }

    /// Holds the pool's only thread until the returned sender is used, so
    /// that what is submitted meanwhile queues.
    fn occupy(
        pool: &EvaluationPool,
        order: &Arc<Mutex<Vec<String>>>,
        done: &mpsc::Sender<()>,
        tenant: &str,
    ) -> mpsc::Sender<()> {
        let (open, gate) = mpsc::channel();
        let (started_tx, started) = mpsc::channel();
        let job = record(order, done, &format!("{tenant}-running"), Some(gate));
        pool.submit(
            tenant,
            Box::new(move || {
                started_tx.send(()).unwrap();
                job()
            }),
        );
        started.recv().unwrap();
        open
    }

    #[test]
    fn tenants_take_turns_whatever_the_queue_of_one() {
        let pool = EvaluationPool::start(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = mpsc::channel();
        let open = occupy(&pool, &order, &done, "a");
        for i in 1..=4 {
            pool.submit("a", record(&order, &done, &format!("a{i}"), None));
        }
        pool.submit("b", record(&order, &done, "b1", None));
        pool.submit("b", record(&order, &done, "b2", None));
        pool.submit("c", record(&order, &done, "c1", None));
        assert_eq!(pool.waiting(), 7);
        open.send(()).unwrap();
        for _ in 0..8 {
            finished.recv().unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["a-running", "a1", "b1", "c1", "a2", "b2", "a3", "a4"],
            "b's and c's first decisions come before a's later ones"
        );
        assert_eq!(pool.waiting(), 0);
    }

    #[test]
    fn a_batch_takes_one_turn_per_item() {
        let pool = EvaluationPool::start(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = mpsc::channel();
        let open = occupy(&pool, &order, &done, "a");
        pool.submit("a", batch(&order, &done, "batch", 3));
        pool.submit("b", record(&order, &done, "b1", None));
        pool.submit("b", record(&order, &done, "b2", None));
        pool.submit("a", record(&order, &done, "a-after", None));
        open.send(()).unwrap();
        for _ in 0..7 {
            finished.recv().unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [
                "a-running",
                "batch-1",
                "b1",
                "batch-2",
                "b2",
                "batch-3",
                "a-after"
            ],
            "a batch's items alternate with another tenant's decisions, and finish before its own tenant's later calls"
        );
    }

    #[test]
    fn a_panicking_job_does_not_stop_its_thread() {
        let pool = EvaluationPool::start(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = mpsc::channel();
        pool.submit("a", Box::new(|| -> Step { panic!("a job that panics") }));
        pool.submit("a", record(&order, &done, "after", None));
        finished.recv().unwrap();
        assert_eq!(*order.lock().unwrap(), ["after"]);
    }
}
