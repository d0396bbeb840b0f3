"""The GPU findings through the plugin, on the fake NVML: what a user reads in the summary and the report."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict

import jsonschema
import pytest

from fakes.fake_pynvml import FakeGpu, gpus, install

TEST = "import time\n\nimport pytest\n\n@pytest.mark.energy\ndef test_on_gpu():\n    time.sleep(0.2)\n"


def test_other_processes_on_the_gpu_are_a_session_notice_and_a_test_note(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Dict[str, Any]
) -> None:
    """The only way two CI jobs sharing one GPU host can see each other."""
    install(monkeypatch, gpus(200.0, compute_pids=(4242,)))
    pytester.makepyfile(TEST)
    run = run_energy("--energy-meter=nvml")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*other processes ran on the measured GPU during some tests*"])
    jsonschema.validate(run.report, report_schema)
    notes = run.entry("test_on_gpu")["notes"]
    assert any("gpu0: PIDs 4242" in note for note in notes)


def test_a_mig_slice_is_reported_unmeasured_with_its_reason(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Dict[str, Any]
) -> None:
    install(monkeypatch, [FakeGpu(mig_uuids=("MIG-aaaa",))])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-aaaa")
    pytester.makepyfile(TEST)
    run = run_energy("--energy-meter=nvml")
    run.result.assert_outcomes(passed=1)
    jsonschema.validate(run.report, report_schema)
    entry = run.entry("test_on_gpu")
    gpu = entry["components"]["gpu"]
    assert gpu["method"] == "unmeasured" and gpu["energy_j"] is None
    assert "MIG slice: NVML has no per-slice energy" in json.dumps(entry)
