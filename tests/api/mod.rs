//! The HTTP API against a real listening server: the README journey (with
//! the real `ward` binary), management routes, and hostile input.

use serde_json::{Value, json};

use crate::server::{Body, OPERATOR, TestServer};
use crate::support::{guest, spawn_ward};

mod bad_input;
mod journey;
mod listing;
mod objects;
