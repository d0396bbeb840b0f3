"""The CI gate through real pytest runs: GitHub Actions output, the comparison with a stored run, JUnit.

GitHub Actions is faked with its two environment variables (``GITHUB_ACTIONS`` and
``GITHUB_STEP_SUMMARY``). Runs that need a figure measure for real with CodeCarbon's
offline tracker (what ``auto`` gives on a machine without NVML or RAPL); the
comparison tests burn several times more (or less) CPU time between two runs, far
outside the 10 % limit and the tracker's noise. The example GPU workflow is parsed
here too, so its pytest options cannot drift from the plugin's.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import yaml
from junit_read import junit_properties_by_test
from junitparser import JUnitXml

from pytest_energy.account.record import Record
from pytest_energy.store import runs
from pytest_energy.config import OPTIONS
from pytest_energy.decide.figures import Figures, Limits
from pytest_energy.decide.regression import regression
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.report.json_report import build_document
from pytest_energy.store.runs import StoredRun, check_run_document
from pytest_energy.units import format_energy, parse_percentage
from suites import BURN, NORMALISED_CAP_SUITE


CAPPED_SUITE = BURN + """

@pytest.mark.energy
def test_over_cap():
    burn(0.2)


@pytest.mark.energy(cap="1MWh")
def test_under_cap():
    pass
"""


CAPPED_FILE = "test_capped.py"
ANNOTATION = re.compile(r"^::(?P<level>error|warning) file=(?P<file>[^,]+),line=(?P<line>\d+),title=energy cap::(?P<message>.*)$")
COMMAND_OPTION = re.compile(r"(?<![\w-])(?P<name>--[a-z][a-z-]*)(?:=(?P<value>[^\s\"']+))?")
WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "github-actions" / "energy-gate.yml"
SUPPORTED_ACTIONS = {  # released, not deprecated major versions of the actions the example may use
    "actions/checkout": {"v4", "v5"},
    "actions/setup-python": {"v5", "v6"},
    "actions/cache": {"v4"},
    "actions/upload-artifact": {"v4"},
}


def gate_suite(seconds: float) -> str:
    """One measured test burning ``seconds`` of CPU time."""
    return BURN + f"""

@pytest.mark.energy
def test_workload():
    burn({seconds})
"""


def annotations(lines: List[str]) -> List[re.Match[str]]:
    return [match for match in map(ANNOTATION.match, lines) if match]


def stored_runs(root: Path) -> List[Path]:
    return sorted((root / ".energy").glob("*/*.json"))


@pytest.fixture
def github_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A faked GitHub Actions job (set after ``pytester`` cleared the real one's variables); returns the summary file."""
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


# -- GitHub Actions -----------------------------------------------------------------------------


def test_over_cap_test_is_annotated_and_the_run_summarised_on_github(
    run_energy: Callable, pytester: pytest.Pytester, github_env: Path
) -> None:
    source = pytester.makepyfile(**{CAPPED_FILE[:-3]: CAPPED_SUITE}).read_text(encoding="utf-8")
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=0.001J")
    run.result.assert_outcomes(passed=1, failed=1)

    [error] = annotations(run.result.outlines)
    def_line = source.splitlines().index("def test_over_cap():") + 1
    assert error["level"] == "error"
    assert error["file"] == CAPPED_FILE
    assert int(error["line"]) in (def_line - 1, def_line)  # the decorator or the def line
    assert error["message"].startswith(f"{CAPPED_FILE}::test_over_cap: energy ")
    assert "exceeds cap 1.00e-03 J" in error["message"]

    summary = github_env.read_text(encoding="utf-8")
    assert "| test | phase | energy | normalised | MACs | scores | cap | verdict | meter |" in summary
    [over] = [line for line in summary.splitlines() if "::test_over_cap`" in line]
    [under] = [line for line in summary.splitlines() if "::test_under_cap`" in line]
    assert "over cap" in over and "codecarbon-" in over
    assert "pass" in under.split("|")[-3] and under.split("|")[-4].strip() not in ("", "-")  # verdict, cap
    assert re.search(r"^\| test \| 2 \| 2 \| ", summary, re.MULTILINE), summary


