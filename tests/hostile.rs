//! Hostile input never takes Ward down: JSON nesting is bounded at every
//! door, whatever Ward accepts it reads back after a restart and deletes,
//! a record it cannot read is set aside instead of stopping it, and the
//! audit writer never wedges on one entry.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use ward::audit::AuditLog;
use ward::audit::writer::{Durability, WriterConfig};
use ward::nesting::MAX_DEPTH;
use ward::store::{Kind, SledStore, Store, Write, set_aside};

use crate::server::{Body, OPERATOR, TestServer};
use crate::support::{KillOnDrop, spawn_ward};

/// JSON text `levels` deep: arrays and objects in turn around `leaf`.
fn nested(levels: usize, leaf: &str) -> String {
    let mut text = leaf.to_string();
    for level in 0..levels {
        text = if level % 2 == 0 {
            format!("[{text}]")
        } else {
            format!("{{\"k{level}\": {text}}}")
        };
    }
    text
}

/// An object `levels` deep (its outermost level is an object).
fn nested_object(levels: usize) -> Value {
    let inner = nested(levels - 1, "\"leaf\"");
    serde_json::from_str(&format!("{{\"deep\": {inner}}}")).unwrap()
}

fn raw(text: String) -> Body {
    Body::Raw("application/json", text.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nesting_is_bounded_at_every_door() {
    let server = TestServer::start().await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let agent = json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
    assert_eq!(
        server.put("/v1/agents/bot", &admin, agent).await.status,
        201
    );

    // The body of finding 1: 127 levels, accepted before, unreadable after.
    let finding = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let refused = server
        .call("PUT", "/v1/data/x", Some(&admin), None, raw(finding))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.code(), "too_deep");

    // Each door: the deepest body allowed is taken, one level more is not.
    let context = |levels: usize| nested_object(levels);
    type Make = Box<dyn Fn(usize) -> Value>;
    let doors: Vec<(&str, &str, &str, Make)> = vec![
        ("PUT", "/v1/data/doc", "admin", Box::new(nested_object)),
        (
            "PUT",
            "/v1/agents/deep",
            "admin",
            Box::new(|levels| json!({"type": "ai_agent", "attributes": nested_object(levels - 1)})),
        ),
        (
            "POST",
            "/v1/authorize",
            "authorize",
            Box::new(
                move |levels| json!({"agent": "bot", "action": "read", "resource": "doc:1", "context": context(levels - 1)}),
            ),
        ),
        (
            "POST",
            "/v1/authorize/batch",
            "authorize",
            Box::new(|levels| {
                json!({"items": [{"agent": "bot", "action": "read", "resource": "doc:1",
                                  "context": nested_object(levels - 3)}]})
            }),
        ),
        (
            "POST",
            "/access/v1/evaluation",
            "authorize",
            Box::new(|levels| {
                json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
                       "resource": {"type": "doc", "id": "1"}, "context": nested_object(levels - 1)})
            }),
        ),
        (
            "POST",
            "/access/v1/evaluations",
            "authorize",
            Box::new(|levels| {
                json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
                       "evaluations": [{"resource": {"type": "doc", "id": "1"},
                                        "context": nested_object(levels - 3)}]})
            }),
        ),
    ];
    for (method, path, role, body) in doors {
        let token = if role == "admin" { &admin } else { &authorize };
        let deepest = body(MAX_DEPTH);
        assert_eq!(ward::nesting::value_depth(&deepest), MAX_DEPTH, "{path}");
        let taken = server
            .call(method, path, Some(token), None, Body::Json(deepest))
            .await;
        assert!(
            taken.status < 300,
            "{method} {path} at the limit: {} {}",
            taken.status,
            taken.body
        );
        let too_deep = server
            .call(
                method,
                path,
                Some(token),
                None,
                Body::Json(body(MAX_DEPTH + 1)),
            )
            .await;
        assert_eq!(too_deep.status, 400, "{method} {path}: {}", too_deep.body);
        assert_eq!(too_deep.code(), "too_deep", "{method} {path}");
    }

    // Policy config and tenant settings are bodies like any other.
    let config = server
        .call(
            "PUT",
            "/v1/global/policies/permissions/config",
            Some(OPERATOR),
            None,
            Body::Json(nested_object(MAX_DEPTH + 1)),
        )
        .await;
    assert_eq!(config.code(), "too_deep", "{}", config.body);
    let tenant = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "deep", "name": "d", "settings": {"x": nested_object(MAX_DEPTH - 1)}}),
        )
        .await;
    assert_eq!(tenant.code(), "too_deep", "{}", tenant.body);

    // What was taken reads back, and the log with the deepest contexts too.
    let doc = server.get("/v1/data/doc", &admin).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["value"], nested_object(MAX_DEPTH));
    let log = server.get("/v1/audit?kind=decision", &admin).await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(log.body["entries"].as_array().unwrap().len(), 4);
}

