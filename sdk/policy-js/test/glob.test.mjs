// The parts of ward-policy that need no component: `node --test` in
// sdk/policy-js. The host interface, which only a component has, is
// replaced by a stand-in that the tests drive through `globalThis.host`.
import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";

const standIn = `
export const log = (level, message) => globalThis.host.log(level, message);
export const nowMillis = () => globalThis.host.nowMillis();
export const dataGet = (key) => globalThis.host.dataGet(key);
`;
const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === "ward:policy/host@0.1.0") {
    return { url: ${JSON.stringify("data:text/javascript," + encodeURIComponent(standIn))}, shortCircuit: true };
  }
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hooks));

const lines = [];
const documents = { limits: '{"gold":5}', broken: "{" };
globalThis.host = {
  log: (level, message) => lines.push([level, message]),
  nowMillis: () => 1767225600000n,
  dataGet: (key) => documents[key],
};
const sdk = await import("../index.js");
const { allow, deny, globMatch } = sdk;

test("literal patterns match only themselves", () => {
  assert.ok(globMatch("reports:q3", "reports:q3"));
  assert.ok(!globMatch("reports:q3", "reports:q4"));
  assert.ok(!globMatch("reports:q3", "reports:q3x"));
  assert.ok(!globMatch("reports:q3x", "reports:q3"));
  assert.ok(globMatch("", ""));
  assert.ok(!globMatch("", "a"));
});

test("stars match any run anywhere", () => {
  assert.ok(globMatch("*", ""));
  assert.ok(globMatch("*", "anything:at all"));
  assert.ok(globMatch("reports:*", "reports:"));
  assert.ok(globMatch("*:q3", "reports:q3"));
  assert.ok(globMatch("re*s:*3", "reports:q3"));
  assert.ok(globMatch("**", "x"));
  assert.ok(globMatch("a*b*c", "aXXbYYc"));
  assert.ok(!globMatch("a*b*c", "aXXbYY"));
  assert.ok(!globMatch("reports:*", "report:q3"));
  assert.ok(globMatch("*a", "aaa"));
  assert.ok(!globMatch("*ab", "aaa"));
  assert.ok(globMatch("doc:é*", "doc:été"));
  assert.ok(!globMatch("doc:e*", "doc:été"));
  assert.ok(globMatch("emoji:*🦀", "emoji:a🦀"));
});

test("hostile patterns finish quickly", () => {
  const started = Date.now();
  assert.ok(!globMatch("*a".repeat(64) + "b", "a".repeat(4096)));
  assert.ok(!globMatch("*".repeat(10_000) + "b", "a".repeat(10_000)));
  assert.ok(Date.now() - started < 2000);
});

test("decisions chain reasons and context", () => {
  const a = allow();
  assert.equal(a.isAllowed, true);
  assert.deepEqual(a.reasons, []);
  assert.equal(a.reason("one").withContext("n", 1).withContext("list", [1, "x"]), a);
  assert.deepEqual(a.reasons, ["one"]);
  assert.deepEqual(a.context, { n: 1, list: [1, "x"] });

  const d = deny("no grant").reason("and more");
  assert.equal(d.isAllowed, false);
  assert.deepEqual(d.reasons, ["no grant", "and more"]);
  d.reasons.push("a copy");
  assert.deepEqual(d.reasons, ["no grant", "and more"]);

  // A value is serialised when set; what cannot be is null.
  const cyclic = {};
  cyclic.self = cyclic;
  const value = { x: 1 };
  const c = allow().withContext("value", value).withContext("fn", () => 1)
    .withContext("big", 1n).withContext("cyclic", cyclic).withContext("value", value);
  value.x = 2;
  assert.deepEqual(c.context, { value: { x: 1 }, fn: null, big: null, cyclic: null });
});

const raw = (over = {}) => ({
  tenant: { id: "tnt_01", slug: "acme" },
  subject: { type: "agent", id: "bot", properties: '{"team":"red"}' },
  agent: {
    name: "bot",
    scope: "tenant",
    type: "service",
    attributes: '{"tier":"gold"}',
    permissions: [
      { resource: "reports:*", actions: ["read", "export"] },
      { resource: "logs:app-*", actions: ["*"] },
    ],
  },
  action: { name: "read", properties: "{}" },
  resource: { type: "reports", id: "q3", properties: '{"owner":"red"}' },
  context: '{"mfa":true}',
  config: '{"limit":3}',
  ...over,
});

