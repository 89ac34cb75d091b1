// `{name}`: a Ward policy.
//
// An agent may do what one of its permissions grants. Actions listed in
// the policy's config under `require_mfa` also need `"mfa": true` in the
// request's context.

import { allow, deny, type Decision, type Request } from "ward-policy";

interface Config {
  require_mfa?: string[];
}

export function evaluate(request: Request): Decision {
  const agent = request.agent;
  if (!agent) {
    return deny(`\`${request.subject.qualified()}\` is not a registered agent`);
  }
  const resource = request.resource.qualified();
  const action = request.action.name;
  if (!agent.grants(resource, action)) {
    return deny(`\`${agent.name}\` has no permission to \`${action}\` \`${resource}\``);
  }
  const config = (request.config ?? {}) as Config;
  if ((config.require_mfa ?? []).includes(action) && request.context.mfa !== true) {
    return deny(`\`${action}\` needs multi-factor authentication`);
  }
  return allow().reason(`\`${agent.name}\` may \`${action}\` \`${resource}\``);
}
