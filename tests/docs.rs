//! The documentation's commands, run as written.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::spawn_ward;

/// The fenced blocks of a Markdown file whose info string is `info`.
pub fn blocks<'a>(markdown: &'a str, info: &str) -> Vec<&'a str> {
    let fence = format!("```{info}\n");
    let mut out = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```\n").expect("an unclosed code block");
        out.push(&body[..end]);
        rest = &body[end..];
    }
    out
}

#[test]
fn quickstart_commands_work_as_written() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/QUICKSTART.md"),
    )
    .unwrap();

    // The server block is the README's run command with a chosen token; the
    // test starts the binary it built the same way, on a free port.
    let server = blocks(&page, "sh server");
    assert_eq!(server.len(), 1);
    let token = server[0]
        .lines()
        .find_map(|l| l.strip_prefix("export WARD_ADMIN_TOKEN="))
        .expect("the server block sets WARD_ADMIN_TOKEN")
        .trim()
        .to_string();
    assert!(server[0].contains("cargo run --release --bin ward -- serve"));
    let work = tempfile::tempdir().unwrap();
    let (_ward, base, _) = spawn_ward(&work.path().join("ward-data"), None, Some(&token));

    // Every other shell block, in order, as one script: the release
    // binary's directory stands for the one this test was built with, and
    // the default address for the server just started.
    let path_line = r#"export PATH="$PWD/target/release:$PATH""#;
    let script = blocks(&page, "sh").join("\n");
    assert!(script.contains(path_line));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ward")).parent().unwrap();
    let script = script
        .replace(
            path_line,
            &format!("export PATH=\"{}:$PATH\"", bin_dir.display()),
        )
        .replace("http://127.0.0.1:7373", &base);
    assert!(script.contains("ward policy test"));

    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(work.path())
        .stdin(Stdio::null());
    // The policy is built with the compiled dependencies of plugins/, and
    // without the test's own cargo settings.
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key.starts_with("WARD_") {
            bash.env_remove(key);
        }
    }
    let wasm_target = crate::plugins_build::guests().ancestors().nth(2).unwrap();
    bash.env("CARGO_TARGET_DIR", wasm_target)
        .env("CARGO_BUILD_JOBS", "2");
    let out = bash.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // What the page says comes out.
    for expected in [
        r#"{"decision":true,"decision_id":"#,
        r#"{"decision":false}"#,
        "allow\n  `reports:*` grants `export` on `reports:q3`",
        "deny\n  `reports:*` matches `reports:q3` but does not grant `delete`",
        "denied (exit code 1)",
        "5 passed, 0 failed",
        "activated version 1 of `my-policy`",
        "deny\n  `delete` needs multi-factor authentication",
        "allow\n  `reporter` may `delete` `reports:q3`",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let audit_lines = stdout.lines().filter(|l| l.contains("  decision ")).count();
    assert!(audit_lines >= 2, "{stdout}");
}

#[test]
fn every_configuration_in_operations_md_is_accepted() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md"),
    )
    .unwrap();
    let configs = blocks(&page, "toml");
    assert!(configs.len() >= 2, "the reference and the worked example");
    for config in configs {
        // The reference shows where the hash goes, not one.
        let config = config.replace("\"…64 hex digits…\"", &format!("\"{}\"", "0".repeat(64)));
        if let Err(err) = ward::config::Config::from_toml(&config) {
            panic!("{err}\nin:\n{config}");
        }
    }
}

/// docs/ARCHITECTURE.md: the modules of the server library depend on each
/// other in layers, never in a circle: neither the top-level rooms nor the
/// files of one room. Every `crate::a::b` and `super::x` path outside
/// comments and unit tests names a module.
#[test]
fn the_server_library_has_no_module_cycles() {
    use std::collections::{BTreeMap, BTreeSet};

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src");
    let mut files = Vec::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    let name_of = |path: &Path| {
        let relative = path.strip_prefix(&src).unwrap().with_extension("");
        let name = relative.to_string_lossy().replace('/', "::");
        name.strip_suffix("::mod")
            .map(str::to_string)
            .unwrap_or(name)
    };
    let modules: BTreeSet<String> = files.iter().map(|path| name_of(path)).collect();
    let longest_module = |path: &str| {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|candidate| modules.contains(candidate))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let module = name_of(path);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        // Unit tests may reach anywhere; comments name without depending.
        let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
        let text: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let parent = module.rsplit_once("::").map(|(parent, _)| parent);
        let mut named = Vec::new();
        for (prefix, base) in [("crate::", None), ("super::", parent)] {
            for (at, _) in text.match_indices(prefix) {
                let rest: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                let path = rest.trim_end_matches(':');
                named.push(match base {
                    Some(base) => format!("{base}::{path}"),
                    None if prefix == "super::" => path.to_string(),
                    None => path.to_string(),
                });
            }
        }
        for path in named {
            let Some(target) = longest_module(&path) else {
                continue;
            };
            // Compared where the two part: `registry::names` naming
            // `api::decide` is `registry` depending on `api`; siblings
            // are compared as themselves. A module and its own
            // descendants or ancestors are one room.
            let (from, to): (Vec<&str>, Vec<&str>) =
                (module.split("::").collect(), target.split("::").collect());
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                let from = from[..=common].join("::");
                let to = to[..=common].join("::");
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    // A cycle is a module that reaches itself.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = edges[start].iter().collect();
        while let Some(next) = stack.pop() {
            assert_ne!(next, start, "`{start}` depends on itself through {seen:?}");
            if seen.insert(next.clone()) {
                stack.extend(edges.get(next).into_iter().flatten());
            }
        }
    }
    assert!(edges.len() > 10, "the graph was read: {edges:?}");
}

/// Runs POLICIES.md's blocks for `lang` (info string `sh LANG`) as one
/// script against a server with a fresh tenant, and checks the newcomer
/// ends with an allow.
fn policies_md_section_works_as_written(lang: &str, policy: &str) {
    let _cores = crate::support::cores_busy();
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/POLICIES.md"))
            .unwrap();
    let script = blocks(&page, &format!("sh {lang}")).join("\n");
    assert!(script.contains("ward policy test"), "{lang}: {script}");

    let work = tempfile::tempdir().unwrap();
    let (_ward, base) = crate::languages::serve(work.path());
    let key = crate::languages::tenant_key(&base);

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ward")).parent().unwrap();
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(work.path())
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("WARD_") {
            bash.env_remove(key);
        }
    }
    let path = std::env::var("PATH").unwrap_or_default();
    bash.env("PATH", format!("{}:{path}", bin_dir.display()))
        .env("WARD_URL", &base)
        .env("WARD_TOKEN", key)
        .env("WARD_CACHE_DIR", crate::languages::cache_dir());
    let out = bash.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        "5 passed, 0 failed".to_string(),
        format!("activated version 1 of `{policy}`"),
        "allow\n  `reporter` may `export` `reports:q3`".to_string(),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn policies_md_javascript_section_works_as_written() {
    policies_md_section_works_as_written("js", "my-js-policy");
}

#[test]
fn policies_md_typescript_section_works_as_written() {
    policies_md_section_works_as_written("ts", "my-ts-policy");
}

#[test]
fn policies_md_python_section_works_as_written() {
    policies_md_section_works_as_written("python", "my-py-policy");
}