def test_warn_mode_annotates_with_a_warning_and_passes(
    run_energy: Callable, pytester: pytest.Pytester, github_env: Path
) -> None:
    pytester.makepyfile(**{CAPPED_FILE[:-3]: CAPPED_SUITE})
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=0.001J", "--energy-cap-mode=warn")
    run.result.assert_outcomes(passed=2)
    assert [match["level"] for match in annotations(run.result.outlines)] == ["warning"]
    assert "over cap" in github_env.read_text(encoding="utf-8")


def test_normalised_caps_are_annotated_as_the_plugin_judged_them(
    run_energy: Callable, pytester: pytest.Pytester, github_env: Path
) -> None:
    """Under ``--energy-normalized`` a test under its cap in normalised energy is not annotated."""
    pytester.makepyfile(test_normalised=NORMALISED_CAP_SUITE)
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "0.001 J"\n')
    run = run_energy("--energy-meter=codecarbon", "--energy-normalized")
    run.result.assert_outcomes(passed=2, failed=1)
    under = run.entry("test_under_normalised_cap")
    assert under["verdict"] == "pass" and under["energy_normalized_j"] < under["cap_j"] < under["energy_j"]
    messages = [match["message"] for match in annotations(run.result.outlines)]
    assert [message.split(": ", 1)[0] for message in messages] == ["test_normalised.py::test_over_normalised_cap"]
    assert messages[0].split(": ", 1)[1].startswith("normalised energy ")


