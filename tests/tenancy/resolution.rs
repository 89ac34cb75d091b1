//! Narrowest-first: tenant objects shadow global ones, global ones fill in; a
//! model of resolution checked against the registry.

use super::*;

#[test]
fn tenant_objects_shadow_global_ones_and_global_ones_fill_in() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let b = create(&registry, "globex");
    let global = ScopeId::Global;
    registry
        .put_agent(
            &global,
            "shared-bot",
            agent_body(&[("docs:*", &["read"])]),
            OP,
        )
        .unwrap();
    registry
        .put_data(&global, "limits", json!({"from": "global"}), OP)
        .unwrap();
    registry
        .put_agent(
            &a,
            "shared-bot",
            agent_body(&[("docs:*", &["read", "write"])]),
            OP,
        )
        .unwrap();
    registry
        .put_data(&a, "limits", json!({"from": "acme"}), OP)
        .unwrap();

    assert_eq!(
        registry.get_agent(&a, "shared-bot").unwrap().scope,
        Scope::Tenant
    );
    assert_eq!(
        registry.get_agent(&b, "shared-bot").unwrap().scope,
        Scope::Global
    );
    assert_eq!(
        registry.get_data(&a, "limits").unwrap().value["from"],
        "acme"
    );
    assert_eq!(
        registry.get_data(&b, "limits").unwrap().value["from"],
        "global"
    );

    let seen_by_a = registry.list_agents(&a).unwrap();
    assert_eq!(seen_by_a.len(), 1);
    assert_eq!(seen_by_a[0].scope, Scope::Tenant);
    let policies_b: Vec<_> = registry
        .list_policies(&b)
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.scope))
        .collect();
    assert_eq!(policies_b, vec![("permissions".to_string(), Scope::Global)]);

    let in_a = decide(&registry, &a, "shared-bot", "write", "docs:1");
    assert!(in_a.response.decision);
    assert_eq!(in_a.response.agent.as_ref().unwrap().scope, Scope::Tenant);
    let in_b = decide(&registry, &b, "shared-bot", "write", "docs:1");
    assert!(!in_b.response.decision);
    assert_eq!(in_b.response.agent.as_ref().unwrap().scope, Scope::Global);
    let policy = in_b.response.policy.unwrap();
    assert_eq!(
        (policy.name.as_str(), policy.scope, policy.version),
        ("permissions", Scope::Global, 1)
    );

    registry.delete_agent(&a, "shared-bot", OP).unwrap();
    assert_eq!(
        registry.get_agent(&a, "shared-bot").unwrap().scope,
        Scope::Global,
        "fallback after delete"
    );
}

#[test]
fn global_objects_are_read_only_to_tenants() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let global = ScopeId::Global;
    registry
        .put_agent(&global, "g-bot", agent_body(&[]), OP)
        .unwrap();
    registry.put_data(&global, "g-doc", json!(1), OP).unwrap();
    assert_eq!(
        code(registry.delete_agent(&a, "g-bot", OP).unwrap_err()),
        "global_read_only"
    );
    assert_eq!(
        code(registry.delete_data(&a, "g-doc", OP).unwrap_err()),
        "global_read_only"
    );
    assert_eq!(
        code(registry.delete_policy(&a, "permissions", OP).unwrap_err()),
        "global_read_only"
    );
    assert_eq!(
        code(
            registry
                .activate_policy(&a, "permissions", 1, OP)
                .unwrap_err()
        ),
        "global_read_only"
    );
    assert_eq!(
        code(
            registry
                .configure_policy(&a, "permissions", json!({}), OP)
                .unwrap_err()
        ),
        "global_read_only"
    );
    assert!(registry.get_agent(&global, "g-bot").is_ok());
    assert!(registry.get_policy(&global, "permissions").is_ok());
}

