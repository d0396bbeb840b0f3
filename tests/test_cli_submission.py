"""`pytest-energy submission`: the DCASE task 4 energy and complexity block from one report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest

from pytest_energy.organise.cli import main
from pytest_energy.organise.submission import submission_block

KWH = 3.6e6


def full_report() -> Dict[str, Any]:
    """A report with every field the block needs: 1.39 kWh training, 0.019 kWh test, 0.032 kWh baseline."""
    record = {"outcome": "passed", "duration_s": 1.0, "cap_j": None, "verdict": "pass", "ew_scores": {}}
    return {
        "schema": "pytest-energy/1",
        "created": "2024-06-01T10:00:00Z",
        "plugin_version": "0.1.0",
        "metadata": {"system": "Doe_INR_task4_1", "year": 2024, "ensemble": False},
        "environment": {"fingerprint": "f"},
        "normalization": {"rule": "one-point", "factor": 0.8, "local_j": 100.0, "reference_j": 80.0},
        "baseline": [{"nodeid": "t::baseline", "energy_j": 0.032 * KWH, "source": "measured"}],
        "tests": [
            dict(record, nodeid="t::train", phase="train", energy_j=1.39 * KWH, energy_normalized_j=1.112 * KWH,
                 components={"gpu": {"energy_j": 1.0 * KWH, "method": "nvml-counter"}}, gpu_share=0.72,
                 scores={}, macs=None, params=1112420),
            dict(record, nodeid="t::eval", phase="test", energy_j=0.019 * KWH, energy_normalized_j=None,
                 components={"gpu": {"energy_j": 0.015 * KWH, "method": "nvml-counter"}}, gpu_share=0.79,
                 scores={"psds1": 0.359}, macs=930902000, params=1112420),
            dict(record, nodeid="t::baseline", phase="baseline", energy_j=0.032 * KWH, energy_normalized_j=None,
                 components={}, gpu_share=None, scores={}, macs=1.0, params=7),
        ],
        "totals": {
            "train": {"energy_j": 1.39 * KWH, "energy_normalized_j": 1.112 * KWH, "gpu_energy_j": 1.0 * KWH,
                      "tests": 1},
            "test": {"energy_j": 0.019 * KWH, "energy_normalized_j": None, "gpu_energy_j": 0.015 * KWH, "tests": 1},
        },
    }


def run(tmp_path: Path, report: Any, capsys: pytest.CaptureFixture[str]) -> tuple:
    path = tmp_path / "energy.json"
    path.write_text(report if isinstance(report, str) else json.dumps(report), encoding="utf-8")
    status = main(["submission", str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_block_uses_the_challenge_field_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    yaml = pytest.importorskip("yaml")
    status, out, _ = run(tmp_path, full_report(), capsys)
    assert status == 0
    system = yaml.safe_load(out)["system"]
    assert system["description"] == {"ensemble_method_subsystem_count": None}
    assert system["complexity"] == {"total_parameters": 1112420, "macs": 930902000}
    energy = system["energy_consumption"]
    assert energy["training"] == pytest.approx(1.39)
    assert energy["training_gpu"] == pytest.approx(1.0)
    assert energy["test"] == pytest.approx(0.019)
    assert energy["test_gpu"] == pytest.approx(0.015)
    assert energy["baseline_10_epochs"] == pytest.approx(0.032)
    assert "# Missing: none" in out
    assert "normalised training energy: 1.112 kWh" in out


def test_missing_fields_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    report = full_report()
    del report["metadata"]["ensemble"]
    report["baseline"] = None
    for record in report["tests"]:
        record["macs"] = None
    report["totals"]["test"]["gpu_energy_j"] = None
    report["tests"][1]["components"] = {}
    block = submission_block(report)
    assert block.missing == [
        "system.description.ensemble_method_subsystem_count",
        "system.complexity.macs",
        "system.energy_consumption.test_gpu",
        "system.energy_consumption.baseline_10_epochs",
    ]
    status, out, _ = run(tmp_path, report, capsys)
    assert status == 0
    assert "# Missing (4), still to measure or fill in by hand:" in out
    assert "    macs: !!null  # MISSING: MACs for 10 s of audio" in out


def test_ensemble_subsystem_count_and_totals_fallback(tmp_path: Path):
    report = full_report()
    report["metadata"]["ensemble"] = 5
    del report["totals"]  # a hand-made report: energies come from the records
    fields = {field.path: field.value for field in submission_block(report).fields}
    assert fields["description.ensemble_method_subsystem_count"] == "5"
    assert fields["energy_consumption.training"] == "1.39"
    assert fields["energy_consumption.test_gpu"] == "0.015"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"schema": "other/2"}), "schema is 'other/2'"),
        (json.dumps([1, 2]), "not a JSON object"),
    ],
)
def test_unusable_report_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content, message):
    status, out, err = run(tmp_path, content, capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_missing_file_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["submission", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["submission"]) == 2
    assert main([]) == 2


def test_the_factor_is_rounded_the_workload_named_and_a_contended_baseline_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    report = full_report()
    report["normalization"]["factor"] = 0.42537153846153846
    report["baseline"][0].update(nodeid="test_sed.py::test_baseline_three_epochs", source="contended", contended=True)
    status, out, _ = run(tmp_path, report, capsys)
    assert status == 0
    assert "factor 0.4254)" in out and "0.425371" not in out
    [line] = [line for line in out.splitlines() if "baseline_10_epochs:" in line]
    assert "test_sed.py::test_baseline_three_epochs" in line
    assert "measured while another process measured on this machine (contended)" in out
    assert "contended" not in run(tmp_path, full_report(), capsys)[1]

