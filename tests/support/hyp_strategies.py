"""Hypothesis builders for the property tests, and the example counts of the state machines.

Valid values (room names, connection ids, message texts) and hostile ones: Lambda events
with missing fields and wrong types, bodies that are not JSON or not objects, huge texts,
lone surrogates, control characters, room names with ``#``, another connection's id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from hypothesis.statistics import collector, describe_statistics

from fanout_core.message import MAX_PAYLOAD_BYTES
from tests.support.events import DOMAIN, STAGE, fixture

# -- valid values ----------------------------------------------------------------------

# Few rooms, so connections share them; names that are prefixes of one another and use
# every allowed punctuation, so a prefix or substring match would leak.
ROOMS = ("r", "r-1", "r.1:x_y")
VALID_ROOM = st.from_regex(r"[A-Za-z0-9_.:/@=,;+|-]{1,200}", fullmatch=True)
VALID_CONNECTION_ID = st.from_regex(r"[A-Za-z0-9+/=_-]{1,128}", fullmatch=True)
ACTIONS = ("sendMessage", "joinRoom", "leaveRoom", "ping", "presence")
ROUTES = ("$connect", "$disconnect", "$default", *ACTIONS)


def connection_id(n: int) -> str:
    """The ``n``-th connection id of a run: API Gateway's shape, the same on every replay."""
    digest = hashlib.sha256(f"fanout-{n}".encode()).digest()[:12]
    return base64.b64encode(digest).decode().replace("/", "_")


def lone_surrogates() -> st.SearchStrategy[str]:
    """Text holding unpaired UTF-16 surrogates (valid JSON as ``\\udXXX`` escapes)."""
    return st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)


