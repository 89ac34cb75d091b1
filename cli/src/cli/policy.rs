//! `ward policy …`: the policy author's loop (scaffold, build, test
//! locally) and managing versions on the server.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use ward::sandbox::SandboxConfig;
use ward_cli::cases::{self, Runner};
use ward_client::types::PolicyInfo;

use super::lang::{self, Lang};
use super::output::{Progress, Table, bytes, or_dash, word};
use super::{Ctx, PolicyCommand, Remote, json_arg, run};

/// What policies are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The SDK next to this build of Ward, used by `policy new` when it exists.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/policy");

/// `ward policy …`: the local commands need no server.
pub fn policy(remote: &Remote, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::New {
            name,
            dir,
            sdk,
            lang,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            scaffold(&name, &dir, sdk.as_deref(), Lang::parse(&lang)?)?;
            println!("created policy `{name}` in {}", dir.display());
            println!(
                "next: cd {} && ward policy test (builds it and runs cases.yaml)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Setup { lang } => {
            let mut wanted = Vec::new();
            for name in &lang {
                match name.as_str() {
                    "all" => wanted.extend([Lang::JavaScript, Lang::Python]),
                    other => wanted.push(Lang::parse(other)?),
                }
            }
            for lang in wanted {
                if let Some(dir) = lang::setup(lang)? {
                    println!("{}: {}", lang.name(), dir.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Build { dir } => {
            let wasm = build_any(&dir)?;
            println!("{}", wasm.display());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { wasm, cases, dir } => {
            let cases = cases.unwrap_or_else(|| dir.join("cases.yaml"));
            let wasm = match wasm {
                Some(wasm) => wasm,
                None => build_any(&dir)?,
            };
            test(&wasm, &cases, remote.json)
        }
        push @ PolicyCommand::Push { .. } => {
            run(&remote.patient(600), |ctx| remote_command(ctx, push))
        }
        other => run(remote, |ctx| remote_command(ctx, other)),
    }
}

async fn remote_command(ctx: Ctx, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let client = &ctx.client;
    match command {
        PolicyCommand::Push {
            name,
            wasm,
            dir,
            no_activate,
        } => {
            let path = match wasm {
                Some(path) => path,
                None => build_any(&dir)?,
            };
            let module = std::fs::read(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let progress = Progress::start(format!(
                "uploading {} ({}) and compiling",
                path.display(),
                bytes(module.len() as u64)
            ));
            let uploaded = client.upload_policy(&name, module, !no_activate).await;
            progress.finish();
            let uploaded = uploaded?;
            ctx.show(&uploaded, |u| {
                println!(
                    "{} version {} of `{}` (sha256 {}, {})",
                    if u.active { "activated" } else { "staged" },
                    u.version,
                    u.name,
                    u.sha256,
                    bytes(u.size)
                );
            })?;
        }
        PolicyCommand::List => {
            let policies = client.list_policies().await?;
            ctx.show(&policies, |p| policies_table(p))?;
        }
        PolicyCommand::Get { name } => {
            let policy = client.get_policy(&name).await?;
            ctx.show(&policy, policy_detail)?;
        }
        PolicyCommand::Activate { name, version } => {
            let policy = client.activate_policy(&name, version).await?;
            ctx.show(&policy, policy_detail)?;
        }
        PolicyCommand::Config { name, config } => {
            let policy = client
                .configure_policy(&name, &json_arg(&config, "the config")?)
                .await?;
            ctx.show(&policy, policy_detail)?;
        }
        PolicyCommand::Delete { name } => {
            client.delete_policy(&name).await?;
            ctx.done(format!("deleted policy {name}"));
        }
        PolicyCommand::New { .. }
        | PolicyCommand::Setup { .. }
        | PolicyCommand::Build { .. }
        | PolicyCommand::Test { .. } => {
            anyhow::bail!("a local command reached the server")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn policies_table(policies: &[PolicyInfo]) {
    let mut table = Table::new(&["NAME", "SCOPE", "ACTIVE", "VERSIONS", "UPDATED"]);
    for p in policies {
        table.row(vec![
            p.name.clone(),
            word(&p.scope),
            or_dash(p.active_version),
            p.versions.len().to_string(),
            p.updated_at.to_string(),
        ]);
    }
    table.print_or("no policies");
}

fn policy_detail(policy: &PolicyInfo) {
    println!(
        "policy `{}` ({}), active version {}",
        policy.name,
        word(&policy.scope),
        or_dash(policy.active_version)
    );
    let mut table = Table::new(&["VERSION", "SHA256", "SIZE", "CREATED"]);
    for v in &policy.versions {
        table.row(vec![
            v.version.to_string(),
            v.sha256.clone(),
            bytes(v.size),
            v.created_at.to_string(),
        ]);
    }
    table.print_or("no versions");
    if !policy.config.is_null() {
        println!("config: {}", policy.config);
    }
}

// ---- scaffold --------------------------------------------------------------

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    anyhow::ensure!(
        ok,
        "`{name}` is not a valid policy name: 1–64 lowercase letters, digits, `-` or `_`, starting with a letter"
    );
    Ok(())
}

fn scaffold(name: &str, dir: &Path, sdk: Option<&Path>, lang: Lang) -> anyhow::Result<()> {
    check_name(name)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!("`{}` exists and is not empty", dir.display());
    }
    if lang != Lang::Rust {
        anyhow::ensure!(
            sdk.is_none(),
            "--sdk names the Rust SDK; a {} policy is built with the SDK this `ward` carries",
            lang.name()
        );
        let (entry, template, editor) = match lang {
            Lang::JavaScript => ("policy.js", POLICY_JS, ("jsconfig.json", JSCONFIG)),
            Lang::TypeScript => ("policy.ts", POLICY_TS, ("tsconfig.json", TSCONFIG)),
            _ => ("policy.py", POLICY_PY, ("", "")),
        };
        let mut files = vec![
            (entry, template.replace("{name}", name)),
            ("cases.yaml", CASES_YAML.to_string()),
            (".gitignore", "/.ward/\n__pycache__/\n".to_string()),
        ];
        if !editor.0.is_empty() {
            files.push((editor.0, editor.1.to_string()));
        }
        return write_files(dir, &files);
    }
    let sdk = match sdk {
        Some(path) => Some(path.to_path_buf()),
        None => Path::new(BUILT_SDK).canonicalize().ok(),
    };
    let dependency = match &sdk {
        Some(path) => {
            let path = path
                .canonicalize()
                .with_context(|| format!("no SDK at `{}`", path.display()))?;
            anyhow::ensure!(
                path.join("Cargo.toml").is_file(),
                "`{}` is not the ward-policy crate",
                path.display()
            );
            // TOML basic strings escape `\` and `"`.
            let path = path
                .display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            format!("{{ path = \"{path}\" }}")
        }
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let files = [
        ("Cargo.toml", cargo_toml(name, &dependency)),
        ("src/lib.rs", LIB_RS.replace("{name}", name)),
        ("cases.yaml", CASES_YAML.to_string()),
        (".gitignore", "/target\n".to_string()),
    ];
    write_files(dir, &files)
}

fn write_files(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<()> {
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

fn cargo_toml(name: &str, dependency: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
ward-policy = {dependency}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A policy is one small component: optimise it as a whole.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A crate of its own, even inside another workspace.
[workspace]
"#
    )
}

const LIB_RS: &str = include_str!("templates/lib.rs");
const POLICY_JS: &str = include_str!("templates/policy.js");
const POLICY_TS: &str = include_str!("templates/policy.ts");
const POLICY_PY: &str = include_str!("templates/policy.py");
const JSCONFIG: &str = include_str!("templates/jsconfig.json");
const TSCONFIG: &str = include_str!("templates/tsconfig.json");

const CASES_YAML: &str = include_str!("templates/cases.yaml");

// ---- build -----------------------------------------------------------------

/// Adds the wasm32-wasip2 standard library through rustup when missing.
fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .is_some_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        });
    if installed {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target with rustup…");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(
        added,
        "the Rust standard library for {TARGET} is missing; run `rustup target add {TARGET}`"
    );
    Ok(())
}

/// Builds the policy in `dir`, whatever its language, and returns the
/// component's path.
fn build_any(dir: &Path) -> anyhow::Result<PathBuf> {
    match Lang::detect(dir)? {
        Lang::Rust => build(dir),
        other => lang::build(dir, other),
    }
}

/// Builds the crate in `dir` and returns the component's path.
fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    anyhow::ensure!(
        manifest.is_file(),
        "no Cargo.toml in `{}` (create a policy with `ward policy new NAME`)",
        dir.display()
    );
    ensure_target()?;
    let metadata = Command::new("cargo")
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .context("cannot run cargo (is Rust installed?)")?;
    anyhow::ensure!(
        metadata.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&metadata.stderr).trim()
    );
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has no target directory")?;
    let name = metadata["packages"][0]["name"]
        .as_str()
        .context("cargo metadata has no package")?;
    eprintln!("building `{name}` for {TARGET} (release)…");
    let status = Command::new("cargo")
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .status()
        .context("cannot run cargo")?;
    anyhow::ensure!(
        status.success(),
        "the policy did not build (see cargo's errors above)"
    );
    let wasm = Path::new(target_dir)
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    anyhow::ensure!(
        wasm.is_file(),
        "cargo built no `{}`: is the crate a `cdylib`?",
        wasm.display()
    );
    Ok(wasm)
}

// ---- test ------------------------------------------------------------------

fn test(wasm: &Path, cases_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let module =
        std::fs::read(wasm).with_context(|| format!("cannot read `{}`", wasm.display()))?;
    let text = std::fs::read_to_string(cases_path)
        .with_context(|| format!("cannot read `{}`", cases_path.display()))?;
    let suite = cases::parse(&text)?;
    // Compiled code is kept in Ward's cache, so that running the cases
    // again does not compile again; quickly compiled code is enough to
    // check what a policy decides.
    let cache = lang::cache_dir()
        .ok()
        .map(|dir| dir.join("compiled-for-tests"));
    let config = SandboxConfig {
        cache_dir: cache.clone(),
        optimise: false,
        // The author's own machine, maybe busy: a large module is worth
        // waiting for.
        compile_timeout: std::time::Duration::from_secs(120),
        ..SandboxConfig::default()
    };
    let results = Runner::with_sandbox(config)?.run(&module, &suite)?;
    if let Some(cache) = cache {
        prune(&cache, KEPT_COMPILED);
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        let mut table = Table::new(&["RESULT", "CASE", "EXPECTED", "GOT"]);
        for r in &results {
            table.row(vec![
                if r.passed { "pass" } else { "FAIL" }.to_string(),
                r.name.clone(),
                r.expected_text(),
                r.got_text(),
            ]);
        }
        print!("{}", table.render());
        for r in results.iter().filter(|r| !r.passed) {
            println!("\nFAIL {}", r.name);
            for difference in &r.differences {
                println!("  {difference}");
            }
            for line in r.said() {
                println!("  the policy said: {line}");
            }
        }
        println!(
            "\n{} passed, {failed} failed ({} cases)",
            results.len() - failed,
            results.len()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Compiled policies `ward policy test` keeps: a JavaScript or Python one
/// takes 40–70 MB.
const KEPT_COMPILED: usize = 8;

/// Keeps the `keep` most recently written files under `cache`'s
/// subdirectories and removes the rest; best effort.
fn prune(cache: &Path, keep: usize) {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .flat_map(|dir| std::fs::read_dir(dir.path()).into_iter().flatten())
        .filter_map(Result::ok)
        .filter_map(|file| {
            let modified = file.metadata().ok()?.modified().ok()?;
            Some((modified, file.path()))
        })
        .collect();
    files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in files.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_checked() {
        assert!(check_name("my-policy_2").is_ok());
        for bad in ["", "2fast", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
