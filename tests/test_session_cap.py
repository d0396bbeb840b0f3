"""The session cap is one verdict: reached, the run ends red whatever the timing under xdist; the JSON says
whether and by which test; a test not measured fully under a session cap fails the run instead of passing it.

xdist runs measure with RAPL on one fake powercap tree per worker (``PER_WORKER_RAPL``), so
each test's energy is exactly what it adds; tests meet at files so that they run at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict

import jsonschema
import pytest

from fakes.fake_pynvml import gpus, install
from fakes.powercap import FakePowercap
from suites import LOSES_THE_GPU
from test_plugin_concurrency import PER_WORKER_RAPL, SPEND

MEET = SPEND + """

def meet(me, other):
    Path(me).touch()
    end = time.monotonic() + 30.0
    while not Path(other).exists():
        assert time.monotonic() < end, f"{other} never appeared: the two tests did not run at once"
        time.sleep(0.01)
"""


def per_worker_rapl(pytester: pytest.Pytester, tmp_path: Path) -> None:
    roots = {worker: str(FakePowercap(tmp_path / worker).add_package(0).root) for worker in ("gw0", "gw1")}
    pytester.makeconftest(PER_WORKER_RAPL.format(roots=roots))


def test_two_workers_whose_tests_each_stay_under_the_cap_but_cross_it_together_end_red(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path, report_schema: Dict[str, Any]
) -> None:
    """Each test spends 6 J of a 10 J session cap, both at once: neither crossed what was left when it started."""
    per_worker_rapl(pytester, tmp_path)
    pytester.makepyfile(MEET + """

@pytest.mark.energy
def test_one():
    spend(6.0)
    meet("one-spent", "two-spent")


@pytest.mark.energy
def test_two():
    spend(6.0)
    meet("two-spent", "one-spent")
""")
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=10J", "-n", "2", subprocess=True)
    jsonschema.validate(run.report, report_schema)
    assert {entry["worker"] for entry in run.report["tests"]} == {"gw0", "gw1"}
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    outcome = run.report["session"]["session_cap"]
    assert (outcome["cap_j"], outcome["spent_j"], outcome["reached"], outcome["verdict"]) == (
        10.0, pytest.approx(12.0), True, "over-cap")
    assert outcome["reached_by"].split("::")[-1] in ("test_one", "test_two")
    # a test running when the total crossed (seen at its live check or at its end) fails, as a crossing test does
    failed = [entry for entry in run.report["tests"] if entry["outcome"] == "failed"]
    assert failed and all("crosses what is left of the session cap 4.00 J" in entry["verdict_message"]
                          for entry in failed)
    run.result.stdout.fnmatch_lines(["energy session cap 10.0 J reached by *test_* (12.0 J spent): the run fails"])


def test_a_crossing_on_another_worker_stops_a_running_test_within_a_check(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path, report_schema: Dict[str, Any]
) -> None:
    """test_slow alone would reach the 50 J cap after 25 s; test_burst spends 60 J on the other worker."""
    per_worker_rapl(pytester, tmp_path)
    pytester.makepyfile(MEET + """

@pytest.mark.energy
def test_slow():
    Path("slow-started").touch()
    end = time.monotonic() + 40.0
    while time.monotonic() < end:
        spend(0.2)
        time.sleep(0.05)


@pytest.mark.energy
def test_burst():
    meet("burst-started", "slow-started")
    spend(60.0)
""")
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=50J", "--energy-check-interval=0.1", "-n", "2",
                     subprocess=True)
    jsonschema.validate(run.report, report_schema)
    slow = next(entry for entry in run.report["tests"] if entry["nodeid"].endswith("test_slow"))
    assert slow["outcome"] == "failed"
    assert slow["stopped_early"]["limit"] == "session cap"
    assert slow["energy_j"] < 40.0  # stopped by the other worker's spending, not by reaching 50 J itself
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.report["session"]["session_cap"]["reached"] is True


def test_a_meter_lost_under_a_session_cap_fails_the_run(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
    report_schema: Dict[str, Any]
) -> None:
    """The only GPU lost in the first test: what the next tests spend is unknown, so the 30 J cap cannot pass."""
    install(monkeypatch, gpus(100.0))
    pytester.makepyfile(LOSES_THE_GPU + """

@pytest.mark.energy
@pytest.mark.parametrize("index", range(3))
def test_after(index):
    time.sleep(0.1)
""")
    run = run_energy("--energy-meter=nvml", "--energy-session-cap=30J")
    jsonschema.validate(run.report, report_schema)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    outcome = run.report["session"]["session_cap"]
    assert (outcome["reached"], outcome["verdict"]) == (False, "unmeasured")
    assert outcome["unmeasured_by"].endswith("test_loses_the_gpu") or "test_after" in outcome["unmeasured_by"]
    run.result.stdout.fnmatch_lines(["energy session cap 30.0 J cannot be enforced: *was not measured fully*: the run fails"])


def test_a_session_cap_not_reached_passes_and_says_so_in_the_json(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path, report_schema: Dict[str, Any]
) -> None:
    per_worker_rapl(pytester, tmp_path)
    pytester.makepyfile(SPEND + "\n\n@pytest.mark.energy\ndef test_small():\n    spend(1.0)\n")
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=10J", subprocess=True)
    jsonschema.validate(run.report, report_schema)
    assert run.result.ret == pytest.ExitCode.OK
    assert run.report["session"]["session_cap"] == {"cap_j": 10.0, "spent_j": pytest.approx(1.0), "reached": False,
                                                   "reached_by": None, "unmeasured_by": None, "verdict": "pass"}