test("the request reads what the host sent", () => {
  let seen;
  const result = sdk.__evaluate((request) => {
    seen = request;
    return deny("x");
  }, raw());
  assert.deepEqual(result, { tag: "ok", val: { allow: false, reasons: ["x"], context: "{}" } });
  assert.deepEqual(seen.tenant, { id: "tnt_01", slug: "acme" });
  assert.equal(seen.subject.qualified(), "agent:bot");
  assert.equal(seen.subject.property("team"), "red");
  assert.equal(seen.subject.property("toString"), undefined);
  assert.equal(seen.resource.property("owner"), "red");
  assert.deepEqual(seen.action.properties, {});
  assert.equal(seen.action.property("nothing"), undefined);
  assert.equal(seen.contextField("mfa"), true);
  assert.deepEqual(seen.config, { limit: 3 });
  const agent = seen.agent;
  assert.equal(agent.scope, "tenant");
  assert.equal(agent.attribute("tier"), "gold");
  assert.ok(agent.grants("reports:q3", "export"));
  assert.ok(!agent.grants("reports:q3", "delete"));
  assert.ok(agent.grants("logs:app-7", "delete"));
  assert.ok(!agent.grants("logs:db-7", "read"));
  assert.ok(agent.permissions[0].matchesResource("reports:"));
  assert.ok(agent.permissions[1].allowsAction("anything"));
});

test("empty fields read as their defaults, and JSON is parsed lazily", () => {
  let seen;
  sdk.__evaluate((request) => {
    seen = request;
    return allow();
  }, raw({ agent: undefined, context: "", config: "null", subject: { type: "user", id: "u", properties: "not json" } }));
  assert.equal(seen.agent, null);
  assert.deepEqual(seen.context, {});
  assert.equal(seen.config, null);
  assert.throws(() => seen.subject.properties, (err) => err instanceof sdk.PolicyError &&
    /^subject properties: invalid JSON/.test(err.message));
});

test("the host is reached through the helpers", () => {
  sdk.log("warn", "careful");
  assert.deepEqual(lines.at(-1), ["warn", "careful"]);
  assert.throws(() => sdk.log("fatal", "x"), TypeError);
  assert.equal(sdk.nowMillis(), 1767225600000);
  assert.deepEqual(sdk.dataGet("limits"), { gold: 5 });
  assert.equal(sdk.dataGetRaw("limits"), '{"gold":5}');
  assert.equal(sdk.dataGet("missing"), undefined);
  assert.equal(sdk.dataGetRaw("missing"), undefined);
  assert.throws(() => sdk.dataGet("broken"), /data document `broken`: invalid JSON/);
});

test("console writes to the host log while evaluate runs", () => {
  const before = console.log;
  lines.length = 0;
  sdk.__evaluate(() => {
    console.log("seen", { n: 1 }, 2);
    console.warn(new sdk.PolicyError("careful"));
    return allow();
  }, raw());
  assert.equal(console.log, before);
  assert.deepEqual(lines, [["info", 'seen {"n":1} 2'], ["warn", "careful"]]);
});

test("failures are the export's error, never a throw", () => {
  const err = (evaluate) => {
    const result = sdk.__evaluate(evaluate, raw());
    assert.equal(result.tag, "err");
    return result.val;
  };
  assert.equal(err(undefined), "the policy module does not define a function `evaluate`");
  assert.equal(err(() => { throw new sdk.PolicyError("no budget"); }), "no budget");
  assert.equal(err(() => null.x), "TypeError: Cannot read properties of null (reading 'x')");
  assert.equal(err(() => { throw "plain"; }), "plain");
  assert.equal(err(() => { throw 7; }), "uncaught number 7");
  assert.match(err(() => ({ allow: true })), /^`evaluate` returned an object, not a Decision/);
  assert.match(err(async () => allow()), /returned a Promise/);
  assert.match(err(() => "allow"), /returned "allow", not a Decision/);
  assert.match(err(() => { throw new RangeError("out of memory"); }), /^RangeError: out of memory$/);
  const ok = sdk.__evaluate(() => allow().reason("fine").withContext("k", "v"), raw());
  assert.deepEqual(ok, { tag: "ok", val: { allow: true, reasons: ["fine"], context: '{"k":"v"}' } });
});
