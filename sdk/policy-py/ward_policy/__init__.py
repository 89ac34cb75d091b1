"""ward_policy: the author SDK for Ward policies in Python.

A policy is a module ``policy.py`` that defines::

    def evaluate(request: Request) -> Decision: ...

and returns ``allow()`` or ``deny(reason)``. ``ward policy build``
componentizes it with this package for the ``ward:policy`` world
(``wit/policy.wit``) and exports it through :func:`_evaluate`.

The host functions (:func:`log`, :func:`now_millis`, :func:`data_get`,
:func:`data_get_raw`) exist only inside a component; everything else can be
imported and used anywhere, for example in the policy's own unit tests.
"""

from __future__ import annotations

import io
import json
import sys
from enum import Enum
from functools import cached_property
from typing import Any, Callable, NoReturn, Optional, Union

__all__ = [
    "Action",
    "Agent",
    "Decision",
    "Entity",
    "Json",
    "JsonObject",
    "Level",
    "Permission",
    "PolicyError",
    "Request",
    "Tenant",
    "allow",
    "data_get",
    "data_get_raw",
    "deny",
    "glob_match",
    "log",
    "now_millis",
]

Json = Any
"""A value parsed from JSON: None, bool, int, float, str, list or dict."""

JsonObject = dict[str, Any]
"""A JSON object, parsed."""


class PolicyError(Exception):
    """An error a policy raises to report a failure instead of a decision.

    Ward denies with reason ``policy_error:guest_error`` and keeps the
    message for the audit log. Anything else ``evaluate`` raises is
    reported the same way, as ``Name: message``.
    """


# ---- JSON fields -------------------------------------------------------------


def _parse(text: Optional[str], empty: Json, what: str) -> Json:
    """The JSON text ``text`` of ``what``, parsed; ``empty`` when it is empty."""
    if text is None or text == "":
        return empty
    try:
        return json.loads(text)
    except ValueError as err:
        raise PolicyError(f"{what}: invalid JSON: {err}") from None


def _own(value: Json, name: str) -> Json:
    """``value[name]`` when ``value`` is a JSON object, else None."""
    return value.get(name) if isinstance(value, dict) else None


# ---- patterns ----------------------------------------------------------------


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern``, in which ``*`` stands for any
    run of characters (none included) and every other character for itself.

    Iterative: on a mismatch it returns only to the latest ``*``, so it
    takes at most ``len(pattern) * len(text)`` steps whatever the pattern.

    >>> glob_match("reports:*", "reports:q3")
    True
    >>> glob_match("*:q*", "reports:q3")
    True
    >>> glob_match("reports:*", "invoices:q3")
    False
    """
    p = t = 0
    star = -1  # index of the latest `*` in the pattern, -1 before any
    covered = 0  # end of the text that `*` is taken to cover
    plen, tlen = len(pattern), len(text)
    while t < tlen:
        if p < plen and pattern[p] == "*":
            star = p
            covered = t
            p += 1
        elif p < plen and pattern[p] == text[t]:
            p += 1
            t += 1
        elif star >= 0:
            covered += 1
            t = covered
            p = star + 1
        else:
            return False
    while p < plen and pattern[p] == "*":
        p += 1
    return p == plen


# ---- the request -------------------------------------------------------------


class Tenant:
    """The tenant the decision is made for. A global policy sees the calling
    tenant here."""

    __slots__ = ("id", "slug")

    def __init__(self, id: str, slug: str) -> None:
        self.id: str = id
        """``tnt_`` followed by a ULID."""
        self.slug: str = slug
        """The tenant's unique short name."""

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, slug={self.slug!r})"


class Entity:
    """A subject or a resource, as in OpenID AuthZEN."""

    def __init__(self, raw: Any, what: str = "entity") -> None:
        """Wraps the world's raw entity; ``what`` names it in errors."""
        self.type: str = raw.type
        """The entity's type, such as ``agent``, ``user`` or ``document``."""
        self.id: str = raw.id
        """The entity's id within its type."""
        self._raw_properties: str = raw.properties
        self._what = what

    @cached_property
    def properties(self) -> JsonObject:
        """All properties (``{}`` when the caller sent none), parsed when
        first read. Raises :class:`PolicyError` on invalid JSON."""
        return _parse(self._raw_properties, {}, f"{self._what} properties")

    def qualified(self) -> str:
        """``type:id``, the form permission patterns match against."""
        return f"{self.type}:{self.id}"

    def property(self, name: str) -> Json:
        """One property, or None when there is none of that name."""
        return _own(self.properties, name)

    def __repr__(self) -> str:
        return f"Entity({self.qualified()!r})"


