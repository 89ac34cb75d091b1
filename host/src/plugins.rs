//! Policies that ship inside the `ward` binary.

/// The global builtin `permissions` policy: an agent's own permissions
/// decide (built from `plugins/permissions` for `wasm32-unknown-unknown`:
/// a component without WASI imports).
pub const PERMISSIONS_WASM: &[u8] =
    include_bytes!(concat!(env!("WARD_BUILTIN_DIR"), "/permissions.wasm"));

/// Where the build put the builtin's component (for the test that checks
/// the embedded bytes are the built ones).
pub const PERMISSIONS_PATH: &str = concat!(env!("WARD_BUILTIN_DIR"), "/permissions.wasm");
