//! The Rust client SDK against a real server: every route, typed errors
//! with the server's code, and retries that honour `Retry-After`.

use serde_json::json;
use ward_client::types::{
    AgentPage, AgentStatus, AuditQuery, AuthorizeRequest, CreateKey, CreateTenant, Entity, KeyRole,
    Permission, PutAgent, RequestAction, Scope, TenantKind, TenantStatus, UpdateTenant,
};
use ward_client::{AgentFilter, Client, Error, RetryPolicy};

use crate::server::{OPERATOR, TestServer};
use crate::support::guest;

fn agent(resource: &str, actions: &[&str]) -> PutAgent {
    PutAgent {
        kind: "service".into(),
        status: AgentStatus::Active,
        attributes: Default::default(),
        permissions: vec![Permission {
            resource: resource.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }],
        policy: None,
        budgets: Default::default(),
    }
}

fn ask(agent: &str, action: &str, resource: &str) -> AuthorizeRequest {
    let (kind, id) = resource.split_once(':').unwrap();
    AuthorizeRequest {
        subject: Entity::new("agent", agent),
        action: RequestAction::new(action),
        resource: Entity::new(kind, id),
        context: None,
    }
}

fn new_tenant(slug: &str) -> CreateTenant {
    CreateTenant {
        slug: slug.into(),
        name: slug.into(),
        kind: TenantKind::Organization,
        settings: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_through_the_client() {
    let server = TestServer::start().await;
    let operator = Client::new(&server.base, OPERATOR).unwrap();
    let public = Client::builder(&server.base).build().unwrap();

    // Operations.
    assert_eq!(public.healthz().await.unwrap().status, "ok");
    assert_eq!(public.readyz().await.unwrap().status, "ready");
    assert!(public.openapi().await.unwrap()["paths"]["/v1/authorize"].is_object());
    let discovery = public.discovery(None).await.unwrap();
    assert!(
        discovery
            .access_evaluation_endpoint
            .ends_with("/access/v1/evaluation")
    );

    // Tenants.
    let tenant = operator.create_tenant(&new_tenant("acme")).await.unwrap();
    let tenant_discovery = public.discovery(Some("acme")).await.unwrap();
    assert_eq!(
        tenant_discovery.policy_decision_point,
        format!("{}/acme", discovery.policy_decision_point)
    );
    assert_eq!(
        tenant_discovery.access_evaluation_endpoint,
        discovery.access_evaluation_endpoint
    );
    // Alike for every well-formed slug, so nobody learns which exist.
    assert_eq!(
        public
            .discovery(Some("nobody"))
            .await
            .unwrap()
            .access_evaluation_endpoint,
        discovery.access_evaluation_endpoint
    );
    assert!(
        public
            .discovery(Some("Not_A_Slug"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let conflict = operator
        .create_tenant(&new_tenant("acme"))
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Some("conflict"));
    assert_eq!(operator.get_tenant("acme").await.unwrap().id, tenant.id);
    let listed = operator.list_tenants().await.unwrap();
    assert!(listed.iter().any(|t| t.id == tenant.id));
    let mut settings = serde_json::Map::new();
    settings.insert("max_agents".into(), json!(5));
    let updated = operator
        .update_tenant(
            "acme",
            &UpdateTenant {
                name: Some("Acme Inc".into()),
                settings: Some(settings),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Acme Inc");
    assert_eq!(updated.settings.max_agents, 5);
    let suspended = operator.suspend_tenant("acme").await.unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    let active = operator.activate_tenant("acme").await.unwrap();
    assert_eq!(active.status, TenantStatus::Active);

    // Keys: one through the operator route, one made by the tenant itself.
    let admin = operator
        .create_tenant_key(
            "acme",
            &CreateKey {
                name: "admin".into(),
                role: KeyRole::Admin,
            },
        )
        .await
        .unwrap();
    let ward = Client::new(&server.base, &admin.secret).unwrap();
    assert_eq!(ward.tenant().await.unwrap().id, tenant.id);
    let app = ward
        .create_key(&CreateKey {
            name: "app".into(),
            role: KeyRole::Authorize,
        })
        .await
        .unwrap();
    let keys = ward.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let app_client = Client::new(&server.base, &app.secret).unwrap();
    // An authorize key cannot manage.
    let forbidden = app_client.list_agents().await.unwrap_err();
    assert_eq!(forbidden.status(), Some(403));

    // Agents, in the tenant and (by the operator) globally.
    let reporter = ward
        .put_agent("reporter", &agent("reports:*", &["read", "export"]))
        .await
        .unwrap();
    assert_eq!(reporter.scope, Scope::Tenant);
    operator
        .global()
        .put_agent("auditor", &agent("*", &["read"]))
        .await
        .unwrap();
    let agents = ward.list_agents().await.unwrap();
    assert!(
        agents
            .iter()
            .any(|a| a.name == "auditor" && a.scope == Scope::Global)
    );
    assert_eq!(ward.get_agent("reporter").await.unwrap().name, "reporter");
    // The operator reaches the tenant's objects with for_tenant.
    let as_operator = operator.for_tenant("acme").unwrap();
    assert_eq!(
        as_operator.get_agent("reporter").await.unwrap().scope,
        Scope::Tenant
    );
    let missing = ward.get_agent("nobody").await.unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!(missing.code(), Some("not_found"));
    let read_only = ward.delete_agent("auditor").await.unwrap_err();
    assert_eq!(read_only.code(), Some("global_read_only"));

    // Decisions: native, batch, AuthZEN single and batch.
    let allowed = app_client
        .authorize(&ask("reporter", "export", "reports:q3"))
        .await
        .unwrap();
    assert!(allowed.decision);
    let results = app_client
        .authorize_batch(&[
            ask("reporter", "read", "reports:q3"),
            ask("reporter", "delete", "reports:q3"),
        ])
        .await
        .unwrap();
    assert_eq!(
        results.iter().map(|r| r.decision).collect::<Vec<_>>(),
        [true, false]
    );
    let evaluation = app_client
        .evaluation(&ask("reporter", "read", "reports:q3"))
        .await
        .unwrap();
    assert!(evaluation.decision);
    let evaluations = app_client
        .evaluations(&json!({
            "subject": {"type": "agent", "id": "reporter"},
            "resource": {"type": "reports", "id": "q3"},
            "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "delete"}}]
        }))
        .await
        .unwrap();
    assert_eq!(
        evaluations
            .evaluations
            .iter()
            .map(|e| e.decision)
            .collect::<Vec<_>>(),
        [true, false]
    );
    let invalid = app_client
        .authorize(&ask("reporter", "", "reports:q3"))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Some("invalid_input"));

    // Policies: upload, stage, activate, configure, delete.
    let first = ward
        .upload_policy("rbac", guest("rbac"), true)
        .await
        .unwrap();
    assert!(first.active);
    let staged = ward
        .upload_policy("rbac", guest("rbac"), false)
        .await
        .unwrap();
    assert_eq!((staged.version, staged.active), (2, false));
    assert_eq!(
        ward.get_policy("rbac").await.unwrap().active_version,
        Some(1)
    );
    let activated = ward.activate_policy("rbac", 2).await.unwrap();
    assert_eq!(activated.active_version, Some(2));
    let configured = ward
        .configure_policy("rbac", &json!({"data_key": "roles"}))
        .await
        .unwrap();
    assert_eq!(configured.config["data_key"], "roles");
    let policies = ward.list_policies().await.unwrap();
    assert!(policies.iter().any(|p| p.name == "rbac"));
    let refused = ward
        .upload_policy("broken", b"not wasm".to_vec(), true)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("invalid_module"));
    ward.delete_policy("rbac").await.unwrap();
    assert!(ward.get_policy("rbac").await.unwrap_err().is_not_found());

    // Data.
    let document = ward
        .put_data("roles", &json!({"viewer": ["read"]}))
        .await
        .unwrap();
    assert_eq!(document.scope, Scope::Tenant);
    assert_eq!(
        ward.get_data("roles").await.unwrap().value,
        json!({"viewer": ["read"]})
    );
    ward.delete_data("roles").await.unwrap();
    assert!(ward.get_data("roles").await.unwrap_err().is_not_found());

    // Audit, usage, metrics.
    let page = ward
        .audit(&AuditQuery {
            kind: Some("decision".into()),
            limit: Some("2".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 2);
    assert!(page.next_cursor.is_some());
    let older = ward
        .audit(&AuditQuery {
            kind: Some("decision".into()),
            cursor: page.next_cursor.clone(),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(older.entries.iter().all(|e| e.id < page.entries[1].id));
    let global_log = operator
        .global()
        .audit(&AuditQuery::default())
        .await
        .unwrap();
    assert!(
        global_log
            .entries
            .iter()
            .any(|e| e.target.as_deref() == Some("auditor"))
    );
    let usage = ward.usage().await.unwrap();
    // 1 + 2 (batch) + 1 (AuthZEN) + 2 (AuthZEN batch); the invalid request is refused before.
    assert_eq!(usage.decisions, 6);
    // The operator's, never the public's.
    assert!(
        operator
            .metrics()
            .await
            .unwrap()
            .contains("ward_decisions_total")
    );
    assert_eq!(public.metrics().await.unwrap_err().status(), Some(401));

    // Keys revoked and tenants deleted take effect at once.
    ward.revoke_key(&app.key.id).await.unwrap();
    let revoked = app_client
        .authorize(&ask("reporter", "read", "reports:q3"))
        .await
        .unwrap_err();
    assert_eq!(revoked.status(), Some(401));
    operator.delete_tenant("acme").await.unwrap();
    assert!(
        operator
            .get_tenant("acme")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_are_listed_filtered_and_paged_through_the_client() {
    let server = TestServer::start().await;
    let operator = Client::new(&server.base, OPERATOR).unwrap();
    operator.create_tenant(&new_tenant("acme")).await.unwrap();
    let ward = operator.for_tenant("acme").unwrap();
    for i in 0..7 {
        let mut body = agent("*", &["read"]);
        if i % 2 == 1 {
            body.kind = "user".into();
        }
        if i % 3 == 0 {
            body.status = AgentStatus::Disabled;
        }
        ward.put_agent(&format!("bot-{i}"), &body).await.unwrap();
    }
    operator
        .global()
        .put_agent("global-bot", &agent("*", &["read"]))
        .await
        .unwrap();
    let names =
        |page: &AgentPage| -> Vec<String> { page.agents.iter().map(|a| a.name.clone()).collect() };

    // Unpaged: every match in one page, as `list_agents` still gives.
    let all = ward
        .list_agents_filtered(&AgentFilter::default())
        .await
        .unwrap();
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.agents, ward.list_agents().await.unwrap());
    assert_eq!(all.agents.len(), 8);
    let disabled_services = ward
        .list_agents_filtered(&AgentFilter {
            status: Some(AgentStatus::Disabled),
            kind: Some("service".into()),
            ..AgentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&disabled_services), ["bot-0", "bot-6"]);
    let active = ward
        .list_agents_filtered(&AgentFilter {
            status: Some(AgentStatus::Active),
            ..AgentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(&active),
        ["bot-1", "bot-2", "bot-4", "bot-5", "global-bot"]
    );

    // Paged, following next_cursor.
    let mut filter = AgentFilter {
        kind: Some("service".into()),
        limit: Some(2),
        ..AgentFilter::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = ward.list_agents_filtered(&filter).await.unwrap();
        assert!(page.agents.len() <= 2);
        seen.extend(names(&page));
        match page.next_cursor {
            Some(next) => filter.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["bot-0", "bot-2", "bot-4", "bot-6", "global-bot"]);

    // The global scope lists its own.
    let global = operator
        .global()
        .list_agents_filtered(&AgentFilter {
            limit: Some(10),
            ..AgentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&global), ["global-bot"]);

    // Refusals carry the server's code.
    for filter in [
        AgentFilter {
            limit: Some(0),
            ..AgentFilter::default()
        },
        AgentFilter {
            cursor: Some("not-a-cursor".into()),
            ..AgentFilter::default()
        },
    ] {
        let err = ward.list_agents_filtered(&filter).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(400), Some("invalid_input"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_retried_after_the_servers_retry_after() {
    let server = TestServer::start().await;
    let operator = Client::new(&server.base, OPERATOR).unwrap();
    let mut settings = serde_json::Map::new();
    settings.insert("rate_limit_per_sec".into(), json!(1));
    settings.insert("burst".into(), json!(1));
    operator
        .create_tenant(&CreateTenant {
            settings: Some(settings),
            ..new_tenant("slow")
        })
        .await
        .unwrap();
    let key = operator
        .create_tenant_key(
            "slow",
            &CreateKey {
                name: "app".into(),
                role: KeyRole::Admin,
            },
        )
        .await
        .unwrap();

    // Without retries the refusal comes back typed, with the wait asked.
    let impatient = Client::builder(&server.base)
        .token(key.secret.as_str())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    impatient
        .authorize(&ask("nobody", "read", "x:y"))
        .await
        .unwrap();
    match impatient.authorize(&ask("nobody", "read", "x:y")).await {
        Err(Error::Api {
            status,
            code,
            retry_after,
            ..
        }) => {
            assert_eq!((status, code.as_str()), (429, "rate_limited"));
            assert!(retry_after.is_some_and(|wait| wait.as_secs() >= 1));
        }
        other => panic!("expected a rate limit refusal, got {other:?}"),
    }

    // With the default policy the client waits as asked and succeeds.
    let patient = Client::new(&server.base, &key.secret).unwrap();
    let before = patient.usage().await.unwrap().rate_limited;
    for _ in 0..2 {
        patient
            .authorize(&ask("nobody", "read", "x:y"))
            .await
            .unwrap();
    }
    let after = patient.usage().await.unwrap();
    assert!(
        after.rate_limited > before,
        "no call was refused, so nothing was retried"
    );
    assert_eq!(after.decisions, 3);
}

#[test]
fn bad_client_settings_are_reported_not_panicked() {
    for url in ["not a url", "ftp://example.com", "mailto:a@b"] {
        assert!(matches!(
            Client::new(url, "t").err(),
            Some(Error::Config(_))
        ));
    }
    assert!(matches!(
        Client::new("http://127.0.0.1:1", "bad\ntoken").err(),
        Some(Error::Config(_))
    ));
}
