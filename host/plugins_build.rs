//! Building `plugins/` for Wasm: the builtin policy by `host/build.rs`,
//! the other policies and the test guests by the tests and benchmarks
//! that use them (so that a server build never compiles them).
//!
//! The plugins are their own Cargo workspace, built by a nested `cargo`
//! with its own target directory, `<target>/wasm-plugins`, so that it never
//! contends for the outer build's lock.

#![allow(dead_code)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The target of policies and test guests.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Where `cargo build --release --target <target>` in `plugins/` puts
/// its `.wasm` files, under the workspace's `target_dir`.
pub fn release_dir(target_dir: &Path, target: &str) -> PathBuf {
    target_dir.join("wasm-plugins").join(target).join("release")
}

/// The policies and test guests of `plugins/`, built for
/// [`GUEST_TARGET`] once per process (cargo rebuilds only what changed);
/// for tests and benchmarks of the `ward` package.
pub fn guests() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target_dir = env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        build(&root, &target_dir, GUEST_TARGET, &["--workspace"]);
        release_dir(&target_dir, GUEST_TARGET)
    })
}

/// `cargo build --release --target <target> <selection>` in `plugins/`
/// under `root`, into `<target_dir>/wasm-plugins`; panics with the reason
/// when it fails.
pub fn build(root: &Path, target_dir: &Path, target: &str, selection: &[&str]) {
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
        .arg(target_dir.join("wasm-plugins"));
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
