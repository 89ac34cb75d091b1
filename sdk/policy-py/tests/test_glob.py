"""The parts of ward_policy that need no component: run
``python3 -m unittest`` in sdk/policy-py. The world's modules, which only a
component has, are replaced by stand-ins where a test needs them."""

import sys
import time
import types
import unittest
from dataclasses import dataclass
from enum import Enum
from types import SimpleNamespace as NS
from typing import Any, Optional

from ward_policy import (
    Decision,
    Level,
    PolicyError,
    _evaluate,
    allow,
    data_get,
    data_get_raw,
    deny,
    glob_match,
    log,
    now_millis,
)


class GlobTest(unittest.TestCase):
    def test_literal_patterns_match_only_themselves(self) -> None:
        self.assertTrue(glob_match("reports:q3", "reports:q3"))
        self.assertFalse(glob_match("reports:q3", "reports:q4"))
        self.assertFalse(glob_match("reports:q3", "reports:q3x"))
        self.assertFalse(glob_match("reports:q3x", "reports:q3"))
        self.assertTrue(glob_match("", ""))
        self.assertFalse(glob_match("", "a"))

    def test_stars_match_any_run_anywhere(self) -> None:
        self.assertTrue(glob_match("*", ""))
        self.assertTrue(glob_match("*", "anything:at all"))
        self.assertTrue(glob_match("reports:*", "reports:"))
        self.assertTrue(glob_match("*:q3", "reports:q3"))
        self.assertTrue(glob_match("re*s:*3", "reports:q3"))
        self.assertTrue(glob_match("**", "x"))
        self.assertTrue(glob_match("a*b*c", "aXXbYYc"))
        self.assertFalse(glob_match("a*b*c", "aXXbYY"))
        self.assertFalse(glob_match("reports:*", "report:q3"))
        self.assertTrue(glob_match("*a", "aaa"))
        self.assertFalse(glob_match("*ab", "aaa"))
        self.assertTrue(glob_match("doc:é*", "doc:été"))
        self.assertFalse(glob_match("doc:e*", "doc:été"))

    def test_hostile_patterns_finish_quickly(self) -> None:
        started = time.monotonic()
        self.assertFalse(glob_match("*a" * 64 + "b", "a" * 4096))
        self.assertFalse(glob_match("*" * 10_000 + "b", "a" * 10_000))
        self.assertLess(time.monotonic() - started, 5)


class DecisionTest(unittest.TestCase):
    def test_builders_chain(self) -> None:
        a = allow()
        self.assertTrue(a.is_allowed)
        self.assertEqual(a.reasons, [])
        self.assertIs(a.reason("one").with_context("n", 1).with_context("list", [1, "x"]), a)
        self.assertEqual(a.reasons, ["one"])
        self.assertEqual(a.context, {"n": 1, "list": [1, "x"]})

        d = deny("no grant").reason("and more")
        self.assertFalse(d.is_allowed)
        self.assertEqual(d.reasons, ["no grant", "and more"])
        d.reasons.append("a copy")
        self.assertEqual(d.reasons, ["no grant", "and more"])

    def test_context_values_are_serialised_when_set(self) -> None:
        value = {"x": 1}
        cyclic: list[Any] = []
        cyclic.append(cyclic)
        d = (
            allow()
            .with_context("value", value)
            .with_context("set", {1})
            .with_context("nan", float("nan"))
            .with_context("cyclic", cyclic)
            .with_context("none", None)
        )
        value["x"] = 2
        self.assertEqual(
            d.context, {"value": {"x": 1}, "set": None, "nan": None, "cyclic": None, "none": None}
        )


def raw_request(**over: Any) -> NS:
    fields: dict[str, Any] = dict(
        tenant=NS(id="tnt_01", slug="acme"),
        subject=NS(type="agent", id="bot", properties='{"team":"red"}'),
        agent=NS(
            name="bot",
            scope=Scope.TENANT,
            type="service",
            attributes='{"tier":"gold"}',
            permissions=[
                NS(resource="reports:*", actions=["read", "export"]),
                NS(resource="logs:app-*", actions=["*"]),
            ],
        ),
        action=NS(name="read", properties="{}"),
        resource=NS(type="reports", id="q3", properties='{"owner":"red"}'),
        context='{"mfa":true}',
        config='{"limit":3}',
    )
    fields.update(over)
    return NS(**fields)


# Stand-ins for what componentize-py generates.
class Scope(Enum):
    GLOBAL = 0
    TENANT = 1


