"""Invoice approvals: an agent may do what its permissions grant, and may
approve an invoice only up to the limit of its tier. Limits live in the
data document `approval_limits` ({tier: amount}); a tier without one
approves nothing. The same rules as ../rust and ../js.
"""

from ward_policy import Decision, Request, allow, data_get, deny


def evaluate(request: Request) -> Decision:
    agent = request.agent
    if agent is None:
        return deny(f"`{request.subject.qualified()}` is not a registered agent")
    resource = request.resource.qualified()
    action = request.action.name
    if not agent.grants(resource, action):
        return deny(f"`{agent.name}` has no permission to `{action}` `{resource}`")
    decision = allow().reason(f"`{agent.name}` may `{action}` `{resource}`")
    if action != "approve":
        return decision
    amount = request.resource.property("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return deny(f"`{resource}` has no amount")
    tier = agent.attribute("tier") or "standard"
    limit = (data_get("approval_limits") or {}).get(tier, 0)
    if amount > limit:
        return deny(f"{amount} is over the `{tier}` limit of {limit}")
    return decision.with_context("limit", limit)
