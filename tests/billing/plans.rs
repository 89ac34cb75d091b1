//! `[[plans]]`: default plans, trials ending in 402 `billing_required`,
//! the operator changing a tenant's plan.

use std::sync::Arc;

use serde_json::json;
use ward::gates::ManualClock;

use super::patch;
use crate::limits::audit_ids;
use crate::server::{OPERATOR, TestServer};

const PLANS: &str = r#"
[tenants]
default_plan = "trial"
default_personal_plan = "free"

[[plans]]
name = "trial"
trial_days = 14
[plans.settings]
max_decisions_per_month = 1000

[[plans]]
name = "free"
[plans.settings]
max_agents = 5

[[plans]]
name = "pro"
[plans.settings]
max_decisions_per_month = 1000000
"#;

const DAY_MS: u64 = 86_400_000;

fn decision() -> serde_json::Value {
    json!({"agent": "bot", "action": "read", "resource": "doc:1"})
}

fn evaluation() -> serde_json::Value {
    json!({"subject": {"type": "agent", "id": "bot"}, "action": {"name": "read"},
           "resource": {"type": "doc", "id": "1"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_trial_refuses_decisions_until_the_plan_changes() {
    let start = ward_types::Timestamp::now().millis();
    let clock = Arc::new(ManualClock::at(start));
    let server = TestServer::start_with_clock(PLANS, Arc::clone(&clock) as Arc<_>).await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let tenant = server.get("/v1/tenants/acme", OPERATOR).await.body;
    assert_eq!(tenant["plan"], "trial");
    assert_eq!(
        tenant["trial_ends_at"],
        json!(ward_types::Timestamp(start + 14 * DAY_MS))
    );
    assert_eq!(tenant["settings"]["max_decisions_per_month"], 1000);
    assert_eq!(
        tenant["settings_source"]["max_decisions_per_month"],
        "plan:trial"
    );
    assert_eq!(
        server
            .post("/v1/authorize", &authorize, decision())
            .await
            .status,
        200
    );

    clock.advance(14 * DAY_MS + 1);
    let routes = [
        ("/v1/authorize", decision()),
        (
            "/v1/authorize/batch",
            json!({"items": [decision(), decision()]}),
        ),
        ("/access/v1/evaluation", evaluation()),
        (
            "/access/v1/evaluations",
            json!({"evaluations": [evaluation()]}),
        ),
    ];
    for (path, body) in &routes {
        let refused = server.post(path, &authorize, body.clone()).await;
        assert_eq!(
            (refused.status, refused.code()),
            (402, "billing_required"),
            "{path}: {}",
            refused.body
        );
    }
    // Management still works.
    assert_eq!(server.get("/v1/tenant", &admin).await.status, 200);
    assert_eq!(server.get("/v1/usage", &admin).await.status, 200);
    assert_eq!(
        audit_ids(&server, &admin, "billing_required").await.len(),
        1,
        "one event per episode"
    );

    let upgraded = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"plan": "pro"}),
    )
    .await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    assert_eq!(upgraded.body["plan"], "pro");
    assert!(
        upgraded.body.get("trial_ends_at").is_none(),
        "{}",
        upgraded.body
    );
    assert_eq!(
        upgraded.body["settings"]["max_decisions_per_month"],
        1_000_000
    );
    for (path, body) in &routes {
        let decided = server.post(path, &authorize, body.clone()).await;
        assert_eq!(decided.status, 200, "{path}: {}", decided.body);
    }

    // Back on the trial: a new trial starts now, and a new episode when
    // it ends.
    let again = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"plan": "trial"}),
    )
    .await;
    assert_eq!(
        again.body["trial_ends_at"],
        json!(ward_types::Timestamp(clock_now(&clock) + 14 * DAY_MS))
    );
    assert_eq!(
        server
            .post("/v1/authorize", &authorize, decision())
            .await
            .status,
        200
    );
    clock.advance(15 * DAY_MS);
    assert_eq!(
        server
            .post("/v1/authorize", &authorize, decision())
            .await
            .status,
        402
    );
    assert_eq!(
        audit_ids(&server, &admin, "billing_required").await.len(),
        2
    );
}