class Action:
    """The action asked for."""

    def __init__(self, raw: Any) -> None:
        """Wraps the world's raw action."""
        self.name: str = raw.name
        """The action's name, such as ``read`` or ``export``."""
        self._raw_properties: str = raw.properties

    @cached_property
    def properties(self) -> JsonObject:
        """All properties (``{}`` when the caller sent none), parsed when
        first read."""
        return _parse(self._raw_properties, {}, "action properties")

    def property(self, name: str) -> Json:
        """One property, or None when there is none of that name."""
        return _own(self.properties, name)

    def __repr__(self) -> str:
        return f"Action({self.name!r})"


class Permission:
    """A grant held by an agent."""

    __slots__ = ("resource", "actions")

    def __init__(self, resource: str, actions: list[str]) -> None:
        self.resource: str = resource
        """A ``type:id`` pattern in which ``*`` matches any run of characters."""
        self.actions: list[str] = list(actions)
        """Action names; ``*`` allows any action."""

    def matches_resource(self, resource: str) -> bool:
        """Whether this grant's pattern matches ``resource`` (``type:id``)."""
        return glob_match(self.resource, resource)

    def allows_action(self, action: str) -> bool:
        """Whether this grant names ``action``, or ``*``."""
        return any(a == "*" or a == action for a in self.actions)

    def grants(self, resource: str, action: str) -> bool:
        """Whether this grant allows ``action`` on ``resource`` (``type:id``)."""
        return self.allows_action(action) and self.matches_resource(resource)

    def __repr__(self) -> str:
        return f"Permission({self.resource!r}, {self.actions!r})"


def _scope_name(scope: Any) -> str:
    """``global`` or ``tenant``, from the world's enum or a string."""
    if isinstance(scope, str):
        return scope.lower()
    return str(getattr(scope, "name", scope)).lower()


class Agent:
    """A registered agent, as Ward resolved it for the subject."""

    def __init__(self, raw: Any) -> None:
        """Wraps the world's raw agent."""
        self.name: str = raw.name
        """The agent's name."""
        self.scope: str = _scope_name(raw.scope)
        """Where the agent was found: ``"global"`` or ``"tenant"``."""
        self.type: str = raw.type
        """The agent's type, such as ``ai_agent`` or ``service``."""
        self.permissions: list[Permission] = [
            Permission(p.resource, p.actions) for p in raw.permissions
        ]
        """The agent's grants."""
        self._raw_attributes: str = raw.attributes

    @cached_property
    def attributes(self) -> JsonObject:
        """All attributes, parsed when first read."""
        return _parse(self._raw_attributes, {}, "agent attributes")

    def attribute(self, name: str) -> Json:
        """One attribute, or None when there is none of that name."""
        return _own(self.attributes, name)

    def grants(self, resource: str, action: str) -> bool:
        """Whether any of the agent's permissions allows ``action`` on
        ``resource`` (``type:id``)."""
        return any(p.grants(resource, action) for p in self.permissions)

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, scope={self.scope!r}, type={self.type!r})"


