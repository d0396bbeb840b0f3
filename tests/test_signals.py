"""Nothing hangs, and the report survives: SIGINT, SIGTERM and SIGKILL at random points of a 2000-test run.

Each round starts pytest on 2000 trivial measured tests (``--energy-meter=none``) in a
subprocess and sends the signal once a random number of tests has finished (read from an
event log the inner run appends to), so the signal lands anywhere: in a test, in pytest's
code, in a report checkpoint, in the session's end. The process must end within
``HANG_GUARD_S`` (a guard against a hang, not a timing), and the report must be valid
against the schema, hold the tests in order without gaps, and hold every test that
finished before the last checkpoint that completed (SIGKILL) or every test that finished
at all (SIGINT and SIGTERM: the session writes its report when interrupted).

``SIGNAL_ROUNDS`` (default 3 per signal) sets the rounds, ``SIGNAL_SEED`` the random
points (printed on failure); CI runs the default, a nightly run more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import jsonschema
import pytest

from pytest_energy.report.json_report import Checkpoints

TESTS = 2000
HANG_GUARD_S = 30.0
ROUNDS = int(os.environ.get("SIGNAL_ROUNDS", "3"))
SEED = int(os.environ.get("SIGNAL_SEED", str(random.randrange(10**6))))

EVENTS_CONFTEST = """
import os

import pytest_energy.reports

