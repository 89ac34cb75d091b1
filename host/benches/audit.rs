//! What storing audit entries costs the writer thread: 1,000 decision
//! entries, already encoded, written with one store record each (the
//! layout before chunks) against the same entries made into chunks as the
//! writer does. Each is one atomic store write, on a real sled store on
//! disk, not flushed: the writer makes entries durable with its journal
//! and flushes the store only at checkpoints (sled's own background flush
//! runs every 200 ms under both).
//!
//! `cargo bench -p ward --bench audit` (about 30 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use ward::audit::chunk;
use ward::store::{Kind, SledStore, Store, Write, scoped_key};
use ward_types::{AuditEntry, AuditKind, Timestamp};

const ENTRIES: usize = 1_000;

/// A decision entry of the size the server writes (about 500 bytes).
fn entry() -> AuditEntry {
    let id = ward::ids::next_ulid();
    AuditEntry {
        id: id.to_string(),
        time: Timestamp(id.timestamp_ms()),
        actor: String::from("key:01J8Z3B7Q4W2X5Y6Z7A8B9C0D1"),
        on_behalf_of: None,
        kind: AuditKind::Decision,
        target: None,
        decision: Some(true),
        reasons: vec![String::from("granted by read:documents/*")],
        agent: None,
        policy: None,
        duration_us: Some(14),
        replica: None,
        details: json!({
            "request": {
                "agent": "bot-17",
                "action": {"name": "read"},
                "resource": {"type": "documents", "id": "documents/report-2026-11.pdf"},
                "context": {"ip": "10.1.2.3"}
            },
            "usage": {"fuel": 41_230, "memory_bytes": 1_114_112},
            "policy": {"name": "permissions", "version": 3, "scope": "global"}
        }),
    }
}

/// `ENTRIES` new entries, id and JSON, in id order.
fn encoded_entries() -> Vec<(String, Vec<u8>)> {
    (0..ENTRIES)
        .map(|_| {
            let entry = entry();
            (entry.id.clone(), serde_json::to_vec(&entry).unwrap())
        })
        .collect()
}

fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SledStore::open(&dir.path().join("db")).unwrap())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit/1000_entries");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    let dir = tempfile::tempdir().unwrap();
    let records = store(&dir);
    group.bench_function("one_record_each", |b| {
        b.iter_batched(
            || {
                (0..ENTRIES)
                    .map(|_| {
                        let entry = entry();
                        Write::put_json(Kind::Audit, scoped_key("tenant", &entry.id), &entry)
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            },
            |writes| {
                records.write_buffered(&writes).unwrap();
            },
            BatchSize::PerIteration,
        )
    });

    // Chunks as the writer makes them, all 1,000 in one group commit and
    // as the writer meets them under load: one group commit per 100
    // entries (one batch call's worth), so that sled rewrites the tree's
    // last leaf after every few chunks.
    for (name, per_commit) in [("chunks", ENTRIES), ("chunks_100_per_commit", 100)] {
        let dir = tempfile::tempdir().unwrap();
        let chunks = store(&dir);
        group.bench_function(name, |b| {
            b.iter_batched(
                encoded_entries,
                |entries| {
                    for commit in entries.chunks(per_commit) {
                        let writes: Vec<Write> = chunk::writes("tenant", commit).collect();
                        chunks.write_buffered(&writes).unwrap();
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
