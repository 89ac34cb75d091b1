//! Nothing of one tenant is visible to another.

use super::*;

#[test]
fn isolation_matrix_nothing_of_one_tenant_is_visible_to_another() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let b = create(&registry, "globex");
    registry
        .put_agent(&a, "a-bot", agent_body(&[("*", &["*"])]), OP)
        .unwrap();
    registry
        .upload_policy(&a, "a-policy", &guest("probe"), true, OP)
        .unwrap();
    registry
        .configure_policy(&a, "a-policy", json!({"data_keys": ["a-doc"]}), OP)
        .unwrap();
    registry.put_data(&a, "a-doc", json!("secret"), OP).unwrap();
    assert!(
        decide(&registry, &a, "a-bot", "read", "x:1")
            .response
            .decision
    );

    // get / list
    assert_eq!(
        code(registry.get_agent(&b, "a-bot").unwrap_err()),
        "not_found"
    );
    assert_eq!(
        code(registry.get_policy(&b, "a-policy").unwrap_err()),
        "not_found"
    );
    assert_eq!(
        code(registry.get_data(&b, "a-doc").unwrap_err()),
        "not_found"
    );
    assert!(registry.list_agents(&b).unwrap().is_empty());
    assert!(
        registry
            .list_policies(&b)
            .unwrap()
            .iter()
            .all(|p| p.name != "a-policy")
    );
    // the global scope does not see tenants' objects either
    assert_eq!(
        code(registry.get_agent(&ScopeId::Global, "a-bot").unwrap_err()),
        "not_found"
    );
    // update / delete / activate / configure from B
    assert_eq!(
        code(registry.delete_agent(&b, "a-bot", OP).unwrap_err()),
        "not_found"
    );
    assert_eq!(
        code(registry.delete_policy(&b, "a-policy", OP).unwrap_err()),
        "not_found"
    );
    assert_eq!(
        code(registry.delete_data(&b, "a-doc", OP).unwrap_err()),
        "not_found"
    );
    assert_eq!(
        code(registry.activate_policy(&b, "a-policy", 1, OP).unwrap_err()),
        "not_found"
    );
    assert_eq!(
        code(
            registry
                .configure_policy(&b, "a-policy", json!(1), OP)
                .unwrap_err()
        ),
        "not_found"
    );
    // a put from B creates B's own object and leaves A's alone
    registry
        .put_agent(&b, "a-bot", agent_body(&[]), OP)
        .unwrap();
    assert_eq!(
        registry.get_agent(&a, "a-bot").unwrap().permissions.len(),
        1
    );
    registry.delete_agent(&b, "a-bot", OP).unwrap();
    // resolve: B's decision cannot use A's agent or policy
    assert_eq!(
        decide(&registry, &b, "a-bot", "read", "x:1")
            .response
            .reasons,
        vec!["unknown_agent"]
    );
    registry
        .put_agent(&b, "b-bot", bound_to("a-policy"), OP)
        .unwrap();
    assert_eq!(
        decide(&registry, &b, "b-bot", "read", "x:1")
            .response
            .reasons,
        vec!["policy_not_found"]
    );
    // data-get from inside a policy: B's probe cannot read A's document
    registry
        .upload_policy(&b, "b-policy", &guest("probe"), true, OP)
        .unwrap();
    registry
        .configure_policy(&b, "b-policy", json!({"data_keys": ["a-doc"]}), OP)
        .unwrap();
    registry
        .put_agent(&b, "b-bot", bound_to("b-policy"), OP)
        .unwrap();
    let seen = decide(&registry, &b, "b-bot", "read", "x:1").response;
    assert_eq!(seen.context["data"]["a-doc"], Value::Null);
    // audit: B's log holds none of A's entries
    let b_log = registry
        .audit()
        .query(
            b.key(),
            &AuditQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .unwrap();
    let a_ids: Vec<String> = registry
        .audit()
        .query(
            a.key(),
            &AuditQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(!a_ids.is_empty());
    assert!(b_log.entries.iter().all(|e| !a_ids.contains(&e.id)));
    assert!(
        b_log
            .entries
            .iter()
            .all(|e| e.target.as_deref() != Some("a-bot")
                || e.kind != AuditKind::AgentPut
                || e.actor == OP)
    );
    // tenant lookups by the other's id or slug are exact
    assert_eq!(registry.get_tenant(a.key()).unwrap().slug, "acme");
    assert_eq!(registry.get_tenant("globex").unwrap().id, b.key());
}
