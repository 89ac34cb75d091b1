//! Ward's integration tests: one binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox;
mod support;
mod tenancy;
