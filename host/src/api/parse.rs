//! A native decision request in either of its two forms, read from the
//! body in one pass.
//!
//! The short form is `{"agent", "action": "name", "resource": "type:id",
//! "context"?}`; the full form is AuthZEN's `{"subject", "action":
//! {"name"}, "resource": {"type", "id"}, "context"?}`. A request with an
//! `agent`, or with an `action` that is a string, is short. Reading the
//! fields straight into the request, instead of into a
//! `serde_json::Value` first and converting that, saves building and
//! dropping a map per request (docs/PERFORMANCE.md).

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use ward_types::{AuthorizeRequest, Entity, RequestAction};

/// One request as sent: the request, or why it is not one. A value of the
/// wrong JSON type fails the whole body instead (with its path).
pub struct Incoming(pub Result<AuthorizeRequest, String>);

/// Body of `POST /v1/authorize/batch`, read like [`Incoming`] item by item
/// (its documented shape is [`ward_types::BatchRequest`]).
#[derive(serde::Deserialize)]
pub struct IncomingBatch {
    pub items: Vec<Incoming>,
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// `action` or `resource`: a string in the short form, an object in the
/// full one.
enum Either<T> {
    Text(String),
    Object(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Either<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EitherVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for EitherVisitor<T> {
            type Value = Either<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an object")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Either::Text(text.to_string()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Either::Text(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Either::Object)
            }
        }

        deserializer.deserialize_any(EitherVisitor(std::marker::PhantomData))
    }
}

/// Every field either form may have, as read.
#[derive(Default)]
struct Fields {
    agent: Option<String>,
    subject: Option<Entity>,
    action: Option<Either<RequestAction>>,
    resource: Option<Either<Entity>>,
    context: Option<Map<String, Value>>,
    /// What the decision costs, and the caller's id for it (spend
    /// budgets): kept in the context, where policies and AuthZEN callers
    /// see them too.
    cost: Option<Value>,
    request_id: Option<Value>,
    /// The first field neither form knows (the full form ignores such
    /// fields; the short form refuses them).
    unknown: Option<String>,
}

/// A field name, allocated only when neither form knows it.
enum Key {
    Agent,
    Subject,
    Action,
    Resource,
    Context,
    Cost,
    RequestId,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "agent" => Key::Agent,
                    "subject" => Key::Subject,
                    "action" => Key::Action,
                    "resource" => Key::Resource,
                    "context" => Key::Context,
                    "cost" => Key::Cost,
                    "request_id" => Key::RequestId,
                    other => Key::Other(other.to_string()),
                })
            }
        }

        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Incoming;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decision request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Incoming, A::Error> {
        fn once<T, E: de::Error>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::custom(format_args!("duplicate field `{name}`"))),
                None => Ok(()),
            }
        }
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Agent => once(&mut fields.agent, "agent", map.next_value()?)?,
                Key::Subject => once(&mut fields.subject, "subject", map.next_value()?)?,
                Key::Action => once(&mut fields.action, "action", map.next_value()?)?,
                Key::Resource => once(&mut fields.resource, "resource", map.next_value()?)?,
                Key::Context => {
                    // `null` is no context, as when the field is absent.
                    if let Some(context) = map.next_value::<Option<Map<String, Value>>>()? {
                        once(&mut fields.context, "context", context)?;
                    }
                }
                Key::Cost => once(&mut fields.cost, "cost", map.next_value()?)?,
                Key::RequestId => once(&mut fields.request_id, "request_id", map.next_value()?)?,
                Key::Other(name) => {
                    if fields.unknown.is_none() {
                        fields.unknown = Some(name);
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Incoming(fields.into_request()))
    }
}

impl Fields {
    fn into_request(mut self) -> Result<AuthorizeRequest, String> {
        let short = self.agent.is_some() || matches!(self.action, Some(Either::Text(_)));
        for (name, value) in [
            ("cost", self.cost.take()),
            ("request_id", self.request_id.take()),
        ] {
            let Some(value) = value else { continue };
            let context = self.context.get_or_insert_with(Map::new);
            if context.contains_key(name) {
                return Err(format!(
                    "`{name}` is given twice: at the top level and in `context`"
                ));
            }
            context.insert(name.to_string(), value);
        }
        let request = if short {
            self.into_short()?
        } else {
            self.into_full()?
        };
        crate::decision::check_request(&request)?;
        Ok(request)
    }

    fn into_short(self) -> Result<AuthorizeRequest, String> {
        let refuse = |message: String| Err(format!("short form: {message}"));
        let known = "expected `agent`, `action`, `resource`, `context`, `cost` or `request_id`";
        if let Some(unknown) = self.unknown {
            return refuse(format!("unknown field `{unknown}`, {known}"));
        }
        if self.subject.is_some() {
            return refuse(format!("unknown field `subject`, {known}"));
        }
        let Some(agent) = self.agent else {
            return refuse(String::from("missing field `agent`"));
        };
        let action = match self.action {
            Some(Either::Text(action)) => action,
            Some(Either::Object(_)) => return refuse(String::from("action must be a string")),
            None => return refuse(String::from("missing field `action`")),
        };
        // As in the full form (and AuthZEN), an empty subject or action is
        // a malformed request, not a question to deny.
        if agent.is_empty() {
            return refuse(String::from("agent must not be empty"));
        }
        if action.is_empty() {
            return refuse(String::from("action must not be empty"));
        }
        // An object, or a string that does not split, is not `type:id`.
        let resource = match self.resource {
            Some(Either::Text(resource)) => Entity::parse_qualified(&resource),
            Some(Either::Object(_)) => None,
            None => return refuse(String::from("missing field `resource`")),
        };
        let Some(resource) = resource else {
            return refuse(String::from("resource must be `type:id`"));
        };
        Ok(AuthorizeRequest {
            subject: Entity::new("agent", agent),
            action: RequestAction::new(action),
            resource,
            context: self.context,
        })
    }

