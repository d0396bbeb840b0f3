"""The DCASE-style example, run as the README's main command runs it, so it cannot rot.

One run (its time on two cores is in the README) on a fresh copy of ``examples/dcase_sed``: no cached
baseline, so the baseline test is measured first and every figure is normalised.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import jsonschema
import pytest

from junit_read import junit_properties_by_test

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dcase_sed"


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """The README's command on a copy of the example; its exit code, output and reports."""
    work = tmp_path_factory.mktemp("example")
    copy = work / "dcase_sed"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    command = [sys.executable, "-m", "pytest", "dcase_sed", "--energy-cap=2kWh",
               "--energy-json=energy.json", "--junitxml=junit.xml", "-p", "no:xdist"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600,
                            env={**_clean_environment(), "CODECARBON_LOG_LEVEL": "error",
                                 # its own machine lock and activity file: no pytest-energy run elsewhere contends
                                 "TMPDIR": str(tmp_path_factory.mktemp("tempdir"))})
    return {
        "returncode": result.returncode,
        "output": result.stdout + result.stderr,
        "report": json.loads((work / "energy.json").read_text(encoding="utf-8")),
        "junit": junit_properties_by_test(work / "junit.xml"),
        "copy": copy,
    }


def _clean_environment() -> Dict[str, str]:
    """This process's environment without pytest or GitHub settings that would change the run."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "GITHUB_"))}


def entry(report: Dict[str, Any], name: str) -> Dict[str, Any]:
    [found] = [test for test in report["tests"] if test["nodeid"].endswith("::" + name)]
    return found


def test_example_passes_and_prints_the_energy_table(example_run: Dict[str, Any]) -> None:
    assert example_run["returncode"] == 0, example_run["output"][-3000:]
    output = example_run["output"]
    for expected in ("= energy =", "test_train_system", "normalisation: one-point, factor", "EW (test energy)",
                     "energy report written to energy.json"):
        assert expected in output


def test_every_measured_figure_is_present_and_sane(example_run: Dict[str, Any], report_schema: Dict[str, Any]) -> None:
    report = example_run["report"]
    jsonschema.validate(report, report_schema)
    phases = {test["phase"] for test in report["tests"]}
    assert phases == {"baseline", "train", "test"}
    for test in report["tests"]:
        assert test["outcome"] == "passed"
        assert test["energy_j"] > 0, test["nodeid"]
        assert test["components"]["cpu"]["energy_j"] > 0
    assert report["metadata"]["system"] == "crnn-bigru48"


def test_normalisation_and_energy_weighted_scores(example_run: Dict[str, Any]) -> None:
    report = example_run["report"]
    [baseline] = report["baseline"]
    assert baseline["source"] == "measured" and baseline["energy_j"] > 0
    factor = report["normalization"]["factor"]
    assert factor == pytest.approx(baseline["reference_j"] / baseline["energy_j"])
    train = entry(report, "test_train_system")
    assert train["energy_normalized_j"] == pytest.approx(train["energy_j"] * factor)
    inference = entry(report, "test_inference_on_held_out_clips")
    assert inference["scores"]["event_f1"] > 0.5
    assert set(inference["ew_scores"]) == {"train", "test"}
    assert inference["ew_scores"]["test"]["event_f1"] > 0


def test_inference_is_scored_with_psds1(example_run: Dict[str, Any]) -> None:
    """The challenge's metric, from sed_scores_eval, beside the event F1, and weighted by energy like it."""
    inference = entry(example_run["report"], "test_inference_on_held_out_clips")
    psds1 = inference["scores"]["psds1"]
    assert isinstance(psds1, float) and 0.0 <= psds1 <= 1.0
    assert inference["ew_scores"]["test"]["psds1"] > 0


@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated as an API:UserWarning")  # imported by the example's sed_scores_eval
def test_macs_equal_the_hand_count_in_json_and_junit(example_run: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(example_run["copy"]))
    example_tests = importlib.import_module("test_sed")
    recipes = importlib.import_module("sed.recipes")
    expected = example_tests.hand_count_macs(recipes.SYSTEM.model, example_tests.TEN_SECONDS[2])
    inference = entry(example_run["report"], "test_inference_on_held_out_clips")
    assert inference["macs"] == expected
    assert inference["macs_input_shapes"] == [list(example_tests.TEN_SECONDS)]
    assert example_run["junit"]["test_inference_on_held_out_clips"]["macs"] == str(expected)
    assert inference["complexity_verdict"] == "pass"  # under the example's macs-cap and params-cap
