//! The `ward` command end to end: a real server spawned from the built
//! binary, and the CLI run as a user would, over HTTP.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{KillOnDrop, guest_path, spawn_ward};

const OPERATOR: &str = "cli-operator-token";

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `ward` with the server, token and tenant given, nothing inherited.
fn ward(base: &str, token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
    command
        .env("WARD_URL", base)
        .env("WARD_TOKEN", token)
        .env_remove("WARD_TENANT")
        .stdin(Stdio::null());
    command
}

pub(crate) fn run(command: &mut Command, args: &[&str]) -> Output {
    let out = command.args(args).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn ok(command: &mut Command, args: &[&str]) -> String {
    let out = run(command, args);
    assert_eq!(
        out.code, 0,
        "ward {args:?}\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

fn json(command: &mut Command, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(command, &all)).unwrap()
}

/// Where the policies of `plugins/` were built: building a scaffolded
/// policy there reuses their compiled dependencies.
pub(crate) fn wasm_target_dir() -> PathBuf {
    crate::plugins_build::guests()
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// `ward` for the local policy commands: cargo sees none of the test's
/// own cargo settings.
fn local_ward() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
    for (key, _) in std::env::vars() {
        let cargo = key.starts_with("CARGO_") && key != "CARGO_HOME";
        if cargo || key == "RUSTFLAGS" || key == "RUSTC_WRAPPER" {
            command.env_remove(key);
        }
    }
    command
        .env("CARGO_TARGET_DIR", wasm_target_dir())
        .env("CARGO_BUILD_JOBS", "2")
        .stdin(Stdio::null());
    command
}

#[test]
fn the_cli_runs_a_tenant_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _) = spawn_ward(dir.path(), None, Some(OPERATOR));
    let op = || ward(&base, OPERATOR);

    // Operator: a tenant and an admin key for it.
    let created = json(&mut op(), &["tenant", "create", "acme", "--name", "Acme"]);
    assert_eq!(created["slug"], "acme");
    let table = ok(&mut op(), &["tenant", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("acme") && table.contains("Acme"), "{table}");
    let secret = ok(
        &mut op(),
        &[
            "--tenant",
            "acme",
            "key",
            "create",
            "ci",
            "--role",
            "admin",
            "--secret-only",
        ],
    );
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("wk_"), "{secret}");
    let me = || ward(&base, &secret);

    // Agents, policies, data.
    ok(
        &mut me(),
        &[
            "agent",
            "put",
            "reporter",
            "--type",
            "service",
            "-p",
            "reports:*=read,export",
        ],
    );
    let agents = json(&mut me(), &["agent", "list"]);
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "reporter")
    );
    let rbac = guest_path("rbac");
    let rbac = rbac.to_str().unwrap();
    let pushed = ok(&mut me(), &["policy", "push", "rbac", rbac]);
    assert!(pushed.contains("activated version 1"), "{pushed}");
    let staged = json(
        &mut me(),
        &["policy", "push", "rbac", rbac, "--no-activate"],
    );
    assert_eq!(
        (staged["version"].as_u64(), staged["active"].as_bool()),
        (Some(2), Some(false))
    );
    let activated = json(&mut me(), &["policy", "activate", "rbac", "2"]);
    assert_eq!(activated["active_version"], 2);
    let listed = ok(&mut me(), &["policy", "list"]);
    assert!(
        listed.contains("rbac") && listed.contains("permissions"),
        "{listed}"
    );
    ok(&mut me(), &["policy", "delete", "rbac"]);
    let gone = run(&mut me(), &["policy", "get", "rbac"]);
    assert_eq!(gone.code, 2);
    ok(&mut me(), &["data", "put", "limits", r#"{"max": 3}"#]);
    let value: Value = serde_json::from_str(&ok(&mut me(), &["data", "get", "limits"])).unwrap();
    assert_eq!(value["max"], 3);

    // check: exit 0 allow, 1 deny, 2 error.
    let allow = run(&mut me(), &["check", "reporter", "export", "reports:q3"]);
    assert_eq!(allow.code, 0, "{}", allow.stderr);
    assert!(allow.stdout.starts_with("allow\n"), "{}", allow.stdout);
    assert!(allow.stdout.contains("grants `export`"), "{}", allow.stdout);
    let deny = run(&mut me(), &["check", "reporter", "delete", "reports:q3"]);
    assert_eq!(deny.code, 1, "{}", deny.stderr);
    assert!(deny.stdout.starts_with("deny\n"), "{}", deny.stdout);
    let malformed = run(&mut me(), &["check", "reporter", "read", "no-colon"]);
    assert_eq!(malformed.code, 2);
    // Errors are one line, with the server's code when it gave one.
    let bad_token = run(
        &mut ward(&base, "wk_nope"),
        &["check", "reporter", "read", "a:b"],
    );
    assert_eq!(bad_token.code, 2);
    assert_eq!(bad_token.stderr.lines().count(), 1, "{}", bad_token.stderr);
    assert!(
        bad_token.stderr.starts_with("error: "),
        "{}",
        bad_token.stderr
    );
    assert!(
        bad_token.stderr.contains("(HTTP 401)"),
        "{}",
        bad_token.stderr
    );
    let missing = run(&mut op(), &["tenant", "get", "nobody"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.starts_with("error: not_found: "),
        "{}",
        missing.stderr
    );
    let offline = run(&mut ward("http://127.0.0.1:1", &secret), &["usage"]);
    assert_eq!(offline.code, 2);
    assert!(
        offline.stderr.contains("cannot reach the server"),
        "{}",
        offline.stderr
    );

    // Usage and keys.
    let usage = json(&mut me(), &["usage"]);
    assert_eq!(usage["decisions"], 2);
    let keys = ok(&mut me(), &["key", "list"]);
    assert!(keys.contains("ci") && keys.contains("admin"), "{keys}");
    assert!(!keys.contains(&secret), "a key list shows no secret");

    // audit tail prints the latest entries, oldest first, then follows.
    let tail = ok(
        &mut me(),
        &[
            "--json",
            "audit",
            "tail",
            "-n",
            "2",
            "--kind",
            "decision",
            "--no-follow",
        ],
    );
    let entries: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["decision"], true);
    assert_eq!(entries[1]["decision"], false);
    let mut follower = me();
    follower
        .args([
            "audit",
            "tail",
            "-n",
            "1",
            "--kind",
            "decision",
            "--interval-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follower = KillOnDrop(follower.spawn().unwrap());
    let (tx, rx) = mpsc::channel();
    let stdout = follower.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(first.contains("deny"), "{first}");
    ok(&mut me(), &["check", "reporter", "read", "reports:new"]);
    let followed = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        followed.contains("allow") && followed.contains("agent=reporter"),
        "{followed}"
    );
    follower.kill();

    // The operator works on the global scope with --global.
    ok(
        &mut op(),
        &["--global", "agent", "put", "auditor", "-p", "*=read"],
    );
    let seen = ok(&mut me(), &["agent", "list"]);
    assert!(
        seen.contains("auditor") && seen.contains("global"),
        "{seen}"
    );
    let tenant_cannot = run(&mut me(), &["--global", "agent", "list"]);
    assert_eq!(tenant_cannot.code, 2);
    assert!(
        tenant_cannot.stderr.contains("forbidden"),
        "{}",
        tenant_cannot.stderr
    );
    ok(&mut op(), &["tenant", "delete", "acme"]);
}

#[test]
fn agent_list_filters_by_status_and_type_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _) = spawn_ward(dir.path(), None, Some(OPERATOR));
    let op = || ward(&base, OPERATOR);
    ok(&mut op(), &["tenant", "create", "acme", "--name", "Acme"]);
    let inside = || {
        let mut command = op();
        command.args(["--tenant", "acme"]);
        command
    };
    ok(
        &mut inside(),
        &["agent", "put", "bot-a", "--type", "service"],
    );
    ok(
        &mut inside(),
        &["agent", "put", "bot-b", "--type", "service", "--disabled"],
    );
    ok(&mut inside(), &["agent", "put", "user-c", "--type", "user"]);
    let names = |agents: &Value| -> Vec<String> {
        agents
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };

    let active = ok(&mut inside(), &["agent", "list", "--status", "active"]);
    assert!(
        active.contains("bot-a") && active.contains("user-c") && !active.contains("bot-b"),
        "{active}"
    );
    assert!(!active.contains("next page"), "{active}");
    let services = json(&mut inside(), &["agent", "list", "--type", "service"]);
    assert_eq!(names(&services), ["bot-a", "bot-b"]);
    let disabled = json(
        &mut inside(),
        &["agent", "list", "--type", "service", "--status", "disabled"],
    );
    assert_eq!(names(&disabled), ["bot-b"]);

    // Paged: the page object with --json, the next cursor after the table.
    let first = json(&mut inside(), &["agent", "list", "--limit", "2"]);
    assert_eq!(names(&first["agents"]), ["bot-a", "bot-b"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let table = ok(&mut inside(), &["agent", "list", "--limit", "2"]);
    assert!(
        table.contains(&format!("next page: --cursor {cursor}")),
        "{table}"
    );
    let last = ok(
        &mut inside(),
        &["agent", "list", "--limit", "2", "--cursor", cursor],
    );
    assert!(
        last.contains("user-c") && !last.contains("bot-") && !last.contains("next page"),
        "{last}"
    );
    let last = json(
        &mut inside(),
        &["agent", "list", "--limit", "2", "--cursor", cursor],
    );
    assert_eq!(names(&last["agents"]), ["user-c"]);
    assert!(last.get("next_cursor").is_none(), "{last}");

    let bad_status = run(&mut inside(), &["agent", "list", "--status", "paused"]);
    assert_ne!(bad_status.code, 0);
    assert!(
        bad_status.stderr.contains("--status"),
        "{}",
        bad_status.stderr
    );
    let forged = run(&mut inside(), &["agent", "list", "--cursor", "forged"]);
    assert_eq!(forged.code, 2);
    assert!(forged.stderr.contains("invalid_input"), "{}", forged.stderr);
}

#[test]
fn a_scaffolded_policy_builds_and_passes_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("demo");
    let crate_arg = crate_dir.to_str().unwrap();
    ok(
        &mut local_ward(),
        &["policy", "new", "demo", "--dir", crate_arg],
    );
    for file in ["Cargo.toml", "src/lib.rs", "cases.yaml"] {
        assert!(crate_dir.join(file).is_file(), "{file}");
    }
    // Scaffolding over a non-empty directory is refused.
    let again = run(
        &mut local_ward(),
        &["policy", "new", "demo", "--dir", crate_arg],
    );
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);

    let wasm = ok(&mut local_ward(), &["policy", "build", "--dir", crate_arg]);
    let wasm = PathBuf::from(wasm.trim());
    assert!(
        wasm.ends_with("wasm32-wasip2/release/demo.wasm"),
        "{}",
        wasm.display()
    );

    // Without arguments, `policy test` builds the crate and runs cases.yaml.
    let passed = ok(&mut local_ward(), &["policy", "test", "--dir", crate_arg]);
    assert!(passed.contains("5 passed, 0 failed"), "{passed}");

    // A wrong expectation fails with a readable difference.
    let cases = std::fs::read_to_string(crate_dir.join("cases.yaml")).unwrap();
    let wrong = cases.replacen(
        "      decision: deny\n      reasons: [\"`delete` needs",
        "      decision: allow\n      reasons: [\"`delete` needs",
        1,
    );
    assert_ne!(wrong, cases);
    let wrong_path = dir.path().join("wrong.yaml");
    std::fs::write(&wrong_path, wrong).unwrap();
    let failed = policy_test(&wasm, &wrong_path);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stdout.contains("FAIL    deleting needs"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stdout.contains("decision: expected allow, got deny"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stdout.contains("4 passed, 1 failed"),
        "{}",
        failed.stdout
    );

    // --json gives every result for scripts.
    let results: Value = serde_json::from_str(&ok(
        &mut local_ward(),
        &[
            "--json",
            "policy",
            "test",
            wasm.to_str().unwrap(),
            crate_dir.join("cases.yaml").to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(results.as_array().unwrap().len(), 5);
}

#[test]
fn bad_cases_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest_path("permissions");
    let check = |text: &str, expected: &str| {
        let path = dir.path().join("cases.yaml");
        std::fs::write(&path, text).unwrap();
        let out = policy_test(&wasm, &path);
        assert_eq!(out.code, 2, "{text}: {}", out.stdout);
        assert!(out.stderr.contains(expected), "{text}: {}", out.stderr);
    };
    check("cases: [", "invalid cases file");
    check("cases: []", "no cases");
    check("surprise: 1\ncases: []", "unknown field `surprise`");
    check(
        "cases:\n  - {name: x, subject: a, action: r, resource: nocolon, expect: {decision: allow}}",
        "is not `type:id`",
    );
    check(
        "cases:\n  - {name: x, subject: a, action: r, resource: a:b, expect: {decision: maybe}}",
        "invalid cases file",
    );
    // The size and count limits.
    let huge = format!(
        "# {}\ncases: []",
        "x".repeat(ward_cli::cases::MAX_CASES_BYTES)
    );
    check(&huge, "over 4 MiB");
    let one = "  - {name: x, subject: a, action: r, resource: a:b, expect: {decision: deny}}\n";
    let many = format!("cases:\n{}", one.repeat(ward_cli::cases::MAX_CASES + 1));
    check(&many, "at most 10000");
    // A module that is not a component.
    let path = dir.path().join("ok.yaml");
    std::fs::write(&path, format!("cases:\n{one}")).unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let out = policy_test(&junk, &path);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("the policy was refused"),
        "{}",
        out.stderr
    );
}

/// The server's log lines as a log pipeline reads them: without colour
/// codes when stderr is not a terminal, and one JSON object per line with
/// `--log-format json` (or `log_format` in the config).
#[test]
fn server_logs_are_plain_text_or_json_lines() {
    let first_lines = |args: &[&str], config: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .env("WARD_ADMIN_TOKEN", OPERATOR)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .env_remove("WARD_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(toml) = config {
            let path = dir.path().join("ward.toml");
            std::fs::write(&path, toml).unwrap();
            command.arg("--config").arg(path);
        }
        let mut child = KillOnDrop(command.spawn().unwrap());
        let mut lines = Vec::new();
        for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            let serving = line.contains("ward is serving");
            lines.push(line);
            if serving {
                break;
            }
        }
        child.kill();
        lines
    };

    let text = first_lines(&[], None);
    assert!(text.iter().any(|l| l.contains("ward is serving")));
    assert!(text.iter().all(|l| !l.contains('\u{1b}')), "{text:?}");

    for (args, config) in [
        (&["--log-format", "json"][..], None),
        (&[][..], Some("log_format = \"json\"\n")),
    ] {
        let json = first_lines(args, config);
        let serving = json
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .find(|v| v["fields"]["message"] == "ward is serving")
            .expect("the serving line, as JSON");
        assert_eq!(serving["level"], "INFO");
        assert!(
            serving["fields"]["listen"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
    }
}

/// `ward policy test` decides a policy that prints (and one that panics,
/// printing its message) as the server does: the printing policy's
/// decision, and the panicking one's `policy_error:trap`.
#[test]
fn policy_test_decides_printing_and_panicking_policies_as_the_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: prints and decides\n    subject: user:alice\n    action: read\n    resource: doc:1\n    expect:\n      decision: allow\n      reasons: [\"spoke up\"]\n",
    )
    .unwrap();
    let chatty = guest_path("chatty");
    let passed = ok(
        &mut local_ward(),
        &[
            "policy",
            "test",
            chatty.to_str().unwrap(),
            cases.to_str().unwrap(),
        ],
    );
    assert!(passed.contains("1 passed, 0 failed"), "{passed}");

    std::fs::write(
        &cases,
        "cases:\n  - name: panics\n    subject: user:alice\n    action: read\n    resource: doc:1\n    expect:\n      decision: deny\n      reasons: [\"policy_error:trap\"]\n",
    )
    .unwrap();
    let panic = guest_path("panic");
    let passed = ok(
        &mut local_ward(),
        &[
            "policy",
            "test",
            panic.to_str().unwrap(),
            cases.to_str().unwrap(),
        ],
    );
    assert!(passed.contains("1 passed, 0 failed"), "{passed}");
}

/// A cases file at `dir/name`, for `ward policy test`.
/// `ward policy test WASM CASES`, run locally.
fn policy_test(wasm: &std::path::Path, cases: &std::path::Path) -> Output {
    run(
        &mut local_ward(),
        &[
            "policy",
            "test",
            wasm.to_str().unwrap(),
            cases.to_str().unwrap(),
        ],
    )
}

fn cases_file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `ward policy test` compiles the component once per run, however many
/// cases it has, and still runs each case in a tenant of its own: a
/// case's agents and data are not seen by the next.
#[test]
fn policy_test_compiles_the_component_once_per_run() {
    use ward_cli::cases::{self, Runner};

    let grants = "rbac: {roles: {viewer: [{resource: \"docs:*\", actions: [read]}]}}";
    let mut text =
        String::from("agents:\n  - name: shared\n    attributes: {roles: [viewer]}\ncases:\n");
    for i in 0..40 {
        // Even cases bring the role map as their own data, odd ones have
        // none: what an even case stored must be gone in the next.
        let (data, decision) = match i % 2 {
            0 => (format!("    data: {{{grants}}}\n"), "allow"),
            _ => (String::new(), "deny"),
        };
        text.push_str(&format!(
            "  - name: case {i}\n    subject: shared\n    action: read\n    resource: docs:{i}\n{data}    expect: {{decision: {decision}}}\n"
        ));
    }
    // An agent of one case only is unknown to the next one.
    text.push_str(&format!(
        "  - name: own agent\n    subject: mine\n    action: read\n    resource: docs:1\n    agents: [{{name: mine, attributes: {{roles: [viewer]}}}}]\n    data: {{{grants}}}\n    expect: {{decision: allow}}\n"
    ));
    text.push_str(&format!(
        "  - name: the agent is gone\n    subject: mine\n    action: read\n    resource: docs:1\n    data: {{{grants}}}\n    expect: {{decision: deny}}\n"
    ));
    let suite = cases::parse(&text).unwrap();
    let module = crate::support::guest("rbac");

    let runner = Runner::new().unwrap();
    // The builtin policy is compiled when the runner starts.
    let before = runner.stats().compiled;
    let results = runner.run(&module, &suite).unwrap();
    assert_eq!(results.len(), 42);
    for r in &results {
        assert!(r.passed, "{}: {:?}", r.name, r.differences);
    }
    assert_eq!(
        runner.stats().compiled - before,
        1,
        "one compile for 42 cases"
    );

    // Another run with the same component compiles nothing; its config
    // replaces the first run's (here: none at all).
    let again = runner.run(&module, &suite).unwrap();
    assert!(again.iter().all(|r| r.passed));
    assert_eq!(runner.stats().compiled - before, 1);

    // The sandbox's settings are the caller's: a cache directory keeps
    // the compiled component for the next runner.
    let cache = tempfile::tempdir().unwrap();
    let config = || ward::sandbox::SandboxConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..ward::sandbox::SandboxConfig::default()
    };
    let first = Runner::with_sandbox(config()).unwrap();
    first.run(&module, &suite).unwrap();
    drop(first);
    let second = Runner::with_sandbox(config()).unwrap();
    let compiled = second.stats().compiled;
    let results = second.run(&module, &suite).unwrap();
    assert!(results.iter().all(|r| r.passed));
    assert_eq!(second.stats().compiled, compiled, "taken from the cache");
}

