// Types of ward-policy, the author SDK for Ward policies in JavaScript and
// TypeScript. A policy module exports
//
//     export function evaluate(request: Request): Decision
//
// and `ward policy build` bundles it with this SDK into a component of the
// `ward:policy` world (wit/policy.wit).

/** A value parsed from JSON. */
export type Json = null | boolean | number | string | Json[] | JsonObject;

/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** The severity of a line in the host log. */
export type Level = "trace" | "debug" | "info" | "warn" | "error";

/** Where Ward found an agent: the platform's global scope or the tenant's own. */
export type Scope = "global" | "tenant";

/** The tenant the decision is made for. A global policy sees the calling tenant. */
export interface Tenant {
  /** `tnt_` followed by a ULID. */
  readonly id: string;
  /** The tenant's unique short name. */
  readonly slug: string;
}

/**
 * A subject or a resource, as in OpenID AuthZEN.
 */
export declare class Entity {
  /** Wraps the world's raw entity; `what` names it in errors. */
  constructor(raw: RawEntity, what?: string);
  /** The entity's type, such as `agent`, `user` or `document`. */
  readonly type: string;
  /** The entity's id within its type. */
  readonly id: string;
  /**
   * All properties (`{}` when the caller sent none), parsed when first read.
   * Throws a {@link PolicyError} if the host sent invalid JSON.
   */
  readonly properties: JsonObject;
  /** One property, or `undefined` when there is none of that name. */
  property(name: string): Json | undefined;
  /** `type:id`, the form permission patterns match against. */
  qualified(): string;
}

/** The action asked for. */
export declare class Action {
  /** Wraps the world's raw action. */
  constructor(raw: RawAction);
  /** The action's name, such as `read` or `export`. */
  readonly name: string;
  /** All properties (`{}` when the caller sent none), parsed when first read. */
  readonly properties: JsonObject;
  /** One property, or `undefined` when there is none of that name. */
  property(name: string): Json | undefined;
}

/** A grant held by an agent. */
export declare class Permission {
  /** Wraps the world's raw permission. */
  constructor(raw: RawPermission);
  /** A `type:id` pattern in which `*` matches any run of characters. */
  readonly resource: string;
  /** Action names; `*` allows any action. */
  readonly actions: readonly string[];
  /** Whether this grant's pattern matches `resource` (`type:id`). */
  matchesResource(resource: string): boolean;
  /** Whether this grant names `action`, or `*`. */
  allowsAction(action: string): boolean;
  /** Whether this grant allows `action` on `resource` (`type:id`). */
  grants(resource: string, action: string): boolean;
}

/** A registered agent, as Ward resolved it for the subject. */
export declare class Agent {
  /** Wraps the world's raw agent. */
  constructor(raw: RawAgent);
  /** The agent's name. */
  readonly name: string;
  /** Where the agent was found. */
  readonly scope: Scope;
  /** The agent's type, such as `ai_agent` or `service`. */
  readonly type: string;
  /** All attributes, parsed when first read. */
  readonly attributes: JsonObject;
  /** The agent's grants. */
  readonly permissions: readonly Permission[];
  /** One attribute, or `undefined` when there is none of that name. */
  attribute(name: string): Json | undefined;
  /** Whether any of the agent's permissions allows `action` on `resource` (`type:id`). */
  grants(resource: string, action: string): boolean;
}

/**
 * One authorization question: may `subject` do `action` on `resource`?
 *
 * JSON-valued parts (properties, attributes, context, config) are parsed
 * only when first read, so a policy pays only for what it reads; each is
 * parsed once. Treat what they return as read-only.
 */
export declare class Request {
  /** Wraps the world's raw request (what `__evaluate` is given). */
  constructor(raw: RawRequest);
  /** The tenant this decision is made for. */
  readonly tenant: Tenant;
  /** Who asks. */
  readonly subject: Entity;
  /** The agent Ward resolved for the subject, or `null` when the subject is no known agent. */
  readonly agent: Agent | null;
  /** What the subject wants to do. */
  readonly action: Action;
  /** What the subject wants to do it to. */
  readonly resource: Entity;
  /** The request context (`{}` when the caller sent none). */
  readonly context: JsonObject;
  /** One field of the request context, or `undefined`. */
  contextField(name: string): Json | undefined;
  /** The policy's configuration, or `null` when none is set. */
  readonly config: Json;
}

