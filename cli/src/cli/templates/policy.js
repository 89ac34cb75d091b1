// `{name}`: a Ward policy.
//
// An agent may do what one of its permissions grants. Actions listed in
// the policy's config under `require_mfa` also need `"mfa": true` in the
// request's context.

import { allow, deny } from "ward-policy";

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
  const requireMfa = request.config?.require_mfa ?? [];
  if (requireMfa.includes(action) && request.context.mfa !== true) {
    return deny(`\`${action}\` needs multi-factor authentication`);
  }
  return allow().reason(`\`${agent.name}\` may \`${action}\` \`${resource}\``);
}
