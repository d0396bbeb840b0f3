"""Two-point normalisation never crashes or lies (guarantee 11), through real pytest runs with CodeCarbon.

A fit through two reference workloads where the larger costs less on one machine has no
meaning: the run says so in one line, caps that need normalisation do not pass, and nothing
is cached. A fit whose line falls to zero or below for small tests gives them no normalised
energy, never a negative one. Burn times are 3x apart, so which workload costs more here
does not depend on the machine's load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_energy.account.normalize import Normalization
from suites import BURN

CACHE_DIR = Path(".pytest_cache", "d", "energy-baseline")


def two_point_suite(small_reference: str, large_reference: str, cap: str = "1 MWh") -> str:
    return BURN + f"""

@pytest.mark.energy_baseline(reference="{small_reference}")
def test_small_reference():
    burn(0.1)


@pytest.mark.energy_baseline(reference="{large_reference}")
def test_large_reference():
    burn(0.3)


@pytest.mark.energy(cap="{cap}")
def test_inference():
    burn(0.01)
"""


@pytest.fixture
def measure(run_energy: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: str) -> Any:
        return run_energy("--energy-meter=codecarbon", "-rs", *args)

    return run


def cached_entries(pytester: pytest.Pytester) -> list:
    return sorted(Path(pytester.path, CACHE_DIR).glob("two-point-*/*.json"))


def test_a_fit_where_the_larger_workload_costs_less_is_refused_in_one_line_and_not_cached(
    measure: Callable, pytester: pytest.Pytester
) -> None:
    """Before: INTERNALERROR (exit 3), and the cached energies made every later run crash the same way."""
    pytester.makepyfile(two_point_suite("3 J", "1 J"))
    pytester.makepyprojecttoml('[tool.pytest-energy]\nnormalization = "two-point"\nnormalized = true\n')
    for _ in range(2):  # the second run finds nothing cached, so it refuses the fit again instead of crashing
        run = measure()
        assert run.result.ret == 1, run.result.stdout.str()
        run.result.assert_outcomes(passed=2, failed=1)
        refused = [line for line in run.result.outlines if line.startswith("pytest-energy: two-point normalisation refused")]
        assert len(refused) == 1 and "the larger workload must cost more on both machines" in refused[0]
        assert cached_entries(pytester) == []
        inference = run.entry("test_inference")
        assert inference["verdict"] == "unmeasured" and inference["energy_normalized_j"] is None
        assert "cannot enforce a normalised cap: two-point normalisation refused" in inference["verdict_message"]
        assert run.report["normalization"] is None


def test_cached_energies_that_give_no_fit_are_discarded_and_measured_again(
    measure: Callable, pytester: pytest.Pytester
) -> None:
    """Entries an older version cached (or another reference setting) that make no line are not reused."""
    pytester.makepyfile(two_point_suite("1 J", "3 J"))
    pytester.makepyprojecttoml('[tool.pytest-energy]\nnormalization = "two-point"\n')
    measure().result.assert_outcomes(passed=3)
    assert len(cached_entries(pytester)) == 2
    pytester.makepyfile(two_point_suite("3 J", "1 J"))  # the same tests, their references swapped
    run = measure()
    assert run.result.ret == 0, run.result.stdout.str()
    run.result.assert_outcomes(passed=3)  # both measured again, not skipped as reused
    run.result.stdout.fnmatch_lines(["*cached two-point baseline gives no fit*measuring both again*"])
    assert cached_entries(pytester) == []


def test_a_fit_below_its_zero_gives_no_normalised_energy_never_a_negative_one(
    measure: Callable, pytester: pytest.Pytester
) -> None:
    """Before: the small test's normalised energy was negative (E_ref = a E_local + b with b far below 0)."""
    pytester.makepyfile(two_point_suite("1 J", "1 MJ", cap="1 MWh"))
    pytester.makepyprojecttoml('[tool.pytest-energy]\nnormalization = "two-point"\nnormalized = true\n')
    run = measure()
    normalization = run.report["normalization"]
    assert normalization["b_j"] < 0
    inference = run.entry("test_inference")
    local_zero = -normalization["b_j"] / normalization["a"]
    assert inference["energy_j"] < local_zero, "the test did not land below the line's zero: the suite needs a retune"
    assert inference["energy_normalized_j"] is None
    assert inference["verdict"] == "unmeasured"
    assert "gives no energy more than zero" in inference["verdict_message"]
    for test in run.report["tests"]:
        assert test.get("energy_normalized_j") is None or test["energy_normalized_j"] > 0


@pytest.mark.parametrize("points", [((10.0, 3.0), (30.0, 1.0)), ((10.0, 1.0), (10.0, 3.0))])
def test_normalisation_from_bad_points_is_a_value_error_not_a_crash_elsewhere(points: Any) -> None:
    with pytest.raises(ValueError):
        Normalization.from_points(points)
