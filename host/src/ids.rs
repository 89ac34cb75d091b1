//! Identifiers: ULIDs that increase strictly within this process, so that
//! entries written in the same millisecond still sort in the order they
//! happened (the audit log relies on it for newest-first paging).

use std::sync::{Mutex, PoisonError};

use ulid::{Generator, Ulid};

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// The next ULID, greater than every one this process made before.
pub fn next_ulid() -> Ulid {
    let mut generator = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
    generator
        .get_or_insert_with(Generator::new)
        .generate()
        // Only after 2^80 ids within one millisecond.
        .unwrap_or_else(|_| crate::ids::next_ulid())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_strictly_increase() {
        let ids: Vec<_> = (0..10_000).map(|_| super::next_ulid()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
