//! Generated JSON of any depth and size up to the limits: whatever a
//! route accepts reads back, survives a restart, is in the audit log,
//! and goes with its tenant.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use ward::nesting::{MAX_DEPTH, value_depth};
use ward::store::{Kind, Store};

use super::{OPERATOR, SYNC, start, store_of};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "[\\x00-\\x1f\"\\\\/]{0,6}".prop_map(Value::from),
    ]
}

/// A document `depth` levels deep (0 to a few past the limit), each
/// level an array or an object with a sibling, and sometimes padded
/// to tens or hundreds of kilobytes.
fn document() -> impl Strategy<Value = Value> {
    (
        0..=MAX_DEPTH + 4,
        leaf(),
        prop::collection::vec((any::<bool>(), "\\PC{0,8}", leaf()), MAX_DEPTH + 4),
        prop_oneof![4 => Just(0usize), 1 => Just(40_000usize), 1 => Just(400_000usize)],
    )
        .prop_map(|(depth, mut value, levels, pad)| {
            for (is_array, key, sibling) in levels.into_iter().take(depth) {
                value = if is_array {
                    json!([value, sibling])
                } else {
                    let mut fields = Map::new();
                    fields.insert(key.clone(), value);
                    fields.insert(format!("{key}-sibling"), sibling);
                    Value::Object(fields)
                };
            }
            if pad > 0 {
                value = json!([value, "p".repeat(pad)]);
            }
            value
        })
}

#[test]
fn whatever_a_route_accepts_reads_back_survives_a_restart_and_is_deleted() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, ward) = start(dir.path(), SYNC);
    let (tenant_id, key) = runtime.block_on(ward.tenant("gen"));

    let documents = std::cell::RefCell::new(Vec::new());
    let decisions = std::cell::RefCell::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&document(), |doc| {
        runtime.block_on(async {
            let depth = value_depth(&doc);
            let size = doc.to_string().len();
            let name = format!("d{}", documents.borrow().len() + decisions.borrow().len());
            let (status, body) = ward
                .call("PUT", &format!("/v1/data/{name}"), &key, Some(doc.clone()))
                .await;
            if depth <= MAX_DEPTH && size < 1 << 20 {
                prop_assert!(
                    status < 300,
                    "{status} {body} at depth {depth}, {size} bytes"
                );
                let (status, read) = ward
                    .call("GET", &format!("/v1/data/{name}"), &key, None)
                    .await;
                prop_assert_eq!(status, 200);
                prop_assert_eq!(&read["value"], &doc);
                documents.borrow_mut().push((name, doc.clone()));
            } else {
                prop_assert_eq!(
                    status,
                    if depth > MAX_DEPTH { 400 } else { 413 },
                    "{}",
                    body
                );
            }

            // The same document as a decision's context (two levels
            // deeper in the body).
            let request = json!({"agent": "bot", "action": "read", "resource": "doc:1",
                                 "context": {"doc": doc}});
            let (status, answer) = ward
                .call("POST", "/v1/authorize", &key, Some(request))
                .await;
            if depth + 2 <= MAX_DEPTH && size < (1 << 20) - 200 {
                prop_assert_eq!(status, 200, "{}", answer);
                decisions.borrow_mut().push(
                    answer["decision_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            } else {
                prop_assert!(status == 400 || status == 413, "{status} {answer}");
            }
            Ok::<(), TestCaseError>(())
        })
    });
    outcome.unwrap();
    let (documents, decisions) = (documents.into_inner(), decisions.into_inner());
    assert!(!documents.is_empty() && !decisions.is_empty());
    child.kill();

    let (mut child, ward) = start(dir.path(), SYNC);
    runtime.block_on(async {
        for (name, doc) in &documents {
            let (status, read) = ward
                .call("GET", &format!("/v1/data/{name}"), &key, None)
                .await;
            assert_eq!(status, 200, "{name}");
            assert_eq!(&read["value"], doc, "{name}");
        }
        let logged = ward.audit_ids(&key, None, "decision").await;
        for id in &decisions {
            assert!(logged.contains(id), "decision {id} is in the log");
        }
        let (status, body) = ward.call("DELETE", "/v1/tenants/gen", OPERATOR, None).await;
        assert_eq!(status, 204, "{body}");
    });
    child.kill();

    let store = store_of(dir.path());
    for kind in Kind::ALL {
        let left = store.scan(kind, &format!("{tenant_id}/")).unwrap();
        assert!(
            left.is_empty(),
            "{kind:?} keeps {} records of the deleted tenant",
            left.len()
        );
    }
    drop(store);
    let (_child, ward) = start(dir.path(), SYNC);
    let (status, _) = runtime.block_on(ward.call("GET", "/v1/tenants/gen", OPERATOR, None));
    assert_eq!(status, 404);
}
