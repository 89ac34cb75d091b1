//! The decision pipeline: provenance, denies, suspension, activation.

use super::*;

#[test]
fn pipeline_allows_and_denies_with_provenance_and_audits_each_decision() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    registry
        .put_agent(
            &a,
            "report-bot",
            agent_body(&[("reports:*", &["read", "export"])]),
            OP,
        )
        .unwrap();

    let allowed = decide(&registry, &a, "report-bot", "export", "reports:q3");
    assert!(allowed.response.decision);
    assert_eq!(
        allowed.response.reasons,
        vec!["`reports:*` grants `export` on `reports:q3`"]
    );
    let agent = allowed.response.agent.clone().unwrap();
    assert_eq!(
        (agent.name.as_str(), agent.scope),
        ("report-bot", Scope::Tenant)
    );
    let policy = allowed.response.policy.clone().unwrap();
    assert_eq!(policy.sha256.len(), 64);
    assert!(ulid::Ulid::from_string(&allowed.response.decision_id).is_ok());

    let denied = decide(&registry, &a, "report-bot", "delete", "reports:q3");
    assert!(!denied.response.decision);

    let log = registry
        .audit()
        .query(
            a.key(),
            &AuditQuery {
                kind: Some(AuditKind::Decision),
                ..Default::default()
            },
        )
        .unwrap();
    let ids: Vec<_> = log.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        ids,
        vec![
            denied.response.decision_id.clone(),
            allowed.response.decision_id.clone()
        ]
    );
    let entry = &log.entries[1];
    assert_eq!(entry.decision, Some(true));
    assert_eq!(entry.actor, "key:test");
    assert_eq!(entry.policy.as_ref().unwrap().sha256, policy.sha256);
    assert_eq!(entry.details["request"]["action"]["name"], "export");
    assert!(
        entry.details["usage"]["peak_memory_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn pipeline_denies_disabled_unknown_and_unresolvable() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let mut disabled = agent_body(&[("*", &["*"])]);
    disabled.status = ward_types::AgentStatus::Disabled;
    registry.put_agent(&a, "off", disabled, OP).unwrap();
    registry
        .put_agent(
            &a,
            "orphan",
            PutAgent {
                policy: Some("missing".into()),
                budgets: Default::default(),
                ..agent_body(&[("*", &["*"])])
            },
            OP,
        )
        .unwrap();

    assert_eq!(
        decide(&registry, &a, "off", "read", "x:1").response.reasons,
        vec!["agent_disabled"]
    );
    assert_eq!(
        decide(&registry, &a, "nobody", "read", "x:1")
            .response
            .reasons,
        vec!["unknown_agent"]
    );
    assert_eq!(
        decide(&registry, &a, "orphan", "read", "x:1")
            .response
            .reasons,
        vec!["policy_not_found"]
    );

    // With a default policy, unknown subjects are evaluated by it.
    registry
        .upload_policy(&a, "open", &guest("probe"), true, OP)
        .unwrap();
    registry
        .update_tenant(
            a.key(),
            UpdateTenant {
                name: None,
                settings: json!({"default_policy": "open"}).as_object().cloned(),
            },
            OP,
        )
        .unwrap();
    let outcome = decide(&registry, &a, "nobody", "read", "x:1").response;
    assert!(outcome.decision);
    assert_eq!(outcome.agent, None);
    assert_eq!(outcome.policy.unwrap().name, "open");
}

#[test]
fn suspension_denies_everything_until_reactivation() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    registry
        .put_agent(&a, "bot", agent_body(&[("*", &["*"])]), OP)
        .unwrap();
    assert!(
        decide(&registry, &a, "bot", "read", "x:1")
            .response
            .decision
    );
    registry
        .set_tenant_status("acme", TenantStatus::Suspended, OP)
        .unwrap();
    let denied = decide(&registry, &a, "bot", "read", "x:1").response;
    assert!(!denied.decision);
    assert_eq!(denied.reasons, vec!["tenant_suspended"]);
    registry
        .set_tenant_status("acme", TenantStatus::Active, OP)
        .unwrap();
    assert!(
        decide(&registry, &a, "bot", "read", "x:1")
            .response
            .decision
    );
}

#[test]
fn activation_is_atomic_and_in_flight_decisions_finish_on_their_version() {
    let (_dir, registry) = registry();
    let a = create_with(&registry, "acme", json!({"sandbox": {"timeout_ms": 5000}}));
    registry
        .upload_policy(&a, "main", &guest("spin"), true, OP)
        .unwrap();
    registry
        .configure_policy(&a, "main", json!({"spin_ms": 300}), OP)
        .unwrap();
    registry
        .upload_policy(&a, "main", &guest("permissions"), false, OP)
        .unwrap();
    registry.put_agent(&a, "bot", bound_to("main"), OP).unwrap();

    std::thread::scope(|scope| {
        let slow = scope.spawn(|| decide(&registry, &a, "bot", "read", "x:1"));
        std::thread::sleep(std::time::Duration::from_millis(100));
        registry.activate_policy(&a, "main", 2, OP).unwrap();
        let after = decide(&registry, &a, "bot", "read", "x:1").response;
        assert_eq!(after.policy.unwrap().version, 2);
        assert!(!after.decision, "version 2 (permissions) finds no grant");
        let during = slow.join().unwrap().response;
        assert_eq!(during.policy.unwrap().version, 1);
        assert!(during.decision, "version 1 (spin) allows after spinning");
    });
}
