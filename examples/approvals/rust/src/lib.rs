//! Invoice approvals: an agent may do what its permissions grant, and may
//! approve an invoice only up to the limit of its tier. Limits live in the
//! data document `approval_limits` ({tier: amount}); a tier without one
//! approves nothing. The same rules as ../js and ../python.

use std::collections::BTreeMap;

use serde_json::Value;
use ward_policy::{Decision, Request, Result, allow, data_get, deny};

fn evaluate(request: &Request) -> Result<Decision> {
    let Some(agent) = request.agent() else {
        return Ok(deny(format!(
            "`{}` is not a registered agent",
            request.subject().qualified()
        )));
    };
    let resource = request.resource().qualified();
    let action = request.action().name();
    if !agent.permissions.iter().any(|p| p.grants(&resource, action)) {
        return Ok(deny(format!(
            "`{}` has no permission to `{action}` `{resource}`",
            agent.name
        )));
    }
    let decision = allow().reason(format!("`{}` may `{action}` `{resource}`", agent.name));
    if action != "approve" {
        return Ok(decision);
    }
    let Some(amount) = request.resource().property("amount").filter(Value::is_number) else {
        return Ok(deny(format!("`{resource}` has no amount")));
    };
    let tier = agent
        .attribute("tier")
        .and_then(|t| t.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from("standard"));
    let limits: BTreeMap<String, Value> = data_get("approval_limits")?.unwrap_or_default();
    let limit = limits.get(&tier).cloned().unwrap_or(Value::from(0));
    let over = match (amount.as_f64(), limit.as_f64()) {
        (Some(amount), Some(limit)) => amount > limit,
        _ => true,
    };
    if over {
        return Ok(deny(format!("{amount} is over the `{tier}` limit of {limit}")));
    }
    Ok(decision.with_context("limit", limit))
}

ward_policy::policy!(evaluate);
