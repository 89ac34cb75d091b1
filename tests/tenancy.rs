//! Tenancy on sled: lifecycle, narrowest-first resolution, the authorize
//! pipeline, isolation between tenants, cascade delete and restarts.

use serde_json::{Value, json};
use ward::audit::AuditQuery;
use ward::registry::{Registry, RegistryError, ScopeId};
use ward::store::{Kind, Store};
use ward_types::{
    AuditKind, AuthorizeRequest, CreateTenant, Entity, Permission, PutAgent, RequestAction, Scope,
    TenantKind, TenantStatus, UpdateTenant,
};

use crate::support::*;

const OP: &str = "operator";

fn create(registry: &Registry, slug: &str) -> ScopeId {
    create_with(registry, slug, json!({}))
}

fn create_with(registry: &Registry, slug: &str, settings: Value) -> ScopeId {
    let tenant = registry
        .create_tenant(
            CreateTenant {
                slug: slug.into(),
                name: format!("{slug} Inc."),
                kind: TenantKind::Organization,
                settings: settings.as_object().cloned(),
            },
            OP,
        )
        .unwrap();
    ScopeId::Tenant(tenant.id)
}

fn tenant_id(scope: &ScopeId) -> &str {
    scope.key()
}

fn grants(pairs: &[(&str, &[&str])]) -> Vec<Permission> {
    pairs
        .iter()
        .map(|(resource, actions)| Permission {
            resource: resource.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

fn agent_body(pairs: &[(&str, &[&str])]) -> PutAgent {
    PutAgent {
        kind: "ai_agent".into(),
        status: Default::default(),
        attributes: Default::default(),
        permissions: grants(pairs),
        policy: None,
    }
}

/// An agent with no grants whose decisions `policy` makes.
fn bound_to(policy: &str) -> PutAgent {
    PutAgent {
        policy: Some(policy.into()),
        ..agent_body(&[])
    }
}

fn ask(subject: &str, action: &str, resource: &str) -> AuthorizeRequest {
    let (kind, id) = resource.split_once(':').unwrap();
    AuthorizeRequest {
        subject: Entity {
            kind: "agent".into(),
            id: subject.into(),
            properties: None,
        },
        action: RequestAction {
            name: action.into(),
            properties: None,
        },
        resource: Entity {
            kind: kind.into(),
            id: id.into(),
            properties: None,
        },
        context: None,
    }
}

fn decide(
    registry: &Local,
    scope: &ScopeId,
    subject: &str,
    action: &str,
    resource: &str,
) -> ward::decision::DecisionOutcome {
    registry
        .authorize(
            tenant_id(scope),
            &ask(subject, action, resource),
            "key:test",
        )
        .unwrap()
}

fn code(err: RegistryError) -> String {
    err.code().as_str().to_string()
}

// ---- tenants ---------------------------------------------------------------

#[test]
fn tenants_are_created_read_by_id_or_slug_and_listed() {
    let (_dir, registry) = registry();
    let a = create(&registry, "acme");
    let tenant = registry.get_tenant("acme").unwrap();
    assert_eq!(tenant.id, tenant_id(&a));
    assert!(tenant.id.starts_with("tnt_") && tenant.id.len() == 30);
    assert_eq!(registry.get_tenant(&tenant.id).unwrap().slug, "acme");
    assert_eq!(tenant.status, TenantStatus::Active);
    assert_eq!(tenant.settings, ward_types::TenantSettings::default());
    create(&registry, "globex");
    registry
        .set_tenant_status("globex", TenantStatus::Suspended, OP)
        .unwrap();
    let slugs: Vec<_> = registry
        .list_tenants()
        .into_iter()
        .map(|t| t.slug)
        .collect();
    assert_eq!(slugs, vec!["acme", "globex"]);
}

#[test]
fn tenant_slugs_are_validated_reserved_and_unique() {
    let (_dir, registry) = registry();
    let attempt = |slug: &str| {
        registry.create_tenant(
            CreateTenant {
                slug: slug.into(),
                name: "X".into(),
                kind: TenantKind::Personal,
                settings: None,
            },
            OP,
        )
    };
    for bad in ["", "Acme", "a_b", "-a", "a--b", &"x".repeat(64)] {
        assert_eq!(code(attempt(bad).unwrap_err()), "invalid_input", "{bad}");
    }
    assert_eq!(code(attempt("global").unwrap_err()), "invalid_input");
    attempt("acme").unwrap();
    assert_eq!(code(attempt("acme").unwrap_err()), "conflict");
    assert_eq!(registry.list_tenants().len(), 1);
}

#[test]
fn tenant_settings_merge_and_null_resets_to_default() {
    let (_dir, registry) = registry();
    create_with(
        &registry,
        "acme",
        json!({"max_agents": 5, "sandbox": {"timeout_ms": 50}}),
    );
    let patch = |settings: Value| UpdateTenant {
        name: None,
        settings: settings.as_object().cloned(),
    };
    let t = registry
        .update_tenant(
            "acme",
            patch(json!({"burst": 7, "sandbox": {"memory_bytes": 8388608}})),
            OP,
        )
        .unwrap();
    assert_eq!(t.settings.max_agents, 5, "omitted fields keep their value");
    assert_eq!(t.settings.burst, 7);
    assert_eq!(t.settings.sandbox.timeout_ms, 50);
    assert_eq!(t.settings.sandbox.memory_bytes, 8 << 20);

    let t = registry
        .update_tenant(
            "acme",
            patch(json!({"max_agents": null, "sandbox": {"timeout_ms": null}})),
            OP,
        )
        .unwrap();
    let defaults = ward_types::TenantSettings::default();
    assert_eq!(t.settings.max_agents, defaults.max_agents);
    assert_eq!(t.settings.sandbox.timeout_ms, defaults.sandbox.timeout_ms);
    assert_eq!(t.settings.sandbox.memory_bytes, 8 << 20);

    let renamed = registry
        .update_tenant(
            "acme",
            UpdateTenant {
                name: Some("Acme Corp".into()),
                settings: None,
            },
            OP,
        )
        .unwrap();
    assert_eq!(renamed.name, "Acme Corp");
    assert_eq!(renamed.settings.burst, 7);
}

#[test]
fn invalid_tenant_settings_are_refused_and_change_nothing() {
    let (_dir, registry) = registry();
    create(&registry, "acme");
    let before = registry.get_tenant("acme").unwrap();
    for bad in [
        json!({"no_such_setting": 1}),
        json!({"max_agents": "many"}),
        json!({"sandbox": {"memory_bytes": 1u64 << 40}}),
        json!({"sandbox": {"timeout_ms": 0}}),
        json!({"burst": 0}),
    ] {
        let err = registry
            .update_tenant(
                "acme",
                UpdateTenant {
                    name: None,
                    settings: bad.as_object().cloned(),
                },
                OP,
            )
            .unwrap_err();
        assert_eq!(code(err), "invalid_input", "{bad}");
    }
    assert_eq!(registry.get_tenant("acme").unwrap(), before);
}

// ---- agents, policies, data ------------------------------------------------

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

// ---- narrowest-first ---------------------------------------------------------

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

// ---- the pipeline ------------------------------------------------------------

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

// ---- isolation ---------------------------------------------------------------

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

// ---- delete and restart ------------------------------------------------------

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
    let mut child = child_test("tenancy::child_process_writes_until_killed")
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

// ---- a model of resolution -----------------------------------------------------

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
