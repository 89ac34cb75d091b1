use serde::de::DeserializeOwned;

use crate::__bindings::ward::policy::host as raw;
use crate::{Error, Result};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Writes a line to the host log, tagged with the tenant and policy. The host
/// caps how much one evaluation may log.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => raw::Level::Trace,
        Level::Debug => raw::Level::Debug,
        Level::Info => raw::Level::Info,
        Level::Warn => raw::Level::Warn,
        Level::Error => raw::Level::Error,
    };
    raw::log(level, message);
}

/// Milliseconds since the Unix epoch, from the host clock.
pub fn now_millis() -> u64 {
    raw::now_millis()
}

/// Reads a data document as JSON text: the tenant's own first, then the
/// global one of the same key.
pub fn data_get_raw(key: &str) -> Option<String> {
    raw::data_get(key)
}

/// Reads a data document and parses it into `T`; `Ok(None)` when no document
/// has that key.
pub fn data_get<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match raw::data_get(key) {
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|err| Error::new(format!("data document `{key}`: {err}"))),
        None => Ok(None),
    }
}
