//! Policies that ship inside the `ward` binary.

/// The global builtin `permissions` policy: an agent's own permissions
/// decide (built from `plugins/permissions` for `wasm32-unknown-unknown`:
/// a component without WASI imports).
pub const PERMISSIONS_WASM: &[u8] =
    include_bytes!(concat!(env!("WARD_BUILTIN_DIR"), "/permissions.wasm"));

/// The `rbac` policy: roles mapped to permissions by config or a data
/// document (built from `plugins/rbac`).
pub const RBAC_WASM: &[u8] = include_bytes!(concat!(env!("WARD_PLUGIN_DIR"), "/rbac.wasm"));
