//! The builtin policies: permissions and rbac.

use super::*;

#[test]
fn permissions_policy_allows_what_a_grant_covers() {
    let policy = load("permissions");
    let bot = agent(
        "report-bot",
        &[
            ("reports:*", &["read", "export"]),
            ("*:public-*", &["read"]),
        ],
    );
    let limits = SandboxLimits::default();
    let eval = |action: &str, resource: &str| {
        shared_sandbox().evaluate(
            &policy,
            &request(Some(bot.clone()), action, resource, "null"),
            &limits,
            Arc::new(NoData),
        )
    };

    let allowed = eval("export", "reports:q3");
    assert!(allowed.allow, "{allowed:?}");
    assert_eq!(
        allowed.reasons,
        vec!["`reports:*` grants `export` on `reports:q3`"]
    );
    assert!(eval("read", "docs:public-faq").allow);

    let wrong_action = eval("delete", "reports:q3");
    assert!(!wrong_action.allow);
    assert_eq!(
        wrong_action.reasons,
        vec!["`reports:*` matches `reports:q3` but does not grant `delete`"]
    );
    let wrong_resource = eval("read", "invoices:7");
    assert!(!wrong_resource.allow);
    assert_eq!(
        wrong_resource.reasons,
        vec!["no permission of agent `report-bot` matches `invoices:7`"]
    );
    assert!(wrong_resource.failure.is_none());
}