def test_off_github_nothing_is_annotated_or_summarised(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Even with a stray ``GITHUB_STEP_SUMMARY``, only ``GITHUB_ACTIONS=true`` turns the output on."""
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(**{CAPPED_FILE[:-3]: CAPPED_SUITE})
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=0.001J")
    run.result.assert_outcomes(passed=1, failed=1)
    assert run.entry("test_over_cap")["verdict"] == "over-cap"
    assert [line for line in run.result.outlines if line.startswith("::")] == []
    assert not summary.exists()


# -- comparison with a stored run ---------------------------------------------------------------


def test_autosave_stores_the_run_with_commit_and_machine_info(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=gate_suite(0.05))
    run = run_energy("--energy-meter=codecarbon", "--energy-autosave")
    run.result.assert_outcomes(passed=1)
    [stored] = stored_runs(pytester.path)
    document = json.loads(stored.read_text(encoding="utf-8"))
    assert stored.parent.name == document["environment"]["fingerprint"] == run.report["environment"]["fingerprint"]
    assert "commit" in document and document["tests"][0]["nodeid"] == "test_gate.py::test_workload"
    run.result.stdout.fnmatch_lines([f"energy run stored as *{stored.name}"])


def test_energy_growth_over_the_limit_fails_and_names_the_stored_run(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a terminal wide enough for every column of the energy table
    pytester.makepyfile(test_gate=gate_suite(0.05))
    run_energy("--energy-meter=codecarbon", "--energy-autosave").result.assert_outcomes(passed=1)
    [stored] = stored_runs(pytester.path)

    pytester.makepyfile(test_gate=gate_suite(0.5))
    run = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%", "--junitxml=junit.xml")
    run.result.assert_outcomes(failed=1)
    [message] = [line for line in run.result.outlines if " grew +" in line and not line.startswith("FAILED")]
    growth = re.search(r"energy \S+ \S+ grew \+(?P<percent>[\d.]+)% over \S+ \S+ in (?P<run>\S+) \(limit \+10%\)", message)
    assert growth is not None, message
    assert float(growth["percent"]) > 100
    assert growth["run"] == stored.name
    assert run.report["session"]["compared_with"] == str(stored)
    entry = run.entry("test_workload")
    assert (entry["outcome"], entry["verdict"], entry["verdict_message"]) == ("failed", "regression", message.strip())
    table_row, comparison_row = [line for line in run.result.outlines if line.startswith("test_gate.py::test_workload ")]
    assert table_row.split()[-2] == "regression"  # the verdict column, before the meter
    change = comparison_row.split()[5]  # test, before (2), after (2), change, then the gate's columns
    assert float(change.rstrip("%")) == pytest.approx(float(growth["percent"]), abs=0.1)
    assert comparison_row.split()[-1] == "regression"  # the gate column

    [case] = [case for suite in JUnitXml.fromfile(str(pytester.path / "junit.xml")) for case in suite]
    [failure] = case.result
    assert " grew +" in failure.message and stored.name in failure.message
    properties = junit_properties_by_test(pytester.path / "junit.xml")["test_workload"]
    assert float(properties["energy_j"]) == pytest.approx(run.entry("test_workload")["energy_j"], rel=1e-5)
    assert properties["energy_meter"].startswith("codecarbon-")
    assert properties["energy_verdict"] == "regression"
    assert float(properties["cpu_energy_j"]) > 0


def test_compare_alone_shows_each_tests_energy_before_after_and_the_change(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    pytester.makepyfile(test_gate=gate_suite(0.1))
    first = run_energy("--energy-meter=codecarbon", "--energy-autosave")
    [stored] = stored_runs(pytester.path)
    run = run_energy("--energy-meter=codecarbon", "--energy-compare")
    run.result.assert_outcomes(passed=1)
    before, after = first.entry("test_workload")["energy_j"], run.entry("test_workload")["energy_j"]
    run.result.stdout.fnmatch_lines([f"energy compared with {stored.name}", "test * before * after * change",
                                     f"test_gate.py::test_workload * {after / before - 1:+.1%}"])


def test_lighter_run_passes_the_comparison(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=gate_suite(0.4))
    run_energy("--energy-meter=codecarbon", "--energy-autosave").result.assert_outcomes(passed=1)
    pytester.makepyfile(test_gate=gate_suite(0.1))
    run = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    assert run.report["session"]["compared_with"] == str(stored_runs(pytester.path)[0])
    assert " grew " not in run.result.stdout.str()


def test_stored_run_from_other_hardware_is_not_compared(run_energy: Callable, pytester: pytest.Pytester) -> None:
    """Without a baseline to normalise by, a run on other hardware is refused, with the reason."""
    pytester.makepyfile(test_gate=gate_suite(0.05))
    run_energy("--energy-meter=codecarbon", "--energy-autosave").result.assert_outcomes(passed=1)
    [stored] = stored_runs(pytester.path)
    document = json.loads(stored.read_text(encoding="utf-8"))
    document["environment"]["fingerprint"] = "another-machine"
    stored.write_text(json.dumps(document), encoding="utf-8")

    pytester.makepyfile(test_gate=gate_suite(0.05))
    run = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines([f"*cannot compare with {stored.name}: it was measured on other hardware*another-machine*"])
    assert " grew " not in run.result.stdout.str()


def test_comparing_with_a_missing_named_run_is_a_usage_error(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=gate_suite(0.0))
    run = run_energy("--energy-meter=none", "--energy-compare=no-such-run")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*no stored run matches 'no-such-run'*--energy-autosave*"])


def test_regression_message_gives_the_limit_as_set() -> None:
    """A 12.5 % limit reads "+12.5%", not rounded to "+12%"."""
    stored = StoredRun(Path("20260101T000000_abc.json"), "same", {"t.py::test_x": {"energy_j": 100.0}})
    limits = Limits("J", regression=parse_percentage("12.5%"), stored=stored)
    grown = Figures("t.py::test_x", Measurement(1.0, (Reading("cpu", "package-0", 120.0, "rapl-counter"),)), fingerprint="same")
    failure = regression(grown, limits)
    assert failure is not None and "in 20260101T000000_abc.json (limit +12.5%); 1 vs 1 repeats" in failure.message
    within = Measurement(1.0, (Reading("cpu", "package-0", 112.5, "rapl-counter"),))
    assert regression(dataclasses.replace(grown, measurement=within), limits) is None


def test_first_gated_run_with_an_empty_store_runs_and_warns(run_energy: Callable, pytester: pytest.Pytester) -> None:
    """As pytest-benchmark does ("Can't compare. No benchmark files"): nothing to compare is not an error."""
    pytester.makepyfile(test_gate=gate_suite(0.0))
    run = run_energy("--energy-meter=none", "--energy-compare-fail=10%", "--energy-autosave")
    assert run.result.ret == pytest.ExitCode.OK
    run.result.stdout.fnmatch_lines(["*no stored run yet*"])


NEWER = "29990101T000000.000000_newer.json"  # sorts after every run stored today (a run dated in the future)


def newer_than(stored: Path) -> Path:
    """A stored run's name a second after ``stored``: the latest, and not dated in the future."""
    seconds = calendar.timegm(time.strptime(stored.name[:15], "%Y%m%dT%H%M%S")) + 1
    return stored.parent / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.000000_newer.json"


def store_one_run(run_energy: Callable, pytester: pytest.Pytester) -> Path:
    """A heavy run stored by autosave (the comparisons after it burn less, so they pass); returns its path."""
    pytester.makepyfile(test_gate=gate_suite(0.4))
    run_energy("--energy-meter=codecarbon", "--energy-autosave").result.assert_outcomes(passed=1)
    [stored] = stored_runs(pytester.path)
    return stored


def write_raw(path: Path, document: Dict[str, Any], **raw: str) -> None:
    """Write ``document`` with some fields replaced by raw JSON text (values Python would not write, such as 1e999)."""
    write_with_raw_values(path, {**document, **{name: f"@{name}@" for name in raw}}, raw)


def write_raw_test(path: Path, document: Dict[str, Any], **raw: str) -> None:
    """Write ``document`` with some fields of its first test replaced by raw JSON text."""
    first = {**document["tests"][0], **{name: f"@{name}@" for name in raw}}
    write_with_raw_values(path, {**document, "tests": [first, *document["tests"][1:]]}, raw)


def write_with_raw_values(path: Path, document: Dict[str, Any], raw: Dict[str, str]) -> None:
    """Write ``document``, its "@name@" strings replaced by the raw JSON text ``raw`` gives for ``name``."""
    text = json.dumps(document)
    for name, value in raw.items():
        text = text.replace(f'"@{name}@"', value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_compare_takes_the_latest_run_of_this_hardware_and_ignores_files_that_are_not_runs(
    run_energy: Callable, pytester: pytest.Pytester
) -> None:
    stored = store_one_run(run_energy, pytester)
    document = json.loads(stored.read_text(encoding="utf-8"))
    elsewhere = {**document, "environment": {**document["environment"], "fingerprint": "another-machine"}}
    write_raw(pytester.path / ".energy" / "another-machine" / NEWER, elsewhere)
    for stray in (stored.parent / "energy.json", pytester.path / ".energy" / "energy.json"):
        write_raw(stray, {"schema": "something else"})

    pytester.makepyfile(test_gate=gate_suite(0.1))
    run = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    assert run.report["session"]["compared_with"] == str(stored)
    assert "other hardware" not in run.result.stdout.str() and "energy.json" not in "".join(run.report["notices"])


def test_with_runs_of_other_hardware_only_nothing_is_compared_and_the_run_says_why(
    run_energy: Callable, pytester: pytest.Pytester
) -> None:
    stored = store_one_run(run_energy, pytester)
    moved = pytester.path / ".energy" / "another-machine" / stored.name
    moved.parent.mkdir()
    stored.rename(moved)
    run = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(
        ["energy comparison: no stored run of this hardware (fingerprint *) in * (stored runs are for another-machine): "
         "nothing compared this time"]
    )
    assert "compared_with" not in run.report["session"]


SPOILED_RUNS = {  # how the newest stored run is spoiled -> what the line about it says (fnmatch: [[] is "[")
    "wrong-types": (lambda path, doc: write_raw(path, doc, environment="[1]"), "$.environment: [[]1[]] is not of type 'object'"),
    "wrong-test-types": (lambda path, doc: write_raw_test(path, doc, nodeid='["x"]'),
                         "$.tests[[]0[]].nodeid: [[]'x'[]] is not of type 'string'"),
    "string-energy": (lambda path, doc: write_raw_test(path, doc, energy_j='"1 J"'),
                      "$.tests[[]0[]].energy_j: '1 J' is not of type 'number', 'null'"),
    "overflowing-float": (lambda path, doc: write_raw_test(path, doc, energy_j="1e999"),
                          "$.tests[[]0[]].energy_j: inf is not a finite number"),
    "huge-int": (lambda path, doc: write_raw_test(path, doc, energy_j=str(10 ** 400)),
                 "$.tests[[]0[]].energy_j: 1000*… is not a finite number"),
    "directory": (lambda path, doc: path.mkdir(), "*is a directory, not a regular file*"),
}


@pytest.mark.parametrize("spoiled", sorted(SPOILED_RUNS))
def test_a_stored_run_that_is_not_a_valid_report_is_skipped_with_one_line_or_refused_by_name(
    run_energy: Callable, pytester: pytest.Pytester, spoiled: str
) -> None:
    stored = store_one_run(run_energy, pytester)
    spoil, why = SPOILED_RUNS[spoiled]
    newer = newer_than(stored)
    spoil(newer, json.loads(stored.read_text(encoding="utf-8")))

    pytester.makepyfile(test_gate=gate_suite(0.1))
    latest = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%")
    assert "INTERNALERROR" not in latest.result.stdout.str() + latest.result.stderr.str()
    latest.result.assert_outcomes(passed=1)
    assert latest.report["session"]["compared_with"] == str(stored)
    latest.result.stdout.fnmatch_lines([f"pytest-energy: stored run {newer} cannot be used: {why}: skipped it"])
    assert len([line for line in latest.result.outlines if "cannot be used" in line]) == 1

    named = run_energy("--energy-meter=codecarbon", f"--energy-compare={newer}", "--energy-compare-fail=10%")
    assert named.result.ret == pytest.ExitCode.USAGE_ERROR
    named.result.stderr.fnmatch_lines([f"ERROR: pytest-energy: stored run {newer} cannot be used: {why}"])


def stored_run_document() -> Dict[str, Any]:
    """A valid report of one measured test, as autosave stores it."""
    environment = {"fingerprint": "0123456789abcdef", "cpu_model": "x", "cpu_count": 2, "ram_bytes": 1, "gpus": [],
                   "gpu_count": 0, "gpu_driver": None, "python": "3.11", "pytest": "9", "plugin": "0.1.0",
                   "meter": {"choice": "rapl"}}
    measurement = Measurement(2.0, (Reading("cpu", "package-0", 40.0, "rapl-counter"),))
    record = Record("t.py::test_x", "train", "passed", measurement, extra={"energy_normalized_j": 4.0})
    return {**build_document([record], environment, {}, {"meter": "rapl", "caps_j": {}}), "commit": {}}


RUN_FAULTS = {  # a change to a valid stored run -> the one line saying what is wrong
    "nan": (lambda d: d["tests"][0].update(energy_j=float("nan")), "$.tests[0].energy_j: nan is not a finite number"),
    "normalised-inf": (lambda d: d["tests"][0].update(energy_normalized_j=float("-inf")),
                       "$.tests[0].energy_normalized_j: -inf is not a finite number"),
    "negative": (lambda d: d["tests"][0].update(energy_j=-1.0), "$.tests[0].energy_j: -1.0 is less than the minimum of 0"),
    "no-fingerprint": (lambda d: d["environment"].pop("fingerprint"),
                       "$.environment.fingerprint: the hardware fingerprint is missing or not a string"),
    "other-schema": (lambda d: d.update(schema="something else", created=None), "$.schema: 'pytest-energy/1' was expected"),
    "huge-value": (lambda d: d.update(tests={"x" * 1000: 1}), "$.tests: {'" + "x" * 157 + "…"),
}


@pytest.mark.parametrize("fault", sorted(RUN_FAULTS))
def test_a_stored_run_is_checked_against_the_report_schema_with_finite_numbers(fault: str) -> None:
    document = stored_run_document()
    check_run_document(document)
    change, message = RUN_FAULTS[fault]
    change(document)
    with pytest.raises(ValueError) as raised:
        check_run_document(document)
    assert str(raised.value) == message


def test_what_is_wrong_with_a_stored_run_is_one_line_even_under_a_key_with_a_line_break() -> None:
    document = stored_run_document()
    document["tests"][0]["scores"]["a\nb"] = "high"
    with pytest.raises(ValueError) as raised:
        check_run_document(document)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("$.tests[0].scores")
    assert message.endswith(": 'high' is not of type 'number'")


def test_an_unreadable_stored_run_is_skipped(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = store_one_run(run_energy, pytester)
    newer = newer_than(stored)
    newer.write_text(stored.read_text(encoding="utf-8"), encoding="utf-8")
    real_read = runs.read_bytes_bounded

    def refuse(path: Path, max_bytes: int) -> bytes:
        if Path(path) == newer:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path, max_bytes)

    monkeypatch.setattr(runs, "read_bytes_bounded", refuse)
    pytester.makepyfile(test_gate=gate_suite(0.1))
    run = run_energy("--energy-meter=codecarbon", "--energy-compare-fail=10%")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines([f"pytest-energy: stored run {newer} cannot be used: *Permission denied*: skipped it"])
    assert run.report["session"]["compared_with"] == str(stored)


def test_two_autosaves_in_the_same_microsecond_keep_both_runs_in_order(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs.time, "time_ns", lambda: 1_767_225_600_000_000_000)  # 2026-01-01, for both runs
    pytester.makepyfile(test_gate=gate_suite(0.05))
    first, second = (run_energy("--energy-meter=codecarbon", "--energy-autosave") for _ in range(2))
    saved = stored_runs(pytester.path)
    assert [path.name.split("_")[0] for path in saved] == ["20260101T000000.000000", "20260101T000000.000001"]
    for path, run in zip(saved, (first, second)):
        run.result.assert_outcomes(passed=1)
        run.result.stdout.fnmatch_lines([f"energy run stored as {path}"])
        assert json.loads(path.read_text(encoding="utf-8"))["tests"][0]["energy_j"] == run.entry("test_workload")["energy_j"]


# -- the example GPU workflow -------------------------------------------------------------------


def workflow_steps() -> List[Dict[str, Any]]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    [job] = document["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    return job["steps"]


def gate_script(steps: List[Dict[str, Any]]) -> str:
    [script] = [step["run"] for step in steps if "python -m pytest" in step.get("run", "")]
    return script


def command_options(script: str) -> Dict[str, str]:
    """Every ``--option[=value]`` of the script (its comments left out), as {option: value}."""
    code = "\n".join(line.split("#", 1)[0] for line in script.splitlines())
    return {match["name"]: match["value"] or "" for match in COMMAND_OPTION.finditer(code)}


def test_example_workflow_uses_only_existing_options_with_valid_values() -> None:
    used = command_options(gate_script(workflow_steps()))
    options = {option.cli: option for option in OPTIONS}
    for name, value in used.items():
        if name.startswith(("--energy-", "--macs-", "--params-")):
            assert name in options, f"{WORKFLOW.name} uses {name}, which pytest-energy does not define"
            if value:
                options[name].parse(value)
    assert {"--energy-cap", "--energy-json", "--energy-autosave", "--energy-compare-fail", "--junitxml"} <= set(used)


def test_example_workflow_caches_the_baseline_and_uploads_reports_always() -> None:
    steps = workflow_steps()
    for step in steps:
        if "uses" in step:
            action, _, version = step["uses"].partition("@")
            assert version in SUPPORTED_ACTIONS.get(action, set()), step["uses"]
    caches = [step for step in steps if step.get("uses", "").startswith("actions/cache@")]
    [baseline] = [step for step in caches if ".pytest_cache/d/energy-baseline" in step["with"]["path"]]
    assert "runner.name" in baseline["with"]["key"] and "hashFiles(" in baseline["with"]["key"]
    used = command_options(gate_script(steps))
    reports = {used["--energy-json"], used["--junitxml"]}
    [upload] = [step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    assert set(upload["with"]["path"].split()) == reports


# -- pytest-html ----------------------------------------------------------------------------------


def test_pytest_html_report_gains_energy_columns(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    pytester.makepyfile(**{CAPPED_FILE[:-3]: CAPPED_SUITE})
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=0.001J", "--energy-unit=J",
                     "--html=report.html", "--self-contained-html")
    run.result.assert_outcomes(passed=1, failed=1)
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    for header in ("Energy", "Normalised energy", "Energy verdict"):
        assert f"&lt;th&gt;{header}&lt;/th&gt;" in page or f"<th>{header}</th>" in page
    over = run.entry("test_over_cap")
    assert format_energy(over["energy_j"], "J") in page  # "3.20 J": a bare .3g would read "3.2 J" and miss it
    assert "over-cap" in page


def test_without_pytest_html_no_column_plugin_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:html", "-p", "no:cacheprovider", "--energy-meter=none", "--trace-config")
    assert "energy-html" not in result.stdout.str()
    result.assert_outcomes(passed=1)
