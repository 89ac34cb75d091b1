//! Agents, policies and data documents: validation, quotas, shared modules, the
//! builtin's upgrades.

use super::*;

#[test]
fn agents_are_validated_typed_and_counted() {
    let (_dir, registry) = registry();
    let a = create_with(
        &registry,
        "acme",
        json!({"max_agents": 2, "allowed_agent_types": ["ai_agent", "service"]}),
    );
    let (agent, created) = registry
        .put_agent(&a, "bot-1", agent_body(&[]), OP)
        .unwrap();
    assert!(created);
    assert_eq!(agent.scope, Scope::Tenant);
    let (_, created) = registry
        .put_agent(&a, "bot-1", agent_body(&[("x:*", &["read"])]), OP)
        .unwrap();
    assert!(!created, "a second put replaces");
    assert_eq!(
        registry.get_agent(&a, "bot-1").unwrap().permissions.len(),
        1
    );

    let mut user = agent_body(&[]);
    user.kind = "user".into();
    assert_eq!(
        code(registry.put_agent(&a, "alice", user, OP).unwrap_err()),
        "invalid_input"
    );
    assert_eq!(
        code(
            registry
                .put_agent(&a, "has space", agent_body(&[]), OP)
                .unwrap_err()
        ),
        "invalid_input"
    );
    let mut no_actions = agent_body(&[]);
    no_actions.permissions = grants(&[("x:*", &[])]);
    assert_eq!(
        code(registry.put_agent(&a, "bot-2", no_actions, OP).unwrap_err()),
        "invalid_input"
    );

    registry
        .put_agent(&a, "bot-2", agent_body(&[]), OP)
        .unwrap();
    let err = registry
        .put_agent(&a, "bot-3", agent_body(&[]), OP)
        .unwrap_err();
    assert_eq!(code(err), "quota_exceeded");
    registry
        .put_agent(&a, "bot-2", agent_body(&[]), OP)
        .unwrap();
    registry.delete_agent(&a, "bot-2", OP).unwrap();
    registry
        .put_agent(&a, "bot-3", agent_body(&[]), OP)
        .unwrap();
    assert_eq!(
        code(registry.delete_agent(&a, "bot-2", OP).unwrap_err()),
        "not_found"
    );
    let refusals = registry
        .audit()
        .query(
            a.key(),
            &AuditQuery {
                kind: Some(AuditKind::QuotaExceeded),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(refusals.entries.len(), 1);
    assert_eq!(refusals.entries[0].target.as_deref(), Some("bot-3"));
}

#[test]
fn policies_upload_activate_roll_back_and_delete() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let first = registry
        .upload_policy(&a, "main", &guest("permissions"), true, OP)
        .unwrap();
    assert_eq!((first.version, first.active), (1, true));
    let second = registry
        .upload_policy(&a, "main", &guest("probe"), false, OP)
        .unwrap();
    assert_eq!((second.version, second.active), (2, false));
    let info = registry.get_policy(&a, "main").unwrap();
    assert_eq!(info.active_version, Some(1));
    assert_eq!(info.versions.len(), 2);
    assert_ne!(info.versions[0].sha256, info.versions[1].sha256);

    assert_eq!(
        registry
            .activate_policy(&a, "main", 2, OP)
            .unwrap()
            .active_version,
        Some(2)
    );
    assert_eq!(
        registry
            .activate_policy(&a, "main", 1, OP)
            .unwrap()
            .active_version,
        Some(1)
    );
    assert_eq!(
        code(registry.activate_policy(&a, "main", 3, OP).unwrap_err()),
        "not_found"
    );

    registry.delete_policy(&a, "main", OP).unwrap();
    assert_eq!(
        code(registry.get_policy(&a, "main").unwrap_err()),
        "not_found"
    );
    let store = registry.store();
    assert!(
        store.get(Kind::Module, &second.sha256).unwrap().is_none(),
        "unused module removed"
    );
}

#[test]
fn rejected_uploads_store_nothing() {
    let (_dir, registry) = registry();
    let a = create_with(&registry, "acme", json!({"max_module_bytes": 100000}));
    let modules_before = registry.store().scan(Kind::Module, "").unwrap().len();
    for (bytes, expected) in [
        (b"garbage".to_vec(), "invalid_module"),
        (guest("forbidden_import"), "invalid_module"),
        (guest("probe"), "too_large"),
    ] {
        let err = registry
            .upload_policy(&a, "p", &bytes, true, OP)
            .unwrap_err();
        assert_eq!(code(err), expected);
    }
    assert_eq!(
        registry.store().scan(Kind::Module, "").unwrap().len(),
        modules_before
    );
    assert_eq!(
        registry
            .store()
            .scan(Kind::Policy, &format!("{}/", a.key()))
            .unwrap()
            .len(),
        0
    );
    assert!(
        registry
            .list_policies(&a)
            .unwrap()
            .iter()
            .all(|p| p.scope == Scope::Global)
    );
}

#[test]
fn policy_quota_is_enforced() {
    let (_dir, registry) = registry();
    let a = create_with(&registry, "acme", json!({"max_policies": 1}));
    registry
        .upload_policy(&a, "one", &guest("permissions"), true, OP)
        .unwrap();
    registry
        .upload_policy(&a, "one", &guest("probe"), true, OP)
        .unwrap();
    let err = registry
        .upload_policy(&a, "two", &guest("permissions"), true, OP)
        .unwrap_err();
    assert_eq!(code(err), "quota_exceeded");
}

#[test]
fn identical_modules_are_stored_once_and_shared_between_scopes() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let b = create(&registry, "globex");
    let up_a = registry
        .upload_policy(&a, "p", &guest("probe"), true, OP)
        .unwrap();
    let up_b = registry
        .upload_policy(&b, "q", &guest("probe"), true, OP)
        .unwrap();
    assert_eq!(up_a.sha256, up_b.sha256);
    let store = registry.store();
    let copies = store.scan(Kind::Module, &up_a.sha256).unwrap().len();
    assert_eq!(copies, 1);
    registry.delete_policy(&a, "p", OP).unwrap();
    assert!(
        store.get(Kind::Module, &up_a.sha256).unwrap().is_some(),
        "still used by globex"
    );
    assert!(decide(&registry, &b, "x", "read", "doc:1").response.reasons == vec!["unknown_agent"]);
    registry.put_agent(&b, "bot", bound_to("q"), OP).unwrap();
    assert!(
        decide(&registry, &b, "bot", "read", "doc:1")
            .response
            .decision
    );
    registry.delete_policy(&b, "q", OP).unwrap();
    assert!(store.get(Kind::Module, &up_a.sha256).unwrap().is_none());
}

