"""The regression limit as a pure function: repeats of both runs, the interval, partial figures, auto and its floor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Sequence

import pytest

from pytest_energy.decide.figures import Figures, Limits
from pytest_energy.decide.limits import energy_cap
from pytest_energy.decide.regression import StoredComparison, compare_with_stored, complexity_regression, regression
from pytest_energy.decide.noise import NoiseFloor
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.store.runs import StoredRun

NODEID = "t.py::test_x"
RUN = Path("20260101T000000.000000_abc.json")


def stored(energy_j: float, repeats: Sequence[float] = ()) -> StoredRun:
    test: Dict[str, Any] = {"nodeid": NODEID, "energy_j": energy_j}
    if repeats:
        test["repeats"] = {"energy_j": list(repeats), "median_j": energy_j}
    return StoredRun(RUN, "same", {NODEID: test})


def figures(energy_j: float, repeats: Sequence[float] = (), partial: str = "") -> Figures:
    reading = Reading("cpu", "package-0", energy_j, "rapl-counter", partial=partial)
    return Figures(NODEID, Measurement(1.0, (reading,)), fingerprint="same", repeats=max(len(repeats), 1),
                   repeats_j=tuple(repeats))


def test_a_lower_bound_figure_does_not_pass_the_gate() -> None:
    """Within the limit but only a lower bound (a device was lost): the gate cannot pass it."""
    limits = Limits("J", regression=0.10, stored=stored(100.0))
    assert regression(figures(101.0), limits) is None
    failure = regression(figures(101.0, partial="package-0 stopped reporting"), limits)
    assert failure is not None and (failure.verdict, failure.limit) == ("lower-bound", "regression")
    assert "only a lower bound because package-0 stopped reporting" in failure.message


def test_an_unmeasured_repeat_does_not_pass_the_gate() -> None:
    limits = Limits("J", regression=0.10, stored=stored(100.0, [99.0, 100.0, 101.0]))
    failure = regression(figures(100.0, [100.0, None, 100.0]), limits)  # type: ignore[list-item]
    assert failure is not None and failure.verdict == "lower-bound" and "repeat 2 of 3 was not measured" in failure.message


def test_the_gate_uses_the_repeats_of_both_runs() -> None:
    limits = Limits("J", regression=0.10, stored=stored(100.0, [60.0, 80.0, 100.0, 200.0, 400.0]))
    noisy = figures(130.0, [125.0, 130.0, 128.0, 135.0, 130.0])
    compared = compare_with_stored(noisy, limits)
    assert isinstance(compared, StoredComparison)
    assert compared.comparison.repeats_now == compared.comparison.repeats_before == 5
    assert compared.now_j == 130.0 and compared.before_j == 100.0
    assert regression(noisy, limits) is None  # +30 % on the medians, but the stored run's spread hides it
    assert regression(noisy, dataclasses.replace(limits, stored=stored(100.0))) is not None  # one figure: +30 % fails


def test_auto_takes_the_floor_of_the_test_and_without_one_decides_nothing() -> None:
    floor = NoiseFloor(0.5, "spread of the repeats of 3 stored runs")
    limits = Limits("J", stored=stored(100.0, [99.0, 100.0, 101.0]), regression_auto=True, floors={NODEID: floor})
    grown = figures(140.0, [139.0, 140.0, 141.0])
    assert regression(grown, limits) is None  # +40 % is under the 50 % noise
    failure = regression(figures(200.0, [199.0, 200.0, 201.0]), limits)
    assert failure is not None and "(limit +50%: this runner's noise, the spread of the repeats of 3 stored runs)" in failure.message
    assert regression(figures(200.0, [199.0, 200.0, 201.0]), dataclasses.replace(limits, floors={})) is None


@pytest.mark.parametrize(("cap_on", "fails"), [("median", False), ("max", True), ("each", True)])
def test_a_cap_applies_to_the_median_or_the_largest_repeat(cap_on: str, fails: bool) -> None:
    spiky = dataclasses.replace(figures(10.0, [10.0, 500.0, 12.0]), cap_j=100.0)
    failure = energy_cap(spiky, Limits("J", cap_on=cap_on))
    assert (failure is not None) == fails
    if failure is not None:
        assert failure.message.startswith("energy (largest of 3 repeats) 500 J exceeds cap 100 J")


def test_a_macs_regression_is_exact() -> None:
    """One MAC more than the stored run fails at 0 %; the same count passes; no noise handling."""
    run = StoredRun(RUN, "same", {NODEID: {"nodeid": NODEID, "energy_j": 1.0, "macs": 8832, "params": 8842}})
    limits = Limits("J", stored=run, complexity_regression=0.0)
    same = dataclasses.replace(figures(1.0), complexity={"macs": 8832, "params": 8842})
    assert complexity_regression(same, limits) is None
    failure = complexity_regression(dataclasses.replace(same, complexity={"macs": 8833, "params": 8842}), limits)
    assert failure is not None and (failure.verdict, failure.limit) == ("regression", "MACs regression")
    assert failure.message == f"MACs 8.83K (8,833) grew over 8.83K (8,832) (+0.0%) in {RUN.name} (limit +0%)"
    assert complexity_regression(dataclasses.replace(same, complexity={"macs": 9000, "params": 9000}),
                                 dataclasses.replace(limits, complexity_regression=0.05)) is None
    assert complexity_regression(same, dataclasses.replace(limits, complexity_regression=None)) is None


def test_with_work_recorded_on_both_sides_the_gate_compares_energy_per_unit() -> None:
    """Twice the samples for twice the energy is no regression; the same samples for twice the energy is."""
    run = StoredRun(RUN, "same", {NODEID: {"nodeid": NODEID, "energy_j": 100.0,
                                           "work": {"unit": "sample", "amount": 1000}}})
    limits = Limits("J", regression=0.10, stored=run)
    doubled = dataclasses.replace(figures(200.0), work={"unit": "sample", "amount": 2000})
    assert regression(doubled, limits) is None
    failure = regression(dataclasses.replace(doubled, work={"unit": "sample", "amount": 1000}), limits)
    assert failure is not None and failure.message.startswith("energy per sample 0.2 J grew +100.0% over 0.1 J")
    assert regression(dataclasses.replace(doubled, work=None), limits) is not None  # no work now: raw energy