#[test]
fn a_global_policy_runs_in_the_calling_tenants_sandbox_with_its_data() {
    let (_dir, registry) = registry();
    let a = create_with(
        &registry,
        "acme",
        json!({"sandbox": {"memory_bytes": 4194304}}),
    );
    let b = create(&registry, "globex");
    let global = ScopeId::Global;
    registry
        .upload_policy(&global, "probe", &guest("probe"), true, OP)
        .unwrap();
    registry
        .configure_policy(
            &global,
            "probe",
            json!({"data_keys": ["plan", "region", "secret"]}),
            OP,
        )
        .unwrap();
    registry
        .put_data(&global, "plan", json!("free"), OP)
        .unwrap();
    registry
        .put_data(&global, "region", json!("eu"), OP)
        .unwrap();
    registry
        .put_data(&a, "plan", json!("enterprise"), OP)
        .unwrap();
    registry
        .put_data(&b, "secret", json!("globex-only"), OP)
        .unwrap();
    for scope in [&a, &b] {
        registry
            .put_agent(scope, "bot", bound_to("probe"), OP)
            .unwrap();
    }

    let seen = decide(&registry, &a, "bot", "read", "doc:1").response;
    assert!(seen.decision);
    assert_eq!(seen.context["tenant"]["slug"], "acme");
    assert_eq!(
        seen.context["data"],
        json!({"plan": "enterprise", "region": "eu", "secret": null})
    );
    assert_eq!(seen.policy.unwrap().scope, Scope::Global);

    let seen_b = decide(&registry, &b, "bot", "read", "doc:1").response;
    assert_eq!(
        seen_b.context["data"],
        json!({"plan": "free", "region": "eu", "secret": "globex-only"})
    );

    // The same global policy under each tenant's own memory limit.
    registry
        .upload_policy(&global, "bomb", &guest("memory_bomb"), true, OP)
        .unwrap();
    registry
        .configure_policy(&global, "bomb", json!({"bytes": 8388608}), OP)
        .unwrap();
    for scope in [&a, &b] {
        registry
            .put_agent(scope, "hungry", bound_to("bomb"), OP)
            .unwrap();
    }
    let small = decide(&registry, &a, "hungry", "read", "doc:1").response;
    assert_eq!(small.reasons, vec!["policy_error:memory_limit"]);
    assert!(
        decide(&registry, &b, "hungry", "read", "doc:1")
            .response
            .decision
    );
}

mod model {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        PutAgent {
            scope: usize,
            name: usize,
            marker: u8,
        },
        DeleteAgent {
            scope: usize,
            name: usize,
        },
        PutData {
            scope: usize,
            name: usize,
            marker: u8,
        },
        DeleteData {
            scope: usize,
            name: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..4usize, any::<u8>()).prop_map(|(scope, name, marker)| Op::PutAgent {
                scope,
                name,
                marker
            }),
            (0..3usize, 0..4usize).prop_map(|(scope, name)| Op::DeleteAgent { scope, name }),
            (0..3usize, 0..4usize, any::<u8>()).prop_map(|(scope, name, marker)| Op::PutData {
                scope,
                name,
                marker
            }),
            (0..3usize, 0..4usize).prop_map(|(scope, name)| Op::DeleteData { scope, name }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn resolution_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..25)) {
            let (_dir, registry) = registry();
            let a = create(&registry, "model-a");
            let b = create(&registry, "model-b");
            let scopes = [ScopeId::Global, a.clone(), b.clone()];
            // model[scope][kind][name] = marker
            let mut agents: Vec<HashMap<usize, u8>> = vec![HashMap::new(); 3];
            let mut data: Vec<HashMap<usize, u8>> = vec![HashMap::new(); 3];
            for op in ops {
                match op {
                    Op::PutAgent { scope, name, marker } => {
                        let mut body = agent_body(&[]);
                        body.attributes.insert("marker".into(), json!(marker));
                        registry.put_agent(&scopes[scope], &format!("n{name}"), body, OP).unwrap();
                        agents[scope].insert(name, marker);
                    }
                    Op::DeleteAgent { scope, name } => {
                        let result = registry.delete_agent(&scopes[scope], &format!("n{name}"), OP);
                        prop_assert_eq!(result.is_ok(), agents[scope].remove(&name).is_some());
                    }
                    Op::PutData { scope, name, marker } => {
                        registry.put_data(&scopes[scope], &format!("n{name}"), json!(marker), OP).unwrap();
                        data[scope].insert(name, marker);
                    }
                    Op::DeleteData { scope, name } => {
                        let result = registry.delete_data(&scopes[scope], &format!("n{name}"), OP);
                        prop_assert_eq!(result.is_ok(), data[scope].remove(&name).is_some());
                    }
                }
                for (i, scope) in scopes.iter().enumerate() {
                    for name in 0..4 {
                        let expect = |model: &Vec<HashMap<usize, u8>>| {
                            model[i].get(&name).map(|m| (*m, i != 0 || matches!(scope, ScopeId::Global)))
                                .or_else(|| if i == 0 { None } else { model[0].get(&name).map(|m| (*m, false)) })
                        };
                        let got_agent = registry.get_agent(scope, &format!("n{name}")).ok().map(|agent| {
                            (agent.attributes["marker"].as_u64().unwrap() as u8, agent.scope == Scope::Tenant || i == 0)
                        });
                        prop_assert_eq!(got_agent, expect(&agents));
                        let got_data = registry.get_data(scope, &format!("n{name}")).ok().map(|doc| {
                            (doc.value.as_u64().unwrap() as u8, doc.scope == Scope::Tenant || i == 0)
                        });
                        prop_assert_eq!(got_data, expect(&data));
                    }
                }
            }
        }
    }
}
