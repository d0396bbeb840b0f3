"""A cap never passes on a figure it cannot trust (guarantee 1).

For every limit of ``decide/limits.py`` and ``decide/regression.py`` (per-test cap, normalised
cap, session cap, regression, MACs and parameters caps) Hypothesis generates measurements with any mix of lost devices
(``partial``), devices that gave no figure, invalid readings (NaN, inf, negative), normalisations
from a contended baseline or a two-point line that falls below zero, and stored runs whose
figure is missing, zero or not finite. The invariant is checked directly: when a figure a limit
needs cannot be trusted, the limit returns a failure; when every figure is sound and well inside
every limit, nothing fails (so the property cannot hold by failing everything). The pytester runs
at the end reproduce the instances through the plugin.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import hypothesis_profiles  # noqa: F401  (loads the bounded or the nightly profile)
import pytest
from hypothesis import given, strategies as st

from fakes.powercap import FakePowercap
from pytest_energy.account.normalize import Normalization, TwoPointFit
from pytest_energy.decide.figures import CapFailure, Figures, Limits
from pytest_energy.decide.limits import check, verdict_of
from pytest_energy.measure import rapl
from pytest_energy.measure.base import COMPONENTS, Measurement, Reading
from pytest_energy.measure.overlap import claim_machine
from pytest_energy.store.runs import StoredRun

NODEID = "t.py::test_x"
HERE, ELSEWHERE = "fp-here", "fp-elsewhere"
CONTENDED = "the baseline t.py::test_ref was measured while other work was measured on this machine"

SOUND_JOULES = st.floats(min_value=0.0, max_value=1e6)
BAD_JOULES = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9])


@st.composite
def readings(draw: Any) -> Reading:
    component = draw(st.sampled_from(COMPONENTS))
    method = draw(st.sampled_from(["rapl-counter", "nvml-counter", "codecarbon-estimate", "unmeasured"]))
    joules = None if method == "unmeasured" else draw(st.one_of(st.none(), SOUND_JOULES, BAD_JOULES))
    partial = draw(st.sampled_from(["", f"{component}0 stopped reporting"])) if method != "unmeasured" else ""
    return Reading(component, f"{component}0", joules, method, partial=partial, note=draw(st.sampled_from(["", "a note"])))


MEASUREMENTS = st.one_of(st.none(), st.builds(Measurement, st.just(1.0), st.lists(readings(), max_size=4).map(tuple)))


@st.composite
def normalizations(draw: Any) -> Optional[Normalization]:
    kind = draw(st.sampled_from(["none", "one-point", "two-point"]))
    if kind == "none":
        return None
    caveat = draw(st.sampled_from(["", CONTENDED]))
    if kind == "one-point":
        rule = Normalization.one_point(draw(st.floats(1e-3, 1e6)), draw(st.floats(1e-3, 1e6)))
    else:  # any line of positive slope, with an intercept that may put small energies below zero
        fit = TwoPointFit(draw(st.floats(1e-3, 1e3)), draw(st.floats(-1e6, 1e6)))
        rule = Normalization("two-point", fit=fit)
    return Normalization(rule.rule, rule.factor, rule.fit, rule.points, caveat)


STORED_FIGURES = st.one_of(st.none(), st.just(0.0), st.floats(1e-3, 1e6), BAD_JOULES, st.just("12 J"))


@st.composite
def stored_runs(draw: Any) -> Optional[StoredRun]:
    if draw(st.booleans()):
        return None
    tests: Dict[str, Dict[str, Any]] = {}
    if draw(st.booleans()):
        tests[NODEID] = {"nodeid": NODEID, "outcome": draw(st.sampled_from(["passed", "failed", "skipped"])),
                         "energy_j": draw(STORED_FIGURES), "energy_normalized_j": draw(STORED_FIGURES)}
    return StoredRun(Path("stored.json"), draw(st.sampled_from([HERE, ELSEWHERE])), tests)


COUNTS = st.one_of(st.none(), st.integers(0, 10**12), st.sampled_from([math.nan, -1, math.inf, "1G"]))


@st.composite
def cases(draw: Any) -> tuple:
    session_cap = draw(st.one_of(st.none(), st.floats(0.0, 1e6)))
    figures = Figures(
        NODEID,
        draw(MEASUREMENTS),
        phase=draw(st.sampled_from(["train", "test", "baseline"])),
        cap_j=draw(st.one_of(st.none(), st.floats(0.0, 1e7))),
        normalization=draw(normalizations()),
        session_left_j=None if session_cap is None else draw(st.one_of(st.none(), st.floats(0.0, session_cap))),
        complexity={key: value for key, value in (("macs", draw(COUNTS)), ("params", draw(COUNTS))) if value is not None},
        fingerprint=HERE,
    )
    limits = Limits(normalized_caps=draw(st.booleans()), session_cap_j=session_cap,
                    macs_cap=draw(st.one_of(st.none(), st.integers(0, 10**12))),
                    params_cap=draw(st.one_of(st.none(), st.integers(0, 10**12))),
                    regression=draw(st.one_of(st.none(), st.floats(0.0, 1.0))), stored=draw(stored_runs()))
    return figures, limits


def sound_total(measurement: Optional[Measurement]) -> Optional[float]:
    """The total when every figure of the window can be trusted in full; None otherwise."""
    if measurement is None:
        return None
    figures = []
    for reading in measurement.readings:
        if reading.method == "unmeasured":
            continue
        if reading.joules is None or reading.partial or not math.isfinite(reading.joules) or reading.joules < 0:
            return None
        figures.append(reading.joules)
    return sum(figures) if figures else None


def sound_normalized(normalization: Optional[Normalization], joules: Optional[float]) -> Optional[float]:
    if normalization is None or joules is None or normalization.caveat:
        return None
    fit = normalization.fit
    value = fit.a * joules + fit.b if fit is not None else joules * normalization.factor  # type: ignore[operator]
    return value if value > 0 else None


def failed(failures: List[CapFailure], limit: str) -> bool:
    return any(failure.limit == limit for failure in failures)


@given(cases())
def test_no_limit_passes_on_a_figure_it_cannot_trust(case: tuple) -> None:
    figures, limits = case
    failures = check(figures, limits)
    total = sound_total(figures.measurement)
    normalised_cap = limits.normalized_caps and figures.phase in ("train", "test")
    if figures.cap_j is not None:
        trusted = total is not None and (not normalised_cap or sound_normalized(figures.normalization, total) is not None)
        if not trusted:
            assert failed(failures, "cap"), f"the cap passed on an untrustworthy figure: {figures}"
            assert verdict_of(failures, figures.cap_j) != "pass"
    if limits.session_cap_j is not None and (total is None or figures.session_left_j is None):
        assert failed(failures, "session cap"), f"the session cap passed on an untrustworthy figure: {figures}"
    previous = limits.stored.tests.get(NODEID) if limits.stored else None
    if limits.regression is not None and previous is not None and previous["outcome"] != "skipped":
        other_hardware = limits.stored.fingerprint != HERE  # type: ignore[union-attr]
        before = previous["energy_normalized_j" if other_hardware else "energy_j"]
        now = sound_normalized(figures.normalization, total) if other_hardware else total
        before_sound = isinstance(before, float) and math.isfinite(before) and before > 0
        if now is None or not before_sound:
            assert failed(failures, "regression"), f"the regression limit passed without two sound figures: {case}"
    for key, limit, cap in (("macs", "MACs cap", limits.macs_cap), ("params", "parameters cap", limits.params_cap)):
        value = figures.complexity.get(key)
        if cap is not None and value is not None and not (isinstance(value, int) and value >= 0):
            assert failed(failures, limit), f"the {limit} passed on the count {value!r}"


@given(st.floats(1e-3, 1e3), st.booleans(), st.sampled_from(COMPONENTS))
def test_sound_figures_well_inside_every_limit_pass(joules: float, normalised: bool, component: str) -> None:
    """The other side of the property: a check that failed everything would satisfy it too."""
    measurement = Measurement(1.0, (Reading(component, f"{component}0", joules, "rapl-counter"),))
    stored = StoredRun(Path("stored.json"), HERE, {NODEID: {"nodeid": NODEID, "outcome": "passed", "energy_j": joules}})
    figures = Figures(NODEID, measurement, cap_j=joules * 10, normalization=Normalization.one_point(2.0, 1.0),
                      session_left_j=joules * 10, complexity={"macs": 5, "params": 5}, fingerprint=HERE)
    limits = Limits(normalized_caps=normalised, session_cap_j=joules * 10, macs_cap=5, params_cap=5, regression=0.0,
                    stored=stored)
    assert check(figures, limits) == []


# -- the instances, each failing before the fix ------------------------------------------------------


def one_reading(joules: Optional[float], partial: str = "") -> Measurement:
    return Measurement(1.0, (Reading("gpu", "gpu0", joules, "nvml-counter", partial=partial),))


@pytest.mark.parametrize(("measurement", "verdict"), [
    (None, "unmeasured"), (one_reading(None), "unmeasured"), (one_reading(math.nan), "unmeasured"),
    (one_reading(1.0, "gpu0 stopped reporting"), "lower-bound"),
])
def test_a_session_cap_does_not_pass_a_test_without_a_whole_figure(measurement: Optional[Measurement], verdict: str) -> None:
    """Before, a lost or unmeasured meter under a session cap passed silently."""
    [failure] = check(Figures(NODEID, measurement, session_left_j=30.0), Limits(session_cap_j=30.0))
    assert (failure.limit, failure.verdict) == ("session cap", verdict)
    assert failure.message.startswith("cannot enforce session cap 30.0 J: ")


def test_a_session_cap_counts_every_repeat_and_does_not_pass_one_that_lost_a_device() -> None:
    """The session spent every repeat: their sum is compared, and a device lost in an earlier repeat makes it a lower bound."""
    figures = Figures(NODEID, one_reading(10.0), session_left_j=25.0, repeats=3, repeats_j=(10.0, 10.0, 10.0))
    [over] = check(figures, Limits(session_cap_j=100.0))
    assert (over.limit, over.verdict) == ("session cap", "over-cap") and "30.0 J" in over.message
    lost = Figures(NODEID, one_reading(10.0), session_left_j=100.0, repeats=2, repeats_j=(10.0, 10.0),
                   repeats_lost=("gpu0 stopped reporting in repeat 1",))
    [failure] = check(lost, Limits(session_cap_j=100.0))
    assert (failure.limit, failure.verdict) == ("session cap", "lower-bound")
    assert "gpu0 stopped reporting in repeat 1" in failure.message


def test_a_cap_does_not_pass_a_nan_reading() -> None:
    """Before, NaN > cap was False: a NaN figure passed every cap."""
    [failure] = check(Figures(NODEID, one_reading(math.nan), cap_j=5.0), Limits())
    assert failure.verdict == "unmeasured" and "gpu0 gave nan J" in failure.message


@pytest.mark.parametrize("before", [None, 0.0, math.nan, -3.0])
def test_a_regression_limit_does_not_pass_without_a_stored_figure(before: Optional[float]) -> None:
    """Before, a stored figure of 0 or none made the comparison pass."""
    stored = StoredRun(Path("run.json"), HERE, {NODEID: {"nodeid": NODEID, "outcome": "passed", "energy_j": before}})
    [failure] = check(Figures(NODEID, one_reading(10.0), fingerprint=HERE), Limits(regression=0.1, stored=stored))
    assert (failure.limit, failure.verdict) == ("regression", "not-comparable")


def test_a_regression_limit_does_not_pass_an_unmeasured_test() -> None:
    """Before, a test unmeasured now passed the comparison with a stored figure."""
    stored = StoredRun(Path("run.json"), HERE, {NODEID: {"nodeid": NODEID, "outcome": "passed", "energy_j": 5.0}})
    [failure] = check(Figures(NODEID, one_reading(None), fingerprint=HERE), Limits(regression=0.1, stored=stored))
    assert (failure.limit, failure.verdict) == ("regression", "unmeasured")


def test_a_normalised_cap_does_not_pass_on_a_contended_baseline() -> None:
    """A baseline measured beside other work reads high, so normalised figures read low: never a pass."""
    normalization = Normalization(**{**Normalization.one_point(2.0, 1.0).__dict__, "caveat": CONTENDED})
    [failure] = check(Figures(NODEID, one_reading(1.0), cap_j=100.0, normalization=normalization),
                      Limits(normalized_caps=True))
    assert failure.verdict == "lower-bound" and CONTENDED in failure.message


def test_a_figure_just_over_its_cap_never_reads_equal_to_it() -> None:
    """Before: "energy 5.00 J exceeds cap 5.00 J"."""
    [failure] = check(Figures(NODEID, one_reading(5.0001), cap_j=5.0), Limits())
    assert failure.message.startswith("energy 5.0001 J exceeds cap 5.0000 J")


SPEND_TEST = """
import os
from pathlib import Path

