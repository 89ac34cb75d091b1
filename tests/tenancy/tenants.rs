//! Tenants: create, read, settings.

use super::*;

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
