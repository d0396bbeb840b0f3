"""Hardware normalisation through real pytest runs: the cached baseline, normalised energy, EW scores.

Every run measures for real with CodeCarbon. Figures differ from run to run, so the
tests compare a run's figures with each other (``E_norm = E × E_ref / E_local``), and
choose reference energies and caps far enough apart that the verdicts cannot flip.
``run_energy`` passes ``-p no:cacheprovider``, so the baseline cache lives where the
plugin falls back to: ``.pytest_cache/d/energy-baseline`` under the run's root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import jsonschema
import pytest

from junit_read import junit_properties_by_test
from pytest_energy.account.presets import ReferenceValues
from pytest_energy.baseline_plan import MARKER, BaselinePlan
from pytest_energy.account import baseline_cache
from pytest_energy.account.baseline_cache import BaselineCache, BaselineEntry
from pytest_energy.config import ConfigError, Settings
from pytest_energy.units import format_energy
from suites import BURN, NORMALISED_CAP_SUITE

CACHE_DIR = Path(".pytest_cache", "d", "energy-baseline")
OLD_MEASUREMENT = "2000-01-01T00:00:00+00:00"


# The baseline comes last in the file: the plugin must move it first to normalise test_train.
SUITE = BURN + """

@pytest.mark.energy(phase="train")
def test_train(energy):
    burn(0.2)
    energy.record_score("psds1", 0.5)


@pytest.mark.energy_baseline
def test_reference_workload():
    burn(0.2)
"""

REFERENCE = """
[tool.pytest-energy]
reference-energy = "10 J"
baseline-train-energy = "20 J"
baseline-test-energy = "5 J"
"""

SYSTEM_SUITE = BURN + """

@pytest.mark.energy_baseline
def test_reference_workload():
    burn(0.2)


@pytest.mark.energy(phase="train", system="sed")
def test_train():
    burn(0.2)


@pytest.mark.energy(phase="test", system="sed")
def test_inference(energy):
    burn(0.1)
    energy.record_score("psds1", 0.5)
"""

# dcase2023 gives the baseline's phase energies and scores; the user's reference energy replaces the preset's.
PRESET_WITH_OVERRIDE = """
[tool.pytest-energy]
preset = "dcase2023"
reference-energy = "10 J"
"""

CAPPED_ONLY = BURN + """

@pytest.mark.energy(cap="1 MWh")
def test_capped():
    burn(0.05)
"""


@pytest.fixture
def measure(run_energy: Callable[..., Any]) -> Callable[..., Any]:
    """``run_energy`` with CodeCarbon (the same meter, so the same fingerprint, everywhere) and skip reasons."""

    def run(*args: str) -> Any:
        return run_energy("--energy-meter=codecarbon", "-rs", *args)

    return run


def cache_files(pytester: pytest.Pytester) -> List[Path]:
    """The one-point cache entries, one per hardware fingerprint."""
    return sorted(Path(pytester.path, CACHE_DIR).glob("*.json"))


def only_cache_entry(pytester: pytest.Pytester) -> Dict[str, Any]:
    """The one cache entry, validated as the plugin would validate it."""
    [path] = cache_files(pytester)
    data = json.loads(path.read_text(encoding="utf-8"))
    BaselineEntry.from_json(data)
    assert path.name == f"{data['fingerprint']}.json"
    return data


def seed_cache(pytester: pytest.Pytester, measure: Callable[..., Any]) -> Path:
    """Measure the baseline once; return the path of its cache entry."""
    pytester.makepyfile(SUITE)
    pytester.makepyprojecttoml(REFERENCE)
    measure().result.assert_outcomes(passed=2)
    [path] = cache_files(pytester)
    return path


def baseline_of(run: Any) -> Dict[str, Any]:
    """The session's one baseline target, as the JSON report gives it."""
    [target] = run.report["baseline"]
    assert target["nodeid"].endswith("::test_reference_workload")
    return target


def schema_errors(report: Dict[str, Any], schema: Dict[str, Any]) -> List[str]:
    """Where ``report`` breaks the shipped JSON Schema, one line each."""
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(error.absolute_path)}: {error.message}" for error in checker.iter_errors(report)]


