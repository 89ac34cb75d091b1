//! The store trait's behaviour, the same on the embedded sled store and on
//! PostgreSQL.

use std::sync::Arc;

use ward::store::{Kind, PostgresStore, SledStore, Store, StoreError, Write};

fn put(kind: Kind, key: &str, value: &str) -> Write {
    Write::Put {
        kind,
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

fn keys(rows: &[(String, Vec<u8>)]) -> Vec<&str> {
    rows.iter().map(|(key, _)| key.as_str()).collect()
}

/// Everything Ward asks of a store, on `store`.
fn behaves(store: &dyn Store) {
    // Reads and atomic writes across kinds.
    assert_eq!(store.get(Kind::Agent, "t1/a").unwrap(), None);
    store
        .write(vec![
            put(Kind::Agent, "t1/b", "B"),
            put(Kind::Agent, "t1/a", "A"),
            put(Kind::Agent, "t10/a", "other tenant"),
            put(Kind::Agent, "t1/\u{e9}", "after every ASCII key"),
            put(Kind::Data, "t1/a", "data, not an agent"),
        ])
        .unwrap();
    assert_eq!(store.get(Kind::Agent, "t1/a").unwrap().unwrap(), b"A");
    assert_eq!(
        store.get(Kind::Data, "t1/a").unwrap().unwrap(),
        b"data, not an agent"
    );

    // A prefix is a byte range, in byte order, whatever the collation.
    let scanned = store.scan(Kind::Agent, "t1/").unwrap();
    assert_eq!(keys(&scanned), ["t1/a", "t1/b", "t1/\u{e9}"]);
    assert_eq!(store.scan(Kind::Agent, "").unwrap().len(), 4);

    // Reverse scans: below a bound, limited.
    let newest = store.scan_rev(Kind::Agent, "t1/", None, 2).unwrap();
    assert_eq!(keys(&newest), ["t1/\u{e9}", "t1/b"]);
    let below = store
        .scan_rev(Kind::Agent, "t1/", Some("t1/b"), 10)
        .unwrap();
    assert_eq!(keys(&below), ["t1/a"]);
    assert!(
        store
            .scan_rev(Kind::Agent, "t1/", Some("t0"), 10)
            .unwrap()
            .is_empty()
    );

    // The last write to a key in one batch wins; deletes apply.
    store
        .write(vec![
            put(Kind::Agent, "t1/a", "first"),
            put(Kind::Agent, "t1/a", "second"),
            Write::delete(Kind::Agent, "t1/b"),
        ])
        .unwrap();
    assert_eq!(store.get(Kind::Agent, "t1/a").unwrap().unwrap(), b"second");
    assert_eq!(store.get(Kind::Agent, "t1/b").unwrap(), None);
    store
        .write_buffered(&[put(Kind::Audit, "t1/01", "entry")])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(Kind::Audit, "t1/01").unwrap().unwrap(), b"entry");

    // A prefix delete stays inside its prefix.
    assert_eq!(store.delete_prefix(Kind::Agent, "t1/").unwrap(), 2);
    assert_eq!(keys(&store.scan(Kind::Agent, "").unwrap()), ["t10/a"]);
    assert_eq!(
        store.get(Kind::Data, "t1/a").unwrap().unwrap(),
        b"data, not an agent"
    );

    // Commits: one revision each, in order, with the scopes they changed.
    let start = store.revision().unwrap();
    let first = store
        .commit(
            start,
            vec![put(Kind::Tenant, "t1", "{}")],
            &["t1".to_string()],
        )
        .unwrap();
    assert_eq!(first, start + 1);
    let second = store
        .commit(
            first,
            vec![put(Kind::Agent, "global/x", "X")],
            &["global".to_string()],
        )
        .unwrap();
    assert_eq!(second, start + 2);
    assert_eq!(store.revision().unwrap(), second);
    assert_eq!(store.get(Kind::Agent, "global/x").unwrap().unwrap(), b"X");

    // A commit from a writer that has not seen the last one changes nothing.
    let stale = store.commit(first, vec![put(Kind::Agent, "global/y", "Y")], &[]);
    assert!(
        matches!(stale, Err(StoreError::Conflict { expected, actual }) if expected == first && actual == second),
        "{stale:?}"
    );
    assert_eq!(store.get(Kind::Agent, "global/y").unwrap(), None);
    assert_eq!(store.revision().unwrap(), second);

    // The change log, from any revision on.
    let changes = store.changes(start, 100).unwrap().unwrap();
    let seen: Vec<(u64, Vec<String>)> = changes
        .into_iter()
        .map(|change| (change.revision, change.scopes))
        .collect();
    assert_eq!(
        seen,
        [
            (first, vec!["t1".to_string()]),
            (second, vec!["global".to_string()])
        ]
    );
    assert_eq!(store.changes(first, 1).unwrap().unwrap().len(), 1);
    assert!(store.changes(second, 100).unwrap().unwrap().is_empty());

    // Counters grow up to their limit and no further.
    let taken: Vec<u64> = (0..4)
        .map(|_| store.take(Kind::Usage, "t1/claims", 5, 12).unwrap())
        .collect();
    assert_eq!(taken, [5, 5, 2, 0]);
    assert_eq!(store.get(Kind::Usage, "t1/claims").unwrap().unwrap(), b"12");
    assert_eq!(
        store.take(Kind::Usage, "t1/claims", 5, 20).unwrap(),
        5,
        "a raised limit"
    );
}

#[test]
fn the_embedded_store_behaves_as_the_trait_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    behaves(&store);
    // Only this process opens it: no cluster lock, every lease its own.
    assert!(store.lock_writes().unwrap().is_none());
    assert!(store.lease("prune", "a", 0, 1000).unwrap());
    assert!(!store.shared());
}

