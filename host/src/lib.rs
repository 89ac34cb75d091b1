//! Ward: a multi-tenant WebAssembly policy host.
//!
//! - [`sandbox`] runs policy components under per-tenant limits;
//! - [`store`] persists everything (sled by default);
//! - [`registry`] keeps tenants, agents, policies and data, resolved
//!   narrowest-first from in-memory indexes;
//! - [`authorize`] is the decision pipeline;
//! - [`audit`] is every scope's audit log.

pub mod audit;
pub mod authorize;
pub mod ids;
pub mod plugins;
pub mod registry;
pub mod sandbox;
pub mod store;
