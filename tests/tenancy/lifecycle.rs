//! Delete, restart and crash: nothing left behind, nothing lost.

use super::*;

fn all_keys(store: &dyn Store) -> Vec<(Kind, String, Vec<u8>)> {
    let mut all = Vec::new();
    for kind in Kind::ALL {
        for (key, value) in store.scan(kind, "").unwrap() {
            all.push((kind, key, value));
        }
    }
    all
}

#[test]
fn cascade_delete_leaves_nothing_of_the_tenant() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let b = create(&registry, "globex");
    let a_id = a.key().to_string();
    for scope in [&a, &b] {
        registry
            .put_agent(scope, "bot", agent_body(&[("*", &["*"])]), OP)
            .unwrap();
        registry
            .put_data(scope, "doc", json!({"x": 1}), OP)
            .unwrap();
        registry
            .upload_policy(scope, "shared", &guest("permissions"), true, OP)
            .unwrap();
        decide(&registry, scope, "bot", "read", "x:1");
    }
    let only_a = registry
        .upload_policy(&a, "own", &guest("rbac"), true, OP)
        .unwrap();
    // An API key record and its hash index, as the auth layer writes them.
    registry
        .store()
        .write(vec![
            ward::store::Write::put_json(
                Kind::ApiKey,
                format!("{a_id}/key_1"),
                &json!({"id": "key_1", "hash": "h-a"}),
            )
            .unwrap(),
            ward::store::Write::Put {
                kind: Kind::ApiKeyHash,
                key: "h-a".into(),
                value: format!("{a_id}/key_1").into_bytes(),
            },
        ])
        .unwrap();

    registry.delete_tenant("acme", OP).unwrap();

    let leftovers: Vec<_> = all_keys(registry.store().as_ref())
        .into_iter()
        .filter(|(_, key, value)| {
            key.contains(&a_id)
                || String::from_utf8_lossy(value).contains(&a_id)
                || key == "h-a"
                || key == "acme"
        })
        // The operator's log records the deletion itself.
        .filter(|(kind, key, _)| !(*kind == Kind::Audit && key.starts_with("global/")))
        .collect();
    assert!(
        leftovers.is_empty(),
        "left behind: {:?}",
        leftovers
            .iter()
            .map(|(k, key, _)| (k, key))
            .collect::<Vec<_>>()
    );
    assert!(
        registry
            .store()
            .get(Kind::Module, &only_a.sha256)
            .unwrap()
            .is_none()
    );

    assert_eq!(code(registry.get_tenant("acme").unwrap_err()), "not_found");
    assert_eq!(code(registry.get_tenant(&a_id).unwrap_err()), "not_found");
    assert!(
        registry
            .authorize(&a_id, &ask("bot", "read", "x:1"), "key:x")
            .is_err()
    );
    assert!(
        decide(&registry, &b, "bot", "read", "x:1")
            .response
            .decision,
        "globex unaffected"
    );
    assert_eq!(registry.get_data(&b, "doc").unwrap().value, json!({"x": 1}));
    // The slug is free again.
    create(&registry, "acme");
}

#[test]
fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a_id;
    {
        let registry = open_registry(dir.path());
        let a = create_with(&registry, "acme", json!({"max_agents": 9}));
        a_id = a.key().to_string();
        registry
            .put_agent(
                &a,
                "bot",
                PutAgent {
                    policy: Some("main".into()),
                    budgets: Default::default(),
                    ..agent_body(&[("*", &["read"])])
                },
                OP,
            )
            .unwrap();
        registry
            .upload_policy(&a, "main", &guest("probe"), true, OP)
            .unwrap();
        registry
            .upload_policy(&a, "main", &guest("permissions"), true, OP)
            .unwrap();
        registry.activate_policy(&a, "main", 1, OP).unwrap();
        registry
            .configure_policy(&a, "main", json!({"data_keys": ["doc"]}), OP)
            .unwrap();
        registry.put_data(&a, "doc", json!([1, 2]), OP).unwrap();
        registry
            .set_tenant_status("acme", TenantStatus::Suspended, OP)
            .unwrap();
        registry
            .set_tenant_status("acme", TenantStatus::Active, OP)
            .unwrap();
    }
    let registry = open_registry(dir.path());
    let a = ScopeId::Tenant(a_id);
    assert_eq!(registry.get_tenant("acme").unwrap().settings.max_agents, 9);
    assert_eq!(
        registry.get_policy(&a, "main").unwrap().active_version,
        Some(1)
    );
    let outcome = decide(&registry, &a, "bot", "read", "x:1").response;
    assert!(outcome.decision);
    assert_eq!(outcome.context["data"]["doc"], json!([1, 2]));
    assert_eq!(outcome.policy.unwrap().version, 1);
    // The builtin is installed once, not again at each start.
    assert_eq!(
        registry
            .get_policy(&ScopeId::Global, "permissions")
            .unwrap()
            .versions
            .len(),
        1
    );
}

/// Run by `acknowledged_writes_survive_kill_9` in a child process: writes
/// agents as fast as it can and prints each name once the write returned.
#[test]
#[ignore = "helper: runs only as a child process of another test"]
fn child_process_writes_until_killed() {
    use std::io::Write as _;
    let Ok(dir) = std::env::var("WARD_TEST_DATA_DIR") else {
        return;
    };
    let registry = open_registry(std::path::Path::new(&dir));
    let a = match registry.get_tenant("acme") {
        Ok(t) => ScopeId::Tenant(t.id),
        Err(_) => create(&registry, "acme"),
    };
    let mut out = std::io::stdout();
    for i in 0.. {
        let name = format!("agent-{i}");
        registry
            .put_agent(&a, &name, agent_body(&[("*", &["read"])]), OP)
            .unwrap();
        writeln!(out, "ACK {name}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = child_test("tenancy::lifecycle::child_process_writes_until_killed")
        .env("WARD_TEST_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(name) = line.split("ACK ").nth(1) {
            acked.push(name.to_string());
            if acked.len() == 60 {
                // SIGKILL: no destructors, no flush beyond what returned.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 60, "child wrote too little before dying");

    let registry = open_registry(dir.path());
    let a = ScopeId::Tenant(registry.get_tenant("acme").unwrap().id);
    let stored: std::collections::HashSet<String> = registry
        .list_agents(&a)
        .unwrap()
        .into_iter()
        .map(|agent| agent.name)
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|name| !stored.contains(*name))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[test]
fn an_interrupted_delete_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let a_id;
    {
        let registry = open_registry(dir.path());
        let a = create(&registry, "acme");
        a_id = a.key().to_string();
        registry.put_agent(&a, "bot", agent_body(&[]), OP).unwrap();
        registry.put_data(&a, "doc", json!(1), OP).unwrap();
        // What a crash right after the tombstone write leaves behind.
        registry
            .store()
            .write(vec![
                ward::store::Write::delete(Kind::Tenant, a_id.clone()),
                ward::store::Write::delete(Kind::Slug, "acme"),
                ward::store::Write::Put {
                    kind: Kind::PendingDelete,
                    key: a_id.clone(),
                    value: b"acme".to_vec(),
                },
            ])
            .unwrap();
    }
    let registry = open_registry(dir.path());
    let leftovers: Vec<_> = all_keys(registry.store().as_ref())
        .into_iter()
        .filter(|(_, key, _)| key.contains(&a_id))
        .collect();
    assert!(leftovers.is_empty());
}
