#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod decision;
mod glob;
#[cfg(all(
    target_arch = "wasm32",
    target_os = "unknown",
    not(target_feature = "atomics")
))]
#[allow(unsafe_code)]
mod heap;
mod host;
mod request;

pub use decision::{Decision, allow, deny};
pub use glob::glob_match;
#[cfg(all(
    target_arch = "wasm32",
    target_os = "unknown",
    not(target_feature = "atomics")
))]
pub use heap::DecisionHeap;
pub use host::{Level, data_get, data_get_raw, log, now_millis};
pub use request::{Action, Agent, Entity, Permission, Request, Scope, Tenant};

use std::fmt;

/// Generated bindings for the `ward:policy` world; used by [`policy!`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        default_bindings_module: "ward_policy::__bindings",
    });
}

/// An error a policy reports instead of a decision.
///
/// Ward turns it into a deny with reason `policy_error:guest_error` and keeps
/// the message for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error(format!("invalid JSON: {err}"))
    }
}

/// What a policy function returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a function `fn(&Request) -> Result<Decision, E>` into the exported
/// `evaluate` of a Ward policy component.
///
/// Call it once, at the top level of a `cdylib` crate built for
/// `wasm32-wasip2`.
#[macro_export]
macro_rules! policy {
    ($evaluate:path) => {
        struct __WardPolicy;

        impl $crate::__bindings::Guest for __WardPolicy {
            fn evaluate(
                request: $crate::__bindings::ward::policy::types::Request,
            ) -> ::std::result::Result<
                $crate::__bindings::ward::policy::types::Decision,
                ::std::string::String,
            > {
                $crate::__evaluate(request, $evaluate)
            }
        }

        $crate::__bindings::export!(__WardPolicy with_types_in $crate::__bindings);
    };
}

/// Runs the author's function on the raw request; used by [`policy!`].
#[doc(hidden)]
pub fn __evaluate<E: fmt::Display>(
    raw: __bindings::ward::policy::types::Request,
    evaluate: impl FnOnce(&Request) -> Result<Decision, E>,
) -> Result<__bindings::ward::policy::types::Decision, String> {
    let request = Request::from_raw(raw);
    match evaluate(&request) {
        Ok(decision) => Ok(decision.into_raw()),
        Err(err) => Err(err.to_string()),
    }
}
