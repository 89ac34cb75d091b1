//! Policies in JavaScript, TypeScript and Python, the way their authors
//! work: `ward policy new`, `build`, `test`, `push`, then decisions over
//! HTTP from a real server, including the ways a guest can fail (written
//! in the guest's own language).
//!
//! The toolchains are installed by the first build into a cache that all
//! tests share (`target/tmp/ward-cache`), as they would be into a user's
//! `~/.cache/ward`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::cli::{ok, run};
use crate::support::{KillOnDrop, spawn_ward};

const OPERATOR: &str = "languages-operator-token";

/// A server in `data` for these tests, and its URL. It compiles a 12–18
/// MB component while other tests compile theirs on the same two cores,
/// so it waits for a compile longer than the default.
pub fn serve(data: &Path) -> (KillOnDrop, String) {
    let config = data.join("ward.toml");
    std::fs::write(&config, "[sandbox]\ncompile_timeout_ms = 120000\n").unwrap();
    let (server, base, _) = spawn_ward(&data.join("data"), Some(&config), Some(OPERATOR));
    (server, base)
}

/// The cache every test here shares: toolchains are installed once.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ward-cache")
}

/// `ward` with the shared cache, and a server and token when given.
pub fn ward(server: Option<(&str, &str)>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
    command
        .env("WARD_CACHE_DIR", cache_dir())
        .env_remove("WARD_TENANT")
        .stdin(Stdio::null());
    if let Some((base, token)) = server {
        command.env("WARD_URL", base).env("WARD_TOKEN", token);
    }
    command
}

/// A new tenant `acme` on the server at `base`, and an admin key for it.
pub fn tenant_key(base: &str) -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::support::provision(
            &reqwest::Client::new(),
            base,
            OPERATOR,
            serde_json::json!({"slug": "acme", "name": "Acme"}),
        ))
}

/// A language's files for the adversarial test: the scaffolded policy
/// moves to a module of its own, and the entry fails on purpose for three
/// actions before handing over to it.
struct Adversary {
    lang: &'static str,
    entry: &'static str,
    rules: &'static str,
    wrapper: &'static str,
    language: &'static str,
}

const ADVERSARIES: [Adversary; 3] = [
    Adversary {
        lang: "js",
        entry: "policy.js",
        rules: "rules.js",
        wrapper: r#"import { evaluate as rules } from "./rules.js";

export function evaluate(request) {
  switch (request.action.name) {
    case "explode":
      throw new Error("exploded on purpose");
    case "spin":
      for (;;) {}
    case "hoard": {
      const hoard = [];
      for (;;) hoard.push(new ArrayBuffer(4 << 20));
    }
  }
  return rules(request);
}
"#,
        language: "JavaScript",
    },
    Adversary {
        lang: "ts",
        entry: "policy.ts",
        rules: "rules.ts",
        wrapper: r#"import type { Decision, Request } from "ward-policy";
import { evaluate as rules } from "./rules";

export function evaluate(request: Request): Decision {
  switch (request.action.name) {
    case "explode":
      throw new Error("exploded on purpose");
    case "spin":
      for (;;) {}
    case "hoard": {
      const hoard: ArrayBuffer[] = [];
      for (;;) hoard.push(new ArrayBuffer(4 << 20));
    }
  }
  return rules(request);
}
"#,
        language: "JavaScript",
    },
    Adversary {
        lang: "python",
        entry: "policy.py",
        rules: "rules.py",
        wrapper: r#"from ward_policy import Decision, Request

import rules


def evaluate(request: Request) -> Decision:
    action = request.action.name
    if action == "explode":
        raise RuntimeError("exploded on purpose")
    if action == "spin":
        while True:
            pass
    if action == "hoard":
        hoard = []
        while True:
            hoard.append(bytearray(4 << 20))
    return rules.evaluate(request)
"#,
        language: "Python",
    },
];

