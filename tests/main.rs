//! Ward's integration tests: one binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod auth;
mod authzen;
mod batch;
mod billing;
mod budgets;
mod cli;
mod client;
mod cluster;
mod conformance;
mod docs;
mod files;
mod hostile;
mod identity;
mod languages;
mod limits;
#[path = "../host/plugins_build.rs"]
mod plugins_build;
#[path = "../host/testing/postgres.rs"]
mod postgres;
mod sandbox;
mod scale;
mod server;
mod support;
mod surface;
mod tenancy;
