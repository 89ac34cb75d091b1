//! Who may compile now: the places of first compiles, shared fairly
//! between the scopes that upload modules, and one compile per module
//! however many callers need it at once.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The niceness of compiler threads: a decision thread (niceness 0) gets
/// about nine tenths of a core they share.
pub(super) const COMPILE_NICENESS: i32 = 10;

/// Lowers the calling thread's priority to [`COMPILE_NICENESS`]. On Linux
/// the priority is the thread's own, and the compiler's worker threads
/// inherit it when this thread is the first to start them.
pub(super) fn lower_priority() {
    let _ = rustix::process::setpriority_process(None, COMPILE_NICENESS);
}

/// The places of first compiles, per scope and in all.
#[derive(Default)]
pub(super) struct Places {
    taken: Mutex<PlacesTaken>,
}

#[derive(Default)]
struct PlacesTaken {
    all: usize,
    by_owner: HashMap<String, usize>,
}

impl Places {
    /// A place for `owner`, unless `max` are taken or `owner` holds all
    /// it may (`max - 1`, at least one).
    pub(super) fn take(self: &Arc<Self>, owner: &str, max: usize) -> Option<Place> {
        let mut taken = lock(&self.taken);
        let own = taken.by_owner.get(owner).copied().unwrap_or(0);
        if taken.all >= max || own >= max.saturating_sub(1).max(1) {
            return None;
        }
        taken.all += 1;
        *taken.by_owner.entry(owner.to_string()).or_default() += 1;
        Some(Place {
            places: Arc::clone(self),
            owner: owner.to_string(),
        })
    }

    /// First compiles running now (abandoned ones included).
    pub(super) fn taken(&self) -> usize {
        lock(&self.taken).all
    }
}

/// A place among `max_concurrent_compiles`, held by a compiler thread
/// and freed when dropped.
pub(super) struct Place {
    places: Arc<Places>,
    owner: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut taken = lock(&self.places.taken);
        taken.all -= 1;
        if let Some(own) = taken.by_owner.get_mut(&self.owner) {
            *own -= 1;
            if *own == 0 {
                taken.by_owner.remove(&self.owner);
            }
        }
    }
}

/// Compiles in flight by module hash: a caller that needs a module
/// another is compiling waits for that compile instead of starting its
/// own (a decision, while the module is compiled ahead of it).
pub(super) struct Flights<T> {
    flying: Mutex<HashMap<String, Arc<Flight<T>>>>,
}

struct Flight<T> {
    state: Mutex<Landing<T>>,
    wake: Condvar,
}

enum Landing<T> {
    Flying,
    Landed(T),
    /// The work panicked: each waiter does its own.
    Lost,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            flying: Mutex::default(),
        }
    }
}

/// Takes a flight off the board when its work ends, landed or not, and
/// wakes its waiters.
struct Board<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
    flight: Arc<Flight<T>>,
}

impl<T> Drop for Board<'_, T> {
    fn drop(&mut self) {
        lock(&self.flights.flying).remove(self.key);
        let mut state = lock(&self.flight.state);
        if matches!(*state, Landing::Flying) {
            *state = Landing::Lost;
        }
        drop(state);
        self.flight.wake.notify_all();
    }
}

impl<T: Clone> Flights<T> {
    /// `work`'s result for `key`, or the result of the same work already
    /// under way for it.
    pub(super) fn once(&self, key: &str, work: impl FnOnce() -> T) -> T {
        let mut flying = lock(&self.flying);
        if let Some(flight) = flying.get(key).cloned() {
            drop(flying);
            let mut state = lock(&flight.state);
            loop {
                match &*state {
                    Landing::Landed(result) => return result.clone(),
                    Landing::Lost => {
                        drop(state);
                        return work();
                    }
                    Landing::Flying => {
                        state = flight
                            .wake
                            .wait(state)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                }
            }
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(Landing::Flying),
            wake: Condvar::new(),
        });
        flying.insert(key.to_string(), Arc::clone(&flight));
        drop(flying);
        let board = Board {
            flights: self,
            key,
            flight,
        };
        let result = work();
        *lock(&board.flight.state) = Landing::Landed(result.clone());
        result
    }
}

/// `mutex`'s guard, poisoned or not: what it guards stays consistent.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scope_leaves_a_place_for_another() {
        let places = Arc::new(Places::default());
        let first = places.take("a", 2).unwrap();
        assert!(places.take("a", 2).is_none(), "a holds all it may");
        let other = places.take("b", 2).unwrap();
        assert!(places.take("c", 2).is_none(), "all places are taken");
        drop(first);
        assert!(places.take("a", 2).is_some());
        drop(other);
        // With one place in all, a scope may still take it.
        let places = Arc::new(Places::default());
        let only = places.take("a", 1).unwrap();
        assert!(places.take("b", 1).is_none());
        drop(only);
        assert_eq!(places.taken(), 0);
    }

    #[test]
    fn callers_of_the_same_work_share_one_run() {
        let flights = Arc::new(Flights::<usize>::default());
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (started, go) = std::sync::mpsc::channel();
        let first = {
            let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
            std::thread::spawn(move || {
                flights.once("m", || {
                    started.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 7
                })
            })
        };
        go.recv().unwrap();
        let second = flights.once("m", || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 100
        });
        assert_eq!((first.join().unwrap(), second), (7, 7));
        // Once landed, the next call runs again.
        assert_eq!(flights.once("m", || 9), 9);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Work that panics leaves its waiters to do their own.
        let (started, go) = std::sync::mpsc::channel();
        let crashing = {
            let flights = Arc::clone(&flights);
            std::thread::spawn(move || {
                flights.once("m", || {
                    started.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    panic!("the compiler broke");
                })
            })
        };
        go.recv().unwrap();
        assert_eq!(flights.once("m", || 11), 11);
        assert!(crashing.join().is_err());
        assert_eq!(flights.once("m", || 12), 12);
    }
}
