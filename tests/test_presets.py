"""Presets carry the organisers' published values; user values replace them one by one."""

from __future__ import annotations

import pytest

from pytest_energy.account.presets import PRESETS, resolve_reference
from pytest_energy.units import QuantityError

KWH = 3.6e6


@pytest.mark.parametrize(
    ("preset", "reference_kwh", "train_kwh", "test_kwh"),
    [("dcase2022", None, 1.717, 0.030), ("dcase2023", 0.032, 1.39, 0.019), ("dcase2024", 0.029, 1.666, 0.143)],
)
def test_presets_hold_the_published_energies_in_joules(preset, reference_kwh, train_kwh, test_kwh):
    values = resolve_reference(preset, {})
    expected_reference = None if reference_kwh is None else pytest.approx(reference_kwh * KWH)
    assert values.reference_energy_j == expected_reference
    assert values.baseline_train_energy_j == pytest.approx(train_kwh * KWH)
    assert values.baseline_test_energy_j == pytest.approx(test_kwh * KWH)
    assert values.normalizes is (reference_kwh is not None)
    assert values.origins["baseline-train-energy"] == f"preset {preset}"


def test_baseline_scores_per_preset():
    assert resolve_reference("dcase2023", {}).baseline_scores == {
        "psds1": pytest.approx(0.3258, abs=1e-4), "psds2": pytest.approx(0.5390, abs=1e-4)}
    assert resolve_reference("dcase2022", {}).baseline_scores == {
        "psds1": pytest.approx(0.3147, abs=1e-4), "psds2": pytest.approx(0.5472, abs=1e-4)}
    assert resolve_reference("dcase2024", {}).baseline_scores == {}  # not sourced; the user supplies them


def test_no_preset_and_no_user_values_leaves_everything_unset():
    values = resolve_reference(None, {})
    assert (values.reference_energy_j, values.baseline_train_energy_j, values.baseline_test_energy_j) == (None, None, None)
    assert values.baseline_scores == {} and values.origins == {} and not values.normalizes


def test_user_values_override_the_preset_one_by_one():
    user = {"reference-energy": "0.05 kWh", "baseline-test-energy": "72 kJ", "meter": "nvml"}
    values = resolve_reference("dcase2023", user)
    assert values.reference_energy_j == pytest.approx(0.05 * KWH)
    assert values.baseline_test_energy_j == pytest.approx(72e3)
    assert values.baseline_train_energy_j == pytest.approx(1.39 * KWH)  # still the preset's
    assert values.origins == {
        "reference-energy": "user", "baseline-test-energy": "user",
        "baseline-train-energy": "preset dcase2023", "baseline-scores": "preset dcase2023"}


def test_user_baseline_scores_replace_the_presets_table():
    values = resolve_reference("dcase2023", {"baseline-scores": {"psds1": 0.4}})
    assert values.baseline_scores == {"psds1": 0.4}
    assert values.origins["baseline-scores"] == "user"


def test_a_user_reference_energy_turns_normalisation_on_for_2022():
    values = resolve_reference("dcase2022", {"reference-energy": "0.03 kWh"})
    assert values.normalizes and values.reference_energy_j == pytest.approx(108e3)


def test_resolving_does_not_change_the_preset():
    resolve_reference("dcase2023", {"reference-energy": "1 J", "baseline-scores": {"psds1": 0.4}})
    assert PRESETS["dcase2023"].reference_energy_j == pytest.approx(0.032 * KWH)
    assert PRESETS["dcase2023"].baseline_scores["psds2"] == pytest.approx(0.539, abs=1e-3)


def test_unknown_preset_names_it_and_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'dcase2025'; known presets: dcase2022, dcase2023, dcase2024"):
        resolve_reference("dcase2025", {})


@pytest.mark.parametrize(
    ("user", "phrase"),
    [({"reference-energy": 0.032}, "reference-energy: invalid energy '0.032': no unit"),
     ({"baseline-train-energy": "2 kW"}, "baseline-train-energy: .*unit of power"),
     ({"baseline-test-energy": "0 J"}, "baseline-test-energy: '0 J' must be more than zero"),
     ({"baseline-scores": [0.3, 0.5]}, "baseline-scores: .* is not a table of scores"),
     ({"baseline-scores": {"psds1": "high"}}, "baseline-scores: psds1 = 'high' must be a number more than zero"),
     ({"baseline-scores": {"psds1": 0}}, "psds1 = 0 must be a number more than zero")],
)
def test_invalid_user_values_say_which_key_and_what_to_write(user, phrase):
    with pytest.raises(ValueError, match=phrase):
        resolve_reference("dcase2023", user)


def test_quantity_errors_stay_quantity_errors():
    with pytest.raises(QuantityError):
        resolve_reference(None, {"reference-energy": "lots"})


def test_to_json_is_plain_data():
    data = resolve_reference("dcase2024", {}).to_json()
    assert data["reference_energy_j"] == pytest.approx(0.029 * KWH)
    assert data["baseline_scores"] == {}
    assert isinstance(data["origins"], dict)
