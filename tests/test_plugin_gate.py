"""Repeats, warm-up, cooldown and the noise-aware regression gate, through real pytest runs.

Figures are measured for real with CodeCarbon's offline tracker. Where a test needs a stored
run with a known spread, it stores a real run first and rewrites that run's repeats around
its own median, far enough from it (a factor of two or ten) that the tracker's noise between
the two runs cannot change the verdict.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable, List, Sequence

import pytest

from pytest_energy.store.runs import RunStore, check_run_document
from suites import BURN

CODECARBON = "--energy-meter=codecarbon"

COUNTED = BURN + """
import os
import time


@pytest.mark.energy(repeats=3, warmup=2, cooldown="0.2s")
def test_counted():
    with open("calls.txt", "a") as calls:
        calls.write(f"{time.monotonic()}\\n")
    burn(0.02)
"""

GATED = BURN + """

@pytest.mark.energy
def test_workload():
    burn(0.05)
"""

ONE_HEAVY_REPEAT = BURN + """
import pathlib


@pytest.mark.energy(repeats=3, cap={cap!r})
def test_one_heavy_repeat():
    calls = pathlib.Path("calls.txt")
    count = len(calls.read_text().splitlines()) if calls.exists() else 0
    calls.write_text("x\\n" * (count + 1))
    burn(1.0 if count % 3 == 1 else 0.01)
"""


def stored_run(root: Path) -> Path:
    [path] = sorted((root / ".energy").glob("*/*.json"))
    return path


def rewrite_repeats(path: Path, factors: Sequence[float], divide_by: float) -> List[float]:
    """Give the stored test the repeats ``median / divide_by * factor``; returns them."""
    document = json.loads(path.read_text(encoding="utf-8"))
    [test] = document["tests"]
    median = test["energy_j"]
    repeats = [median / divide_by * factor for factor in factors]
    test["repeats"] = {"energy_j": repeats, "median_j": statistics.median(repeats), "spread": None, "warmup": 0,
                       "cooldown_s": 0.0}
    test["energy_j"] = statistics.median(repeats)
    check_run_document(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    return repeats


@pytest.fixture
def stored(run_energy: Callable, pytester: pytest.Pytester) -> Callable[..., Path]:
    def make(*options: str) -> Path:
        pytester.makepyfile(test_gate=GATED)
        run_energy(CODECARBON, "--energy-autosave", *options).result.assert_outcomes(passed=1)
        return stored_run(pytester.path)

    return make


# -- repeats ------------------------------------------------------------------------------------


def test_repeats_run_the_body_after_its_warm_up_and_record_every_figure(
    run_energy: Callable, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_counted=COUNTED)
    run = run_energy(CODECARBON)
    run.result.assert_outcomes(passed=1)  # one pytest test
    starts = [float(line) for line in (pytester.path / "calls.txt").read_text().splitlines()]
    assert len(starts) == 5  # 2 warm-up runs, 3 measured
    assert all(later - earlier >= 0.2 for earlier, later in zip(starts[1:], starts[2:]))  # cooldown after warm-up, between
    entry = run.entry("test_counted")
    repeats = entry["repeats"]
    assert len(repeats["energy_j"]) == 3 and all(energy > 0 for energy in repeats["energy_j"])
    assert repeats["median_j"] == statistics.median(repeats["energy_j"]) == entry["energy_j"]
    assert (repeats["warmup"], repeats["cooldown_s"]) == (2, 0.2)
    assert repeats["spread"] is not None and repeats["spread"] >= 0


def test_the_repeats_option_and_pyproject_key_apply_to_every_measured_test(
    run_energy: Callable, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_gate=GATED)
    assert len(run_energy(CODECARBON, "--energy-repeats=4").entry("test_workload")["repeats"]["energy_j"]) == 4
    pytester.makepyprojecttoml('[tool.pytest-energy]\nrepeats = 2\nwarmup = 1\n')
    entry = run_energy(CODECARBON).entry("test_workload")
    assert (len(entry["repeats"]["energy_j"]), entry["repeats"]["warmup"]) == (2, 1)


@pytest.mark.parametrize("argument", ["repeats=0", "warmup=-1", 'cooldown="soon"', "repeats=True"])
def test_a_bad_repeat_argument_is_a_usage_error_naming_it(pytester: pytest.Pytester, argument: str) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.energy({argument})\ndef test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    name = argument.split("=")[0]
    assert any(f"energy marker {name}:" in line for line in result.errlines), result.errlines


def test_caps_apply_to_the_median_of_the_repeats_unless_told_otherwise(
    run_energy: Callable, pytester: pytest.Pytester
) -> None:
    """One repeat of three burns 100 times the others: a cap between its figure and theirs fails it on max only."""
    pytester.makepyfile(test_heavy=ONE_HEAVY_REPEAT.format(cap="1MWh"))
    figures = run_energy(CODECARBON).entry("test_one_heavy_repeat")["repeats"]["energy_j"]
    cap = f"{(statistics.median(figures) * max(figures)) ** 0.5}J"
    pytester.makepyfile(test_heavy=ONE_HEAVY_REPEAT.format(cap=cap))
    (pytester.path / "calls.txt").unlink()
    median = run_energy(CODECARBON)
    median.result.assert_outcomes(passed=1)
    assert median.entry("test_one_heavy_repeat")["verdict"] == "pass"
    for cap_on in ("max", "each"):
        (pytester.path / "calls.txt").unlink()
        run = run_energy(CODECARBON, f"--energy-cap-on={cap_on}")
        run.result.assert_outcomes(failed=1)
        run.result.stdout.fnmatch_lines(["*energy (largest of 3 repeats) * exceeds cap*"])


# -- the comparison with a stored run -------------------------------------------------------------


def test_a_noisy_stored_run_does_not_fail_a_growth_the_interval_cannot_separate(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Today's rule fails it (the medians' ratio is about 2); the interval's lower bound is under +10 %."""
    monkeypatch.setenv("COLUMNS", "200")  # the comparison table with every gate column
    rewrite_repeats(stored("--energy-repeats=5"), [0.4, 0.6, 1.0, 4.0, 8.0], divide_by=2)
    run = run_energy(CODECARBON, "--energy-repeats=5", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    comparison = run.entry("test_workload")["comparison"]
    assert comparison["verdict"] == "pass" and comparison["method"] == "bootstrap-median"
    assert comparison["ratio"] > 1.1 > comparison["low"]
    assert comparison["repeats"] == [5, 5] and comparison["limit"] == pytest.approx(0.10)
    run.result.stdout.fnmatch_lines(["energy compared with *.json",
                                     "test * before * after * change * interval * repeats * limit * noise * gate",
                                     "test_gate.py::test_workload * +*% * *%..+*% * 5 vs 5 * +10% * *% * pass",
                                     "  interval: 95% bootstrap interval of the ratio of medians*"])


def test_a_clear_growth_fails_with_its_interval_in_the_message(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path]
) -> None:
    path = stored("--energy-repeats=5")
    rewrite_repeats(path, [0.9, 0.95, 1.0, 1.05, 1.1], divide_by=10)
    run = run_energy(CODECARBON, "--energy-repeats=5", "--energy-compare-fail=10%")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines([f"*energy * grew +* over * in {path.name} (limit +10%); 95% interval +*% to +*%, "
                                     "median of 5 vs 5 repeats*"])
    entry = run.entry("test_workload")
    assert entry["verdict"] == "regression" and entry["comparison"]["low"] > 1.1