def huge_texts() -> st.SearchStrategy[str]:
    """Texts around the 128 KB frame limit, of characters JSON escaping makes longer."""
    return st.builds(
        lambda char, size: char * size,
        st.sampled_from(["x", "é", '"', "\\", "\x01", "\U0001f600", "\u2028"]),
        st.sampled_from(
            [MAX_PAYLOAD_BYTES // 6 - 20, MAX_PAYLOAD_BYTES // 2 - 60, MAX_PAYLOAD_BYTES + 1]
        ),
    )


def message_texts() -> st.SearchStrategy[str]:
    """What a client sends as ``text``: any unicode, short."""
    return st.text(max_size=12)


# -- hostile values --------------------------------------------------------------------

JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def hostile_strings() -> st.SearchStrategy[str]:
    """Strings that must not become a key: ``#``, control characters, unicode, length."""
    return st.one_of(
        st.text(max_size=20),
        st.builds(lambda a, b: f"{a}#{b}", st.text(max_size=5), st.text(max_size=5)),
        st.sampled_from(["", "ROOM#r", "CONN#x", "ALL#00", "r#", "r r", "r/1", "é", "r\x00"]),
        st.text(st.characters(categories=["Cc", "Zs", "Zl", "Zp"]), min_size=1, max_size=4),
        st.builds(lambda n: "x" * n, st.sampled_from([129, 201, 2000])),
    )


def room_values() -> st.SearchStrategy[Any]:
    """A ``room`` field: valid, hostile, or not a string at all."""
    return st.one_of(st.sampled_from(ROOMS), VALID_ROOM, hostile_strings(), JUNK)


def texts() -> st.SearchStrategy[Any]:
    """A ``text`` field: ordinary, unicode, lone surrogates, huge, or not a string."""
    return st.one_of(st.text(max_size=30), lone_surrogates(), huge_texts(), JUNK)


def connection_ids(known: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """A ``connectionId``: a known one (another client's), a new valid one, or hostile."""
    return st.one_of(st.sampled_from(known), VALID_CONNECTION_ID, hostile_strings(), JUNK)


def json_objects(known: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Body objects with any mix of the fields the handlers read, plus strays."""
    return st.fixed_dictionaries(
        {},
        optional={
            "action": st.one_of(st.sampled_from(ACTIONS), st.text(max_size=10), JUNK),
            "text": texts(),
            "data": st.one_of(JUNK, lone_surrogates(), huge_texts()),
            "event": st.one_of(st.sampled_from(["message", "presence.join", "a.b:c"]), JUNK),
            "room": room_values(),
            "connectionId": connection_ids(known),
            "from": connection_ids(known),
        },
    )


def bodies(known: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """An event's ``body``: a JSON object, JSON that is no object, no JSON, or no string."""
    # ensure_ascii=False too: API Gateway hands the body over as decoded UTF-8 text.
    as_json = st.builds(
        lambda obj, ascii_only: json.dumps(obj, ensure_ascii=ascii_only),
        json_objects(known),
        st.booleans(),
    )
    return st.one_of(
        as_json,
        as_json,  # twice as likely: the objects reach the most code
        st.builds(json.dumps, st.one_of(JUNK, st.text(max_size=10))),
        st.text(max_size=40),
        st.sampled_from(["{", '{"action": "sendMessage", "text": "x"', "[" * 5000, "\x00"]),
        st.builds(lambda n: " " * n + "{}", st.just(256 * 1024)),  # over the body limit
        JUNK,
    )


@st.composite
def websocket_events(draw: st.DrawFn, route: str, known: tuple[str, ...]) -> Any:
    """A WebSocket event for ``route``, mutated: any field missing, mistyped or hostile."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.one_of(JUNK, st.text(max_size=5)))  # not even an object
    name = {"$connect": "websocket_connect", "$disconnect": "websocket_disconnect"}
    event: dict[str, Any] = fixture(name.get(route, "websocket_message"))
    context: dict[str, Any] = event["requestContext"]
    context.update(routeKey=route, domainName=DOMAIN, stage=STAGE)
    context["connectionId"] = draw(st.sampled_from(known))
    # A third of the events get a broken context; the rest reach the body and the table.
    if draw(st.integers(0, 2)) == 0:
        for key in ("connectionId", "domainName", "stage", "routeKey"):
            change = draw(st.sampled_from(["keep", "drop", "junk", "hostile", "other"]))
            if change == "drop":
                context.pop(key)
            elif change == "junk":
                context[key] = draw(JUNK)
            elif change == "hostile":
                context[key] = draw(hostile_strings())
            elif change == "other" and key == "connectionId":
                context[key] = draw(connection_ids(known))
    if draw(st.booleans()):
        principals = st.one_of(st.text(), st.sampled_from(["alice", "a#b", "USER#x"]), JUNK)
        context["authorizer"] = draw(
            st.one_of(JUNK, st.fixed_dictionaries({"principalId": principals}))
        )
    if route == "$connect":
        rooms = st.lists(room_values(), max_size=3)
        event["multiValueQueryStringParameters"] = draw(
            st.one_of(st.none(), st.fixed_dictionaries({"room": rooms}), JUNK)
        )
        event["queryStringParameters"] = draw(
            st.one_of(st.none(), st.fixed_dictionaries({"room": room_values()}), JUNK)
        )
    elif route != "$disconnect":
        body = draw(bodies(known))
        encoded = draw(st.sampled_from([False, False, "valid", "raw"]))
        if encoded == "valid" and isinstance(body, str):
            body = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
        event["isBase64Encoded"] = bool(encoded)
        event["body"] = body
    if draw(st.integers(0, 9)) == 0:
        event["requestContext"] = draw(JUNK)
    return event


@st.composite
def sqs_events(draw: st.DrawFn, known: tuple[str, ...], frame: bytes) -> Any:
    """An SQS event: records with fanout batches (to known or hostile ids) or junk bodies."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(JUNK, st.fixed_dictionaries({"Records": JUNK})))
    template = fixture("sqs_event")["Records"][0]
    records: list[Any] = []
    for i in range(draw(st.integers(0, 4))):
        record = dict(template)
        record["messageId"] = f"m-{i}"
        kind = draw(st.sampled_from(["batch", "batch", "junk", "no_id", "no_body", "not_a_dict"]))
        if kind == "not_a_dict":
            records.append(draw(JUNK))
            continue
        ids = draw(st.lists(st.sampled_from(known) | VALID_CONNECTION_ID, max_size=3))
        batch = {"v": 1, "frame": frame.decode(), "endpoint": f"https://{DOMAIN}/{STAGE}"}
        record["body"] = json.dumps({**batch, "ids": ids})
        if kind == "junk":
            record["body"] = draw(
                st.one_of(
                    st.text(max_size=20),
                    JUNK,
                    st.builds(json.dumps, st.fixed_dictionaries({"v": JUNK, "ids": JUNK})),
                )
            )
        elif kind == "no_id":
            record["messageId"] = draw(JUNK)
        elif kind == "no_body":
            record.pop("body")
        records.append(record)
    return {"Records": records}


def profile() -> settings:
    """The loaded Hypothesis profile (tests/conftest.py)."""
    current = settings.default
    assert current is not None
    return current


def scaled(fraction: float) -> int:
    """A fraction of the loaded profile's max_examples (fast: 100, thorough: 1000)."""
    return max(1, round(profile().max_examples * fraction))


# -- example counts of the state machines ----------------------------------------------
# Hypothesis reports statistics (`--hypothesis-show-statistics`) only for tests decorated
# with @given. State machines run through `run_machine`, which collects the same statistics
# (passing, failing and invalid examples, phases, timings) and the rules each run called.

_lock = threading.Lock()
_runs: Counter[str] = Counter()
_steps: defaultdict[str, Counter[str]] = defaultdict(Counter)
_statistics: dict[str, list[str]] = defaultdict(list)


def current_test() -> str:
    """The running pytest node id."""
    return os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]


def count_example() -> None:
    """One more state machine run (valid or not) for the running test."""
    with _lock:
        _runs[current_test()] += 1


def count_step(rule: str) -> None:
    """One more call of ``rule`` in the running test."""
    with _lock:
        _steps[current_test()][rule] += 1


def assert_steps_fired(expected: Iterable[str]) -> None:
    """Fail unless every step in ``expected`` ran at least once in the running test.

    A rule whose precondition never holds, or that Hypothesis never draws, checks nothing:
    the run would pass without exercising what it claims to.
    """
    with _lock:
        fired = Counter(_steps[current_test()])
    missing = sorted(set(expected) - {step for step, n in fired.items() if n > 0})
    assert not missing, f"rules that never ran: {missing}; ran: {dict(sorted(fired.items()))}"


def run_machine(machine: type[RuleBasedStateMachine], machine_settings: settings) -> None:
    """``run_state_machine_as_test``, keeping Hypothesis' statistics for the summary."""
    node = current_test()

    def note(stats: Any) -> None:
        with _lock:
            _statistics[node].append(describe_statistics(stats))

    statistics: Any = collector  # Hypothesis' own hook, typed for its internal use
    with statistics.with_value(note):
        run_state_machine_as_test(machine, settings=machine_settings)


def machine_statistics(node: str) -> str | None:
    """What the state machines of test ``node`` ran, for the summary (None: none ran)."""
    with _lock:
        runs, steps, texts = _runs.get(node), _steps[node], _statistics.get(node, [])
    if not runs:
        return None
    rules = ", ".join(f"{rule} {n}" for rule, n in sorted(steps.items()))
    lines = [f"{node}:"]
    for text in texts:
        for line in text.splitlines():  # events quote whole rule lists: keep them short
            lines.append(line if len(line) <= 120 else line[:117] + "...")
    lines.append(f"  - {runs} runs (examples of every kind), {sum(steps.values())} steps: {rules}")
    return "\n".join(lines) + "\n"


# A test report's field for ``machine_statistics``: reports carry it from pytest-xdist's
# workers to the process that writes the summary.
REPORT_KEY = "fanout_machine_statistics"


def report_machine_statistics(terminalreporter: Any) -> None:
    """Write what every state machine test ran (a helper of the conftest hook)."""
    if not terminalreporter.config.getoption("--hypothesis-show-statistics", default=False):
        return
    found = sorted(
        report.__dict__[REPORT_KEY]
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(getattr(report, "__dict__", None), dict) and REPORT_KEY in report.__dict__
    )
    if not found:
        return
    terminalreporter.section("Hypothesis state machines")
    for text in found:
        for line in text.splitlines():
            terminalreporter.write_line(line)
