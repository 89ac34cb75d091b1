//! Ward: a multi-tenant WebAssembly policy host.
//!
//! - [`sandbox`] runs policy components under per-tenant limits;
//! - [`store`] persists everything (sled by default);
//! - [`registry`] keeps tenants, agents, policies and data, resolved
//!   narrowest-first from in-memory indexes;
//! - [`decision`] decides authorize calls: admission through [`gates`],
//!   the pipeline, batches, the evaluation pool ([`evaluations`]);
//! - [`audit`] is every scope's audit log;
//! - [`auth`] checks credentials; [`api`] is the HTTP surface;
//!   [`server`] puts it together from a [`config::Config`], in a data
//!   directory that [`datadir`] keeps private;
//! - [`nesting`] bounds how deeply any JSON Ward accepts may nest.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod datadir;
pub mod decision;
pub mod evaluations;
pub mod gates;
pub mod ids;
pub mod metrics;
pub mod nesting;
pub mod plugins;
pub mod registry;
pub mod sandbox;
pub mod server;
pub mod store;
