"""github-action-benchmark's JSON and the GitLab metrics report (OpenMetrics), from real pytest runs."""

from __future__ import annotations

import json
from typing import Callable

import jsonschema
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from suites import BURN

# github-action-benchmark's README, "Examples" > customSmallerIsBetter: a JSON array of objects with
# name, unit and value, and optional range and extra (strings).
BENCHMARK_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "unit", "value"],
        "properties": {"name": {"type": "string"}, "unit": {"type": "string"}, "value": {"type": "number"},
                       "range": {"type": "string"}, "extra": {"type": "string"}},
        "additionalProperties": False,
    },
}

SUITE = BURN + '''

@pytest.mark.energy(repeats=3)
def test_repeated():
    burn(0.02)


@pytest.mark.energy
@pytest.mark.parametrize("text", ['a "quoted" \\\\ back'])
def test_odd_name(text):
    burn(0.01)


@pytest.mark.energy
def test_skipped():
    pytest.skip("not measured")
'''


@pytest.fixture
def exported(run_energy: Callable, pytester: pytest.Pytester):
    pytester.makepyfile(test_export=SUITE)
    run = run_energy("--energy-meter=codecarbon", "--energy-benchmark-json=out/bench.json",
                     "--energy-openmetrics=out/metrics.txt")
    run.result.assert_outcomes(passed=2, skipped=1)
    return run, pytester.path / "out"


def test_benchmark_json_follows_github_action_benchmarks_format(exported) -> None:
    run, out = exported
    entries = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    jsonschema.validate(entries, BENCHMARK_SCHEMA)
    by_name = {entry["name"]: entry for entry in entries}
    assert set(by_name) == {"test_export.py::test_repeated", 'test_export.py::test_odd_name[a "quoted" \\\\ back]'}
    repeated = by_name["test_export.py::test_repeated"]
    assert repeated["unit"] == "J" and repeated["value"] == run.entry("test_repeated")["energy_j"]
    assert repeated["range"].startswith("± ") and repeated["extra"].startswith("median of 3 repeats; phase test")
    assert "range" not in by_name['test_export.py::test_odd_name[a "quoted" \\\\ back]']


def test_openmetrics_report_parses_with_prometheus_client(exported) -> None:
    run, out = exported
    [family] = list(text_string_to_metric_families((out / "metrics.txt").read_text(encoding="utf-8")))
    assert (family.name, family.type, family.unit) == ("pytest_energy_joules", "gauge", "joules")
    samples = {(sample.labels["test"], sample.labels["component"]): sample.value for sample in family.samples}
    odd = 'test_export.py::test_odd_name[a "quoted" \\\\ back]'
    assert samples[(odd, "total")] == run.entry("test_odd_name[a \"quoted\" \\\\ back]")["energy_j"]
    assert samples[("test_export.py::test_repeated", "cpu")] == run.entry("test_repeated")["components"]["cpu"]["energy_j"]
    assert not any(test.endswith("test_skipped") for test, _ in samples)  # no figure invented
    assert ("test_export.py::test_repeated", "gpu") not in samples  # unmeasured here
