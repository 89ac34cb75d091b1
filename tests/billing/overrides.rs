//! `[[tenants.overrides]]`: precedence, sources, pinning, SIGHUP reload.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::patch;
use crate::server::{OPERATOR, TestServer};

const CONFIG: &str = r#"
[[plans]]
name = "pro"
[plans.settings]
max_agents = 50
max_policies = 20
burst = 300

[[tenants.overrides]]
slug = "acme"
[tenants.overrides.settings]
max_policies = 7
sandbox = { timeout_ms = 250 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_setting_comes_from_its_highest_layer_and_says_so() {
    let server = TestServer::start_with(CONFIG).await;
    server.tenant("acme").await;
    let put_on_pro = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"plan": "pro", "settings": {"max_agents": 60, "burst": 400}}),
    )
    .await;
    assert_eq!(put_on_pro.status, 200, "{}", put_on_pro.body);

    let tenant = server.get("/v1/tenants/acme", OPERATOR).await.body;
    let settings = &tenant["settings"];
    let source = &tenant["settings_source"];
    assert_eq!(tenant["plan"], "pro");
    // The file beats everything, the tenant beats its plan, the plan
    // beats the host's defaults.
    assert_eq!(
        (
            settings["max_policies"].clone(),
            source["max_policies"].clone()
        ),
        (json!(7), json!("file"))
    );
    assert_eq!(
        (settings["max_agents"].clone(), source["max_agents"].clone()),
        (json!(60), json!("tenant"))
    );
    assert_eq!(
        (settings["burst"].clone(), source["burst"].clone()),
        (json!(400), json!("tenant"))
    );
    assert_eq!(source["max_module_bytes"], "default");
    assert_eq!(settings["rate_limit_per_sec"], 1000);
    // An object setting is replaced whole by the higher layer.
    assert_eq!(settings["sandbox"]["timeout_ms"], 250);
    assert_eq!(settings["sandbox"]["memory_bytes"], 16 << 20);
    assert_eq!(source["sandbox"], "file");

    // Without its own values, the plan's show through.
    let reset = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"settings": {"max_agents": null, "burst": null}}),
    )
    .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(reset.body["settings"]["max_agents"], 50);
    assert_eq!(reset.body["settings_source"]["max_agents"], "plan:pro");
    assert_eq!(reset.body["settings_source"]["burst"], "plan:pro");

    // A tenant without overrides or plan: defaults only.
    server.tenant("globex").await;
    let globex = server.get("/v1/tenants/globex", OPERATOR).await.body;
    assert_eq!(globex["settings_source"]["max_policies"], "default");
    assert_eq!(globex["settings"]["max_policies"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_pinned_setting_is_a_conflict_naming_the_file() {
    let server = TestServer::start_with(CONFIG).await;
    let (_, admin, _) = server.tenant("acme").await;
    let refused = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"settings": {"max_policies": 9}}),
    )
    .await;
    assert_eq!((refused.status, refused.code()), (409, "conflict"));
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_policies"), "{message}");
    assert!(message.contains("[[tenants.overrides]]"), "{message}");
    assert!(message.contains("the server's configuration"), "{message}");
    // Other settings still change.
    let allowed = patch(
        &server,
        "/v1/tenants/acme",
        OPERATOR,
        json!({"settings": {"max_agents": 9}}),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    // A tenant admin, on a field it may adjust, that the file pins.
    let server = TestServer::start_with(
        "[[tenants.overrides]]\nslug = \"acme\"\n[tenants.overrides.settings]\naudit_retention_days = 30\n",
    )
    .await;
    let (_, admin2, _) = server.tenant("acme").await;
    let own = patch(
        &server,
        "/v1/tenant",
        &admin2,
        json!({"settings": {"audit_retention_days": 10}}),
    )
    .await;
    assert_eq!((own.status, own.code()), (409, "conflict"), "{}", own.body);
    drop(admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_overrides_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "[[tenants.overrides]]\nslug = \"acme\"\n[tenants.overrides.settings]\nmax_widgets = 1\n",
        "[[tenants.overrides]]\nslug = \"acme\"\n[tenants.overrides.settings]\nburst = 0\n",
        "[tenants]\ndefault_plan = \"missing\"\n",
    ] {
        let toml = format!("data_dir = {:?}\n{bad}", dir.path().display().to_string());
        let opened = ward::config::Config::from_toml(&toml).and_then(|config| {
            tokio::task::block_in_place(|| ward::server::Ward::open(&config, Some(OPERATOR)))
                .map(|_| ())
                .map_err(|err| ward::config::ConfigError::Invalid(err.to_string()))
        });
        assert!(opened.is_err(), "{bad}");
    }
}

/// The effective settings of `slug` as `base` serves them.
async fn tenant(client: &reqwest::Client, base: &str, slug: &str) -> Value {
    client
        .get(format!("{base}/v1/tenants/{slug}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const TOKEN: &str = "billing-operator-token";

fn hang_up(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Sends SIGHUP, then waits until `slug`'s settings satisfy `done`.
async fn hang_up_until(
    pid: u32,
    client: &reqwest::Client,
    base: &str,
    slug: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    hang_up(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = tenant(client, base, slug).await;
        if done(&seen) || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_override_and_a_bad_file_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.toml");
    let pinned = |n: u64| {
        format!(
            "[[tenants.overrides]]\nslug = \"acme\"\n[tenants.overrides.settings]\nmax_agents = {n}\n"
        )
    };
    std::fs::write(&config, pinned(11)).unwrap();
    let (child, base, _) =
        crate::support::spawn_ward(&dir.path().join("data"), Some(&config), Some(TOKEN));
    let pid = child.0.id();
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(TOKEN)
        .json(&json!({"slug": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let before = tenant(&client, &base, "acme").await;
    assert_eq!(before["settings"]["max_agents"], 11);
    assert_eq!(before["settings_source"]["max_agents"], "file");

    // The pinned write names the file.
    let refused = client
        .patch(format!("{base}/v1/tenants/acme"))
        .bearer_auth(TOKEN)
        .json(&json!({"settings": {"max_agents": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&config.display().to_string()), "{message}");

    std::fs::write(&config, pinned(22)).unwrap();
    let after = hang_up_until(pid, &client, &base, "acme", |t| {
        t["settings"]["max_agents"] == 22
    })
    .await;
    assert_eq!(after["settings"]["max_agents"], 22, "{after}");

    // A file that does not check is not applied; the running one stays.
    std::fs::write(&config, pinned(0).replace("max_agents = 0", "burst = 0")).unwrap();
    hang_up(pid);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kept = tenant(&client, &base, "acme").await;
    assert_eq!(kept["settings"]["max_agents"], 22, "{kept}");
    assert_eq!(kept["settings_source"]["max_agents"], "file");
    std::fs::write(&config, "this is = not [toml").unwrap();
    hang_up(pid);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kept = tenant(&client, &base, "acme").await;
    assert_eq!(kept["settings"]["max_agents"], 22, "{kept}");

    // Removing the override gives the setting back to the default.
    std::fs::write(&config, "").unwrap();
    let freed = hang_up_until(pid, &client, &base, "acme", |t| {
        t["settings_source"]["max_agents"] == "default"
    })
    .await;
    assert_eq!(freed["settings"]["max_agents"], 10_000, "{freed}");
}