class Request:
    """One authorization question: may ``subject`` do ``action`` on
    ``resource``?

    JSON-valued parts (properties, attributes, context, config) are parsed
    only when first read, so a policy pays only for what it reads; each is
    parsed once. Treat what they return as read-only.
    """

    def __init__(self, raw: Any) -> None:
        """Wraps the world's raw request (what :func:`_evaluate` is given):
        any object with its fields as attributes."""
        self.tenant: Tenant = Tenant(raw.tenant.id, raw.tenant.slug)
        """The tenant this decision is made for."""
        self.subject: Entity = Entity(raw.subject, "subject")
        """Who asks."""
        self.agent: Optional[Agent] = None if raw.agent is None else Agent(raw.agent)
        """The agent Ward resolved for the subject, or None when the subject
        is no known agent."""
        self.action: Action = Action(raw.action)
        """What the subject wants to do."""
        self.resource: Entity = Entity(raw.resource, "resource")
        """What the subject wants to do it to."""
        self._raw_context: str = raw.context
        self._raw_config: str = raw.config

    @cached_property
    def context(self) -> JsonObject:
        """The request context (``{}`` when the caller sent none)."""
        return _parse(self._raw_context, {}, "request context")

    def context_field(self, name: str) -> Json:
        """One field of the request context, or None."""
        return _own(self.context, name)

    @cached_property
    def config(self) -> Json:
        """The policy's configuration, or None when none is set."""
        return _parse(self._raw_config, None, "policy config")

    def __repr__(self) -> str:
        return (
            f"Request({self.subject.qualified()!r} {self.action.name!r} "
            f"{self.resource.qualified()!r})"
        )


# ---- the decision ------------------------------------------------------------


def _to_json(value: object) -> str:
    """``value`` as compact JSON text; ``null`` when it cannot be."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return "null"


class Decision:
    """A policy's answer: allow or deny, with reasons and a context object
    returned to the caller.

    Made by :func:`allow` and :func:`deny`; its builders change it and
    return it, so that they chain::

        return allow().reason("granted").with_context("limit", 1000)
    """

    __slots__ = ("_allow", "_reasons", "_context")

    def __init__(self, allow: bool, reasons: Optional[list[str]] = None) -> None:
        self._allow: bool = allow is True
        self._reasons: list[str] = [str(r) for r in reasons or []]
        # Key to the JSON text of its value, in the order keys were first set.
        self._context: dict[str, str] = {}

    def reason(self, reason: str) -> Decision:
        """Adds a reason."""
        self._reasons.append(str(reason))
        return self

    def with_context(self, key: str, value: object) -> Decision:
        """Sets one key of the context object returned to the caller.

        The value is serialised to JSON when set; one that cannot be (a
        set, an object, NaN, a cycle) is recorded as ``null``.
        """
        self._context[str(key)] = _to_json(value)
        return self

    @property
    def is_allowed(self) -> bool:
        """Whether the request is allowed."""
        return self._allow

    @property
    def reasons(self) -> list[str]:
        """The reasons given so far (a copy)."""
        return list(self._reasons)

    @property
    def context(self) -> JsonObject:
        """The context object set so far (a copy)."""
        result: JsonObject = json.loads(self._context_json())
        return result

    def _context_json(self) -> str:
        if not self._context:
            return "{}"
        fields = (f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in self._context.items())
        return "{" + ",".join(fields) + "}"

    def __repr__(self) -> str:
        verdict = "allow" if self._allow else "deny"
        return f"Decision({verdict}, reasons={self._reasons!r}, context={self._context_json()})"


def allow() -> Decision:
    """A decision that allows the request; add reasons with ``.reason(…)``."""
    return Decision(True)


def deny(reason: str) -> Decision:
    """A decision that denies the request, saying why."""
    return Decision(False, [reason])


# ---- the host ----------------------------------------------------------------


class Level(str, Enum):
    """The severity of a line in the host log. Its members equal their
    names: ``Level.INFO == "info"``."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


def _host() -> Any:
    """The world's host interface, which only a component has."""
    try:
        from wit_world.imports import host
    except ImportError:
        raise RuntimeError(
            "the Ward host is only reachable inside a policy component "
            "(`ward policy build`)"
        ) from None
    return host


def log(level: Union[Level, str], message: str) -> None:
    """Writes a line to the host log, tagged with the tenant and policy.

    ``level`` is a :class:`Level` or its name (``"info"``). The host caps
    how much one evaluation may log. Raises ValueError for an unknown level.
    """
    try:
        name = Level(level).name
    except ValueError:
        raise ValueError(
            f"log: the level must be trace, debug, info, warn or error, not {level!r}"
        ) from None
    host = _host()
    host.log(getattr(host.Level, name), str(message))


def now_millis() -> int:
    """Milliseconds since the Unix epoch, from the host clock."""
    return int(_host().now_millis())


