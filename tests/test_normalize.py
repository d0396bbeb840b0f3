"""The normalisation and energy-weighting formulas, on hand-computed values."""

from __future__ import annotations

import math

import pytest

from pytest_energy.account.normalize import (
    Normalization,
    TwoPointFit,
    energy_weighted,
    ew_scores,
    one_point_factor,
    ranking_score_missing,
    relative_ranking_score,
)
from pytest_energy.account.presets import ReferenceValues, resolve_reference

KWH = 3.6e6


def test_one_point_factor_is_reference_over_local():
    # A machine twice as hungry as the reference machine halves every figure.
    assert one_point_factor(0.032 * KWH, 0.064 * KWH) == pytest.approx(0.5)
    assert one_point_factor(100.0, 40.0) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("reference_j", "local_j", "phrase"),
    [(None, 10.0, "reference energy"), (10.0, None, "local baseline energy"), (10.0, 0.0, "more than zero"),
     (-1.0, 10.0, "more than zero"), (10.0, math.nan, "finite"), (10.0, math.inf, "finite")],
)
def test_one_point_factor_rejects_missing_or_non_positive(reference_j, local_j, phrase):
    with pytest.raises(ValueError, match=phrase):
        one_point_factor(reference_j, local_j)


def test_one_point_normalization_scales_every_energy():
    rule = Normalization.one_point(reference_j=115200.0, local_j=36000.0)  # 0.032 kWh vs 0.01 kWh
    assert rule.rule == "one-point"
    assert rule.normalize(3.139 * KWH) / KWH == pytest.approx(10.0448)  # Li_USTC_task4a_1, 2023
    assert rule.to_json() == {
        "rule": "one-point", "factor": pytest.approx(3.2), "a": None, "b_j": None,
        "points": [{"local_j": 36000.0, "reference_j": 115200.0}],
    }


def test_two_point_fit_passes_through_both_points():
    fit = TwoPointFit.fit((20.0, 30.0), (100.0, 110.0))  # local overhead 10 J lower than the reference
    assert (fit.a, fit.b) == (pytest.approx(1.0), pytest.approx(10.0))
    assert fit.normalize(20.0) == pytest.approx(30.0)
    assert fit.normalize(100.0) == pytest.approx(110.0)
    assert fit.normalize(60.0) == pytest.approx(70.0)


def test_two_point_normalization_reports_its_rule_and_line():
    rule = Normalization.two_point((10.0, 5.0), (50.0, 45.0))
    assert rule.rule == "two-point"
    assert rule.normalize(30.0) == pytest.approx(25.0)
    data = rule.to_json()
    assert (data["rule"], data["factor"]) == ("two-point", None)
    assert (data["a"], data["b_j"]) == (pytest.approx(1.0), pytest.approx(-5.0))
    assert len(data["points"]) == 2


def test_two_point_differs_from_one_point_when_there_is_an_offset():
    # Reference = 2 × local + 100 J: one point (the large workload) misses the offset on small tests.
    two = Normalization.two_point((100.0, 300.0), (1000.0, 2100.0))
    one = Normalization.one_point(reference_j=2100.0, local_j=1000.0)
    assert two.normalize(10.0) == pytest.approx(120.0)
    assert one.normalize(10.0) == pytest.approx(21.0)


@pytest.mark.parametrize(
    ("first", "second", "phrase"),
    [((10.0, 5.0), (10.0, 8.0), "different size"), ((10.0, 50.0), (20.0, 40.0), "cost more"),
     ((0.0, 5.0), (10.0, 8.0), "more than zero")],
)
def test_two_point_fit_rejects_unusable_points(first, second, phrase):
    with pytest.raises(ValueError, match=phrase):
        TwoPointFit.fit(first, second)


def test_normalization_rejects_unknown_rule_and_mismatched_parameters():
    with pytest.raises(ValueError, match="unknown normalization rule 'three-point'"):
        Normalization(rule="three-point", factor=1.0)
    with pytest.raises(ValueError, match="one-point normalization takes a factor"):
        Normalization(rule="one-point")
    with pytest.raises(ValueError, match="two-point normalization takes a fit"):
        Normalization(rule="two-point", factor=2.0)


def test_energy_weighted_rewards_systems_cheaper_than_the_baseline_without_clipping():
    assert energy_weighted(0.5, baseline_phase_energy_j=2.0, normalized_phase_energy_j=1.0) == pytest.approx(1.0)
    assert energy_weighted(0.5, baseline_phase_energy_j=1.0, normalized_phase_energy_j=4.0) == pytest.approx(0.125)
    # Baseline_task4a_2 (2023): PSDS1 0.5081 on 1.821 kWh of training against the baseline's 1.39 kWh.
    assert energy_weighted(0.5085, 1.39 * KWH, 1.821 * KWH) == pytest.approx(0.38816, abs=1e-4)