/// The permissions guest's cases for batch tests: `reporter` may read
/// reports and nothing else.
const BATCH_AGENTS: &str =
    "agents:\n  - name: reporter\n    permissions: [{resource: \"reports:*\", actions: [read]}]\n";

/// Batch cases (`evaluations`) are one call through the server's batch
/// pipeline: every semantic answers as `/access/v1/evaluations` does.
#[test]
fn policy_test_batch_cases_follow_the_servers_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest_path("permissions");
    let passing = cases_file(
        dir.path(),
        "pass.yaml",
        &format!(
            r#"{BATCH_AGENTS}cases:
  - name: every evaluation
    subject: reporter
    action: read
    evaluations:
      - resource: reports:q3
      - resource: invoices:7
      - {{action: write, resource: reports:q3}}
      - resource: reports:q4
    expect:
      decisions:
        - {{decision: allow, reasons: ["`reports:*` grants `read` on `reports:q3`"]}}
        - deny
        - deny
        - allow
  - name: until the first deny
    subject: reporter
    action: read
    semantic: deny_on_first_deny
    evaluations:
      - resource: reports:q3
      - resource: invoices:7
      - resource: reports:q4
    expect:
      decisions: [allow, deny]
  - name: until the first permit
    subject: reporter
    action: read
    semantic: permit_on_first_permit
    evaluations:
      - resource: invoices:7
      - {{subject: user:alice, resource: reports:q3}}
      - resource: reports:q3
      - resource: reports:q4
    expect:
      decisions: [deny, deny, allow]
  - name: a single question still
    subject: reporter
    action: read
    resource: reports:q3
    expect: {{decision: allow}}
"#
        ),
    );
    let args = [
        "policy",
        "test",
        wasm.to_str().unwrap(),
        passing.to_str().unwrap(),
    ];
    let passed = ok(&mut local_ward(), &args);
    assert!(passed.contains("4 passed, 0 failed"), "{passed}");
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(&args);
    let results: Value = serde_json::from_str(&ok(&mut local_ward(), &with_json)).unwrap();
    let answered = |case: usize| results[case]["evaluations"].as_array().unwrap().len();
    assert_eq!((answered(0), answered(1), answered(2)), (4, 2, 3));
    assert_eq!(results[1]["semantic"], "deny_on_first_deny");
    assert_eq!(
        results[2]["evaluations"][2]["reasons"][0],
        "`reports:*` grants `read` on `reports:q3`"
    );
    // A single question's result is as it always was.
    let single = results[3].as_object().unwrap();
    assert!(!single.contains_key("evaluations") && !single.contains_key("semantic"));
    assert_eq!(single["expected"], "allow");

    let failing = cases_file(
        dir.path(),
        "fail.yaml",
        &format!(
            r#"{BATCH_AGENTS}cases:
  - name: a wrong decision
    subject: reporter
    action: read
    evaluations:
      - resource: reports:q3
      - resource: invoices:7
    expect:
      decisions: [{{decision: allow, reasons: [nope]}}, allow]
  - name: more answers expected
    subject: reporter
    action: read
    semantic: deny_on_first_deny
    evaluations:
      - resource: invoices:7
      - resource: reports:q3
    expect:
      decisions: [deny, allow]
  - name: fewer answers expected
    subject: reporter
    action: read
    semantic: permit_on_first_permit
    evaluations:
      - resource: invoices:1
      - resource: invoices:2
      - resource: reports:q3
    expect:
      decisions: [deny, deny]
"#
        ),
    );
    let out = policy_test(&wasm, &failing);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for expected in [
        "evaluations[0] reasons: expected [\"nope\"], got [\"`reports:*` grants `read` on `reports:q3`\"]",
        "evaluations[1] decision: expected allow, got deny",
        "evaluations[1] expected allow, but the call stopped after evaluations[0] (deny_on_first_deny)",
        "evaluations[2] answered allow, but the call was expected to stop after evaluations[1] (permit_on_first_permit)",
        "0 passed, 3 failed",
    ] {
        assert!(out.stdout.contains(expected), "{expected}\n{}", out.stdout);
    }
}