import pytest

from conftest import ROOT


def spend(joules):
    counter = Path(ROOT, "intel-rapl:0", "energy_uj")
    counter.write_text(str(int(counter.read_text()) + round(joules * 1e6)))


@pytest.mark.energy_baseline
def test_reference_workload():
    spend(5.0)


@pytest.mark.energy(cap="100 J")
def test_capped():
    spend(1.0)
"""


def test_a_normalised_cap_after_a_contended_baseline_does_not_pass(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session holds the machine while the baseline runs: the run uses it, but a normalised cap does not pass."""
    tree = FakePowercap(tmp_path / "rapl").add_package(0)
    monkeypatch.setattr(rapl, "RaplSource", functools.partial(rapl.RaplSource, tree.root))
    pytester.makeconftest(f"ROOT = {str(tree.root)!r}\n")
    pytester.makepyfile(SPEND_TEST)
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "10 J"\nnormalized = true\n')
    other_session, warning = claim_machine()
    assert warning is None
    try:
        run = run_energy("--energy-meter=rapl")
    finally:
        other_session.release()  # type: ignore[union-attr]
    run.result.assert_outcomes(passed=1, failed=1)
    capped = run.entry("test_capped")
    assert capped["energy_normalized_j"] == pytest.approx(2.0)  # still reported, as the run normalises with it
    assert capped["verdict"] == "lower-bound"
    assert "was measured while other work was measured on this machine" in capped["verdict_message"]