def data_get_raw(key: str) -> Optional[str]:
    """Reads a data document as JSON text: the tenant's own first, then the
    global one of the same key. None when no document has that key."""
    text = _host().data_get(str(key))
    return text if isinstance(text, str) else None


def data_get(key: str) -> Json:
    """Reads a data document, parsed: the tenant's own first, then the
    global one of the same key. None when no document has that key (use
    :func:`data_get_raw` to tell that from a document that is ``null``)."""
    text = data_get_raw(key)
    return None if text is None else _parse(text, None, f"data document `{key}`")


# ---- the export --------------------------------------------------------------


def _describe(value: object) -> str:
    """A short description of a value that is not what was expected."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if hasattr(value, "__await__"):
        return "a coroutine (`evaluate` must not be async)"
    return f"a value of type {type(value).__name__}"


def _message_of(err: BaseException) -> str:
    """The text of a raised exception."""
    try:
        if isinstance(err, PolicyError):
            return str(err) or "PolicyError"
        text = str(err)
        name = type(err).__name__
        return f"{name}: {text}" if text else name
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "an exception that cannot be shown"


def _evaluate(evaluate: Optional[Callable[[Request], Decision]], raw: Any) -> Any:
    """Runs the author's ``evaluate`` on the world's raw request and returns
    the world's raw decision. Called by the entry module ``ward policy
    build`` generates, not by policies.

    Whatever the author's code raises (a :class:`PolicyError`, any other
    exception, MemoryError or RecursionError) becomes the export's error:
    componentize-py turns ``componentize_py_types.Err(message)`` into
    ``result::err(message)``, where any other exception would trap.
    """
    message = ""
    # Inside a component stdout and stderr are stubs that trap when
    # written to: `print` goes to the host log instead.
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _LogStream(Level.INFO), _LogStream(Level.WARN)
    try:
        if not callable(evaluate):
            raise PolicyError("the policy module does not define a function `evaluate`")
        decision = evaluate(Request(raw))
        if not isinstance(decision, Decision):
            close = getattr(decision, "close", None)
            if hasattr(decision, "__await__") and callable(close):
                close()
            raise PolicyError(
                f"`evaluate` returned {_describe(decision)}, not a Decision: "
                "return allow() or deny(reason)"
            )
        return _raw_decision(decision)
    except BaseException as err:  # noqa: BLE001 - every failure is the policy's error
        message = _message_of(err)
        _drop_traceback(err)
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _LogStream):
                try:
                    stream.close()
                except BaseException:  # noqa: BLE001, S110 - a last line is not worth a trap
                    pass
        sys.stdout, sys.stderr = streams
    # Raised here rather than in the handler, so that the error does not
    # carry the exception it replaces as its context.
    _fail(message)


class _LogStream(io.TextIOBase):
    """A text stream that writes each line to the host log at ``level``."""

    _MAX_LINE = 4096

    def __init__(self, level: Level) -> None:
        super().__init__()
        self._level = level
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += str(text)
        while "\n" in self._pending or len(self._pending) > self._MAX_LINE:
            line, newline, rest = self._pending.partition("\n")
            if not newline:
                line, rest = self._pending[: self._MAX_LINE], self._pending[self._MAX_LINE :]
            self._pending = rest
            log(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            log(self._level, line)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()


def _drop_traceback(err: BaseException) -> None:
    """Frees the traceback of ``err`` one entry at a time.

    Freed whole, a deep traceback (a RecursionError's has a thousand
    entries) is freed recursively, which can overflow the engine's stack
    and trap where the policy should report an error.
    """
    entries = []
    tb = err.__traceback__
    err.__traceback__ = None
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    for entry in entries:
        entry.tb_next = None
    # `entries` is freed from its last (innermost) entry out: each frame is
    # freed while the frame that called it is still held by an earlier one.


def _raw_decision(decision: Decision) -> Any:
    """The world's decision record for ``decision``."""
    from wit_world.imports import types

    return types.Decision(
        allow=decision._allow,
        reasons=list(decision._reasons),
        context=decision._context_json(),
    )


def _fail(message: str) -> NoReturn:
    """Ends the export with ``result::err(message)``."""
    from componentize_py_types import Err

    raise Err(message)
