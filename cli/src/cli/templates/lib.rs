//! `{name}`: a Ward policy.
//!
//! An agent may do what one of its permissions grants. Actions listed in
//! the policy's config under `require_mfa` also need `"mfa": true` in the
//! request's context.

use serde::Deserialize;
use ward_policy::{Decision, Request, Result, allow, deny};

#[derive(Default, Deserialize)]
#[serde(default)]
struct Config {
    require_mfa: Vec<String>,
}

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
    let config: Config = match request.config_json() {
        "null" => Config::default(),
        _ => request.config()?,
    };
    let mfa = request.context_field("mfa").and_then(|v| v.as_bool());
    if config.require_mfa.iter().any(|a| a == action) && mfa != Some(true) {
        return Ok(deny(format!("`{action}` needs multi-factor authentication")));
    }
    Ok(allow().reason(format!("`{}` may `{action}` `{resource}`", agent.name)))
}

ward_policy::policy!(evaluate);