@pytest.mark.parametrize(
    ("score", "baseline", "normalized"), [(0.5, 1.0, 0.0), (0.5, None, 1.0), (math.nan, 1.0, 1.0), (True, 1.0, 1.0)]
)
def test_energy_weighted_rejects_unusable_inputs(score, baseline, normalized):
    with pytest.raises(ValueError):
        energy_weighted(score, baseline, normalized)


def test_relative_ranking_score_averages_ratios_over_the_baselines_scores():
    baseline = {"psds1": 0.25, "psds2": 0.5}
    assert relative_ranking_score({"psds1": 0.5, "psds2": 0.5}, baseline) == pytest.approx(1.5)
    assert relative_ranking_score({"psds1": 0.5, "psds2": 0.5, "f1": 0.9}, baseline) == pytest.approx(1.5)
    assert relative_ranking_score({"psds2": 0.25}, baseline) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no score to rank against the baseline"):
        relative_ranking_score({"f1": 0.9}, baseline)
    with pytest.raises(ValueError, match="baseline score psds1 must be more than zero"):
        relative_ranking_score({"psds1": 0.5}, {"psds1": 0.0})


def test_ew_scores_weights_every_score_and_the_ranking_score_by_the_phase_energy():
    reference = ReferenceValues(
        baseline_train_energy_j=2.0, baseline_test_energy_j=0.1, baseline_scores={"psds1": 0.25, "psds2": 0.5}
    )
    scores = {"psds1": 0.5, "psds2": 0.5}
    train = ew_scores(scores, "train", energy_j=4.0, reference=reference)
    assert train == {"psds1": pytest.approx(0.25), "psds2": pytest.approx(0.25), "ranking_score": pytest.approx(0.75)}
    test = ew_scores(scores, "test", energy_j=0.05, reference=reference)
    assert test == {"psds1": pytest.approx(1.0), "psds2": pytest.approx(1.0), "ranking_score": pytest.approx(3.0)}


def test_ew_scores_keeps_a_recorded_ranking_score_and_skips_ranking_without_baseline_scores():
    reference = ReferenceValues(baseline_train_energy_j=2.0, baseline_test_energy_j=0.1, baseline_scores={"psds1": 0.25})
    assert ew_scores({"psds1": 0.5, "ranking_score": 3.0}, "train", 1.0, reference) == {
        "psds1": pytest.approx(1.0), "ranking_score": pytest.approx(6.0)}
    assert ew_scores({"f1": 0.5}, "train", 1.0, reference) == {"f1": pytest.approx(1.0)}


def test_ranking_score_needs_every_baseline_score_not_some_of_them():
    """DCASE 2023 ranks by the mean of PSDS1 and PSDS2 ratios: PSDS1 alone is not that score."""
    reference = resolve_reference("dcase2023", {})
    only_psds1 = {"psds1": 0.4}
    assert "ranking_score" not in ew_scores(only_psds1, "train", 1.0, reference)
    why = ranking_score_missing(only_psds1, reference)
    assert why is not None and "record psds2 too" in why and "preset dcase2023" in why
    both = {"psds1": 0.4, "psds2": 0.6}
    assert ranking_score_missing(both, reference) is None
    assert ew_scores(both, "train", 1.0, reference)["ranking_score"] == pytest.approx(
        relative_ranking_score(both, reference.baseline_scores) * reference.baseline_train_energy_j)
    assert ranking_score_missing({"f1": 0.9}, reference) is None  # no baseline score recorded: nothing asked


def test_ew_scores_names_the_missing_baseline_energy_and_rejects_unknown_phases():
    reference = resolve_reference(None, {"baseline-train-energy": "1.39 kWh"})
    with pytest.raises(ValueError, match="no baseline-test-energy.*preset"):
        ew_scores({"psds1": 0.5}, "test", 1.0, reference)
    with pytest.raises(ValueError, match="unknown phase 'inference'"):
        ew_scores({"psds1": 0.5}, "inference", 1.0, reference)


def test_ew_scores_with_the_2023_preset_matches_a_published_row():
    # Li_USTC_task4a_1 (2023): E_local 0.01 kWh, training 3.139 kWh, test 0.008 kWh.
    reference = resolve_reference("dcase2023", {})
    rule = Normalization.one_point(reference.reference_energy_j, 0.01 * KWH)
    psds = {"psds1": 0.5375, "psds2": 0.7694}
    train = ew_scores(psds, "train", rule.normalize(3.139 * KWH), reference)
    test = ew_scores(psds, "test", rule.normalize(0.008 * KWH), reference)
    assert train["psds1"] == pytest.approx(0.07438, abs=2e-4)  # published 0.07437779673987208
    assert test["psds1"] == pytest.approx(0.39279, rel=0.02)  # published from E_norm rounded to 0.026 kWh
