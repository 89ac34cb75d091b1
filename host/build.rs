//! Builds the policies and test guests in `plugins/` and tells the host
//! (and its tests and benches) where they are through environment variables
//! at compile time:
//!
//! - `WARD_PLUGIN_DIR`: everything but the builtin, built for
//!   `wasm32-wasip2` as policy authors build theirs;
//! - `WARD_BUILTIN_DIR`: the builtin `permissions` policy, built for
//!   `wasm32-unknown-unknown` and linked into a component by the
//!   toolchain's `wasm-component-ld` (set in `plugins/.cargo/config.toml`).
//!   It needs no WASI, so its component is one core module with no imports
//!   to link, which makes each fresh instance cheaper (docs/DECISIONS.md).
//!
//! The plugins are their own Cargo workspace, built by a nested `cargo` with
//! its own target directory so it never contends for the outer build's lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target of policies and test guests.
const TARGET: &str = "wasm32-wasip2";
/// The target of the builtin policy.
const BUILTIN_TARGET: &str = "wasm32-unknown-unknown";
const BUILTIN: &str = "permissions";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_path_buf();
    for watched in ["plugins", "sdk/policy", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let target_dir = outer_target_dir(&out_dir).join("wasm-plugins");

    build_plugins(&root, &target_dir, TARGET, &["--workspace"]);
    build_plugins(&root, &target_dir, BUILTIN_TARGET, &["--package", BUILTIN]);

    let release = |target: &str| target_dir.join(target).join("release");
    println!(
        "cargo:rustc-env=WARD_PLUGIN_DIR={}",
        release(TARGET).display()
    );
    println!(
        "cargo:rustc-env=WARD_BUILTIN_DIR={}",
        release(BUILTIN_TARGET).display()
    );
}

/// `cargo build --release --target <target> <selection>` in `plugins/`.
fn build_plugins(root: &Path, target_dir: &Path, target: &str, selection: &[&str]) {
    ensure_target_installed(target);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        // From inside plugins/ so that plugins/.cargo/config.toml applies.
        .current_dir(root.join("plugins"))
        .arg("build")
        .arg("--release")
        .args(["--target", target])
        .args(selection)
        .arg("--manifest-path")
        .arg(root.join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    scrub_outer_cargo_env(&mut build);

    let status = build.status().unwrap_or_else(|err| {
        panic!("could not run cargo to build the policies in plugins/: {err}")
    });
    if !status.success() {
        panic!("building the policies in plugins/ for {target} failed (see the errors above)");
    }
}

/// Adds `target`'s standard library through rustup when it is missing, so
/// that a fresh checkout builds with `cargo test` alone.
fn ensure_target_installed(target: &str) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.is_some_and(|dir| has_std(&dir)) {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .is_ok_and(|status| status.success());
    if !added {
        panic!(
            "the Rust standard library for {target} is missing and rustup could not add it; \
             run `rustup target add {target}` and build again"
        );
    }
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("libstd-"))
    })
}

/// `OUT_DIR` is `<target>/<profile>/build/<pkg>-<hash>/out`.
fn outer_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("target"))
}

/// The outer cargo's settings (flags for the host, wrappers such as
/// clippy-driver, the jobserver) must not leak into the wasm build.
fn scrub_outer_cargo_env(cmd: &mut Command) {
    const KEEP: [&str; 5] = [
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let cargo_var = key.starts_with("CARGO_") || key.starts_with("__CARGO");
        if cargo_var && !KEEP.iter().any(|keep| key.starts_with(keep)) {
            cmd.env_remove(key.as_ref());
        }
    }
    for key in [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(key);
    }
    cmd.env("CARGO_BUILD_JOBS", "2");
}
