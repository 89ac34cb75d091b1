//! A decision's audit entry.

use ward_types::{AgentRef, AuditKind, AuthorizeRequest, PolicyRef, Timestamp};

use super::DecisionOutcome;
use crate::sandbox::PolicyFailure;

/// A decision's audit entry, encoded straight from the decision: the same
/// JSON as the [`ward_types::AuditEntry`] it is read back as, without
/// copying the request into a `serde_json::Value` first (building and
/// then encoding that copy was about 3 µs a decision).
#[derive(serde::Serialize)]
pub(super) struct DecisionEntry<'a> {
    pub(super) id: &'a str,
    time: Timestamp,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<&'a str>,
    kind: AuditKind,
    decision: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    reasons: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a AgentRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a PolicyRef>,
    duration_us: u64,
    details: DecisionDetails<'a>,
}

#[derive(serde::Serialize)]
struct DecisionDetails<'a> {
    request: &'a AuthorizeRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a PolicyFailure>,
}

#[derive(serde::Serialize)]
struct UsageDetails {
    sandbox_us: u64,
    fuel_consumed: Option<u64>,
    peak_memory_bytes: u64,
    log_truncated: bool,
}

impl<'a> DecisionEntry<'a> {
    pub(super) fn new(
        outcome: &'a DecisionOutcome,
        request: &'a AuthorizeRequest,
        actor: &'a str,
    ) -> Self {
        let response = &outcome.response;
        let (actor, on_behalf_of) = crate::audit::split_actor(actor);
        DecisionEntry {
            id: &response.decision_id,
            time: Timestamp::now(),
            actor,
            on_behalf_of,
            kind: AuditKind::Decision,
            decision: response.decision,
            reasons: &response.reasons,
            agent: response.agent.as_ref(),
            policy: response.policy.as_ref(),
            duration_us: outcome.duration.as_micros() as u64,
            details: DecisionDetails {
                request,
                usage: outcome.usage.as_ref().map(|usage| UsageDetails {
                    sandbox_us: usage.duration.as_micros() as u64,
                    fuel_consumed: usage.fuel_consumed,
                    peak_memory_bytes: usage.peak_memory_bytes,
                    log_truncated: usage.log_truncated,
                }),
                failure: outcome.failure.as_ref(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use ward_types::AuditEntry;

    use std::time::Duration;

    use serde_json::Map;
    use ward_types::DecisionResponse;

    use super::*;
    use crate::sandbox::{Consumed, PolicyErrorKind};

    #[test]
    fn a_decision_entry_reads_back_as_the_audit_entry_it_stands_for() {
        let request: AuthorizeRequest = serde_json::from_value(json!({
            "subject": {"type": "agent", "id": "bot"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d1", "properties": {"owner": "ann"}},
            "context": {"ip": "10.0.0.1"}
        }))
        .unwrap();
        let outcome = DecisionOutcome {
            response: DecisionResponse {
                decision: false,
                decision_id: crate::ids::next_ulid().to_string(),
                reasons: vec![String::from("policy failed")],
                context: Map::new(),
                agent: None,
                policy: None,
                remaining: None,
            },
            failure: Some(PolicyFailure {
                kind: PolicyErrorKind::Trap,
                detail: String::from("unreachable"),
            }),
            usage: Some(Consumed {
                duration: Duration::from_micros(12),
                fuel_consumed: None,
                peak_memory_bytes: 65_536,
                log_truncated: false,
            }),
            duration: Duration::from_micros(30),
        };
        let encoded =
            serde_json::to_vec(&DecisionEntry::new(&outcome, &request, "key:k1")).unwrap();
        let entry: AuditEntry = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(entry.id, outcome.response.decision_id);
        assert_eq!(
            (entry.kind, entry.decision),
            (AuditKind::Decision, Some(false))
        );
        assert_eq!(
            (entry.actor.as_str(), entry.duration_us),
            ("key:k1", Some(30))
        );
        assert_eq!(entry.reasons, ["policy failed"]);
        assert_eq!(
            entry.details,
            json!({
                "request": serde_json::to_value(&request).unwrap(),
                "usage": {
                    "sandbox_us": 12,
                    "fuel_consumed": null,
                    "peak_memory_bytes": 65_536,
                    "log_truncated": false,
                },
                "failure": {"kind": "trap", "detail": "unreachable"},
            })
        );
    }
}
