"""One figure and one verdict per test: lower bounds never pass a cap, a stopped test's failure
gives the energy its reports give, and xfail / xpass keep their own outcomes.

``decide`` is tested as pure functions on hand-made measurements; the rest through real
pytest runs (CodeCarbon on this machine, or the fake powercap tree and a driverless NVML).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import jsonschema
import pytest
from junit_read import junit_properties_by_test
from junitparser import Failure, JUnitXml

from meters import rapl_alone, spend
from pytest_energy.account.normalize import Normalization
from pytest_energy.decide.figures import CapFailure, Figures, Limits, lower_bound_reasons
from pytest_energy.decide.limits import check, energy_cap, session_cap, verdict_of
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.account.record import OUTCOMES, VERDICTS
from pytest_energy.units import format_energy
from suites import BURN

Schema = Dict[str, Any]
LOST = "gpu0 stopped reporting mid-run (GPU is lost); its last total is kept"
NOT_REPORTING = "gpu1 was not reporting when this window opened, so it is unmeasured here"
CPU = Reading("cpu", "package-0", 3.0, "rapl-counter")
NO_GPU_HERE = Reading("gpu", "gpu", None, "unmeasured", note="not measured by meter 'auto' (nvml: no driver)")


def measurement(*readings: Reading) -> Measurement:
    return Measurement(1.0, readings)


def energy_verdict(measured: Measurement, cap_j: Optional[float], unit: str,
                   normalization: Optional[Normalization] = None) -> Tuple[str, Optional[CapFailure]]:
    """The ``cap`` limit on ``measured``, and the verdict it gives."""
    figures = Figures("t.py::test_x", measured, cap_j=cap_j, normalization=normalization)
    failure = energy_cap(figures, Limits(unit, normalized_caps=normalization is not None))
    return verdict_of([failure] if failure else [], cap_j), failure


# -- decide: lower bounds ------------------------------------------------------------------------


def test_a_partial_figure_under_the_cap_is_a_lower_bound_not_a_pass() -> None:
    lost = measurement(Reading("gpu", "gpu0", 868.0, "nvml-counter", partial=LOST), CPU)
    verdict, failure = energy_verdict(lost, 3600.0, "J")
    assert verdict == "lower-bound" and failure is not None and failure.verdict == "lower-bound"
    assert failure.message == (
        f"cannot enforce cap 3600 J: energy 871 J is only a lower bound because {LOST} "
        "(gpu 868 J, cpu 3.00 J; meter nvml-counter+rapl-counter)"
    )


def test_a_partial_figure_already_over_the_cap_is_plainly_over_it() -> None:
    lost = measurement(Reading("gpu", "gpu0", 868.0, "nvml-counter", partial=LOST), CPU)
    verdict, failure = energy_verdict(lost, 500.0, "J")
    assert verdict == "over-cap" and failure is not None and failure.verdict == "over-cap"
    assert failure.message.startswith("energy 871 J exceeds cap 500 J (gpu 868 J, cpu 3.00 J; meter ")
    assert failure.message.endswith(f", and that is only a lower bound because {LOST}")


def test_a_device_with_no_figure_for_the_window_makes_a_lower_bound() -> None:
    """A GPU lost before the window opened, or one that appeared during it, counted none of the test."""
    for gpu in (
        Reading("gpu", "gpu1", None, "nvml-counter", partial=LOST, note=NOT_REPORTING),
        Reading("gpu", "gpu1", None, "nvml-counter", note="appeared mid-window"),
    ):
        verdict, failure = energy_verdict(measurement(gpu, CPU), 3600.0, "J")
        assert verdict == "lower-bound" and failure is not None
    assert lower_bound_reasons(measurement(Reading("gpu", "gpu1", None, "nvml-counter", note="appeared mid-window"))) == [
        "gpu1 appeared mid-window"
    ]
    assert lower_bound_reasons(measurement(Reading("gpu", "gpu1", None, "nvml-counter", partial=LOST, note=NOT_REPORTING))) == [
        NOT_REPORTING
    ]


def test_a_component_no_source_measures_here_does_not_make_a_lower_bound() -> None:
    """A CPU-only machine under ``auto``: its GPU is unmeasured because there is none, and the cap still passes."""
    verdict, failure = energy_verdict(measurement(NO_GPU_HERE, CPU), 3600.0, "J")
    assert (verdict, failure) == ("pass", None)
    assert lower_bound_reasons(measurement(NO_GPU_HERE, CPU)) == []


def test_a_lower_bound_without_a_cap_is_not_judged() -> None:
    lost = measurement(Reading("gpu", "gpu0", 868.0, "nvml-counter", partial=LOST))
    assert energy_verdict(lost, None, "J") == ("no-cap", None)


def test_a_lower_bound_is_judged_in_normalised_energy_too() -> None:
    lost = measurement(Reading("gpu", "gpu0", 868.0, "nvml-counter", partial=LOST))
    verdict, failure = energy_verdict(lost, 100.0, "J", Normalization.one_point(1.0, 10.0))
    assert verdict == "lower-bound" and failure is not None
    assert "normalised energy 86.8 J is only a lower bound" in failure.message and "(raw 868 J: gpu 868 J" in failure.message


# -- decide: one verdict -------------------------------------------------------------------------


def test_the_verdict_is_the_first_energy_failure_else_pass_or_no_cap() -> None:
    regression = CapFailure("energy grew", "regression", "regression")
    assert verdict_of([regression], None) == "regression"
    assert verdict_of([CapFailure("over"), regression], 1.0) == "over-cap"
    assert verdict_of([], 1.0) == "pass" and verdict_of([], None) == "no-cap"
    assert verdict_of([CapFailure("MACs over", limit="MACs cap")], 1.0) == "pass"  # complexity is not the energy verdict


def test_the_session_cap_message_is_built_as_such() -> None:
    figures = Figures("t.py::test_x", measurement(CPU), session_left_j=2.5)
    failure = session_cap(figures, Limits("J", session_cap_j=25.0))
    assert failure is not None and (failure.verdict, failure.limit) == ("over-cap", "session cap")
    assert failure.message == (
        "energy 3.00 J crosses what is left of the session cap 2.50 J (cpu 3.00 J; meter rapl-counter); session cap 25.0 J"
    )
    assert session_cap(dataclasses.replace(figures, session_left_j=3.0), Limits("J", session_cap_j=25.0)) is None
    # under xdist, other workers can spend the cap while this test runs: nothing was left, not "-0.296 J"
    spent = session_cap(dataclasses.replace(figures, session_left_j=-0.296), Limits("J", session_cap_j=25.0))
    assert spent is not None and "-0.296" not in spent.message
    assert spent.message.startswith("energy 3.00 J was spent after the session cap was already spent")


def test_the_limit_that_stopped_a_test_says_when_and_the_others_do_not() -> None:
    """One failure object per limit: the live stop, the verdict and the reports all read ``check``'s."""
    figures = Figures("t.py::test_x", measurement(CPU), cap_j=1.0, session_left_j=2.5,
                      stopped_early={"at_s": 0.25, "limit": "session cap"})
    cap, session = check(figures, Limits("J", session_cap_j=25.0))
    assert (cap.limit, session.limit) == ("cap", "session cap")
    assert session.message.endswith("; stopped early at 0.25 s") and "stopped early" not in cap.message
    assert verdict_of([cap, session], 1.0) == "over-cap"


