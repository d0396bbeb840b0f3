"""The regression gate's statistics (``decide/noise.py``): exact bootstrap of medians, the interval rule, the floor."""

from __future__ import annotations

import collections
import math
import os
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.account.repeats import spread
from pytest_energy.decide.noise import (
    Comparison,
    StoredFigures,
    compare,
    fails,
    median_distribution,
    noise_floor,
)

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("nightly", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

energies = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(energies, min_size=1, max_size=12))
def test_median_distribution_is_a_distribution_over_possible_medians(values: list) -> None:
    distribution = median_distribution(values)
    assert math.isclose(sum(p for _, p in distribution), 1.0, rel_tol=1e-9)
    assert all(p > 0 for _, p in distribution)
    assert min(values) <= distribution[0][0] and distribution[-1][0] <= max(values)
    assert [v for v, _ in distribution] == sorted(v for v, _ in distribution)


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_median_distribution_matches_resampling(n: int) -> None:
    """The exact law is the one resampling estimates (200 000 resamples: within 0.005)."""
    rng = random.Random(n)
    values = [rng.uniform(1, 2) for _ in range(n)]
    counts = collections.Counter(statistics.median(rng.choices(values, k=n)) for _ in range(200_000))
    for value, probability in median_distribution(values):
        assert abs(probability - counts[value] / 200_000) < 0.005


def test_interval_brackets_the_ratio_and_is_deterministic() -> None:
    now, before = [110.0, 120.0, 105.0, 130.0, 115.0], [100.0, 98.0, 103.0, 101.0, 99.0]
    comparison = compare(now, before)
    assert comparison is not None and comparison.low is not None and comparison.high is not None
    assert comparison.low <= comparison.ratio <= comparison.high
    assert comparison.ratio == pytest.approx(115 / 100)
    assert compare(now, before) == comparison
    assert comparison.describe() == "95% interval +5.0% to +30.0%, median of 5 vs 5 repeats"


def test_the_rule_fails_only_when_the_lower_bound_is_over_the_limit() -> None:
    noisy = compare([95.0, 140.0, 100.0, 150.0, 125.0], [100.0, 90.0, 110.0, 95.0, 105.0])
    assert noisy is not None and noisy.ratio > 1.2  # today's rule would fail it at +10 %
    assert not fails(noisy, 0.10)
    clear = compare([150.0, 152.0, 149.0, 151.0, 150.0], [100.0, 101.0, 99.0, 100.0, 100.5])
    assert clear is not None and fails(clear, 0.10) and not fails(clear, 0.60)


def test_one_repeat_on_a_side_falls_back_to_the_ratio_and_says_so() -> None:
    single = compare([121.0], [100.0, 101.0])
    assert single == Comparison(pytest.approx(121 / 100.5), None, None, 1, 2)
    assert not single.separates_noise and fails(single, 0.10)
    assert "cannot separate a change from noise" in single.describe()
    assert single.to_json()["method"] == "single"


def test_no_comparison_without_a_positive_median_before() -> None:
    assert compare([1.0], []) is None
    assert compare([1.0, 2.0], [0.0, 0.0, 1.0]) is None


@given(st.lists(energies, min_size=2, max_size=7), st.lists(energies, min_size=2, max_size=7),
       st.floats(min_value=1.01, max_value=10))
def test_a_bigger_growth_never_fails_less(now: list, before: list, factor: float) -> None:
    """Scaling every new figure up moves the whole interval up: the rule is monotone in the change."""
    base, grown = compare(now, before), compare([value * factor for value in now], before)
    assert base is not None and grown is not None
    assert grown.low >= base.low * (1 - 1e-9)  # type: ignore[operator]
    assert not (fails(base, 0.1) and not fails(grown, 0.1))


def test_many_repeats_sample_the_ratio_with_a_fixed_seed() -> None:
    """30 vs 30 repeats is over the exact pairs' budget: sampled, still the same answer each time."""
    rng = random.Random(3)
    now, before = [rng.uniform(1.4, 1.6) for _ in range(30)], [rng.uniform(0.9, 1.1) for _ in range(30)]
    first, second = compare(now, before), compare(now, before)
    assert first == second and first is not None and 1.2 < first.low < first.ratio < first.high < 1.9  # type: ignore[operator]


def test_spread_is_a_robust_coefficient_of_variation() -> None:
    assert spread([100.0]) is None
    assert spread([100.0, 100.0, 100.0]) == 0
    assert spread([90.0, 100.0, 110.0, 100.0, 1000.0]) == pytest.approx(1.4826 * 10 / 100)


def test_floor_prefers_runs_of_the_same_commit() -> None:
    runs = [StoredFigures("abc", (100.0, 101.0)), StoredFigures("abc", (120.0, 119.0)),
            StoredFigures("def", (300.0, 310.0))]
    floor = noise_floor(runs)
    assert floor is not None and floor.source == "spread of 2 stored runs of one commit"
    assert floor.noise == pytest.approx(spread([100.5, 119.5]))


def test_floor_from_the_repeats_without_a_commit_run_twice() -> None:
    runs = [StoredFigures("abc", (100.0, 110.0, 90.0)), StoredFigures(None, (50.0, 60.0, 40.0)),
            StoredFigures("def", (5.0,))]
    floor = noise_floor(runs)
    assert floor is not None and floor.source == "spread of the repeats of 2 stored runs"
    assert floor.noise == pytest.approx(statistics.median([spread([100.0, 110.0, 90.0]), spread([50.0, 60.0, 40.0])]))
    assert floor.describe() == f"{floor.noise:.0%} (spread of the repeats of 2 stored runs)"


def test_no_floor_from_single_figures_of_different_commits() -> None:
    assert noise_floor([StoredFigures("a", (1.0,)), StoredFigures("b", (2.0,))]) is None
    assert noise_floor([]) is None
