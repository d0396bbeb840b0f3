"""What real projects do that the plugin must survive: strict warning filters, xdist, subtests.

Every run here has ``filterwarnings = error`` in its ini file, as many projects do: the
plugin's own notices (overlapping measurements, a meter that does not work) must reach the
energy summary and the JSON report, and never become test failures or tracebacks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from suites import BURN

from pytest_energy.measure.overlap import claim_machine
from pytest_energy.measure import rapl

STRICT_INI = "[pytest]\nfilterwarnings = error\n"
XDIST_OVERLAP = "xdist workers measured tests concurrently"
HELD_LOCK = "another pytest-energy session is measuring on this machine"

TWO_MEASURED = BURN + """

@pytest.mark.energy
def test_one():
    burn(0.2)


@pytest.mark.energy
def test_two():
    burn(0.2)
"""


def notice_lines(result: pytest.RunResult, text: str) -> List[str]:
    return [line for line in result.outlines if line.startswith("pytest-energy: ") and text in line]


def no_traceback(result: pytest.RunResult) -> None:
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output, output


@pytest.fixture
def strict_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(STRICT_INI)
    return pytester


@pytest.fixture
def held_machine_lock(strict_project: pytest.Pytester) -> Iterator[None]:
    """Another session measuring on this machine: its lock is held in this process."""
    lock, warning = claim_machine()
    assert warning is None
    yield
    lock.release()  # type: ignore[union-attr]


# -- filterwarnings = error ----------------------------------------------------------------------


def test_xdist_run_with_strict_warnings_passes_and_says_once_that_workers_overlapped(
    run_energy: Callable, strict_project: pytest.Pytester
) -> None:
    strict_project.makepyfile(TWO_MEASURED)
    run = run_energy("--energy-meter=codecarbon", "-n", "2", "--dist=load", subprocess=True)
    run.result.assert_outcomes(passed=2)
    assert run.result.ret == pytest.ExitCode.OK
    no_traceback(run.result)
    assert {entry["worker"] for entry in run.report["tests"]} == {"gw0", "gw1"}
    assert len(notice_lines(run.result, XDIST_OVERLAP)) == 1
    assert [notice for notice in run.report["notices"] if XDIST_OVERLAP in notice]


def test_a_held_machine_lock_with_strict_warnings_fails_no_test(
    run_energy: Callable, strict_project: pytest.Pytester, held_machine_lock: None
) -> None:
    strict_project.makepyfile(TWO_MEASURED)
    run = run_energy("--energy-meter=codecarbon")
    run.result.assert_outcomes(passed=2)
    no_traceback(run.result)
    assert len(notice_lines(run.result, HELD_LOCK)) == 1
    assert all(entry["energy_j"] > 0 for entry in run.report["tests"])


def test_rapl_without_a_powercap_interface_with_strict_warnings_fails_no_test(
    run_energy: Callable, strict_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(rapl, "RaplSource", functools.partial(rapl.RaplSource, tmp_path / "no-powercap"))
    strict_project.makepyfile(TWO_MEASURED)
    run = run_energy("--energy-meter=rapl")
    run.result.assert_outcomes(passed=2)
    no_traceback(run.result)
    [line] = notice_lines(run.result, "no energy meter works here")
    assert "no RAPL powercap interface" in line
    assert [entry["energy_j"] for entry in run.report["tests"]] == [None, None]


# -- no overlap notice when nothing is measured --------------------------------------------------


def test_no_xdist_overlap_notice_when_nothing_is_measured(run_energy: Callable, strict_project: pytest.Pytester) -> None:
    strict_project.makepyfile(TWO_MEASURED)
    run = run_energy("--energy-meter=none", "-n", "2", "--dist=load", subprocess=True)
    run.result.assert_outcomes(passed=2)
    assert {entry["worker"] for entry in run.report["tests"]} == {"gw0", "gw1"}
    assert notice_lines(run.result, XDIST_OVERLAP) == []
    assert not [notice for notice in run.report["notices"] if XDIST_OVERLAP in notice]


def test_no_machine_lock_notice_when_nothing_is_measured(
    run_energy: Callable, strict_project: pytest.Pytester, held_machine_lock: None
) -> None:
    strict_project.makepyfile(TWO_MEASURED)
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(passed=2)
    assert notice_lines(run.result, HELD_LOCK) == []
    assert run.report["notices"] == []


# -- subtests ------------------------------------------------------------------------------------

UNITTEST_SUBTESTS = BURN + """
import unittest