def test_verdicts_and_outcomes_are_the_schema_enums(report_schema: Schema) -> None:
    test = report_schema["$defs"]["test"]["properties"]
    assert tuple(test["verdict"]["enum"]) == VERDICTS
    assert tuple(test["outcome"]["enum"]) == OUTCOMES


# -- through pytest ------------------------------------------------------------------------------


def test_auto_on_a_machine_without_a_gpu_passes_a_capped_test(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, report_schema: Schema
) -> None:
    """No NVML driver, RAPL for CPU and DRAM: the GPU is unmeasured for want of one, which is no lower bound."""
    package = rapl_alone(monkeypatch, tmp_path)
    pytester.makepyfile(
        "import os\nimport pathlib\n\nimport pytest\n\n@pytest.mark.energy(cap='10J')\ndef test_capped():\n"
        + spend(package, 2.0)
    )
    run = run_energy("--energy-meter=auto")
    run.result.assert_outcomes(passed=1)
    jsonschema.validate(run.report, report_schema)
    entry = run.entry("test_capped")
    assert (entry["verdict"], entry["energy_j"]) == ("pass", pytest.approx(2.0))
    assert entry["components"]["gpu"]["method"] == "unmeasured" and "verdict_message" not in entry


def failure_figure(lines: Any, pattern: str) -> str:
    """The energy figure of the one failure line that matches ``pattern`` (its ``(?P<energy>...)`` group)."""
    found = [match for match in map(re.compile(pattern).match, lines) if match]
    assert len(found) == 1, lines
    return found[0]["energy"]


