//! Compiled policies kept in memory. A host with many tenants keeps at
//! most `capacity` of them resident; the others are reloaded from the
//! on-disk cache (no recompilation) when next needed.
//!
//! Eviction is CLOCK (second chance): a use only sets a flag on the policy
//! (no lock, and no write when it is already set), and the ring is walked
//! only when a policy is added past capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::LoadedPolicy;

/// Whether a policy was used since the clock hand last passed it.
#[derive(Debug, Default)]
pub(crate) struct UseFlag(AtomicBool);

impl UseFlag {
    pub(crate) fn touch(&self) {
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

pub(super) struct Resident {
    capacity: usize,
    by_hash: HashMap<String, Arc<LoadedPolicy>>,
    ring: VecDeque<String>,
    pub(super) evictions: u64,
}

impl Resident {
    pub(super) fn new(capacity: usize) -> Self {
        Resident {
            capacity: capacity.max(1),
            by_hash: HashMap::new(),
            ring: VecDeque::new(),
            evictions: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub(super) fn get(&self, sha256: &str) -> Option<Arc<LoadedPolicy>> {
        let policy = self.by_hash.get(sha256)?;
        policy.used.touch();
        Some(Arc::clone(policy))
    }

    /// Keeps `policy`, evicting the least recently used ones past capacity.
    pub(super) fn insert(&mut self, policy: &Arc<LoadedPolicy>) {
        if self.by_hash.contains_key(&policy.sha256) {
            return;
        }
        policy.used.touch();
        self.by_hash
            .insert(policy.sha256.clone(), Arc::clone(policy));
        self.ring.push_back(policy.sha256.clone());
        while self.by_hash.len() > self.capacity {
            self.evict_one();
        }
    }

    fn evict_one(&mut self) {
        // Two turns at most: the first clears every flag.
        for _ in 0..self.ring.len() * 2 + 1 {
            let Some(sha256) = self.ring.pop_front() else {
                return;
            };
            let Some(policy) = self.by_hash.get(&sha256) else {
                continue;
            };
            if policy.used.take() {
                self.ring.push_back(sha256);
            } else {
                self.by_hash.remove(&sha256);
                self.evictions += 1;
                return;
            }
        }
    }

    pub(super) fn remove(&mut self, sha256: &str) {
        if self.by_hash.remove(sha256).is_some() {
            self.ring.retain(|s| s != sha256);
        }
    }
}