class TestTraining(unittest.TestCase):
    @pytest.mark.energy(cap="{cap}")
    def test_epochs(self):
        for epoch in range(3):
            with self.subTest(epoch=epoch):
                burn(0.1)
                self.assertNotEqual(epoch, {failing})
"""

FIXTURE_SUBTESTS = BURN + """

@pytest.mark.energy(cap="{cap}")
def test_epochs(subtests):
    for epoch in range(3):
        with subtests.test(epoch=epoch):
            burn(0.1)
            assert epoch != {failing}
"""


@pytest.mark.parametrize("suite", [UNITTEST_SUBTESTS, FIXTURE_SUBTESTS], ids=["unittest-subTest", "subtests-fixture"])
def test_a_test_with_subtests_is_measured_over_its_whole_call(
    run_energy: Callable, strict_project: pytest.Pytester, suite: str
) -> None:
    strict_project.makepyfile(suite.format(cap="1MWh", failing=-1))
    run = run_energy("--energy-meter=codecarbon")
    assert run.result.ret == pytest.ExitCode.OK
    no_traceback(run.result)
    [entry] = run.report["tests"]
    assert (entry["outcome"], entry["verdict"]) == ("passed", "pass")
    assert entry["energy_j"] > 0
    assert entry["duration_s"] >= 0.3  # all three subtests, not the first one
    run.result.stdout.no_fnmatch_line("*cannot enforce cap*")


@pytest.mark.parametrize("suite", [UNITTEST_SUBTESTS, FIXTURE_SUBTESTS], ids=["unittest-subTest", "subtests-fixture"])
def test_a_failing_subtest_fails_the_record_and_the_cap_still_applies(
    run_energy: Callable, strict_project: pytest.Pytester, suite: str
) -> None:
    strict_project.makepyfile(suite.format(cap="1MWh", failing=1))
    run = run_energy("--energy-meter=codecarbon")
    [entry] = run.report["tests"]
    assert (entry["outcome"], entry["verdict"]) == ("failed", "pass")
    assert entry["duration_s"] >= 0.3
    run.result.stdout.fnmatch_lines(["*SUBFAILED*epoch=1*"])
    run.result.stdout.no_fnmatch_line("*cannot enforce cap*")


@pytest.mark.parametrize("suite", [UNITTEST_SUBTESTS, FIXTURE_SUBTESTS], ids=["unittest-subTest", "subtests-fixture"])
def test_a_test_with_subtests_over_its_cap_fails_once(
    run_energy: Callable, strict_project: pytest.Pytester, suite: str
) -> None:
    """The stop fires inside a subtest, which catches it: the test still ends there, with one failure."""
    strict_project.makepyfile(suite.format(cap="1e-6 J", failing=-1))
    run = run_energy("--energy-meter=codecarbon")
    no_traceback(run.result)
    [entry] = run.report["tests"]
    assert (entry["outcome"], entry["verdict"]) == ("failed", "over-cap")
    assert entry["stopped_early"]["limit"] == "cap"
    assert entry["duration_s"] < 0.3  # not every subtest ran
    run.result.stdout.fnmatch_lines(["energy * exceeds cap 1.00e-06 J (*); stopped early at *"])
    assert [line.split(" ")[0] for line in run.result.outlines if line.startswith(("FAILED", "SUBFAILED"))] == ["FAILED"]