#[test]
fn the_postgres_store_behaves_as_the_trait_says() {
    let url = super::database();
    let store = PostgresStore::open(&url).unwrap();
    behaves(&store);
    assert!(store.shared());

    // One holder of a lease at a time, until it runs out.
    assert!(store.lease("prune", "a", 1_000, 1_000).unwrap());
    assert!(store.lease("prune", "a", 1_500, 1_000).unwrap(), "renewed");
    assert!(!store.lease("prune", "b", 2_000, 1_000).unwrap());
    assert!(store.lease("prune", "b", 2_600, 1_000).unwrap(), "expired");

    // A second connection sees the same records and revision.
    let other = PostgresStore::open(&url).unwrap();
    assert_eq!(other.revision().unwrap(), store.revision().unwrap());
    assert_eq!(other.get(Kind::Agent, "global/x").unwrap().unwrap(), b"X");
}

#[test]
fn processes_taking_from_one_counter_at_once_never_pass_its_limit() {
    let url = super::database();
    let stores: Vec<Arc<PostgresStore>> = (0..4)
        .map(|_| Arc::new(PostgresStore::open(&url).unwrap()))
        .collect();
    let takers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&stores[i % 4]);
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| store.take(Kind::Usage, "t/claims/2026-12", 3, 100).unwrap())
                    .sum::<u64>()
            })
        })
        .collect();
    let granted: u64 = takers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(granted, 100, "8 x 10 x 3 = 240 wanted, 100 there");
}

#[test]
fn the_cluster_write_lock_is_held_by_one_process_at_a_time() {
    let url = super::database();
    let first = Arc::new(PostgresStore::open(&url).unwrap());
    let second = Arc::new(PostgresStore::open(&url).unwrap());
    let held = first.lock_writes().unwrap().expect("a shared store locks");
    let (tell, told) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn({
        let second = Arc::clone(&second);
        move || {
            let lock = second.lock_writes().unwrap();
            tell.send(()).unwrap();
            drop(lock);
        }
    });
    assert!(
        told.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "the second process took the lock while the first held it"
    );
    drop(held);
    told.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the lock passes on once released");
    waiter.join().unwrap();
}

#[test]
fn migrations_run_once_even_when_started_together() {
    let url = super::database();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = PostgresStore::connect(&url).unwrap();
                store.migrate().unwrap()
            })
        })
        .collect();
    let applied: Vec<Vec<i32>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        applied.iter().filter(|a| !a.is_empty()).count(),
        1,
        "{applied:?}"
    );
    let store = PostgresStore::connect(&url).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        ward::store::postgres::SCHEMA_VERSION
    );
    assert!(store.migrate().unwrap().is_empty());
}

#[test]
fn a_bad_store_url_is_refused_with_the_reason_and_without_the_password() {
    let refused = PostgresStore::open("postgres://ward:hunter2@127.0.0.1:1/ward")
        .err()
        .expect("nothing listens on port 1");
    let message = refused.to_string();
    assert!(message.contains("cannot reach"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(PostgresStore::open("mysql://x").is_err());
}