/// What became of a decision request.
enum Answer {
    /// A 200, with its decision id.
    Decided(String),
    /// Any other status.
    Refused,
    /// No answer: the server is gone.
    Gone,
}

/// A client of a `ward serve` child process.
struct Remote {
    base: String,
    http: reqwest::Client,
}

impl Remote {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_in(method, path, token, None, body).await
    }

    async fn call_in(
        &self,
        method: &str,
        path: &str,
        token: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(tenant) = tenant {
            request = request.header("x-tenant-id", tenant);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_ne!(status, 500, "{method_path}: {body}", method_path = path);
        (status, body)
    }

    /// A tenant with an agent allowed everything; returns its id and an
    /// admin key.
    async fn tenant(&self, slug: &str) -> (String, String) {
        let (status, created) = self
            .call(
                "POST",
                "/v1/tenants",
                OPERATOR,
                Some(json!({"slug": slug, "name": slug})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let (status, key) = self
            .call(
                "POST",
                &format!("/v1/tenants/{slug}/keys"),
                OPERATOR,
                Some(json!({"name": "k", "role": "admin"})),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        let key = key["secret"].as_str().unwrap().to_string();
        let agent =
            json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
        let (status, _) = self.call("PUT", "/v1/agents/bot", &key, Some(agent)).await;
        assert_eq!(status, 201);
        (created["id"].as_str().unwrap().to_string(), key)
    }

    /// One native decision for the agent `bot` with `context`.
    async fn decide(&self, key: &str, context: &Value) -> Answer {
        let body =
            json!({"agent": "bot", "action": "read", "resource": "doc:1", "context": context});
        let sent = self
            .http
            .post(format!("{}/v1/authorize", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await;
        let Ok(reply) = sent else {
            return Answer::Gone;
        };
        if reply.status() != 200 {
            return Answer::Refused;
        }
        match reply.json::<Value>().await {
            Ok(answer) => match answer["decision_id"].as_str() {
                Some(id) => Answer::Decided(id.to_string()),
                None => Answer::Refused,
            },
            Err(_) => Answer::Gone,
        }
    }

    /// Every id in a scope's audit log (of `kind`, when given).
    async fn audit_ids(&self, token: &str, tenant: Option<&str>, kind: &str) -> HashSet<String> {
        let mut ids = HashSet::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self
                .call_in(
                    "GET",
                    &format!("/v1/audit?kind={kind}&limit=1000{cursor}"),
                    token,
                    tenant,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{page}");
            ids.extend(
                page["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|entry| entry["id"].as_str().unwrap().to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return ids,
            }
        }
    }

    /// The ids of the records set aside.
    async fn set_aside_ids(&self) -> Vec<String> {
        let (status, listed) = self.call("GET", "/v1/set-aside", OPERATOR, None).await;
        assert_eq!(status, 200, "{listed}");
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|aside| aside["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

fn start(dir: &Path, toml: &str) -> (KillOnDrop, Remote) {
    let config = dir.join("ward.toml");
    std::fs::write(&config, toml).unwrap();
    let (child, base, _) = spawn_ward(&dir.join("data"), Some(&config), Some(OPERATOR));
    (
        child,
        Remote {
            base,
            http: reqwest::Client::new(),
        },
    )
}

const SYNC: &str = "[audit]\ndurability = \"sync\"\n";

/// Opens the store of a stopped server, for a test to damage.
fn store_of(dir: &Path) -> SledStore {
    SledStore::open(&dir.join("data").join("db")).unwrap()
}

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

/// The payloads of findings 1-3 from a hostile tenant, while another
/// tenant decides; `kill -9`; after the restart Ward starts, and every
/// decision that got a 200 is in the audit log or set aside with its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_decision_survives_kill_9_beside_a_hostile_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, ward) = start(dir.path(), SYNC);
    let ward = Arc::new(ward);
    let (_, hostile) = ward.tenant("hostile").await;
    let (_, calm) = ward.tenant("calm").await;

    let answered = Arc::new(std::sync::Mutex::new(Vec::<(bool, String)>::new()));
    let mut clients = Vec::new();
    for client in 0..6 {
        let (ward, answered) = (Arc::clone(&ward), Arc::clone(&answered));
        let (key, is_hostile) = if client < 3 {
            (hostile.clone(), true)
        } else {
            (calm.clone(), false)
        };
        clients.push(tokio::spawn(async move {
            let mut round = 0usize;
            loop {
                round += 1;
                let context = if is_hostile {
                    // Wide and as deep as allowed, or one level deeper.
                    let depth = if round.is_multiple_of(2) {
                        MAX_DEPTH
                    } else {
                        MAX_DEPTH + 1
                    };
                    let mut context = nested_object(depth - 1);
                    context["pad"] = json!("x".repeat(20_000));
                    context
                } else {
                    json!({})
                };
                if is_hostile && round.is_multiple_of(5) {
                    let doc = nested(127, "1");
                    let _ = ward
                        .http
                        .put(format!("{}/v1/data/x", ward.base))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(doc)
                        .send()
                        .await;
                }
                match ward.decide(&key, &context).await {
                    Answer::Decided(id) => answered.lock().unwrap().push((is_hostile, id)),
                    Answer::Refused => {}
                    Answer::Gone => return,
                }
            }
        }));
    }
    loop {
        let seen = answered.lock().unwrap().clone();
        if seen.iter().filter(|(h, _)| *h).count() >= 30
            && seen.iter().filter(|(h, _)| !*h).count() >= 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill();
    for client in clients {
        let _ = client.await;
    }
    let answered = answered.lock().unwrap().clone();

    let (_child, ward) = start(dir.path(), SYNC);
    let mut found = ward.audit_ids(&hostile, None, "decision").await;
    found.extend(ward.audit_ids(&calm, None, "decision").await);
    let aside: HashSet<String> = ward
        .set_aside_ids()
        .await
        .into_iter()
        .filter_map(|id| id.rsplit('/').next().map(str::to_string))
        .collect();
    let lost: Vec<&(bool, String)> = answered
        .iter()
        .filter(|(_, id)| !found.contains(id) && !aside.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered decisions lost: {lost:?}",
        lost.len(),
        answered.len()
    );
    let (status, _) = ward.call("GET", "/readyz", OPERATOR, None).await;
    assert_eq!(status, 200);
}

/// Many wide, deep decisions beside small ones in batched mode (finding
/// 2): the writer keeps up, `/readyz` stays ready, and every answered
/// decision is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_contexts_never_wedge_the_audit_writer() {
    let server = Arc::new(TestServer::start().await);
    let mut keys = Vec::new();
    for slug in ["big", "small"] {
        let (_, admin, _) = server.tenant(slug).await;
        let agent =
            json!({"type": "ai_agent", "permissions": [{"resource": "*", "actions": ["*"]}]});
        assert_eq!(
            server.put("/v1/agents/bot", &admin, agent).await.status,
            201
        );
        keys.push(admin);
    }
    let mut context = nested_object(MAX_DEPTH - 1);
    context["pad"] = json!("y".repeat(300_000));
    let mut clients = Vec::new();
    for client in 0..9 {
        let (server, key) = (Arc::clone(&server), keys[usize::from(client >= 3)].clone());
        let context = if client < 3 {
            context.clone()
        } else {
            json!({})
        };
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..if client < 3 { 15 } else { 100 } {
                let reply = server
                    .post(
                        "/v1/authorize",
                        &key,
                        json!({"agent": "bot", "action": "read", "resource": "doc:1", "context": context}),
                    )
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                ids.push(reply.body["decision_id"].as_str().unwrap().to_string());
            }
            (client >= 3, ids)
        }));
    }
    let mut answered = [HashSet::new(), HashSet::new()];
    for client in clients {
        let (small, ids) = client.await.unwrap();
        answered[usize::from(small)].extend(ids);
    }
    let ready = server.call("GET", "/readyz", None, None, Body::None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    for (which, key) in keys.iter().enumerate() {
        let logged: HashSet<String> = crate::limits::audit_ids(&server, key, "decision")
            .await
            .into_iter()
            .collect();
        assert_eq!(logged, answered[which]);
    }
}

mod generated {
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
}

/// SIGTERM under load from a hostile tenant and a calm one, in batched
/// mode: the process ends within its bounded stop time, and every decision
/// that got a 200 is in the log at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_ends_in_bounded_time_with_every_decision_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, ward) = start(dir.path(), "");
    let ward = Arc::new(ward);
    let (_, hostile) = ward.tenant("hostile").await;
    let (_, calm) = ward.tenant("calm").await;
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for client in 0..6 {
        let (ward, answered) = (Arc::clone(&ward), Arc::clone(&answered));
        let key = if client < 2 {
            hostile.clone()
        } else {
            calm.clone()
        };
        let context = if client < 2 {
            let mut context = nested_object(MAX_DEPTH - 1);
            context["pad"] = json!("z".repeat(200_000));
            context
        } else {
            json!({})
        };
        clients.push(tokio::spawn(async move {
            loop {
                match ward.decide(&key, &context).await {
                    Answer::Decided(id) => answered.lock().unwrap().push(id),
                    Answer::Refused | Answer::Gone => return,
                }
            }
        }));
    }
    while answered.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let pid = child.0.id().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    // The stop is bounded by 10 s of grace, 10 s of audit drain and the
    // flush; well inside a minute on any machine.
    let stopped = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                child.kill();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        stopped.is_some_and(|status| status.success()),
        "{stopped:?}"
    );
    for client in clients {
        let _ = client.await;
    }
    let answered = answered.lock().unwrap().clone();

    let (_child, ward) = start(dir.path(), "");
    let mut logged = ward.audit_ids(&hostile, None, "decision").await;
    logged.extend(ward.audit_ids(&calm, None, "decision").await);
    let lost: Vec<&String> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} lost: {lost:?}",
        lost.len(),
        answered.len()
    );
}
