"""The live stop never corrupts the session: a stop that lands where raising would leave state half made
(an import, a ``finally`` block, an ``__exit__``, a signal handler the test installed) is held back; a test
that ignores or resets SIGUSR1 cannot kill the session and its record says it was not stopped; a test stopped
early has its child processes terminated, so they are not charged to the tests after it.

Each run is a subprocess measuring with RAPL on a fake powercap tree (``PER_WORKER_RAPL``),
whose counter the inner tests and their children advance: ``spend_for`` spends 5 W, so a
1 J cap is crossed 0.2 s into a region that lasts 1 s, and the stop arrives inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import jsonschema
import pytest

from fakes.powercap import FakePowercap
from test_plugin_concurrency import PER_WORKER_RAPL

SPENDING = """
import os
import time
from pathlib import Path

from conftest import ROOT

COUNTER = Path(ROOT, "intel-rapl:0", "energy_uj")


def advance(joules):
    staging = COUNTER.with_name(f".energy_uj.{os.getpid()}.new")
    staging.write_text(f"{int(COUNTER.read_text()) + round(joules * 1e6)}\\n")
    os.replace(staging, COUNTER)


def spend_for(seconds, watts=5.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        advance(watts * 0.01)
        time.sleep(0.01)
"""

SLOW_PACKAGE = """
from . import core
from spending import spend_for

spend_for(1.0)
DONE = True
"""


def run_suite(pytester: pytest.Pytester, tmp_path: Path, body: str) -> Dict[str, Any]:
    tree = FakePowercap(tmp_path / "gw0").add_package(0)
    pytester.makeconftest(PER_WORKER_RAPL.format(roots={"gw0": str(tree.root)}))
    pytester.makepyfile(spending=SPENDING, test_suite=body)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=rapl", "--energy-json=energy.json",
                                           "--energy-check-interval=0.05", timeout=300)
    report = json.loads(Path(pytester.path, "energy.json").read_text(encoding="utf-8"))
    return {"result": result, "report": report,
            "tests": {test["nodeid"].split("::")[-1]: test for test in report["tests"]}}


def test_a_stop_is_held_back_in_an_import_a_finally_an_exit_and_a_signal_handler(
    pytester: pytest.Pytester, tmp_path: Path, report_schema: Dict[str, Any]
) -> None:
    """Each region spends past the 1 J cap; each completes, the test fails at its end, later tests see no damage."""
    package = pytester.mkpydir("slowpkg")
    (package / "__init__.py").write_text(SLOW_PACKAGE, encoding="utf-8")
    (package / "core.py").write_text("VALUE = 1\n", encoding="utf-8")
    run = run_suite(pytester, tmp_path, """
import signal
from pathlib import Path

import pytest

from spending import spend_for


@pytest.mark.energy(cap="1J")
def test_import():
    import slowpkg


def test_import_left_intact():
    import slowpkg
    assert slowpkg.DONE and slowpkg.core.VALUE == 1


@pytest.mark.energy(cap="1J")
def test_finally():
    try:
        pass
    finally:
        spend_for(1.0)
        Path("finally-done").touch()


class Cleanup:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        spend_for(1.0)
        Path("exit-done").touch()


@pytest.mark.energy(cap="1J")
def test_exit():
    with Cleanup():
        pass


def on_alarm(signum, frame):
    spend_for(1.0)
    Path("handler-done").touch()


@pytest.mark.energy(cap="1J")
def test_signal_handler():
    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.raise_signal(signal.SIGALRM)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_every_cleanup_completed():
    assert [Path(name).exists() for name in ("finally-done", "exit-done", "handler-done")] == [True] * 3
""")
    jsonschema.validate(run["report"], report_schema)
    run["result"].assert_outcomes(passed=2, failed=4)
    tests = run["tests"]
    for name, where in [("test_import", "an import"), ("test_finally", "a finally block"), ("test_exit", "__exit__"),
                        ("test_signal_handler", "a signal handler")]:
        entry = tests[name]
        assert (entry["outcome"], entry["verdict"]) == ("failed", "over-cap"), entry
        assert "stopped_early" not in entry, entry
        assert entry["not_stopped"] == ("the test ended before the stop could be raised safely "
                                        f"(the stop was held back while it ran {where})"), entry


def test_a_test_that_ignores_or_resets_sigusr1_cannot_kill_the_session_and_is_not_called_stopped(
    pytester: pytest.Pytester, tmp_path: Path, report_schema: Dict[str, Any]
) -> None:
    run = run_suite(pytester, tmp_path, """
import signal

import pytest

from spending import spend_for


@pytest.mark.energy(cap="1J")
def test_ignores():
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    spend_for(1.0)


@pytest.mark.energy(cap="1J")
def test_resets_to_default():
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # its default ends the process
    spend_for(1.0)


@pytest.mark.energy(cap="1J")
def test_stopped_again():
    spend_for(30.0)
""")
    result = run["result"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not killed by SIGUSR1
    jsonschema.validate(run["report"], report_schema)
    tests = run["tests"]
    for name in ("test_ignores", "test_resets_to_default"):
        entry = tests[name]
        assert (entry["outcome"], entry["verdict"]) == ("failed", "over-cap")
        assert "stopped_early" not in entry
        assert entry["not_stopped"] == "the test replaced the SIGUSR1 handler that stops it, so it ran to its end"
    again = tests["test_stopped_again"]
    assert again["stopped_early"]["limit"] == "cap" and again["duration_s"] < 30.0
    result.stdout.fnmatch_lines(["pytest-energy: *::test_ignores replaced the SIGUSR1 handler that stops a test over "
                                 "its cap: it is installed again before each measured test*"])


def test_a_stopped_tests_children_are_terminated_and_a_test_that_leaves_children_says_so(
    pytester: pytest.Pytester, tmp_path: Path, report_schema: Dict[str, Any]
) -> None:
    """Three children spending 5 W each: stopped with their test, the next test records nothing of theirs."""
    run = run_suite(pytester, tmp_path, """
import subprocess
import sys
import time

import pytest

from spending import spend_for

SPENDER = "import sys; sys.path.insert(0, '.'); from spending import spend_for; spend_for(60.0)"


@pytest.mark.energy(cap="1J")
def test_spawns_and_is_stopped():
    for _ in range(3):
        subprocess.Popen([sys.executable, "-c", SPENDER])
    spend_for(30.0)


@pytest.mark.energy
def test_after():
    time.sleep(0.5)


@pytest.mark.energy
def test_leaves_a_child():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
""")
    jsonschema.validate(run["report"], report_schema)
    tests = run["tests"]
    stopped = tests["test_spawns_and_is_stopped"]
    assert stopped["stopped_early"]["limit"] == "cap"
    assert tests["test_after"]["energy_j"] < 0.5, "the stopped test's children kept spending"  # 7.5 J before
    assert stopped["children_left"] == {"count": 3, "terminated": 3}
    assert "children_left" not in tests["test_after"]
    assert tests["test_leaves_a_child"]["children_left"] == {"count": 1, "terminated": 0}
    run["result"].stdout.fnmatch_lines([
        "pytest-energy: *::test_spawns_and_is_stopped was stopped early: the 3 processes it started were terminated*",
        "pytest-energy: *::test_leaves_a_child left 1 child processes running: what they spend counts in the tests "
        "after it",
    ])
