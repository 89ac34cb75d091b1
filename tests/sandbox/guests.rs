//! Every adversarial guest through the real HTTP server.

use super::*;

/// What each guest in `plugins/guests/` answers (with the config given, if
/// any): the deny reason of its failure, `Ok(reason)` for a guest that
/// decides, or `None` for one refused at upload.
type Expectation = (
    &'static str,
    Option<&'static str>,
    Option<Result<&'static str, &'static str>>,
);

fn guest_expectations() -> Vec<Expectation> {
    vec![
        ("spin", None, Some(Err("timeout"))),
        ("memory-bomb", None, Some(Err("memory_limit"))),
        ("deep-recursion", None, Some(Err("stack_overflow"))),
        ("panic", None, Some(Err("trap"))),
        // With no config it runs out of memory first.
        (
            "huge-output",
            Some(r#"{"reasons": 100, "context_bytes": 0}"#),
            Some(Err("output_too_large")),
        ),
        ("malformed-output", None, Some(Err("malformed_output"))),
        ("forbidden-import", None, None),
        ("chatty", None, Some(Ok("spoke up"))),
        ("probe", None, Some(Ok(""))),
    ]
}

/// Every guest of `plugins/guests/` uploaded to a real server and decided
/// alone and in one batch: each answer a 200 with the guest's
/// `policy_error:<kind>` (or its decision), none a dropped connection.
async fn every_guest_over_http(inline: bool) {
    use crate::server::TestServer;
    use serde_json::json;

    let expected = guest_expectations();
    let on_disk: std::collections::BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/guests"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    let known: std::collections::BTreeSet<String> =
        expected.iter().map(|(name, ..)| name.to_string()).collect();
    assert_eq!(on_disk, known, "every guest in plugins/guests/ is tried");

    let server = TestServer::start_with(&format!("[http]\ninline_decisions = {inline}\n")).await;
    let (_, admin, authorize) = server.tenant("acme").await;
    let request = |name: &str| json!({"agent": name, "action": "read", "resource": "doc:1"});
    let mut batch = Vec::new();
    let mut answers = Vec::new();
    for (name, config, expect) in &expected {
        let wasm = guest(&name.replace('-', "_"));
        let uploaded = server
            .upload(&format!("/v1/policies/{name}"), &admin, wasm)
            .await;
        let Some(expect) = expect else {
            assert_eq!(
                (uploaded.status, uploaded.code()),
                (422, "invalid_module"),
                "{name}: {}",
                uploaded.body
            );
            continue;
        };
        assert_eq!(uploaded.status, 201, "{name}: {}", uploaded.body);
        if let Some(config) = config {
            let config: Value = serde_json::from_str(config).unwrap();
            let put = server
                .put(&format!("/v1/policies/{name}/config"), &admin, config)
                .await;
            assert_eq!(put.status, 200, "{name}: {}", put.body);
        }
        let agent = json!({"type": "ai_agent", "policy": name});
        let put = server
            .put(&format!("/v1/agents/{name}"), &admin, agent)
            .await;
        assert_eq!(put.status, 201, "{name}: {}", put.body);
        let answer = server
            .post("/v1/authorize", &authorize, request(name))
            .await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        check_answer(name, expect, &answer.body);
        batch.push(request(name));
        answers.push((name, expect));
    }
    let batched = server
        .post("/v1/authorize/batch", &authorize, json!({"items": batch}))
        .await;
    assert_eq!(batched.status, 200, "{}", batched.body);
    let results = batched.body["results"].as_array().unwrap();
    assert_eq!(results.len(), answers.len());
    for ((name, expect), result) in answers.iter().zip(results) {
        check_answer(name, expect, result);
    }

    // A guest that waits on a WASI clock: a short wait is waited out (on
    // a thread that may block), one past the timeout ends at the timeout.
    for (sleep_ms, expect) in [(5, Ok("spoke up")), (60_000, Err("timeout"))] {
        server
            .put(
                "/v1/policies/chatty/config",
                &admin,
                json!({"sleep_ms": sleep_ms}),
            )
            .await;
        let started = std::time::Instant::now();
        let answer = server
            .post("/v1/authorize", &authorize, request("chatty"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        check_answer("chatty", &expect, &answer.body);
        assert!(started.elapsed() < Duration::from_secs(10), "bounded wait");
    }
    // The probe writing a lot to stdout still decides.
    server
        .put(
            "/v1/policies/probe/config",
            &admin,
            json!({"stdout_bytes": 100_000}),
        )
        .await;
    let answer = server
        .post("/v1/authorize", &authorize, request("probe"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["decision"], true, "{}", answer.body);
}

fn check_answer(name: &str, expect: &Result<&str, &str>, body: &Value) {
    match expect {
        Err(kind) => {
            assert_eq!(body["decision"], false, "{name}: {body}");
            assert_eq!(
                body["reasons"],
                serde_json::json!([format!("policy_error:{kind}")]),
                "{name}: {body}"
            );
        }
        Ok(reason) => {
            assert_eq!(body["decision"], true, "{name}: {body}");
            if !reason.is_empty() {
                assert_eq!(
                    body["reasons"],
                    serde_json::json!([reason]),
                    "{name}: {body}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guest_answers_over_http_with_inline_decisions() {
    every_guest_over_http(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guest_answers_over_http_on_blocking_threads() {
    every_guest_over_http(false).await;
}