class HostLevel(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass
class RawDecision:
    allow: bool
    reasons: list[str]
    context: str


@dataclass(frozen=True)
class Err(Exception):
    value: Any


class ComponentTest(unittest.TestCase):
    """What needs the world's modules, with stand-ins for them."""

    def setUp(self) -> None:
        self.lines: list[tuple[Any, str]] = []
        documents = {"limits": '{"gold":5}', "broken": "{"}
        host = types.ModuleType("wit_world.imports.host")
        host.Level = HostLevel  # type: ignore[attr-defined]
        host.log = lambda level, message: self.lines.append((level, message))  # type: ignore[attr-defined]
        host.now_millis = lambda: 1767225600000  # type: ignore[attr-defined]
        host.data_get = documents.get  # type: ignore[attr-defined]
        wit_types = types.ModuleType("wit_world.imports.types")
        wit_types.Decision = RawDecision  # type: ignore[attr-defined]
        imports = types.ModuleType("wit_world.imports")
        imports.host = host  # type: ignore[attr-defined]
        imports.types = wit_types  # type: ignore[attr-defined]
        world = types.ModuleType("wit_world")
        world.imports = imports  # type: ignore[attr-defined]
        cpt = types.ModuleType("componentize_py_types")
        cpt.Err = Err  # type: ignore[attr-defined]
        self.modules = {
            "wit_world": world,
            "wit_world.imports": imports,
            "wit_world.imports.host": host,
            "wit_world.imports.types": wit_types,
            "componentize_py_types": cpt,
        }
        self.saved = {name: sys.modules.get(name) for name in self.modules}
        sys.modules.update(self.modules)

    def tearDown(self) -> None:
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

    def error_of(self, evaluate: Any, raw: Optional[NS] = None) -> str:
        with self.assertRaises(Err) as caught:
            _evaluate(evaluate, raw or raw_request())
        message: str = caught.exception.value
        return message

    def test_the_request_reads_what_the_host_sent(self) -> None:
        seen = []

        def evaluate(request: Any) -> Decision:
            seen.append(request)
            return allow().reason("fine").with_context("k", "v")

        out = _evaluate(evaluate, raw_request())
        self.assertEqual(out, RawDecision(True, ["fine"], '{"k":"v"}'))
        r = seen[0]
        self.assertEqual((r.tenant.id, r.tenant.slug), ("tnt_01", "acme"))
        self.assertEqual(r.subject.qualified(), "agent:bot")
        self.assertEqual(r.subject.property("team"), "red")
        self.assertIsNone(r.subject.property("items"))
        self.assertEqual(r.resource.property("owner"), "red")
        self.assertEqual(r.action.properties, {})
        self.assertIs(r.context_field("mfa"), True)
        self.assertEqual(r.config, {"limit": 3})
        agent = r.agent
        self.assertEqual(agent.scope, "tenant")
        self.assertEqual(agent.attribute("tier"), "gold")
        self.assertTrue(agent.grants("reports:q3", "export"))
        self.assertFalse(agent.grants("reports:q3", "delete"))
        self.assertTrue(agent.grants("logs:app-7", "delete"))
        self.assertFalse(agent.grants("logs:db-7", "read"))
        self.assertTrue(agent.permissions[1].allows_action("anything"))
        self.assertTrue(agent.permissions[0].matches_resource("reports:"))

    def test_empty_fields_read_as_defaults_and_json_is_parsed_lazily(self) -> None:
        seen = []

        def evaluate(request: Any) -> Decision:
            seen.append(request)
            return deny("x")

        bad = NS(type="user", id="u", properties="not json")
        out = _evaluate(evaluate, raw_request(agent=None, context="", config="null", subject=bad))
        self.assertEqual(out, RawDecision(False, ["x"], "{}"))
        r = seen[0]
        self.assertIsNone(r.agent)
        self.assertEqual(r.context, {})
        self.assertIsNone(r.config)
        with self.assertRaisesRegex(PolicyError, "^subject properties: invalid JSON"):
            r.subject.properties

    def test_the_host_is_reached_through_the_helpers(self) -> None:
        log(Level.WARN, "careful")
        log("debug", "detail")
        self.assertEqual(self.lines, [(HostLevel.WARN, "careful"), (HostLevel.DEBUG, "detail")])
        with self.assertRaises(ValueError):
            log("fatal", "x")
        self.assertEqual(now_millis(), 1767225600000)
        self.assertEqual(data_get("limits"), {"gold": 5})
        self.assertEqual(data_get_raw("limits"), '{"gold":5}')
        self.assertIsNone(data_get("missing"))
        self.assertIsNone(data_get_raw("missing"))
        with self.assertRaisesRegex(PolicyError, "data document `broken`: invalid JSON"):
            data_get("broken")

    def test_print_goes_to_the_host_log(self) -> None:
        def evaluate(request: Any) -> Decision:
            print("to stdout")
            print("to", "stderr", file=sys.stderr, end="")
            return allow()

        stdout = sys.stdout
        _evaluate(evaluate, raw_request())
        self.assertIs(sys.stdout, stdout)
        self.assertEqual(
            self.lines, [(HostLevel.INFO, "to stdout"), (HostLevel.WARN, "to stderr")]
        )

    def test_failures_are_the_exports_error(self) -> None:
        def raises(err: BaseException) -> Any:
            def evaluate(request: Any) -> Decision:
                raise err

            return evaluate

        async def coroutine(request: Any) -> Decision:
            return allow()

        self.assertEqual(
            self.error_of(None), "the policy module does not define a function `evaluate`"
        )
        self.assertEqual(self.error_of(raises(PolicyError("no budget"))), "no budget")
        self.assertEqual(self.error_of(raises(KeyError("x"))), "KeyError: 'x'")
        self.assertEqual(self.error_of(raises(MemoryError())), "MemoryError")
        self.assertEqual(self.error_of(raises(SystemExit(3))), "SystemExit: 3")
        self.assertRegex(
            self.error_of(lambda r: {"allow": True}),
            r"^`evaluate` returned a value of type dict, not a Decision",
        )
        self.assertRegex(self.error_of(lambda r: "allow"), r"returned 'allow', not a Decision")
        self.assertRegex(self.error_of(coroutine), r"returned a coroutine")

        def recurse(request: Any) -> Decision:
            return recurse(request)

        self.assertEqual(
            self.error_of(recurse), "RecursionError: maximum recursion depth exceeded"
        )


if __name__ == "__main__":
    unittest.main()