/// Batch cases that cannot be right are refused before anything runs.
#[test]
fn bad_batch_cases_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest_path("permissions");
    let check = |case: &str, expected: &str| {
        let path = cases_file(dir.path(), "cases.yaml", &format!("cases:\n  - {case}\n"));
        let out = policy_test(&wasm, &path);
        assert_eq!(out.code, 2, "{case}: {}", out.stdout);
        assert!(out.stderr.contains(expected), "{case}: {}", out.stderr);
    };
    let base = "name: x, subject: a, action: r";
    check(
        &format!(
            "{{{base}, semantic: first_wins, evaluations: [{{resource: a:b}}], expect: {{decisions: [allow]}}}}"
        ),
        "semantic `first_wins` is not execute_all",
    );
    check(
        &format!(
            "{{{base}, evaluations: [{{resource: a:b}}, {{resource: a:c}}], expect: {{decisions: [allow]}}}}"
        ),
        "with execute_all every evaluation is answered",
    );
    check(
        &format!(
            "{{{base}, semantic: deny_on_first_deny, evaluations: [{{resource: a:b}}], expect: {{decisions: [deny, deny]}}}}"
        ),
        "expect 1 to 1",
    );
    check(
        &format!("{{{base}, evaluations: [{{resource: a:b}}], expect: {{decision: allow}}}}"),
        "expects `decisions: [...]`",
    );
    check(
        &format!("{{{base}, resource: a:b, expect: {{decisions: [allow]}}}}"),
        "`expect.decisions` is for a case with `evaluations`",
    );
    check(
        &format!(
            "{{{base}, evaluations: [{{resource: a:b}}, {{action: w}}], expect: {{decisions: [allow, allow]}}}}"
        ),
        "evaluations[1]: no resource",
    );
    check(
        &format!(
            "{{{base}, evaluations: [{{resource: nocolon}}], expect: {{decisions: [allow]}}}}"
        ),
        "evaluations[0]: resource `nocolon` is not `type:id`",
    );
    check(
        &format!("{{{base}, evaluations: [], expect: {{decisions: []}}}}"),
        "`evaluations` is empty",
    );
    check(
        &format!("{{{base}, evaluations: [{{resource: a:b}}], expect: {{decisions: [maybe]}}}}"),
        "unknown variant `maybe`",
    );
    check(
        "{name: x, action: r, resource: a:b, expect: {decision: allow}}",
        "no subject",
    );
    let many = vec!["{resource: a:b}"; ward_cli::cases::MAX_EVALUATIONS + 1].join(", ");
    let decisions = vec!["allow"; ward_cli::cases::MAX_EVALUATIONS + 1].join(", ");
    check(
        &format!("{{{base}, evaluations: [{many}], expect: {{decisions: [{decisions}]}}}}"),
        "a case has at most 100",
    );
}