def test_one_figure_a_side_falls_back_to_the_ratio_and_says_so(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path]
) -> None:
    path = stored()
    rewrite_repeats(path, [1.0], divide_by=10)
    run = run_energy(CODECARBON, "--energy-compare-fail=10%")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*(limit +10%); 1 vs 1 repeats: one figure on a side cannot separate a change "
                                     "from noise, decided on the figures alone*"])
    assert run.entry("test_workload")["comparison"]["method"] == "single"


def test_a_run_stored_before_repeats_existed_is_still_compared(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path]
) -> None:
    """An older stored run has no ``repeats``: its one figure is compared with the new run's repeats."""
    path = stored()
    document = json.loads(path.read_text(encoding="utf-8"))
    assert "repeats" not in document["tests"][0]
    document["tests"][0]["energy_j"] *= 100  # far heavier: the new run passes
    path.write_text(json.dumps(document), encoding="utf-8")
    run = run_energy(CODECARBON, "--energy-repeats=3", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    assert run.entry("test_workload")["comparison"]["repeats"] == [3, 1]


# -- the noise floor and auto ------------------------------------------------------------------------


def test_a_limit_under_the_noise_floor_is_reported(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path]
) -> None:
    rewrite_repeats(stored("--energy-repeats=5"), [0.5, 0.7, 1.0, 1.3, 1.6], divide_by=0.2)  # far heavier: passes
    run = run_energy(CODECARBON, "--energy-repeats=5", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*test_workload: the limit +10% is below this runner's noise of 44% (spread of "
                                     "the repeats of 1 stored run)*"])
    floor = run.entry("test_workload")["comparison"]["noise_floor"]
    assert floor["noise"] == pytest.approx(1.4826 * 0.3) and floor["source"] == "spread of the repeats of 1 stored run"