def usage_error_lines(result: pytest.RunResult) -> List[str]:
    return [line for line in result.errlines + result.outlines if line.startswith("ERROR: pytest-energy:")]


def no_crash(result: pytest.RunResult) -> None:
    """The plugin failed nothing of its own: no traceback, no internal error."""
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output


# -- the cache: miss, hit, refresh, off -----------------------------------------------------------


def test_first_run_measures_the_baseline_first_caches_it_and_normalises(
    measure: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a terminal wide enough for every column of the energy table
    pytester.makepyfile(SUITE)
    pytester.makepyprojecttoml(REFERENCE)
    run = measure()
    run.result.assert_outcomes(passed=2)
    assert run.nodeids == ["test_reference_workload", "test_train"]
    baseline_test, train = run.entry("test_reference_workload"), run.entry("test_train")
    assert (baseline_test["phase"], baseline_test["outcome"]) == ("baseline", "passed")
    assert baseline_test["energy_j"] > 0

    target = baseline_of(run)
    assert (target["source"], target["reference_j"]) == ("measured", 10.0)
    assert target["energy_j"] == baseline_test["energy_j"] and target["energies_j"] == [baseline_test["energy_j"]]
    assert target["meter"] == baseline_test["meter"]
    factor = 10.0 / baseline_test["energy_j"]
    assert run.report["normalization"]["rule"] == "one-point"
    assert run.report["normalization"]["factor"] == pytest.approx(factor)
    assert train["energy_normalized_j"] == pytest.approx(train["energy_j"] * factor)
    assert baseline_test["energy_normalized_j"] is None  # the reference workload itself is not normalised

    cached = only_cache_entry(pytester)
    assert cached["fingerprint"] == run.report["environment"]["fingerprint"]
    assert (cached["energy_j"], cached["nodeid"], cached["measured_at"]) == (
        target["energy_j"], baseline_test["nodeid"], target["measured_at"])
    run.result.stdout.fnmatch_lines(
        [
            "test * phase * energy * gpu * cpu * ram * %gpu * normalised * cap * verdict * meter",
            "normalisation: one-point, factor *; E_local * (measured, *, codecarbon-*) -> E_ref 10.0 J",
        ]
    )


def test_second_run_reuses_the_cache_and_skips_the_baseline_test(measure: Callable, pytester: pytest.Pytester) -> None:
    path = seed_cache(pytester, measure)
    cached_text = path.read_text(encoding="utf-8")
    cached = json.loads(cached_text)
    run = measure()
    run.result.assert_outcomes(passed=1, skipped=1, warnings=0)
    run.result.stdout.fnmatch_lines(
        [f"SKIPPED * baseline reused from cache: * measured {cached['measured_at']} with codecarbon-* "
         "(--energy-baseline=refresh measures it again)"]
    )
    skipped = run.entry("test_reference_workload")
    assert (skipped["outcome"], skipped["energy_j"]) == ("skipped", None)
    assert skipped["baseline"]["source"] == "cached"
    target = baseline_of(run)
    assert (target["source"], target["energy_j"], target["measured_at"]) == ("cached", cached["energy_j"], cached["measured_at"])
    factor = 10.0 / cached["energy_j"]
    assert run.report["normalization"]["factor"] == pytest.approx(factor)
    train = run.entry("test_train")
    assert train["energy_normalized_j"] == pytest.approx(train["energy_j"] * factor)
    run.result.stdout.fnmatch_lines(["normalisation: one-point, factor *; E_local * (cached, *) -> E_ref 10.0 J"])
    assert path.read_text(encoding="utf-8") == cached_text


def test_refresh_measures_the_baseline_again_and_replaces_the_entry(measure: Callable, pytester: pytest.Pytester) -> None:
    seed_cache(pytester, measure)
    run = measure("--energy-baseline=refresh", "--energy-baseline-repeats=2")
    run.result.assert_outcomes(passed=2)
    assert run.nodeids[0] == "test_reference_workload"
    target = baseline_of(run)
    assert target["source"] == "measured"
    assert len(target["energies_j"]) == 2 and target["energies_j"][-1] == run.entry("test_reference_workload")["energy_j"]
    assert target["energy_j"] == pytest.approx(sum(target["energies_j"]) / 2)
    cached = only_cache_entry(pytester)
    assert (cached["energies_j"], cached["measured_at"]) == (target["energies_j"], target["measured_at"])
    assert run.report["normalization"]["factor"] == pytest.approx(10.0 / target["energy_j"])


def test_the_baseline_row_shows_the_e_local_that_normalises_in_the_terminal_and_the_github_summary(
    measure: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated, the row shows their mean (not the last repeat); cached, its cached figure (not 'unmeasured')."""
    pytester.makepyfile(SUITE)
    pytester.makepyprojecttoml(REFERENCE)
    summary = Path(pytester.path, "summary.md")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("COLUMNS", "200")
    run = measure("--energy-baseline-repeats=2", "--energy-unit=J")
    run.result.assert_outcomes(passed=2)
    mean = format_energy(baseline_of(run)["energy_j"], "J")  # as the plugin shows it: 5.50 J, where :.3g gives 5.5
    run.result.stdout.fnmatch_lines([f"*::test_reference_workload  baseline * {mean} (mean of 2) *",
                                     f"normalisation: one-point, factor *; E_local {mean} (measured*"])
    assert f"| {mean} (mean of 2) |" in summary.read_text(encoding="utf-8")

    summary.unlink()
    cached = measure("--energy-unit=J")
    cached.result.assert_outcomes(passed=1, skipped=1)
    text = summary.read_text(encoding="utf-8")
    [row] = [line for line in text.splitlines() if "test_reference_workload" in line]
    assert f"| cached {mean} |" in row and "unmeasured" not in row and "| cache |" in row


def test_baseline_off_ignores_the_cache_and_normalises_nothing(measure: Callable, pytester: pytest.Pytester) -> None:
    path = seed_cache(pytester, measure)
    cached_text = path.read_text(encoding="utf-8")
    run = measure("--energy-baseline=off")
    run.result.assert_outcomes(passed=2)
    assert run.report["normalization"] is None
    assert all(entry["energy_normalized_j"] is None for entry in run.report["tests"])
    train = run.entry("test_train")
    assert train["ew_scores"] == {}
    # the baseline is marked and was turned off: say so, not "mark the reference workload"
    assert train["ew_scores_missing"].startswith("no normalisation: the baseline is off (--energy-baseline=off)")
    run.result.stdout.no_fnmatch_line("normalisation:*")
    run.result.stdout.no_fnmatch_line("*normalised*cap*verdict*")
    run.result.stdout.no_fnmatch_line("*mark the reference workload*")
    run.result.stdout.fnmatch_lines(["EW *::test_train: no normalisation: the baseline is off (--energy-baseline=off)*"])
    assert path.read_text(encoding="utf-8") == cached_text


def test_reports_with_a_measured_or_reused_baseline_validate_against_the_schema(
    measure: Callable, pytester: pytest.Pytester, report_schema: Dict[str, Any]
) -> None:
    pytester.makepyfile(SUITE)
    pytester.makepyprojecttoml(REFERENCE)
    measured, reused = measure(), measure()
    assert [baseline_of(run)["source"] for run in (measured, reused)] == ["measured", "cached"]
    assert schema_errors(measured.report, report_schema) + schema_errors(reused.report, report_schema) == []


# -- the cache: entries that must not be trusted ----------------------------------------------------


def describe_other_hardware(entry: Dict[str, Any]) -> BaselineEntry:
    """The same measurement, as if taken on a machine with another CPU."""
    hardware = {**entry["hardware"], "cpu_model": "Another CPU"}
    return BaselineEntry.from_repeats(hardware, entry["energies_j"], entry["meter"], entry["nodeid"])


def write_garbage(path: Path) -> str:
    """Replace the entry with text that is not JSON; return what the discard message says."""
    path.write_text("{garbage", encoding="utf-8")
    return "Expecting property name"


def write_other_hardware(path: Path) -> str:
    """File another machine's valid entry under this machine's name; return what the discard message says."""
    foreign = describe_other_hardware(json.loads(path.read_text(encoding="utf-8")))
    path.write_text(json.dumps(foreign.to_json()), encoding="utf-8")
    return f"it is filed under {path.stem} but describes {foreign.fingerprint}"


@pytest.mark.parametrize("spoil", [write_garbage, write_other_hardware], ids=["garbage", "other-hardware"])
def test_corrupt_or_foreign_entry_is_discarded_with_one_warning_and_measured_again(
    measure: Callable, pytester: pytest.Pytester, spoil: Callable[[Path], str]
) -> None:
    path = seed_cache(pytester, measure)
    why = spoil(path)
    run = measure()
    no_crash(run.result)
    run.result.assert_outcomes(passed=2, warnings=0)
    run.result.stdout.fnmatch_lines(
        [f"*pytest-energy: baseline: discarded the corrupt or foreign baseline cache entry {path}: {why}*; measuring it again"]
    )
    target = baseline_of(run)
    assert target["source"] == "measured" and target["energy_j"] == run.entry("test_reference_workload")["energy_j"]
    assert only_cache_entry(pytester)["energy_j"] == target["energy_j"]
    assert run.report["normalization"]["factor"] == pytest.approx(10.0 / target["energy_j"])


def rewrite_entry(path: Path, **changes: str) -> None:
    """Replace fields of the entry with raw JSON text (so values Python would not write, such as 1e999, get in)."""
    entry = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps({**entry, **{name: f"@{name}@" for name in changes}})
    for name, raw in changes.items():
        text = text.replace(f'"@{name}@"', raw)
    path.write_text(text, encoding="utf-8")


SPOILED_ENTRIES = {  # how an entry is spoiled -> what the discard line says
    "wrong-types": (lambda path: rewrite_entry(path, energies_j='"a lot"', hardware="[1, 2]"), "*"),
    "overflowing-float": (lambda path: rewrite_entry(path, energies_j="[1e999]", energy_j="1e999"),
                          "$.energy_j: inf is not a finite number"),
    "huge-int": (lambda path: rewrite_entry(path, energies_j=f"[{10 ** 400}]", energy_j=f"{10 ** 400}"),
                 "$.energy_j: 1000*… is not a finite number"),
    "zero-energy": (lambda path: rewrite_entry(path, energies_j="[0.0]", energy_j="0.0"),
                    "$.energy_j: 0.0 is less than or equal to the minimum of 0"),
    "future": (lambda path: rewrite_entry(path, measured_at='"2999-01-01T00:00:00+00:00"'),
               "it is dated 2999-01-01T00:00:00+00:00, in the future"),
    "directory": (lambda path: (path.unlink(), path.mkdir(), (path / "x").write_text("x")), "*is a directory, not a regular file*"),
}


@pytest.mark.parametrize("mode", ["use", "refresh"])
@pytest.mark.parametrize("spoiled", sorted(SPOILED_ENTRIES))
def test_an_entry_of_wrong_types_overflowing_future_or_a_directory_is_discarded_not_a_crash(
    measure: Callable, pytester: pytest.Pytester, spoiled: str, mode: str
) -> None:
    path = seed_cache(pytester, measure)
    spoil, why = SPOILED_ENTRIES[spoiled]
    spoil(path)
    run = measure(f"--energy-baseline={mode}")
    no_crash(run.result)
    run.result.assert_outcomes(passed=2, warnings=0)
    discarded = [line for line in run.result.outlines if "discarded the" in line]
    if mode == "use":
        assert len(discarded) == 1, discarded
        run.result.stdout.fnmatch_lines([f"pytest-energy: baseline: discarded the * baseline cache entry {path}: {why}; measuring it again"])
    else:
        assert discarded == []
    assert baseline_of(run)["source"] == "measured"
    assert only_cache_entry(pytester)["energy_j"] == baseline_of(run)["energy_j"]


def test_an_unreadable_entry_is_discarded_with_one_line(
    measure: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = seed_cache(pytester, measure)
    real_read = baseline_cache.read_bytes_bounded

    def refuse(read_path: Path, max_bytes: int) -> bytes:  # root reads a file of mode 000
        if Path(read_path) == path:
            raise PermissionError(13, "Permission denied", str(read_path))
        return real_read(read_path, max_bytes)

    monkeypatch.setattr(baseline_cache, "read_bytes_bounded", refuse)
    run = measure()
    no_crash(run.result)
    run.result.assert_outcomes(passed=2, warnings=0)
    run.result.stdout.fnmatch_lines(
        [f"pytest-energy: baseline: discarded the unreadable baseline cache entry {path}: *Permission denied*; measuring it again"]
    )
    monkeypatch.undo()
    assert only_cache_entry(pytester)["energy_j"] == baseline_of(run)["energy_j"]


def test_an_entry_of_other_hardware_is_kept_but_not_reused(measure: Callable, pytester: pytest.Pytester) -> None:
    path = seed_cache(pytester, measure)
    foreign = describe_other_hardware(json.loads(path.read_text(encoding="utf-8")))
    foreign_path = BaselineCache(path.parent).store(foreign)
    foreign_text = foreign_path.read_text(encoding="utf-8")
    path.unlink()
    run = measure()
    run.result.assert_outcomes(passed=2, warnings=0)
    own = run.report["environment"]["fingerprint"]
    run.result.stdout.fnmatch_lines(
        [f"*pytest-energy: baseline: no baseline for this hardware (fingerprint {own}); "
         f"cached ones are for {foreign.fingerprint}; measuring it again"]
    )
    assert baseline_of(run)["source"] == "measured"
    assert sorted(file.name for file in cache_files(pytester)) == sorted([f"{own}.json", foreign_path.name])
    assert foreign_path.read_text(encoding="utf-8") == foreign_text


def test_an_entry_older_than_baseline_max_age_is_measured_again(measure: Callable, pytester: pytest.Pytester) -> None:
    path = seed_cache(pytester, measure)
    aged = {**json.loads(path.read_text(encoding="utf-8")), "measured_at": OLD_MEASUREMENT}
    path.write_text(json.dumps(aged), encoding="utf-8")

    without_limit = measure()
    without_limit.result.assert_outcomes(passed=1, skipped=1, warnings=0)
    without_limit.result.stdout.fnmatch_lines([f"SKIPPED * baseline reused from cache: * measured {OLD_MEASUREMENT} *"])

    limited = measure("--energy-baseline-max-age=30d")
    limited.result.assert_outcomes(passed=2, warnings=0)
    limited.result.stdout.fnmatch_lines(
        [f"*pytest-energy: baseline: cached baseline from {OLD_MEASUREMENT} is * s old (limit 2592000 s); measuring it again"]
    )
    target = baseline_of(limited)
    assert target["source"] == "measured" and target["measured_at"] != OLD_MEASUREMENT
    assert only_cache_entry(pytester)["measured_at"] == target["measured_at"]


def test_two_sessions_at_once_cache_only_an_uncontended_valid_entry_that_a_third_reuses(
    measure: Callable, pytester: pytest.Pytester
) -> None:
    """A session whose baseline overlapped the other session (it found the machine held, or the other measured
    meanwhile) does not cache it; whatever is cached is valid and comes from an uncontended measurement."""
    pytester.makepyfile(SUITE)
    pytester.makepyprojecttoml(REFERENCE)
    sessions = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--energy-meter=codecarbon",
             f"--energy-json=energy-{index}.json"],
            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index in range(2)
    ]
    try:
        outputs = [session.communicate(timeout=120)[0] for session in sessions]
    finally:
        for session in sessions:
            if session.poll() is None:
                session.kill()
    for session, output in zip(sessions, outputs):
        assert session.returncode == 0, output
        assert "corrupt" not in output and "cannot cache" not in output and "Traceback" not in output, output
    measured = [json.loads(Path(pytester.path, f"energy-{index}.json").read_text(encoding="utf-8")) for index in range(2)]
    targets = [document["baseline"][0] for document in measured]
    for target, output in zip(targets, outputs):
        assert (target["source"] == "contended") == ("normalises this run only and is not cached" in output), output
    assert not list(Path(pytester.path, CACHE_DIR).glob("*.tmp"))
    uncontended = [target["energy_j"] for target in targets if target["source"] == "measured"]
    # a session that started after the other had cached its baseline (no overlap) reuses that one
    assert all(target["energy_j"] in uncontended for target in targets if target["source"] == "cached")
    if uncontended:
        assert only_cache_entry(pytester)["energy_j"] in uncontended
    else:
        assert cache_files(pytester) == []

    third = measure()
    if uncontended:
        third.result.assert_outcomes(passed=1, skipped=1, warnings=0)
        assert baseline_of(third)["energy_j"] == only_cache_entry(pytester)["energy_j"]
    else:
        third.result.assert_outcomes(passed=2, warnings=0)
        assert baseline_of(third)["source"] == "measured" and only_cache_entry(pytester)


def test_two_point_normalisation_fits_a_line_through_two_cached_baselines(
    measure: Callable, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        BURN
        + """

@pytest.mark.energy_baseline(reference="1 J")
def test_small_reference():
    burn(0.1)


@pytest.mark.energy_baseline(reference="3 J")
def test_large_reference():
    burn(0.3)


@pytest.mark.energy
def test_inference():
    burn(0.1)
"""
    )
    pytester.makepyprojecttoml('[tool.pytest-energy]\nnormalization = "two-point"\n')
    run = measure()
    run.result.assert_outcomes(passed=3)
    assert run.nodeids == ["test_small_reference", "test_large_reference", "test_inference"]
    small, large = run.entry("test_small_reference")["energy_j"], run.entry("test_large_reference")["energy_j"]
    normalization = run.report["normalization"]
    slope = (3.0 - 1.0) / (large - small)
    assert (normalization["rule"], normalization["factor"]) == ("two-point", None)
    assert normalization["a"] == pytest.approx(slope)
    assert normalization["b_j"] == pytest.approx(1.0 - slope * small)
    inference = run.entry("test_inference")
    assert inference["energy_normalized_j"] == pytest.approx(slope * inference["energy_j"] + 1.0 - slope * small)
    assert cache_files(pytester) == [] and len(list(Path(pytester.path, CACHE_DIR).glob("two-point-*/*.json"))) == 2
    run.result.stdout.fnmatch_lines(
        ["normalisation: two-point, E_ref = * E_local + *; E_local * -> E_ref 1.00 J, E_local * -> E_ref 3.00 J"]
    )

    reused = measure()
    reused.result.assert_outcomes(passed=1, skipped=2)
    assert reused.report["normalization"]["points"] == normalization["points"]


# -- normalised energy and EW scores in every report ------------------------------------------------


def test_normalised_energy_and_ew_scores_in_json_junit_and_terminal(
    measure: Callable, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(SYSTEM_SUITE)
    pytester.makepyprojecttoml(PRESET_WITH_OVERRIDE)
    run = measure("--junitxml=junit.xml")
    run.result.assert_outcomes(passed=3)
    reference = run.report["reference"]
    assert reference["reference_energy_j"] == 10.0 and reference["origins"]["reference-energy"] == "user"
    assert reference["origins"]["baseline-train-energy"] == "preset dcase2023"
    factor = 10.0 / run.entry("test_reference_workload")["energy_j"]
    train, inference = run.entry("test_train"), run.entry("test_inference")
    train_norm, inference_norm = train["energy_j"] * factor, inference["energy_j"] * factor
    assert train["energy_normalized_j"] == pytest.approx(train_norm)
    assert inference["energy_normalized_j"] == pytest.approx(inference_norm)

    # dcase2023 ranks by psds1 and psds2: with psds1 alone there is no ranking_score, and the report says why
    expected = {
        phase: {"psds1": 0.5 * baseline_j / norm_j}
        for phase, baseline_j, norm_j in (
            ("train", reference["baseline_train_energy_j"], train_norm),
            ("test", reference["baseline_test_energy_j"], inference_norm),
        )
    }
    assert sorted(inference["ew_scores"]) == ["test", "train"]
    for phase, weighted in expected.items():
        assert inference["ew_scores"][phase] == pytest.approx(weighted)
    assert inference["ew_scores_missing"].startswith("no ranking_score: it averages every baseline score (psds1, psds2")
    assert "ew_scores" not in train  # no score recorded there

    properties = junit_properties_by_test(pytester.path / "junit.xml")
    assert float(properties["test_train"]["energy_normalized_j"]) == pytest.approx(train_norm, rel=1e-5)
    assert float(properties["test_inference"]["energy_normalized_j"]) == pytest.approx(inference_norm, rel=1e-5)
    assert "energy_normalized_j" not in properties["test_reference_workload"]
    for phase in ("train", "test"):  # the training phase's EW comes from the linked test_train
        for name, value in expected[phase].items():
            assert float(properties["test_inference"][f"ew_{name}_{phase}"]) == pytest.approx(value, rel=1e-5)

    run.result.stdout.fnmatch_lines(
        [
            "EW (train energy) *::test_inference: psds1 *",
            "EW (test energy) *::test_inference: psds1 *",
            "EW *::test_inference: no ranking_score: * record psds2 too*",
        ]
    )


# -- caps on normalised energy ----------------------------------------------------------------------


def test_energy_normalized_makes_caps_compare_normalised_energy(measure: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NORMALISED_CAP_SUITE)
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "0.001 J"\n')
    run = measure("--energy-normalized")
    run.result.assert_outcomes(passed=2, failed=1)
    under, over = run.entry("test_under_normalised_cap"), run.entry("test_over_normalised_cap")
    assert under["verdict"] == "pass" and under["energy_normalized_j"] < under["cap_j"] < under["energy_j"]
    assert over["verdict"] == "over-cap" and over["energy_normalized_j"] > over["cap_j"]
    assert run.report["session"]["normalized_caps"] is True
    run.result.stdout.fnmatch_lines(["*normalised energy * exceeds cap 1.00e-05 J (raw * J: *; meter codecarbon-*)*"])

    raw = measure()  # the cached baseline, but caps on raw energy
    raw.result.assert_outcomes(passed=0, failed=2, skipped=1)
    assert raw.entry("test_under_normalised_cap")["verdict"] == "over-cap"
    raw.result.stdout.fnmatch_lines(["*energy * exceeds cap 0.01 J (*"])


def test_xdist_workers_say_how_to_get_the_baseline_then_reuse_it(run_energy: Callable, pytester: pytest.Pytester) -> None:
    """A first -n run cannot normalise on the workers that did not measure the baseline, and says so;
    once a run without -n has cached the baseline, an -n run reuses it on every worker."""
    pytester.makepyfile(
        BURN
        + """

@pytest.mark.energy_baseline
def test_reference_workload():
    burn(0.3)


@pytest.mark.parametrize("index", range(4))
@pytest.mark.energy(cap="1 MWh")
def test_capped(index):
    burn(0.05)
"""
    )
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "10 J"\n')
    arguments = ("--energy-meter=codecarbon", "--energy-normalized", "-n", "2", "--dist=load")
    first = run_energy(*arguments, subprocess=True)
    assert len({entry["worker"] for entry in first.report["tests"]}) == 2
    verdicts = {entry["verdict"] for entry in first.report["tests"] if entry["phase"] == "test"}
    assert "unmeasured" in verdicts and verdicts <= {"pass", "unmeasured", "lower-bound"}
    # a baseline measured beside the other worker's tests normalises this run, but no normalised cap passes on it
    assert ("lower-bound" in verdicts) == (baseline_of(first)["source"] == "contended")
    first.result.stdout.fnmatch_lines(["*the baseline is being measured on another xdist worker; measure it once without -n*"])

    alone = run_energy("--energy-meter=codecarbon", "--energy-normalized", "-p", "no:xdist", subprocess=True)
    cached_by_first = int(baseline_of(first)["source"] == "measured")
    alone.result.assert_outcomes(passed=5 - cached_by_first, skipped=cached_by_first)
    second = run_energy(*arguments, subprocess=True)
    verdicts = {entry["nodeid"].split("::")[-1]: entry["verdict"] for entry in second.report["tests"] if entry["phase"] == "test"}
    assert verdicts == {f"test_capped[{index}]": "pass" for index in range(4)}


def fail_the_baseline(pytester: pytest.Pytester) -> List[str]:
    """A baseline test that fails, so it is never cached; returns extra arguments (none)."""
    pytester.makepyfile(
        test_reference="import pytest\n\n@pytest.mark.energy_baseline\ndef test_reference_workload():\n    assert False\n"
    )
    return []


def turn_the_baseline_off(pytester: pytest.Pytester) -> List[str]:
    """A passing baseline test, switched off from the command line; returns the arguments that do it."""
    pytester.makepyfile(
        test_reference="import pytest\n\n@pytest.mark.energy_baseline\ndef test_reference_workload():\n    pass\n"
    )
    return ["--energy-baseline=off"]


@pytest.mark.parametrize("lose_the_baseline", [fail_the_baseline, turn_the_baseline_off], ids=["baseline-fails", "baseline-off"])
def test_a_normalised_cap_without_a_measured_baseline_fails_the_capped_test(
    measure: Callable, pytester: pytest.Pytester, lose_the_baseline: Callable[[pytest.Pytester], List[str]]
) -> None:
    pytester.makepyfile(test_capped=CAPPED_ONLY)
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "1 J"\n')
    run = measure("--energy-normalized", *lose_the_baseline(pytester))
    no_crash(run.result)
    capped = run.entry("test_capped")
    assert (capped["outcome"], capped["verdict"]) == ("failed", "unmeasured")
    run.result.stdout.fnmatch_lines(["*cannot enforce a normalised cap: no baseline was measured before this test*"])
    assert run.report["normalization"] is None
    assert cache_files(pytester) == []


def test_a_normalised_cap_without_any_baseline_is_a_usage_error(measure: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CAPPED_ONLY)
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "1 J"\n')
    result = measure("--energy-normalized").result
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert "--energy-normalized needs a baseline: mark the reference workload with @pytest.mark.energy_baseline" in line


def test_a_normalised_cap_without_a_reference_energy_is_a_usage_error(measure: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NORMALISED_CAP_SUITE)
    result = measure("--energy-normalized").result
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert "--energy-normalized needs the reference workload's energy on the reference machine: set reference-energy" in line
    result.stdout.no_fnmatch_line("*passed*")


class BaselineItem:
    """A collected test marked ``energy_baseline`` without ``reference=``, as ``BaselinePlan`` sees it."""

    nodeid = "tests/test_baseline.py::test_ten_epochs"

    def get_closest_marker(self, name: str) -> Any:
        return getattr(pytest.mark, MARKER).mark if name == MARKER else None


def test_plan_refuses_normalised_caps_without_a_reference_energy(tmp_path: Path) -> None:
    plan = BaselinePlan(Settings(caps={}, normalized=True))
    with pytest.raises(ConfigError, match="set reference-energy"):
        plan.prepare([BaselineItem()], "0123456789abcdef", tmp_path)
    with_reference = BaselinePlan(Settings(caps={}, normalized=True, reference=ReferenceValues(reference_energy_j=1.0)))
    assert with_reference.prepare([BaselineItem()], "0123456789abcdef", tmp_path) == []


# -- misconfiguration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('preset = "dcase2030"', "key 'preset': expected one of dcase2022, dcase2023, dcase2024, got 'dcase2030'"),
        ('reference-energy = "2kW"', "reference-energy: invalid energy '2kW': 'kW' is a unit of power, not energy"),
        ("baseline = 3", "key 'baseline': expected a test id such as \"tests/test_baseline.py::test_ten_epochs\", got 3"),
        ("baseline-scores = { psds1 = -1 }", "baseline-scores: psds1 = -1 must be a number more than zero"),
    ],
    ids=["unknown-preset", "power-not-energy", "baseline-not-a-string", "negative-baseline-score"],
)
def test_misconfigured_normalisation_is_a_one_line_usage_error(
    measure: Callable, pytester: pytest.Pytester, table: str, named: str
) -> None:
    pytester.makepyfile(SUITE)
    pyproject = pytester.makepyprojecttoml(f"[tool.pytest-energy]\n{table}\n")
    result = measure().result
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert named in line and str(pyproject) in line
    assert cache_files(pytester) == []