/// `ward check --subject-properties/--action-properties/--resource-properties`
/// reach the policy; a value that is not a JSON object is refused.
#[test]
fn check_sends_subject_action_and_resource_properties() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _) = spawn_ward(dir.path(), None, Some(OPERATOR));
    let op = || ward(&base, OPERATOR);
    ok(&mut op(), &["tenant", "create", "props"]);
    let secret = ok(
        &mut op(),
        &[
            "--tenant",
            "props",
            "key",
            "create",
            "ci",
            "--role",
            "admin",
            "--secret-only",
        ],
    );
    let me = || ward(&base, secret.trim());
    let probe = guest_path("probe");
    ok(
        &mut me(),
        &["policy", "push", "probe", probe.to_str().unwrap()],
    );
    ok(&mut me(), &["agent", "put", "prober", "--policy", "probe"]);

    let props_file = dir.path().join("resource.json");
    std::fs::write(&props_file, r#"{"owner": "bob", "tags": ["q3"]}"#).unwrap();
    let resource_arg = format!("@{}", props_file.display());
    let answer = json(
        &mut me(),
        &[
            "check",
            "prober",
            "read",
            "doc:1",
            "--subject-properties",
            r#"{"clearance": 3}"#,
            "--action-properties",
            r#"{"urgent": true}"#,
            "--resource-properties",
            &resource_arg,
            "--context",
            r#"{"ip": "10.0.0.1"}"#,
        ],
    );
    assert_eq!(answer["decision"], true, "{answer}");
    let seen = &answer["context"];
    assert_eq!(
        seen["subject"]["properties"],
        serde_json::json!({"clearance": 3})
    );
    assert_eq!(
        seen["action"]["properties"],
        serde_json::json!({"urgent": true})
    );
    assert_eq!(
        seen["resource"]["properties"],
        serde_json::json!({"owner": "bob", "tags": ["q3"]})
    );
    assert_eq!(seen["context"], serde_json::json!({"ip": "10.0.0.1"}));
    // Without them, the policy sees no properties.
    let bare = json(&mut me(), &["check", "prober", "read", "doc:1"]);
    assert_eq!(
        bare["context"]["subject"]["properties"],
        serde_json::json!({})
    );

    for (flag, value, expected) in [
        (
            "--subject-properties",
            "[1, 2]",
            "--subject-properties must be a JSON object",
        ),
        (
            "--action-properties",
            "\"fast\"",
            "--action-properties must be a JSON object",
        ),
        (
            "--resource-properties",
            "{oops",
            "--resource-properties is not valid JSON",
        ),
    ] {
        let out = run(
            &mut me(),
            &["check", "prober", "read", "doc:1", flag, value],
        );
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stdout);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
    }
}

/// The cases file of docs/CLI.md is one `ward policy test` reads.
#[test]
fn the_documented_cases_file_is_valid() {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLI.md"),
    )
    .unwrap();
    let yaml = crate::docs::blocks(&page, "yaml");
    assert_eq!(yaml.len(), 1);
    let suite = ward_cli::cases::parse(yaml[0]).unwrap();
    assert_eq!(suite.cases.len(), 2);
    assert_eq!(suite.cases[1].evaluations.as_ref().unwrap().len(), 3);
}
