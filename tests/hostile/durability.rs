//! Every answered decision survives kill -9 and SIGTERM beside a hostile
//! tenant.

use super::*;

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