def test_an_unmeasured_test_under_a_session_cap_fails(run_energy: Callable[..., Any], pytester: pytest.Pytester,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: with no working meter every test passed a session cap, whatever it spent."""
    empty = FakePowercap(tmp_path / "no-rapl")  # a powercap tree without packages: RAPL measures nothing
    monkeypatch.setattr(rapl, "RaplSource", functools.partial(rapl.RaplSource, empty.root))
    pytester.makepyfile("import pytest\n\n\n@pytest.mark.energy\ndef test_spends():\n    pass\n")
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=30J")
    run.result.assert_outcomes(failed=1)
    entry = run.entry("test_spends")
    assert entry["verdict"] == "unmeasured" and entry["verdict_message"].startswith("cannot enforce session cap 30.0 J")


def test_a_regression_just_over_its_limit_reads_over_it() -> None:
    """Before: "energy 5.00 J grew +0.0% over 5.00 J (limit +0%)"."""
    stored = StoredRun(Path("run.json"), HERE, {NODEID: {"nodeid": NODEID, "outcome": "passed", "energy_j": 5.0}})
    [failure] = check(Figures(NODEID, one_reading(5.0001), fingerprint=HERE), Limits(regression=0.0, stored=stored))
    assert failure.message.startswith("energy 5.0001 J grew +0.002% over 5.0000 J in run.json (limit +0%)")