def test_auto_uses_the_noise_floor_as_the_limit(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path]
) -> None:
    """With a floor of 44 %: a tenfold growth fails, at "limit +44.478%", naming the floor."""
    rewrite_repeats(stored("--energy-repeats=5"), [0.5, 0.7, 1.0, 1.3, 1.6], divide_by=10)
    run = run_energy(CODECARBON, "--energy-repeats=5", "--energy-compare-fail=auto")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*(limit +44.478%: this runner's noise, the spread of the repeats of 1 stored run)*"])
    assert run.entry("test_workload")["comparison"]["limit"] == pytest.approx(1.4826 * 0.3)


def test_auto_without_a_floor_does_not_gate_and_says_why(
    run_energy: Callable, pytester: pytest.Pytester, stored: Callable[..., Path]
) -> None:
    rewrite_repeats(stored(), [1.0], divide_by=10)  # one figure, no commit: no floor
    run = run_energy(CODECARBON, "--energy-compare-fail=auto")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*test_workload: --energy-compare-fail=auto has no noise floor for it yet*"])


def test_stored_runs_keep_the_repeats_and_stay_valid(run_energy: Callable, pytester: pytest.Pytester,
                                                     stored: Callable[..., Path]) -> None:
    path = stored("--energy-repeats=3")
    document = RunStore.read(path)
    assert len(document["tests"][0]["repeats"]["energy_j"]) == 3


def test_the_window_closes_with_the_test_body_before_pytests_own_call_hooks(pytester: pytest.Pytester) -> None:
    """pytest's trylast ``pytest_runtest_call`` hooks (unraisableexception's gc.collect: 0.45 s a test here with
    CodeCarbon loaded) run after the body: outside its window, as outside the windows of its other repeats."""
    pytester.makeconftest("""
import pytest
from pytest_energy.session_plugin import STATE


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item):
    with open("window.txt", "a") as out:
        out.write(f"{item.stash[STATE].in_call}\\n")
""")
    pytester.makepyfile(test_body="import pytest\n\n@pytest.mark.energy(repeats=2)\ndef test_x():\n    pass\n")
    pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=codecarbon").assert_outcomes(passed=1)
    assert (pytester.path / "window.txt").read_text().split() == ["False"]


# -- energy per unit of work ----------------------------------------------------------------------

PER_UNIT = BURN + """

@pytest.mark.energy(cap_per_unit="1 J/sample")
def test_cheap_per_sample(energy):
    burn(0.02)
    energy.record_work(samples=1e6)


@pytest.mark.energy(cap_per_unit="1 J/sample")
def test_dear_per_sample(energy):
    burn(0.02)
    energy.record_work(samples=1e-6)


@pytest.mark.energy(cap_per_unit="1 J/sample")
def test_no_work_recorded():
    burn(0.02)


@pytest.mark.energy(cap_per_unit="1 J/sample")
def test_other_unit(energy):
    energy.record_work(epochs=2)
"""


def test_cap_per_unit_applies_to_energy_per_recorded_unit(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_work=PER_UNIT)
    run = run_energy(CODECARBON)
    run.result.assert_outcomes(passed=1, failed=3)
    cheap = run.entry("test_cheap_per_sample")
    assert cheap["verdict"] == "pass" and cheap["work"]["unit"] == "sample"
    assert cheap["work"]["energy_per_unit_j"] == pytest.approx(cheap["energy_j"] / 1e6)
    assert run.entry("test_dear_per_sample")["verdict"] == "over-cap"
    run.result.stdout.fnmatch_lines([
        "energy per sample * (* J over 1e-06 samples) exceeds cap 1.00 J/sample",
        "cannot enforce cap 1.00 J/sample: it recorded no work (call energy.record_work(samples=...) in the test)",
        "cannot enforce cap 1.00 J/sample: it recorded work in epochs (call energy.record_work(samples=...) in the test)",
    ], consecutive=False)
    assert run.entry("test_no_work_recorded")["verdict"] == "unmeasured"


@pytest.mark.parametrize(("argument", "message"), [
    ('cap_per_unit="5 J"', "write an energy, a slash and a unit of work"),
    ('cap_per_unit="5 J/parrot"', "unknown unit of work 'parrot'"),
    ('cap_per_unit="5 kW/sample"', "unit of power"),
])
def test_a_bad_cap_per_unit_is_a_usage_error(pytester: pytest.Pytester, argument: str, message: str) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.energy({argument})\ndef test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("energy marker cap_per_unit:" in line and message in line for line in result.errlines), result.errlines


@pytest.mark.parametrize("call", ["record_work()", "record_work(samples=1, epochs=2)", "record_work(parrots=3)",
                                  "record_work(samples=0)", "record_work(samples=float('nan'))"])
def test_record_work_refuses_what_is_not_one_positive_amount(pytester: pytest.Pytester, call: str) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.energy\ndef test_x(energy):\n    energy.{call}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: record_work *"])


def test_repeats_travel_from_xdist_workers_with_their_median(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=GATED, test_other=GATED.replace("test_workload", "test_other_workload"))
    run = run_energy(CODECARBON, "--energy-repeats=3", "-n", "2")
    run.result.assert_outcomes(passed=2)
    for name in ("test_workload", "test_other_workload"):
        entry = run.entry(name)
        assert "worker" in entry and len(entry["repeats"]["energy_j"]) == 3
        assert entry["energy_j"] == statistics.median(entry["repeats"]["energy_j"])
