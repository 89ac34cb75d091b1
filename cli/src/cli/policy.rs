//! `ward policy …`: the policy author's loop (scaffold, build, test
//! locally) and managing versions on the server.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use ward_cli::cases::{self, Runner};
use ward_client::types::PolicyInfo;

use super::output::{Progress, Table, bytes, or_dash, word};
use super::{Ctx, PolicyCommand, Remote, json_arg, run};

/// What policies are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The SDK next to this build of Ward, used by `policy new` when it exists.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/policy");

/// `ward policy …`: the local commands need no server.
pub fn policy(remote: &Remote, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            scaffold(&name, &dir, sdk.as_deref())?;
            println!("created policy `{name}` in {}", dir.display());
            println!(
                "next: cd {} && ward policy test (builds it and runs cases.yaml)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Build { dir } => {
            let wasm = build(&dir)?;
            println!("{}", wasm.display());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { wasm, cases, dir } => {
            let cases = cases.unwrap_or_else(|| dir.join("cases.yaml"));
            let wasm = match wasm {
                Some(wasm) => wasm,
                None => build(&dir)?,
            };
            test(&wasm, &cases, remote.json)
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
                None => build(&dir)?,
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
        PolicyCommand::New { .. } | PolicyCommand::Build { .. } | PolicyCommand::Test { .. } => {
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

fn scaffold(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<()> {
    check_name(name)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!("`{}` exists and is not empty", dir.display());
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
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let files = [
        ("Cargo.toml", cargo_toml(name, &dependency)),
        ("src/lib.rs", LIB_RS.replace("{name}", name)),
        ("cases.yaml", CASES_YAML.to_string()),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
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

const LIB_RS: &str = r#"//! `{name}`: a Ward policy.
//!
//! An agent may do what one of its permissions grants. Actions listed in
//! the policy's config under `require_mfa` also need `"mfa": true` in the
//! request's context.

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, allow, deny};

#[derive(Default, Deserialize)]
#[serde(default)]
struct Config {
    require_mfa: Vec<String>,
}

fn evaluate(request: &Request) -> Result<Decision> {
    let Some(agent) = request.agent() else {
        return Ok(deny(format!(
            "`{}` is not a registered agent",
            request.subject().qualified()
        )));
    };
    let resource = request.resource().qualified();
    let action = request.action().name();
    if !agent.permissions.iter().any(|p| p.grants(&resource, action)) {
        return Ok(deny(format!(
            "`{}` has no permission to `{action}` `{resource}`",
            agent.name
        )));
    }
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    let mfa = request.context_field("mfa").and_then(|v| v.as_bool());
    if config.require_mfa.iter().any(|a| a == action) && mfa != Some(true) {
        return Ok(deny(format!("`{action}` needs multi-factor authentication")));
    }
    Ok(allow().reason(format!("`{}` may `{action}` `{resource}`", agent.name)))
}

ward_policy::policy!(evaluate);
"#;

const CASES_YAML: &str = r#"# `ward policy test` builds the policy and checks every case below.
config:
  require_mfa: [delete]
agents:
  - name: reporter
    type: service
    permissions:
      - resource: "reports:*"
        actions: [read, export, delete]
cases:
  - name: the reporter exports a report
    subject: reporter
    action: export
    resource: reports:q3
    expect:
      decision: allow
      reasons: ["`reporter` may `export` `reports:q3`"]
  - name: nothing grants the reporter invoices
    subject: reporter
    action: read
    resource: invoices:7
    expect:
      decision: deny
  - name: deleting needs multi-factor authentication
    subject: reporter
    action: delete
    resource: reports:q3
    expect:
      decision: deny
      reasons: ["`delete` needs multi-factor authentication"]
  - name: with it, the reporter may delete
    subject: reporter
    action: delete
    resource: reports:q3
    context: {mfa: true}
    expect:
      decision: allow
  - name: an unknown subject is denied
    subject: user:mallory
    action: read
    resource: reports:q3
    expect:
      decision: deny
      reasons: ["`user:mallory` is not a registered agent"]
"#;

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
    let results = Runner::new()?.run(&module, &suite)?;
    let failed = results.iter().filter(|r| !r.passed).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        let mut table = Table::new(&["RESULT", "CASE", "EXPECTED", "GOT"]);
        for r in &results {
            table.row(vec![
                if r.passed { "pass" } else { "FAIL" }.to_string(),
                r.name.clone(),
                r.expected.to_string(),
                r.got.to_string(),
            ]);
        }
        print!("{}", table.render());
        for r in results.iter().filter(|r| !r.passed) {
            println!("\nFAIL {}", r.name);
            for difference in &r.differences {
                println!("  {difference}");
            }
            if !r.reasons.is_empty() {
                println!("  the policy said: {}", r.reasons.join("; "));
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
