"""`{name}`: a Ward policy.

An agent may do what one of its permissions grants. Actions listed in the
policy's config under `require_mfa` also need `"mfa": true` in the
request's context.
"""

from ward_policy import Decision, Request, allow, deny


def evaluate(request: Request) -> Decision:
    agent = request.agent
    if agent is None:
        return deny(f"`{request.subject.qualified()}` is not a registered agent")
    resource = request.resource.qualified()
    action = request.action.name
    if not agent.grants(resource, action):
        return deny(f"`{agent.name}` has no permission to `{action}` `{resource}`")
    config = request.config or {}
    if action in config.get("require_mfa", []) and request.context.get("mfa") is not True:
        return deny(f"`{action}` needs multi-factor authentication")
    return allow().reason(f"`{agent.name}` may `{action}` `{resource}`")
