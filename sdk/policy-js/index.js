// ward-policy: the author SDK for Ward policies in JavaScript and
// TypeScript. A policy module exports `evaluate(request)`, which returns
// `allow()` or `deny(reason)`; `ward policy build` bundles it with this
// module and exports it to Ward through `__evaluate`. Types and
// documentation are in index.d.ts.

import {
  dataGet as hostDataGet,
  log as hostLog,
  nowMillis as hostNowMillis,
} from "ward:policy/host@0.1.0";

// ---- JSON fields -------------------------------------------------------

/** Parses the JSON text `text` of `what`; `empty` when the text is empty. */
function parseJson(text, empty, what) {
  if (text === undefined || text === null || text === "") return empty;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PolicyError(`${what}: invalid JSON: ${err instanceof Error ? err.message : err}`);
  }
}

/** `object[name]` when `object` is a JSON object that has its own `name`. */
function own(object, name) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) return undefined;
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

/** A JSON text that is parsed the first time it is read, and only then. */
class Lazy {
  #text;
  #empty;
  #what;
  #parsed = false;
  #value;

  constructor(text, empty, what) {
    this.#text = text;
    this.#empty = empty;
    this.#what = what;
  }

  get() {
    if (!this.#parsed) {
      this.#value = parseJson(this.#text, this.#empty, this.#what);
      this.#parsed = true;
      this.#text = undefined;
    }
    return this.#value;
  }
}

// ---- patterns ----------------------------------------------------------

/**
 * Whether `text` matches `pattern`, in which `*` stands for any run of
 * characters (none included) and every other character for itself.
 * Iterative: on a mismatch it returns only to the latest `*`, so it takes
 * at most pattern × text steps whatever the pattern.
 */
export function globMatch(pattern, text) {
  pattern = String(pattern);
  text = String(text);
  const STAR = 42; // "*"
  let p = 0;
  let t = 0;
  let star = -1; // index of the latest `*` in the pattern, -1 before any
  let covered = 0; // end of the text that `*` is taken to cover
  while (t < text.length) {
    if (p < pattern.length && pattern.charCodeAt(p) === STAR) {
      star = p;
      covered = t;
      p += 1;
    } else if (p < pattern.length && pattern.charCodeAt(p) === text.charCodeAt(t)) {
      p += 1;
      t += 1;
    } else if (star >= 0) {
      covered += 1;
      t = covered;
      p = star + 1;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) === STAR) p += 1;
  return p === pattern.length;
}

// ---- the request -------------------------------------------------------

/** A subject or a resource. */
export class Entity {
  #properties;

  constructor(raw, what = "entity") {
    this.type = String(raw.type);
    this.id = String(raw.id);
    this.#properties = new Lazy(raw.properties, {}, `${what} properties`);
  }

  get properties() {
    return this.#properties.get();
  }

  property(name) {
    return own(this.properties, name);
  }

  qualified() {
    return `${this.type}:${this.id}`;
  }
}

/** The action asked for. */
export class Action {
  #properties;

  constructor(raw) {
    this.name = String(raw.name);
    this.#properties = new Lazy(raw.properties, {}, "action properties");
  }

  get properties() {
    return this.#properties.get();
  }

  property(name) {
    return own(this.properties, name);
  }
}

/** One grant held by an agent. */
export class Permission {
  constructor(raw) {
    this.resource = String(raw.resource);
    this.actions = Array.from(raw.actions ?? [], String);
  }

  matchesResource(resource) {
    return globMatch(this.resource, resource);
  }

  allowsAction(action) {
    return this.actions.some((a) => a === "*" || a === action);
  }

  grants(resource, action) {
    return this.allowsAction(action) && this.matchesResource(resource);
  }
}

/** The agent Ward resolved for the subject. */
export class Agent {
  #attributes;

  constructor(raw) {
    this.name = String(raw.name);
    this.scope = String(raw.scope).toLowerCase();
    this.type = String(raw.type);
    this.permissions = Array.from(raw.permissions ?? [], (p) => new Permission(p));
    this.#attributes = new Lazy(raw.attributes, {}, "agent attributes");
  }

  get attributes() {
    return this.#attributes.get();
  }

  attribute(name) {
    return own(this.attributes, name);
  }

  grants(resource, action) {
    return this.permissions.some((p) => p.grants(resource, action));
  }
}

/** One authorization question, wrapping the world's raw request. */
export class Request {
  #context;
  #config;

  constructor(raw) {
    this.tenant = Object.freeze({ id: String(raw.tenant.id), slug: String(raw.tenant.slug) });
    this.subject = new Entity(raw.subject, "subject");
    this.agent = raw.agent === undefined || raw.agent === null ? null : new Agent(raw.agent);
    this.action = new Action(raw.action);
    this.resource = new Entity(raw.resource, "resource");
    this.#context = new Lazy(raw.context, {}, "request context");
    this.#config = new Lazy(raw.config, null, "policy config");
  }

  get context() {
    return this.#context.get();
  }

  contextField(name) {
    return own(this.context, name);
  }

  get config() {
    return this.#config.get();
  }
}

