//! Builds the builtin `permissions` policy that the server embeds, for
//! `wasm32-unknown-unknown`, linked into a component by the toolchain's
//! `wasm-component-ld` (set in `plugins/.cargo/config.toml`). It needs no
//! WASI, so its component is one core module with no imports to link,
//! which makes each fresh instance cheaper (docs/DECISIONS.md).
//! `WARD_BUILTIN_DIR` tells the host where it is, at compile time.
//!
//! The other policies and the test guests are built by the tests and
//! benchmarks that use them (`plugins_build::guests`), never by a server
//! build.

use std::env;
use std::path::{Path, PathBuf};

#[path = "plugins_build.rs"]
mod plugins_build;

const BUILTIN_TARGET: &str = "wasm32-unknown-unknown";
const BUILTIN: &str = "permissions";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_path_buf();
    for watched in [
        "plugins/permissions",
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "sdk/policy",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-changed=plugins_build.rs");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let target_dir = outer_target_dir(&out_dir);
    plugins_build::build(&root, &target_dir, BUILTIN_TARGET, &["--package", BUILTIN]);
    println!(
        "cargo:rustc-env=WARD_BUILTIN_DIR={}",
        plugins_build::release_dir(&target_dir, BUILTIN_TARGET).display()
    );
}

/// `OUT_DIR` is `<target>/<profile>/build/<pkg>-<hash>/out`.
fn outer_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("target"))
}
