// Invoice approvals: an agent may do what its permissions grant, and may
// approve an invoice only up to the limit of its tier. Limits live in the
// data document `approval_limits` ({tier: amount}); a tier without one
// approves nothing. The same rules as ../rust and ../python.

import { allow, dataGet, deny } from "ward-policy";

/**
 * @param {import("ward-policy").Request} request
 * @returns {import("ward-policy").Decision}
 */
export function evaluate(request) {
  const agent = request.agent;
  if (!agent) {
    return deny(`\`${request.subject.qualified()}\` is not a registered agent`);
  }
  const resource = request.resource.qualified();
  const action = request.action.name;
  if (!agent.grants(resource, action)) {
    return deny(`\`${agent.name}\` has no permission to \`${action}\` \`${resource}\``);
  }
  const decision = allow().reason(`\`${agent.name}\` may \`${action}\` \`${resource}\``);
  if (action !== "approve") {
    return decision;
  }
  const amount = request.resource.property("amount");
  if (typeof amount !== "number") {
    return deny(`\`${resource}\` has no amount`);
  }
  const tier = agent.attribute("tier") ?? "standard";
  const limit = (dataGet("approval_limits") ?? {})[tier] ?? 0;
  if (amount > limit) {
    return deny(`${amount} is over the \`${tier}\` limit of ${limit}`);
  }
  return decision.withContext("limit", limit);
}
