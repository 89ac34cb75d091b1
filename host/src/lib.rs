//! Ward: a multi-tenant WebAssembly policy host.

pub mod plugins;
pub mod sandbox;