fn clock_now(clock: &ManualClock) -> u64 {
    use ward::gates::Clock;
    clock.now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_tenants_land_on_the_default_personal_plan() {
    let server = TestServer::start_with(PLANS).await;
    let personal = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "u-ann", "name": "Ann", "kind": "personal"}),
        )
        .await;
    assert_eq!(personal.status, 201, "{}", personal.body);
    assert_eq!(personal.body["plan"], "free");
    assert!(personal.body.get("trial_ends_at").is_none());
    assert_eq!(personal.body["settings"]["max_agents"], 5);
    assert_eq!(personal.body["settings_source"]["max_agents"], "plan:free");
    let organization = server
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(organization.body["plan"], "trial");

    // Without default plans, tenants have none.
    let bare = TestServer::start().await;
    let none = bare
        .post(
            "/v1/tenants",
            OPERATOR,
            json!({"slug": "u-bob", "name": "Bob", "kind": "personal"}),
        )
        .await;
    assert!(none.body.get("plan").is_none(), "{}", none.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_listed_and_only_the_operator_sets_a_known_one() {
    let server = TestServer::start_with(PLANS).await;
    let (_, admin, _) = server.tenant("acme").await;
    let plans = server.get("/v1/plans", OPERATOR).await;
    assert_eq!(plans.status, 200, "{}", plans.body);
    let names: Vec<&str> = plans
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["free", "pro", "trial"]);
    assert_eq!(plans.body[2]["trial_days"], 14);
    assert_eq!(server.get("/v1/plans", &admin).await.status, 403);

    let unknown = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"plan": "platinum"}),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, "invalid_input"),
        "{}",
        unknown.body
    );
    let own = patch(&server, "/v1/tenant", &admin, json!({"plan": "pro"})).await;
    assert_eq!(
        (own.status, own.code()),
        (403, "setting_not_adjustable"),
        "{}",
        own.body
    );
    let own_null = patch(&server, "/v1/tenant", &admin, json!({"plan": null})).await;
    assert_eq!(own_null.status, 403, "{}", own_null.body);

    let removed = patch(&server, "/v1/tenants/acme", OPERATOR, json!({"plan": null})).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(removed.body.get("plan").is_none(), "{}", removed.body);
    assert!(
        removed.body.get("trial_ends_at").is_none(),
        "{}",
        removed.body
    );
    assert_eq!(
        removed.body["settings_source"]["max_decisions_per_month"],
        "default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_and_the_cli_list_plans_and_move_a_tenant() {
    let server = TestServer::start_with(PLANS).await;
    server.tenant("movable").await;
    let client = ward_client::Client::builder(&server.base)
        .token(OPERATOR)
        .build()
        .unwrap();
    let plans = client.list_plans().await.unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["free", "pro", "trial"]);
    let moved = client
        .set_tenant_plan("movable", Some("pro"))
        .await
        .unwrap();
    assert_eq!(
        (moved.plan.as_deref(), moved.trial_ends_at),
        (Some("pro"), None)
    );
    let off = client.set_tenant_plan("movable", None).await.unwrap();
    assert_eq!(off.plan, None);

    let ward = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .args(args)
            .env("WARD_URL", &server.base)
            .env("WARD_TOKEN", OPERATOR)
            .env_remove("WARD_TENANT")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = ward(&["tenant", "plans"]);
    assert!(
        listed.contains("trial") && listed.contains("14"),
        "{listed}"
    );
    let shown = ward(&["tenant", "update", "movable", "--plan", "trial"]);
    assert!(shown.contains("plan: trial (trial ends"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&ward(&[
        "--json",
        "tenant",
        "update",
        "movable",
        "--no-plan",
    ]))
    .unwrap();
    assert_eq!(json["plan"], serde_json::Value::Null);
}
