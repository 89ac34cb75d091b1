//! Unreadable records are set aside, never a reason to stop.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_is_set_aside_and_never_stops_a_start_or_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, ward) = start(dir.path(), SYNC);
    let (acme, acme_key) = ward.tenant("acme").await;
    let (_, other_key) = ward.tenant("other").await;
    for (key, value) in [("kept", json!({"a": 1})), ("broken", json!({"b": 2}))] {
        let (status, _) = ward
            .call("PUT", &format!("/v1/data/{key}"), &acme_key, Some(value))
            .await;
        assert_eq!(status, 200);
    }
    let decision = json!({"agent": "bot", "action": "read", "resource": "doc:1"});
    let (status, _) = ward
        .call("POST", "/v1/authorize", &acme_key, Some(decision.clone()))
        .await;
    assert_eq!(status, 200);
    child.kill();

    // Damage one record of each kind a start reads, and one audit chunk.
    {
        let store = store_of(dir.path());
        // A chunk of its own: the chunks already there may be rewritten
        // from the audit journal at the next start.
        let chunk_key = format!("{acme}/{}", ward::ids::next_ulid());
        store
            .write(vec![
                Write::Put {
                    kind: Kind::Data,
                    key: format!("{acme}/broken"),
                    value: b"{\"key\": \"broken\", \"value\": ".to_vec(),
                },
                Write::Put {
                    kind: Kind::Agent,
                    key: format!("{acme}/bot"),
                    value: br#"{"name": 7}"#.to_vec(),
                },
                Write::Put {
                    kind: Kind::Policy,
                    key: format!("{acme}/ghost"),
                    value: b"\xff\xfe not json".to_vec(),
                },
                Write::Put {
                    kind: Kind::Audit,
                    key: chunk_key,
                    value: b"[{\"id\": ".to_vec(),
                },
            ])
            .unwrap();
        store.flush().unwrap();
    }

    let (mut child, ward) = start(dir.path(), SYNC);
    assert!(ward.metric("ward_records_set_aside_total").await >= 3.0);
    let (status, doc) = ward.call("GET", "/v1/data/kept", &acme_key, None).await;
    assert_eq!((status, doc["value"].clone()), (200, json!({"a": 1})));
    let (status, _) = ward.call("GET", "/v1/data/broken", &acme_key, None).await;
    assert_eq!(status, 404);
    // The audit read meets the damaged chunk, sets it aside and answers.
    let (status, page) = ward.call("GET", "/v1/audit", &acme_key, None).await;
    assert_eq!(status, 200, "{page}");
    let aside = ward.set_aside_ids().await;
    for expected in [
        format!("data/{acme}/broken"),
        format!("agents/{acme}/bot"),
        format!("policies/{acme}/ghost"),
    ] {
        assert!(aside.contains(&expected), "{expected} in {aside:?}");
    }
    assert!(
        aside
            .iter()
            .any(|id| id.starts_with(&format!("audit/{acme}/"))),
        "{aside:?}"
    );
    // Another tenant never noticed.
    let (status, answer) = ward
        .call("POST", "/v1/authorize", &other_key, Some(decision.clone()))
        .await;
    assert_eq!((status, answer["decision"].clone()), (200, json!(true)));

    // The operator removes one by id; a tenant delete removes the rest of
    // the tenant's, and neither needs the records to be readable.
    let remove = format!("/v1/set-aside?id=data/{acme}/broken");
    for expected in [204, 404] {
        let (status, _) = ward.call("DELETE", &remove, OPERATOR, None).await;
        assert_eq!(status, expected);
    }
    let (status, body) = ward
        .call("DELETE", "/v1/tenants/acme", OPERATOR, None)
        .await;
    assert_eq!(status, 204, "{body}");
    let left = ward.set_aside_ids().await;
    assert!(left.iter().all(|id| !id.contains(&acme)), "{left:?}");
    child.kill();

    // A record damaged while the server is stopped: `ward store check`
    // finds it, lists it, and removes it on request.
    {
        let store = store_of(dir.path());
        let (key, _) = store
            .scan(Kind::Agent, "")
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        store
            .write(vec![Write::Put {
                kind: Kind::Agent,
                key,
                value: b"nonsense".to_vec(),
            }])
            .unwrap();
        store.flush().unwrap();
    }
    let check = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .args(["store", "check", "--json", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let listed = check(&[]);
    let ids: Vec<String> = listed
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{listed}");
    assert!(ids[0].starts_with("agents/"), "{listed}");
    assert!(check(&["--remove-all"]).is_empty());

    let (_child, ward) = start(dir.path(), SYNC);
    assert_eq!(ward.set_aside_ids().await, Vec::<String>::new());
    let (status, _) = ward.call("GET", "/v1/tenants/other", OPERATOR, None).await;
    assert_eq!(status, 200);
}

#[test]
fn the_audit_writer_sets_aside_an_entry_it_cannot_store_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let config = WriterConfig {
        durability: Durability::Sync,
        ..WriterConfig::default()
    };
    let log = AuditLog::with_writer(Arc::clone(&store), config, None).unwrap();
    let entry = |id: &str| {
        serde_json::to_vec(&json!({
            "id": id, "time": "2026-01-01T00:00:00Z", "actor": "t", "kind": "decision",
        }))
        .unwrap()
    };
    let ids: Vec<String> = (0..3).map(|_| ward::ids::next_ulid().to_string()).collect();
    let writer = log.writer();
    writer.append("tnt_A", &ids[1], entry(&ids[1])).unwrap();
    // Older than an entry already stored, so the writer must merge it into
    // the chunk that holds its id, which means decoding it: it cannot.
    writer
        .append("tnt_A", &ids[0], b"{\"id\": not json".to_vec())
        .unwrap();
    writer.append("tnt_A", &ids[2], entry(&ids[2])).unwrap();
    assert!(writer.flush_within(std::time::Duration::from_secs(10)));
    assert!(writer.keeping_up());

    let page = log.query("tnt_A", &Default::default()).unwrap();
    let logged: Vec<&str> = page.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(logged, vec![ids[2].as_str(), ids[1].as_str()]);
    let aside = set_aside::list(store.as_ref()).unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].id, format!("audit/tnt_A/{}", ids[0]));
    assert!(!aside[0].reason.is_empty());
}