#[test]
fn permissions_policy_denies_a_subject_that_is_not_an_agent() {
    let outcome = shared_sandbox().evaluate(
        &load("permissions"),
        &request(None, "read", "doc:1", "null"),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(!outcome.allow);
    assert_eq!(
        outcome.reasons,
        vec!["subject `agent:nobody` is not a registered agent"]
    );
}

#[test]
fn permissions_policy_wildcard_action_allows_any_action() {
    let outcome = shared_sandbox().evaluate(
        &load("permissions"),
        &request(
            Some(agent("root", &[("*", &["*"])])),
            "drop",
            "db:prod",
            "null",
        ),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(outcome.allow, "{outcome:?}");
}

/// The builtin policy is built with a 64 KiB stack (plugins/permissions/
/// build.rs) and a heap that never reuses memory (`DecisionHeap`); an agent
/// at the registry's limits (1,000 permissions of 512 characters, 100
/// actions each) must still be decided, both ways, by the builtin and by
/// the same policy built for `wasm32-wasip2`.
#[test]
fn permissions_policy_decides_for_an_agent_at_the_registry_limits() {
    let builtin = shared_sandbox()
        .load(ward::plugins::PERMISSIONS_WASM, usize::MAX)
        .unwrap();
    for policy in [builtin, load("permissions")] {
        decides_at_the_registry_limits(&policy);
    }
}

fn decides_at_the_registry_limits(policy: &Arc<LoadedPolicy>) {
    let actions: Vec<String> = (0..100).map(|i| format!("action-{i:03}")).collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let patterns: Vec<String> = (0..1_000)
        .map(|i| {
            let head = format!("kind-{i:04}:*");
            format!("{head}{}", "x*".repeat((512 - head.len()) / 2))
        })
        .collect();
    assert!(patterns.iter().all(|p| p.len() <= 512));
    let grants: Vec<(&str, &[&str])> = patterns
        .iter()
        .map(|p| (p.as_str(), actions.as_slice()))
        .collect();
    let big = agent("big", &grants);
    // Lowering 100,000 action strings takes tens of milliseconds (more in
    // a debug build beside other tests); the point here is the stack.
    let limits = SandboxLimits {
        timeout_ms: 10_000,
        ..SandboxLimits::default()
    };
    let resource = format!("kind-0999:{}", "x".repeat(300));
    let eval = |action: &str, resource: &str| {
        shared_sandbox().evaluate(
            policy,
            &request(Some(big.clone()), action, resource, "null"),
            &limits,
            Arc::new(NoData),
        )
    };

    let allowed = eval("action-099", &resource);
    assert!(allowed.allow, "{:?}", allowed.failure);
    assert!(
        allowed.reasons[0].starts_with("`kind-0999:*x*"),
        "{allowed:?}"
    );
    let denied = eval("action-100", "other:1");
    assert!(!denied.allow);
    assert!(denied.failure.is_none(), "{:?}", denied.failure);
    assert_eq!(
        denied.reasons,
        vec!["no permission of agent `big` matches `other:1`"]
    );
}

#[test]
fn the_embedded_permissions_policy_is_the_built_one_and_needs_no_wasi() {
    let built = ward::plugins::PERMISSIONS_PATH;
    assert_eq!(
        ward::plugins::PERMISSIONS_WASM,
        std::fs::read(built).unwrap().as_slice()
    );
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::new(&engine, ward::plugins::PERMISSIONS_WASM).unwrap();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(imports, vec!["ward:policy/types@0.1.0"]);
}

/// The builtin's heap grows linear memory as it needs; past the tenant's
/// memory limit the decision fails as `memory_limit`, like any policy's.
#[test]
fn the_builtin_heap_stops_at_the_memory_limit() {
    let builtin = shared_sandbox()
        .load(ward::plugins::PERMISSIONS_WASM, usize::MAX)
        .unwrap();
    let pattern = format!("docs:{}", "y".repeat(500));
    let actions: Vec<String> = (0..100).map(|i| format!("act-{i}")).collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let grants: Vec<(&str, &[&str])> = (0..1_000)
        .map(|_| (pattern.as_str(), actions.as_slice()))
        .collect();
    let agent = agent("wide", &grants);
    let request = request(Some(agent), "read", "docs:1", "null");
    let within = |memory_bytes: u64| SandboxLimits {
        memory_bytes,
        timeout_ms: 10_000,
        ..SandboxLimits::default()
    };

    // About 1.5 MiB of strings are lowered into the guest's memory.
    let refused = shared_sandbox().evaluate(&builtin, &request, &within(1 << 20), Arc::new(NoData));
    assert_denied_with(&refused, PolicyErrorKind::MemoryLimit);

    let decided =
        shared_sandbox().evaluate(&builtin, &request, &within(16 << 20), Arc::new(NoData));
    assert!(decided.failure.is_none(), "{:?}", decided.failure);
    assert_eq!(
        decided.reasons,
        vec!["no permission of agent `wide` matches `docs:1`"]
    );
}

#[test]
fn rbac_policy_maps_roles_from_config_or_data() {
    let policy = load("rbac");
    let mut req = request(None, "read", "docs:handbook", "");
    req.subject.properties = String::from(r#"{"roles": ["viewer"]}"#);
    let limits = SandboxLimits::default();

    req.config =
        String::from(r#"{"roles": {"viewer": [{"resource": "docs:*", "actions": ["read"]}]}}"#);
    let by_config = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(NoData));
    assert!(by_config.allow, "{by_config:?}");
    assert_eq!(
        by_config.reasons,
        vec!["role `viewer` grants `read` on `docs:handbook`"]
    );

    req.action.name = String::from("delete");
    let denied = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(NoData));
    assert!(!denied.allow);
    assert_eq!(
        denied.reasons,
        vec!["roles [viewer] grant no `delete` on `docs:handbook`"]
    );

    req.action.name = String::from("read");
    req.config = String::from("null");
    let data = MemoryData(
        [(
            String::from("rbac"),
            String::from(r#"{"roles": {"viewer": [{"resource": "docs:*", "actions": ["*"]}]}}"#),
        )]
        .into(),
    );
    let by_data = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(data));
    assert!(by_data.allow, "{by_data:?}");

    let no_mapping = shared_sandbox().evaluate(&policy, &req, &limits, Arc::new(NoData));
    assert_denied_with(&no_mapping, PolicyErrorKind::GuestError);
    assert!(
        no_mapping
            .failure
            .unwrap()
            .detail
            .contains("no role mapping")
    );
}

#[test]
fn rbac_policy_takes_roles_from_agent_attributes() {
    let mut bot = agent("bot", &[]);
    bot.attributes = String::from(r#"{"roles": "admin"}"#);
    let req = request(
        Some(bot),
        "purge",
        "cache:all",
        r#"{"roles": {"admin": [{"resource": "*", "actions": ["*"]}]}}"#,
    );
    let outcome = shared_sandbox().evaluate(
        &load("rbac"),
        &req,
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(outcome.allow, "{outcome:?}");
}
