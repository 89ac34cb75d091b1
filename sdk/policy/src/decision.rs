use serde::Serialize;
use serde_json::{Map, Value};

use crate::__bindings::ward::policy::types as raw;

/// A policy's answer: allow or deny, with reasons and an optional context
/// object returned to the caller.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Decision {
    allow: bool,
    reasons: Vec<String>,
    context: Map<String, Value>,
}

/// A decision that allows the request.
pub fn allow() -> Decision {
    Decision {
        allow: true,
        reasons: Vec::new(),
        context: Map::new(),
    }
}

/// A decision that denies the request, saying why.
pub fn deny(reason: impl Into<String>) -> Decision {
    Decision {
        allow: false,
        reasons: vec![reason.into()],
        context: Map::new(),
    }
}

impl Decision {
    /// Adds a reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reasons.push(reason.into());
        self
    }

    /// Sets one field of the context object returned to the caller. A value
    /// that cannot be serialized is recorded as `null`.
    pub fn with_context(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.context.insert(key.into(), value);
        self
    }

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allow
    }

    /// The reasons given so far.
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    pub(crate) fn into_raw(self) -> raw::Decision {
        let context = if self.context.is_empty() {
            String::from("{}")
        } else {
            Value::Object(self.context).to_string()
        };
        raw::Decision {
            allow: self.allow,
            reasons: self.reasons,
            context,
        }
    }
}