const ADVERSARIAL_CASES: &str = r#"
  - name: a policy that throws is denied as a guest error
    subject: reporter
    action: explode
    resource: reports:q3
    expect:
      decision: deny
      reasons: ["policy_error:guest_error"]
  - name: a policy that never returns is stopped at its deadline
    subject: reporter
    action: spin
    resource: reports:q3
    expect:
      decision: deny
      reasons: ["policy_error:timeout"]
  - name: a policy that hoards memory is stopped at its limit
    subject: reporter
    action: hoard
    resource: reports:q3
    expect:
      decision: deny
      reasons: ["policy_error:memory_limit"]
"#;

/// Scaffolds `lang`'s policy in `dir`, adds the adversarial entry and
/// cases, builds it and runs its cases; returns the component.
fn scaffold_and_test(adversary: &Adversary, dir: &Path) -> PathBuf {
    let project = dir.join(adversary.lang);
    let path = project.to_str().unwrap();
    let name = format!("demo-{}", adversary.lang);
    ok(
        &mut ward(None),
        &[
            "policy",
            "new",
            &name,
            "--lang",
            adversary.lang,
            "--dir",
            path,
        ],
    );
    std::fs::rename(project.join(adversary.entry), project.join(adversary.rules)).unwrap();
    std::fs::write(project.join(adversary.entry), adversary.wrapper).unwrap();
    let cases = project.join("cases.yaml");
    let mut text = std::fs::read_to_string(&cases).unwrap();
    text.push_str(ADVERSARIAL_CASES);
    std::fs::write(&cases, text).unwrap();

    let built = ok(&mut ward(None), &["policy", "build", "--dir", path]);
    let wasm = PathBuf::from(built.trim());
    assert!(wasm.is_file(), "{}", wasm.display());
    let tested = ok(&mut ward(None), &["policy", "test", "--dir", path]);
    assert!(tested.contains("8 passed, 0 failed"), "{tested}");
    wasm
}

/// The whole loop for one language, against a real server.
fn author_loop(adversary: &Adversary) {
    let _cores = crate::support::cores_busy();
    let dir = tempfile::tempdir().unwrap();
    let wasm = scaffold_and_test(adversary, dir.path());
    let wasm = wasm.to_str().unwrap();

    let data = tempfile::tempdir().unwrap();
    let (_server, base) = serve(data.path());
    let secret = tenant_key(&base);
    let me = || ward(Some((&base, &secret)));
    let pushed = ok(&mut me(), &["policy", "push", "demo", wasm]);
    assert!(pushed.contains("activated version 1"), "{pushed}");
    ok(
        &mut me(),
        &["policy", "config", "demo", r#"{"require_mfa": ["delete"]}"#],
    );
    ok(
        &mut me(),
        &[
            "agent",
            "put",
            "reporter",
            "--type",
            "service",
            "-p",
            "reports:*=read,export,delete",
            "--policy",
            "demo",
        ],
    );

    let check = |args: &[&str]| -> (i32, Value) {
        let mut all = vec!["--json", "check"];
        all.extend_from_slice(args);
        let out = run(&mut me(), &all);
        let (code, stdout, stderr) = (out.code, out.stdout, out.stderr);
        let answer =
            serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}\n{stderr}"));
        (code, answer)
    };
    let (code, allowed) = check(&["reporter", "export", "reports:q3"]);
    assert_eq!(code, 0, "{allowed}");
    assert_eq!(allowed["decision"], true, "{allowed}");
    assert_eq!(
        allowed["reasons"][0], "`reporter` may `export` `reports:q3`",
        "{allowed}"
    );
    // The decision says which language its policy was written in.
    assert_eq!(
        allowed["policy"]["language"], adversary.language,
        "{allowed}"
    );
    let (code, denied) = check(&["reporter", "read", "invoices:7"]);
    assert_eq!((code, &denied["decision"]), (1, &Value::Bool(false)));
    let (_, mfa) = check(&["reporter", "delete", "reports:q3"]);
    assert_eq!(
        mfa["reasons"][0], "`delete` needs multi-factor authentication",
        "{mfa}"
    );
    let (_, with_mfa) = check(&[
        "reporter",
        "delete",
        "reports:q3",
        "--context",
        r#"{"mfa": true}"#,
    ]);
    assert_eq!(with_mfa["decision"], true, "{with_mfa}");
    for (action, kind) in [
        ("explode", "guest_error"),
        ("spin", "timeout"),
        ("hoard", "memory_limit"),
    ] {
        let (code, failed) = check(&["reporter", action, "reports:q3"]);
        assert_eq!(code, 1, "{failed}");
        assert_eq!(
            failed["reasons"],
            serde_json::json!([format!("policy_error:{kind}")]),
            "{action}: {failed}"
        );
    }
    // The server is still well after all that.
    let (code, again) = check(&["reporter", "export", "reports:q3"]);
    assert_eq!((code, &again["decision"]), (0, &Value::Bool(true)));
}