    fn into_full(self) -> Result<AuthorizeRequest, String> {
        let subject = self
            .subject
            .ok_or_else(|| String::from("missing field `subject`"))?;
        let action = match self.action {
            Some(Either::Object(action)) => action,
            // A string action makes the request short; never here.
            Some(Either::Text(_)) | None => return Err(String::from("missing field `action`")),
        };
        let resource = match self.resource {
            Some(Either::Object(resource)) => resource,
            Some(Either::Text(_)) => {
                return Err(String::from(
                    "resource must be an object `{\"type\", \"id\"}` (or send the short form)",
                ));
            }
            None => return Err(String::from("missing field `resource`")),
        };
        Ok(AuthorizeRequest {
            subject,
            action,
            resource,
            context: self.context,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: Value) -> Result<AuthorizeRequest, String> {
        serde_json::from_value::<Incoming>(body)
            .map_err(|err| format!("body: {err}"))?
            .0
    }

    #[test]
    fn the_short_form_becomes_an_agent_request() {
        let request = read(json!({
            "agent": "bot", "action": "export", "resource": "reports:q3:2026",
            "context": {"ip": "10.0.0.1"}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "subject": {"type": "agent", "id": "bot"},
                "action": {"name": "export"},
                "resource": {"type": "reports", "id": "q3:2026"},
                "context": {"ip": "10.0.0.1"}
            })
        );
        let no_context =
            read(json!({"agent": "a", "action": "b", "resource": "c:d", "context": null}));
        assert_eq!(no_context.unwrap().context, None);
    }

    #[test]
    fn the_full_form_is_read_with_its_properties_and_extra_fields_ignored() {
        let body = json!({
            "subject": {"type": "user", "id": "ann", "properties": {"dept": "ops"}},
            "action": {"name": "read", "properties": {"via": "api"}},
            "resource": {"type": "doc", "id": "d1"},
            "context": {"time": 5},
            "trace": "ignored"
        });
        let request = read(body.clone()).unwrap();
        let mut expected = body;
        expected.as_object_mut().unwrap().remove("trace");
        assert_eq!(serde_json::to_value(&request).unwrap(), expected);
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            (
                json!({"agent": "a", "action": "b"}),
                "short form: missing field `resource`",
            ),
            (
                json!({"agent": "a", "resource": "c:d"}),
                "short form: missing field `action`",
            ),
            (
                json!({"action": "b", "resource": "c:d"}),
                "short form: missing field `agent`",
            ),
            (
                json!({"agent": "", "action": "b", "resource": "c:d"}),
                "short form: agent must not be empty",
            ),
            (
                json!({"agent": "a", "action": "", "resource": "c:d"}),
                "short form: action must not be empty",
            ),
            (
                json!({"agent": "a", "action": "b", "resource": "cd"}),
                "short form: resource must be `type:id`",
            ),
            (
                json!({"agent": "a", "action": "b", "resource": ":d"}),
                "short form: resource must be `type:id`",
            ),
            (
                json!({"agent": "a", "action": "b", "resource": {"type": "c", "id": "d"}}),
                "short form: resource must be `type:id`",
            ),
            (
                json!({"agent": "a", "action": {"name": "b"}, "resource": "c:d"}),
                "short form: action must be a string",
            ),
            (
                json!({"agent": "a", "action": "b", "resource": "c:d", "extra": 1}),
                "short form: unknown field `extra`",
            ),
            (
                json!({"agent": "a", "action": "b", "resource": "c:d", "subject": {"type": "t", "id": "i"}}),
                "short form: unknown field `subject`",
            ),
            (
                json!({"action": {"name": "b"}, "resource": {"type": "c", "id": "d"}}),
                "missing field `subject`",
            ),
            (
                json!({"subject": {"type": "t", "id": "i"}, "resource": {"type": "c", "id": "d"}}),
                "missing field `action`",
            ),
            (
                json!({"subject": {"type": "t", "id": "i"}, "action": {"name": "b"}}),
                "missing field `resource`",
            ),
            (
                json!({"subject": {"type": "t", "id": "i"}, "action": {"name": "b"}, "resource": "c:d"}),
                "resource must be an object",
            ),
            (
                json!({"subject": {"type": "", "id": "i"}, "action": {"name": "b"}, "resource": {"type": "c", "id": "d"}}),
                "subject.type must not be empty",
            ),
            (
                json!({"agent": 5, "action": "b", "resource": "c:d"}),
                "body: invalid type: integer `5`, expected a string",
            ),
            (
                json!({"agent": "a", "action": 5, "resource": "c:d"}),
                "body: invalid type: integer `5`, expected a string or an object",
            ),
            (
                json!({"agent": "a", "action": "b", "resource": "c:d", "context": []}),
                "body: invalid type: sequence, expected a map",
            ),
            (
                json!({"subject": {"type": "t"}, "action": {"name": "b"}, "resource": {"type": "c", "id": "d"}}),
                "body: missing field `id`",
            ),
            (
                json!([1, 2]),
                "body: invalid type: sequence, expected a decision request object",
            ),
        ];
        for (body, expected) in cases {
            let err = read(body.clone()).unwrap_err();
            assert!(err.starts_with(expected), "{body}: {err}");
        }
    }

    #[test]
    fn a_repeated_field_is_refused() {
        let err = serde_json::from_str::<Incoming>(
            r#"{"agent": "a", "agent": "b", "action": "c", "resource": "d:e"}"#,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().starts_with("duplicate field `agent`"),
            "{err}"
        );
    }
}