EVENTS = os.open("events.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
_write_json = pytest_energy.reports.SessionReports.write_json


def write_json(self):
    os.write(EVENTS, b"begin\\n")
    _write_json(self)
    os.write(EVENTS, b"end\\n")


pytest_energy.reports.SessionReports.write_json = write_json


def pytest_runtest_logfinish(nodeid):
    os.write(EVENTS, f"finished {nodeid.split('::')[-1]}\\n".encode())
"""


def read_events(path: Path) -> List[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def finished_before_last_checkpoint(events: List[str]) -> List[str]:
    """The tests logged as finished before the start of the last write that completed."""
    complete = [index for index, event in enumerate(events) if event == "end"]
    if not complete:
        return []
    begin = max(index for index, event in enumerate(events[:complete[-1]]) if event == "begin")
    return [event.split()[1] for event in events[:begin] if event.startswith("finished ")]


def run_until_signalled(directory: Path, signum: int, after_tests: int) -> Dict[str, Any]:
    """Run the suite, send ``signum`` once ``after_tests`` tests finished; what happened."""
    for name in ("events.log", "energy.json"):
        Path(directory, name).unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--energy-meter=none",
         "--energy-json=energy.json", "test_many.py"],
        cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    events = directory / "events.log"
    give_up = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < give_up:
        if sum(event.startswith("finished ") for event in read_events(events)) >= after_tests:
            break
        time.sleep(0.005)
    process.send_signal(signum)
    try:
        process.wait(HANG_GUARD_S)
        hung = False
    except subprocess.TimeoutExpired:
        hung = True
        process.send_signal(signal.SIGABRT)  # pytest's faulthandler prints where each thread is
        process.wait()
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    return {"rc": process.returncode, "hung": hung, "stderr": stderr[-3000:], "events": read_events(events)}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("signals")
    (directory / "conftest.py").write_text(EVENTS_CONFTEST, encoding="utf-8")
    (directory / "test_many.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.energy\n\n"
        + "".join(f"\ndef test_{index}():\n    pass\n" for index in range(TESTS)), encoding="utf-8")
    return directory


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_signal_at_any_point_ends_the_run_and_keeps_a_valid_report(
    suite: Path, name: str, report_schema: Dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    signum = getattr(signal, name, None)
    if signum is None:
        pytest.skip(f"no {name} here")
    monkeypatch.setenv("PYTEST_ENERGY_STATE_DIR", str(suite))
    rng = random.Random(f"{SEED}-{name}")
    for round_number in range(ROUNDS):
        after_tests = rng.choice([0, TESTS]) if round_number == 0 else rng.randrange(1, TESTS)
        outcome = run_until_signalled(suite, signum, after_tests)
        where = f"{name} after {after_tests} tests (SIGNAL_SEED={SEED}, round {round_number}): {outcome['stderr']}"
        assert not outcome["hung"], f"still running {HANG_GUARD_S:.0f} s after {where}"
        report_path = suite / "energy.json"
        finished = [event.split()[1] for event in outcome["events"] if event.startswith("finished ")]
        if not report_path.exists():
            assert finished_before_last_checkpoint(outcome["events"]) == [], where
            assert name == "SIGKILL" or not finished, where
            continue
        report = json.loads(report_path.read_text(encoding="utf-8"))
        jsonschema.validate(report, report_schema)
        names = [test["nodeid"].split("::")[-1] for test in report["tests"]]
        assert names == [f"test_{index}" for index in range(len(names))], f"gaps or repeats: {where}"
        must_hold = finished if name != "SIGKILL" else finished_before_last_checkpoint(outcome["events"])
        missing = sorted(set(must_hold) - set(names), key=lambda test: int(test.split("_")[1]))
        assert not missing, f"{len(missing)} finished tests missing ({missing[:3]}...) after {where}"
        # SIGTERM once pytest is done with the session (the handler removed) kills, with every test written
        ended = {"SIGINT": (0, 2, -signal.SIGINT), "SIGKILL": (0, -signal.SIGKILL),
                 "SIGTERM": (0, 2, -signal.SIGTERM) if len(names) == TESTS else (2,)}[name]
        assert outcome["rc"] in ended, where
        assert [entry for entry in os.listdir(suite) if entry.endswith(".tmp")] == [], where


def test_sigterm_ends_the_session_as_ctrl_c_does(pytester: pytest.Pytester) -> None:
    """The first SIGTERM is an interrupt: the test it lands in is recorded as interrupted, the report written."""
    pytester.makepyfile(
        "import os\nimport signal\n\nimport pytest\n\npytestmark = pytest.mark.energy\n\n\n"
        "def test_before():\n    pass\n\n\n"
        "def test_cancelled():\n    os.kill(os.getpid(), signal.SIGTERM)\n    signal.pause()\n\n\n"
        "def test_never_started():\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=none",
                                           "--energy-json=energy.json", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*pytest-energy: SIGTERM received, the session ends as after Ctrl-C*"])
    report = json.loads(Path(pytester.path, "energy.json").read_text(encoding="utf-8"))
    assert [(test["nodeid"].split("::")[-1], test["outcome"]) for test in report["tests"]] == [
        ("test_before", "passed"), ("test_cancelled", "interrupted")]


def test_a_sigterm_handler_the_project_installed_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import signal\n\nsignal.signal(signal.SIGTERM, lambda number, frame: print('project handler ran'))\n")
    pytester.makepyfile(
        "import os\nimport signal\n\nimport pytest\n\n\n"
        "@pytest.mark.energy\ndef test_terminated():\n    os.kill(os.getpid(), signal.SIGTERM)\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--energy-meter=none",
                                           "--energy-json=energy.json", timeout=120)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*project handler ran*"])


def test_closing_checkpoints_does_not_wait_forever_for_a_stuck_report_thread() -> None:
    """The report thread stuck in a write (or on a lock the interrupted main thread left held): the session ends."""
    on_thread = threading.Event()
    never = threading.Event()
    writes: List[str] = []

    def write() -> None:
        if threading.current_thread() is not threading.main_thread():
            on_thread.set()
            never.wait()  # stuck for good
        writes.append(threading.current_thread().name)

    checkpoints = Checkpoints(write, interval_s=0.05)
    checkpoints.changed()  # written at once, on this thread
    checkpoints.changed()  # left to the thread, which gets stuck
    assert on_thread.wait(30)
    closer = threading.Thread(target=checkpoints.close, daemon=True)
    closer.start()
    closer.join(HANG_GUARD_S)
    assert not closer.is_alive(), "Checkpoints.close waited forever for the report thread"
    checkpoints.flush()  # the session's last write, on the main thread
    never.set()
    assert writes[:2] == ["MainThread", "MainThread"]


def test_a_deferred_signal_takes_effect_after_the_block() -> None:
    from pytest_energy.measure.interrupts import signals_deferred

    order: List[str] = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            signal.raise_signal(signal.SIGINT)
            order.append("block completed")
    assert order == ["block completed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