#[test]
fn data_documents_are_sized_and_counted() {
    let (_dir, registry) = registry();
    let a = create_with(&registry, "acme", json!({"max_data_bytes": 100}));
    registry
        .put_data(&a, "small", json!({"k": "v"}), OP)
        .unwrap();
    assert_eq!(
        registry.get_data(&a, "small").unwrap().value,
        json!({"k": "v"})
    );
    let err = registry
        .put_data(&a, "big", json!({"k": "v".repeat(100)}), OP)
        .unwrap_err();
    assert_eq!(code(err), "quota_exceeded");
    registry
        .put_data(&a, "small", json!("x".repeat(80)), OP)
        .unwrap();
    registry.delete_data(&a, "small", OP).unwrap();
    registry
        .put_data(&a, "other", json!("x".repeat(90)), OP)
        .unwrap();

    let huge = json!("x".repeat(2 << 20));
    assert_eq!(
        code(
            registry
                .put_data(&ScopeId::Global, "huge", huge, OP)
                .unwrap_err()
        ),
        "invalid_input"
    );
}

/// An upgrade of Ward brings its new builtin `permissions` module, unless
/// an operator chose another version of the policy.
#[test]
fn the_builtin_policy_follows_upgrades_of_ward_unless_an_operator_chose_another() {
    let dir = tempfile::tempdir().unwrap();
    let global = ScopeId::Global;
    let shipped = {
        let registry = open_registry(dir.path());
        let info = registry.get_policy(&global, "permissions").unwrap();
        assert_eq!((info.active_version, info.versions.len()), (Some(1), 1));
        let shipped = info.versions[0].sha256.clone();

        // What an older Ward leaves behind: its own builtin active, and its
        // hash in the meta key Ward keeps for this.
        let older = registry
            .upload_policy(
                &global,
                "permissions",
                &guest("permissions"),
                true,
                "system",
            )
            .unwrap();
        assert_ne!(older.sha256, shipped);
        registry
            .store()
            .write(vec![
                ward::store::Write::put_json(
                    Kind::Meta,
                    "builtin/permissions".to_string(),
                    &older.sha256,
                )
                .unwrap(),
            ])
            .unwrap();
        shipped
    };

    let registry = open_registry(dir.path());
    let info = registry.get_policy(&global, "permissions").unwrap();
    assert_eq!(info.active_version, Some(3), "{info:?}");
    assert_eq!(info.versions[2].sha256, shipped);
    // The operator goes back to the older module.
    registry
        .activate_policy(&global, "permissions", 2, OP)
        .unwrap();
    drop(registry);

    let registry = open_registry(dir.path());
    let info = registry.get_policy(&global, "permissions").unwrap();
    assert_eq!(info.active_version, Some(2), "the operator's choice stays");
    assert_eq!(info.versions.len(), 3);
    drop(registry);

    // Restarts of the same Ward change nothing.
    let registry = open_registry(dir.path());
    let again = registry.get_policy(&global, "permissions").unwrap();
    assert_eq!(again.versions.len(), 3);
    let uploads = registry
        .audit()
        .query(
            global.key(),
            &AuditQuery {
                kind: Some(AuditKind::PolicyUploaded),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(uploads.entries.len(), 3, "{uploads:?}");
}

#[test]
fn a_policy_a_tenant_defaults_to_is_not_deleted_from_under_it() {
    let (_dir, registry) = registry();
    let module = ward::plugins::PERMISSIONS_WASM;
    registry
        .upload_policy(&ScopeId::Global, "house", module, true, OP)
        .unwrap();
    let a = create(&registry, "acme");
    registry.upload_policy(&a, "own", module, true, OP).unwrap();
    let b = create(&registry, "bravo");
    registry
        .upload_policy(&b, "house", module, true, OP)
        .unwrap();
    for (scope, policy) in [(&a, "own"), (&b, "house")] {
        let patch = ward_types::UpdateTenant {
            name: None,
            settings: json!({"default_policy": policy}).as_object().cloned(),
        };
        registry.update_tenant(tenant_id(scope), patch, OP).unwrap();
    }

    // Acme's own default would leave it with none.
    let refused = registry.delete_policy(&a, "own", OP).unwrap_err();
    assert_eq!(code(refused), "conflict");
    // Bravo's own `house` may go: the global one takes its place...
    registry.delete_policy(&b, "house", OP).unwrap();
    // ...which now may not go, since bravo defaults to it.
    let refused = registry
        .delete_policy(&ScopeId::Global, "house", OP)
        .unwrap_err();
    assert!(refused.to_string().contains("`bravo`"), "{refused}");
    // Once no tenant defaults to it, it goes.
    let patch = ward_types::UpdateTenant {
        name: None,
        settings: json!({"default_policy": null}).as_object().cloned(),
    };
    registry.update_tenant(tenant_id(&b), patch, OP).unwrap();
    registry
        .delete_policy(&ScopeId::Global, "house", OP)
        .unwrap();
    // The builtin is every agent's fallback.
    let builtin = registry.delete_policy(&ScopeId::Global, "permissions", OP);
    assert_eq!(code(builtin.unwrap_err()), "conflict");
}