// ---- the decision ------------------------------------------------------

let isDecision; // (value) => whether value is a Decision
let rawDecision; // (decision) => the world's decision record

/** A policy's answer; made by `allow()` and `deny(reason)`. */
export class Decision {
  #allow;
  #reasons;
  /** Key to the JSON text of its value, in the order keys were first set. */
  #context = new Map();

  constructor(allow, reasons) {
    this.#allow = allow === true;
    this.#reasons = Array.from(reasons ?? [], String);
  }

  static {
    isDecision = (value) => typeof value === "object" && value !== null && #allow in value;
    rawDecision = (decision) => ({
      allow: decision.#allow,
      reasons: decision.#reasons.slice(),
      context: decision.#contextJson(),
    });
  }

  reason(reason) {
    this.#reasons.push(String(reason));
    return this;
  }

  withContext(key, value) {
    let json;
    try {
      json = JSON.stringify(value);
    } catch {
      json = undefined;
    }
    this.#context.set(String(key), json === undefined ? "null" : json);
    return this;
  }

  get isAllowed() {
    return this.#allow;
  }

  get reasons() {
    return this.#reasons.slice();
  }

  get context() {
    return JSON.parse(this.#contextJson());
  }

  #contextJson() {
    if (this.#context.size === 0) return "{}";
    const fields = [];
    for (const [key, json] of this.#context) fields.push(`${JSON.stringify(key)}:${json}`);
    return `{${fields.join(",")}}`;
  }
}

export function allow() {
  return new Decision(true, []);
}

export function deny(reason) {
  return new Decision(false, [reason]);
}

/** An error a policy throws to report a failure instead of a decision. */
export class PolicyError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "PolicyError";
  }
}

// ---- the host ----------------------------------------------------------

const LEVELS = new Set(["trace", "debug", "info", "warn", "error"]);

export function log(level, message) {
  if (!LEVELS.has(level)) {
    throw new TypeError(
      `log: the level must be "trace", "debug", "info", "warn" or "error", not ${describe(level)}`,
    );
  }
  hostLog(level, String(message));
}

export function nowMillis() {
  return Number(hostNowMillis());
}

export function dataGetRaw(key) {
  const text = hostDataGet(String(key));
  return typeof text === "string" ? text : undefined;
}

export function dataGet(key) {
  const text = dataGetRaw(key);
  return text === undefined ? undefined : parseJson(text, null, `data document \`${key}\``);
}

// ---- the export --------------------------------------------------------

/** A short description of a value that is not what was expected. */
function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (typeof value === "function") return "a function";
  if (typeof value === "object") {
    if (typeof value.then === "function") return "a Promise (`evaluate` must not be async)";
    const name = value.constructor?.name;
    return typeof name === "string" && name !== "Object" ? `an object of class ${name}` : "an object";
  }
  if (typeof value === "symbol") return "a symbol";
  return `${typeof value} ${String(value)}`;
}

/** The text of whatever was thrown. */
function messageOf(thrown) {
  try {
    if (thrown instanceof PolicyError) return thrown.message || "PolicyError";
    if (thrown instanceof Error) {
      return thrown.message ? `${thrown.name}: ${thrown.message}` : thrown.name;
    }
    if (typeof thrown === "string") return thrown;
    return `uncaught ${describe(thrown)}`;
  } catch {
    return "uncaught exception";
  }
}

/**
 * Runs the author's `evaluate` on the world's raw request and returns
 * the world's `result<decision, string>` as componentize-js takes it:
 * `{tag: "ok", val}` or `{tag: "err", val: message}`. Whatever the
 * author's code throws becomes the error, never a trap.
 */
export function __evaluate(evaluate, raw) {
  const restoreConsole = consoleToLog();
  try {
    if (typeof evaluate !== "function") {
      throw new PolicyError("the policy module does not define a function `evaluate`");
    }
    const decision = evaluate(new Request(raw));
    if (!isDecision(decision)) {
      throw new PolicyError(
        `\`evaluate\` returned ${describe(decision)}, not a Decision: return allow() or deny(reason)`,
      );
    }
    return { tag: "ok", val: rawDecision(decision) };
  } catch (thrown) {
    return { tag: "err", val: messageOf(thrown) };
  } finally {
    restoreConsole();
  }
}

/** Which `console` methods write at which level of the host log. */
const CONSOLE = { trace: "trace", debug: "debug", log: "info", info: "info", warn: "warn", error: "error" };

/** One argument of a `console` call as text. */
function show(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return messageOf(value);
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // shown below
  }
  return String(value);
}

/**
 * Points `console` at the host log (a component's own stdout goes
 * nowhere); returns what puts it back.
 */
function consoleToLog() {
  const target = globalThis.console;
  if (target === null || typeof target !== "object") return () => {};
  const saved = {};
  for (const [method, level] of Object.entries(CONSOLE)) {
    saved[method] = target[method];
    target[method] = (...args) => {
      try {
        hostLog(level, args.map(show).join(" "));
      } catch {
        // A log line is not worth failing the decision for.
      }
    };
  }
  return () => Object.assign(target, saved);
}
