//! The global builtin policy: an agent's own permissions decide.
//!
//! Each permission is `{resource, actions}`; `resource` is a `type:id`
//! pattern where `*` matches any run of characters, and an action of `*`
//! allows every action. The first grant that matches allows; a deny says
//! what did not match.

use ward_policy::{Decision, Request, Result, allow, deny};

fn evaluate(request: &Request) -> Result<Decision> {
    let resource = request.resource().qualified();
    let action = request.action().name();
    let Some(agent) = request.agent() else {
        return Ok(deny(format!(
            "subject `{}` is not a registered agent",
            request.subject().qualified()
        )));
    };

    let mut patterns_without_action = Vec::new();
    for permission in &agent.permissions {
        if !permission.matches_resource(&resource) {
            continue;
        }
        if permission.allows_action(action) {
            return Ok(allow().reason(format!(
                "`{}` grants `{action}` on `{resource}`",
                permission.resource
            )));
        }
        patterns_without_action.push(permission.resource.as_str());
    }

    if patterns_without_action.is_empty() {
        Ok(deny(format!(
            "no permission of agent `{}` matches `{resource}`",
            agent.name
        )))
    } else {
        Ok(deny(format!(
            "`{}` matches `{resource}` but does not grant `{action}`",
            patterns_without_action.join("`, `")
        )))
    }
}

ward_policy::policy!(evaluate);

// Built for wasm32-unknown-unknown (see host/build.rs): no WASI, one core
// module, and a heap that lasts one decision.
#[cfg(target_os = "unknown")]
#[global_allocator]
static HEAP: ward_policy::DecisionHeap = ward_policy::DecisionHeap::new();