def test_a_stopped_test_fails_with_the_energy_its_reports_give(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog reads the crossing before the window closes; the failure must give the window's final figure."""
    monkeypatch.setenv("COLUMNS", "200")  # a terminal wide enough for every column of the energy table
    pytester.makepyfile(BURN + "\n\n@pytest.mark.energy(cap='2J')\ndef test_runaway():\n    burn(30.0)\n")
    run = run_energy("--energy-meter=codecarbon", "--energy-unit=J", "--energy-check-interval=0.05", "--junitxml=junit.xml")
    run.result.assert_outcomes(failed=1)
    jsonschema.validate(run.report, report_schema)
    entry = run.entry("test_runaway")
    stopped = entry["stopped_early"]
    assert (entry["verdict"], stopped["limit"], stopped["limit_j"]) == ("over-cap", "cap", pytest.approx(2.0))
    figure = failure_figure(run.result.outlines, r"^energy (?P<energy>\S+ J) exceeds cap 2\.00 J \(.*\); stopped early at \S+ s$")
    assert figure == format_energy(entry["energy_j"], "J")
    assert entry["verdict_message"].startswith(f"energy {figure} exceeds cap 2.00 J")
    [row] = [line for line in run.result.outlines if line.startswith("test_a_stopped_test_fails_with_the_energy_its_reports_give.py::")]
    assert row.split()[2:4] == figure.split() and "over-cap" in row.split()
    [case] = [case for suite in JUnitXml.fromfile(str(pytester.path / "junit.xml")) for case in suite]
    assert case.result[0].message.startswith(f"energy {figure} exceeds cap")
    properties = junit_properties_by_test(pytester.path / "junit.xml")["test_runaway"]
    assert (properties["energy_verdict"], properties["energy_verdict_message"]) == ("over-cap", entry["verdict_message"])


XFAIL_SUITE = """
import pytest


@pytest.mark.energy
@pytest.mark.xfail(reason="known bug")
def test_xfail_fails():
    assert False


@pytest.mark.energy
@pytest.mark.xfail(reason="fixed already")
def test_xfail_passes():
    pass


@pytest.mark.energy
@pytest.mark.xfail(reason="known bug", strict=True)
def test_strict_xfail_fails():
    assert False


@pytest.mark.energy
@pytest.mark.xfail(reason="fixed already", strict=True)
def test_strict_xfail_passes():
    pass


@pytest.mark.energy
def test_xfails_itself():
    pytest.xfail("not on this machine")


@pytest.mark.energy
@pytest.mark.xfail(reason="would hang", run=False)
def test_xfail_not_run():
    pass


@pytest.mark.energy(cap="1 J")
@pytest.mark.xfail(reason="fixed already")
def test_xpass_with_a_cap_it_cannot_enforce():
    pass
"""


def test_xfail_and_xpass_are_recorded_as_such(run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema) -> None:
    pytester.makepyfile(XFAIL_SUITE)
    run = run_energy("--energy-meter=none", "--junitxml=junit.xml")
    run.result.assert_outcomes(xfailed=4, xpassed=1, failed=2)
    jsonschema.validate(run.report, report_schema)
    outcomes = {name: run.entry(name)["outcome"] for name in run.nodeids}
    assert outcomes == {
        "test_xfail_fails": "xfailed",
        "test_xfail_passes": "xpassed",
        "test_strict_xfail_fails": "xfailed",
        "test_strict_xfail_passes": "failed",
        "test_xfails_itself": "xfailed",
        "test_xfail_not_run": "xfailed",
        "test_xpass_with_a_cap_it_cannot_enforce": "failed",
    }
    capped = run.entry("test_xpass_with_a_cap_it_cannot_enforce")
    assert capped["verdict"] == "unmeasured"
    cases = {case.name: case for suite in JUnitXml.fromfile(str(pytester.path / "junit.xml")) for case in suite}
    [failure] = cases["test_xpass_with_a_cap_it_cannot_enforce"].result  # a failure, not "xfail-marked test passes"
    assert isinstance(failure, Failure) and failure.message == capped["verdict_message"]