/**
 * A policy's answer: allow or deny, with reasons and a context object
 * returned to the caller. Made by {@link allow} and {@link deny}; its
 * builders change it and return it, so that they chain:
 *
 *     return allow().reason("granted").withContext("limit", 1000);
 */
export declare class Decision {
  private constructor();
  /** Adds a reason. */
  reason(reason: string): Decision;
  /**
   * Sets one key of the context object returned to the caller. The value
   * is serialised with `JSON.stringify` when set; one that cannot be
   * (`undefined`, a function, a BigInt, a cycle) is recorded as `null`.
   */
  withContext(key: string, value: unknown): Decision;
  /** Whether the request is allowed. */
  readonly isAllowed: boolean;
  /** The reasons given so far (a copy). */
  readonly reasons: readonly string[];
  /** The context object set so far (a copy). */
  readonly context: JsonObject;
}

/** A decision that allows the request; add reasons with `.reason(…)`. */
export declare function allow(): Decision;

/** A decision that denies the request, saying why. */
export declare function deny(reason: string): Decision;

/**
 * An error a policy throws to report a failure instead of a decision.
 * Ward denies with reason `policy_error:guest_error` and keeps the message
 * for the audit log. Anything else `evaluate` throws is reported the same
 * way, as `Name: message`.
 */
export declare class PolicyError extends Error {
  constructor(message?: string, options?: { cause?: unknown });
}

/**
 * Whether `text` matches `pattern`, in which `*` stands for any run of
 * characters (none included) and every other character for itself. Takes
 * at most pattern × text steps, whatever the pattern.
 *
 *     globMatch("reports:*", "reports:q3")   // true
 *     globMatch("*:q*", "reports:q3")        // true
 *     globMatch("reports:*", "invoices:q3")  // false
 */
export declare function globMatch(pattern: string, text: string): boolean;

/**
 * Writes a line to the host log, tagged with the tenant and policy. The
 * host caps how much one evaluation may log. Throws a `TypeError` for an
 * unknown level.
 *
 * While `evaluate` runs, `console` writes here too: `console.log` and
 * `console.info` at `info`, `console.debug`, `console.warn`,
 * `console.error` and `console.trace` at their own levels; arguments that
 * are not strings are shown as JSON.
 */
export declare function log(level: Level, message: string): void;

/** Milliseconds since the Unix epoch, from the host clock. */
export declare function nowMillis(): number;

/**
 * Reads a data document, parsed: the tenant's own first, then the global
 * one of the same key. `undefined` when no document has that key.
 */
export declare function dataGet(key: string): Json | undefined;

/** Reads a data document as JSON text; `undefined` when no document has that key. */
export declare function dataGetRaw(key: string): string | undefined;

/** The world's raw entity (`ward:policy/types.entity`). */
export interface RawEntity {
  type: string;
  id: string;
  /** JSON text of an object. */
  properties: string;
}

/** The world's raw action. */
export interface RawAction {
  name: string;
  /** JSON text of an object. */
  properties: string;
}

/** The world's raw permission. */
export interface RawPermission {
  resource: string;
  actions: string[];
}

/** The world's raw agent. */
export interface RawAgent {
  name: string;
  scope: Scope;
  type: string;
  /** JSON text of an object. */
  attributes: string;
  permissions: RawPermission[];
}

/** The world's raw request (`ward:policy/types.request`). */
export interface RawRequest {
  tenant: { id: string; slug: string };
  subject: RawEntity;
  agent?: RawAgent | null;
  action: RawAction;
  resource: RawEntity;
  /** JSON text of an object. */
  context: string;
  /** JSON text of any value; `null` when unset. */
  config: string;
}

/** The world's raw decision (`ward:policy/types.decision`). */
export interface RawDecision {
  allow: boolean;
  reasons: string[];
  /** JSON text of an object. */
  context: string;
}

declare global {
  /** What a policy's `console` offers: each method writes one line to the host log. */
  interface Console {
    trace(...data: unknown[]): void;
    debug(...data: unknown[]): void;
    log(...data: unknown[]): void;
    info(...data: unknown[]): void;
    warn(...data: unknown[]): void;
    error(...data: unknown[]): void;
  }
  var console: Console;
}

/**
 * Runs `evaluate` on the raw request and returns the export's result as
 * componentize-js takes it. Called by the entry module `ward policy build`
 * generates, not by policies.
 * @internal
 */
export declare function __evaluate(
  evaluate: unknown,
  raw: RawRequest,
): { tag: "ok"; val: RawDecision } | { tag: "err"; val: string };
