//! What can go wrong when calling Ward.

use std::time::Duration;

pub use ward_types::ErrorCode;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: its status and its error code
    /// (`not_found`, `rate_limited`, `invalid_input`…).
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's error code ([`ErrorCode::Other`] for one this
        /// client does not know, `http_error` when the answer had none).
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// How long the server asked to wait, for 429 and 503.
        retry_after: Option<Duration>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server")]
    Transport(#[source] reqwest::Error),
    /// The server answered something that is not the expected JSON.
    #[error("unexpected answer from the server (HTTP {status}): {message}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// What did not parse.
        message: String,
    },
    /// The client was set up wrong (bad URL, token with invalid characters).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The server's error code as it travels, when the server answered
    /// with one.
    pub fn code(&self) -> Option<&str> {
        self.error_code().map(ErrorCode::as_str)
    }

    /// The server's error code, typed.
    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the object asked for does not exist (or is not visible).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
