//! The OpenAPI document is the truth: `schemathesis` (from PyPI, in a
//! virtual environment this test makes under `target/`) generates requests
//! from `/openapi.json` against the real `ward serve`, with the operator's
//! credential acting in a tenant, and every answer must be documented: no
//! server error, no undocumented status or content type, no body that
//! breaks its schema. The number of examples per operation is bounded so
//! that the run takes a couple of minutes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::spawn_ward;

/// The schemathesis release the checks were written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Generated cases per operation and phase.
const MAX_EXAMPLES: &str = "15";
/// The same cases on every run.
const SEED: &str = "20261130";
const TOKEN: &str = "conformance-operator-token";

/// A virtual environment with schemathesis in it, made once and reused.
fn schemathesis() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("schemathesis-venv");
    let bin = venv.join("bin").join("schemathesis");
    let version = Command::new(&bin).arg("--version").output();
    let installed = version.is_ok_and(|out| {
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .contains(SCHEMATHESIS.trim_start_matches("schemathesis=="))
    });
    if !installed {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
        let pip = Command::new(venv.join("bin").join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                SCHEMATHESIS,
            ])
            .status()
            .expect("pip runs");
        assert!(pip.success(), "pip install {SCHEMATHESIS} failed");
    }
    bin
}

#[test]
fn schemathesis_finds_the_server_keeps_to_its_openapi_document() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.toml");
    // Refusals answered at once, so that the run is not slowed by them.
    std::fs::write(&config, "[http]\nrefusal_delay_ms = 0\n").unwrap();
    let (mut child, base, _) = spawn_ward(&dir.path().join("data"), Some(&config), Some(TOKEN));

    // The tenant the operator acts in, with an agent so that reads find
    // something, and an admin key of its own.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin_key = runtime.block_on(async {
        let http = reqwest::Client::new();
        let created = http
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(TOKEN)
            .json(&json!({"slug": "acme", "name": "Acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let agent = http
            .put(format!("{base}/v1/agents/bot"))
            .bearer_auth(TOKEN)
            .header("x-tenant-id", "acme")
            .json(&json!({"type": "ai_agent", "permissions": [{"resource": "docs:*", "actions": ["read"]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(agent.status(), 201);
        let key: serde_json::Value = http
            .post(format!("{base}/v1/tenants/acme/keys"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": "conformance", "role": "admin"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        key["secret"].as_str().unwrap().to_string()
    });

    // First a tenant admin (operator routes answer 403), then the operator
    // acting in the tenant (every route reachable; the stateful phase may
    // suspend or delete the tenant, which later answers must document too).
    let runs = [
        (
            "tenant admin",
            vec![format!("Authorization: Bearer {admin_key}")],
        ),
        (
            "operator",
            vec![
                format!("Authorization: Bearer {TOKEN}"),
                String::from("X-Tenant-ID: acme"),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (who, headers) in runs {
        let mut command = Command::new(&schemathesis);
        command
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                SEED,
                // One worker: CPython 3.11's AST constructor is not safe to
                // run on two threads at once, and Hypothesis parses lambdas
                // with it ("AST constructor recursion depth mismatch").
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--report-dir",
            ])
            .arg(dir.path().join(format!("report-{}", who.replace(' ', "-"))))
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .current_dir(dir.path());
        for header in &headers {
            command.arg("--header").arg(header);
        }
        // A run whose only trouble is an error inside the tool itself (no
        // check failed) is run once more; a second one counts.
        for attempt in 1..=2 {
            let output = command.output().expect("schemathesis runs");
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            let stderr = String::from_utf8_lossy(&output.stderr).to_string();
            if output.status.success() && stdout.contains("passed") {
                break;
            }
            let tool_error_only = !stdout.contains(" FAILURES ") && stdout.contains(" ERRORS ");
            if attempt == 2 || !tool_error_only {
                failures.push(format!("as the {who}:\n{stdout}\n{stderr}"));
                break;
            }
        }
    }
    child.kill();
    assert!(
        failures.is_empty(),
        "schemathesis found the server and its OpenAPI document disagree (or ran no test):\n{}",
        failures.join("\n")
    );
}

/// What schemathesis cannot see for itself: that every operation declares
/// the errors its kind of route answers, each with the error schema, and
/// that the parameters are where the server reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_its_errors_with_the_error_schema() {
    use crate::server::{Body, TestServer};
    let server = TestServer::start().await;
    let doc = server
        .call("GET", "/openapi.json", None, None, Body::None)
        .await
        .body;
    let error_ref = json!({"$ref": "#/components/schemas/ErrorBody"});
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let what = format!("{method} {path}");
            let responses = operation["responses"].as_object().unwrap();
            let public = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r == &json!({})));
            let mut expected = vec!["414", "431", "503"];
            if !public {
                expected.extend(["400", "401", "403", "404", "500"]);
            }
            if operation.get("requestBody").is_some() {
                expected.extend(["400", "413"]);
            }
            for status in expected {
                assert!(responses.contains_key(status), "{what}: no {status}");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"], error_ref,
                        "{what} {status}"
                    );
                }
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let in_template = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"] == "path",
                    in_template,
                    "{what}: parameter {name} is {}",
                    parameter["in"]
                );
            }
        }
    }
    assert!(operations >= 50, "{operations} operations");
    // The decision routes can refuse on a tenant's limits.
    for path in [
        "/v1/authorize",
        "/v1/authorize/batch",
        "/access/v1/evaluation",
        "/access/v1/evaluations",
    ] {
        assert!(
            doc["paths"][path]["post"]["responses"]["429"].is_object(),
            "{path}"
        );
    }
    // A policy's config is any JSON, `null` included.
    let config = &doc["components"]["schemas"]["PolicyInfo"]["properties"]["config"];
    assert!(config.get("type").is_none(), "{config}");
}