#[test]
fn a_javascript_policy_goes_from_scaffold_to_decisions() {
    author_loop(&ADVERSARIES[0]);
}

#[test]
fn a_typescript_policy_goes_from_scaffold_to_decisions() {
    author_loop(&ADVERSARIES[1]);
}

#[test]
fn a_python_policy_goes_from_scaffold_to_decisions() {
    author_loop(&ADVERSARIES[2]);
}

/// The toolchain directory a JavaScript build installed into the cache.
fn js_toolchain() -> PathBuf {
    let root = cache_dir().join("toolchains");
    std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("js-"))
        })
        .unwrap_or_else(|| panic!("no JavaScript toolchain in {}", root.display()))
}

#[test]
fn the_same_rules_pass_the_same_cases_in_rust_javascript_and_python() {
    let _cores = crate::support::cores_busy();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/approvals");
    for lang in ["rust", "js", "python"] {
        let dir = examples.join(lang);
        let mut command = ward(None);
        // The Rust version reuses the test guests' compiled dependencies.
        command.env("CARGO_TARGET_DIR", crate::cli::wasm_target_dir());
        for (key, _) in std::env::vars() {
            if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
                command.env_remove(key);
            }
        }
        let passed = ok(
            &mut command,
            &["policy", "test", "--dir", dir.to_str().unwrap()],
        );
        assert!(passed.contains("8 passed, 0 failed"), "{lang}: {passed}");
    }
}

#[test]
fn a_component_importing_more_than_wasi_is_refused_naming_the_import() {
    let _cores = crate::support::cores_busy();
    // A JavaScript policy built with componentize-js's defaults, which
    // leave wasi:http among its imports.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    ok(
        &mut ward(None),
        &[
            "policy",
            "new",
            "p",
            "--lang",
            "js",
            "--dir",
            project.to_str().unwrap(),
        ],
    );
    ok(
        &mut ward(None),
        &["policy", "build", "--dir", project.to_str().unwrap()],
    );
    let tools = js_toolchain();
    let script = dir.path().join("unstubbed.mjs");
    let componentize =
        tools.join("node_modules/@bytecodealliance/componentize-js/src/componentize.js");
    std::fs::write(
        &script,
        format!(
            "import {{ componentize }} from {};\n\
             import {{ readFile, writeFile }} from 'node:fs/promises';\n\
             const [source, wit, out] = process.argv.slice(2);\n\
             const {{ component }} = await componentize(await readFile(source, 'utf8'), {{ witPath: wit, worldName: 'policy' }});\n\
             await writeFile(out, component);\n",
            Value::from(componentize.to_str().unwrap())
        ),
    )
    .unwrap();
    let wasm = dir.path().join("unstubbed.wasm");
    let work = project.join(".ward");
    let status = Command::new("node")
        .arg(&script)
        .arg(work.join("bundle.js"))
        .arg(work.join("wit"))
        .arg(&wasm)
        .status()
        .unwrap();
    assert!(status.success());

    let data = tempfile::tempdir().unwrap();
    let (_server, base) = serve(data.path());
    let op = || ward(Some((&base, OPERATOR)));
    ok(&mut op(), &["tenant", "create", "acme", "--name", "Acme"]);
    let out = run(
        &mut op(),
        &[
            "--tenant",
            "acme",
            "policy",
            "push",
            "unstubbed",
            wasm.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wasi:http"), "{}", out.stderr);
}

#[test]
fn the_sdks_own_tests_pass() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let node = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(sdk.join("policy-js"))
        .output()
        .unwrap();
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stdout)
    );
    let python = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(sdk.join("policy-py"))
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
}
