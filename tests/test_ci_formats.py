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


MANY_OVER_CAP = BURN + """

@pytest.mark.parametrize("index", range(12))
@pytest.mark.energy(cap="1e-9 J")
def test_over(index):
    burn(0.001)
"""


def test_at_most_ten_annotations_and_the_summary_says_how_many_more(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_many=MANY_OVER_CAP)
    run = run_energy("--energy-meter=codecarbon")
    run.result.assert_outcomes(failed=12)
    assert len([line for line in run.result.outlines if line.startswith("::error ")]) == 10
    assert "2 more flagged tests than the 10 annotated (GitHub shows 10 annotations a step)" in summary.read_text()


def test_the_worst_are_annotated_first() -> None:
    from pytest_energy.account.record import Record
    from pytest_energy.measure.base import Measurement, Reading
    from pytest_energy.report.github import flagged

    def over(name: str, joules: float) -> Record:
        measurement = Measurement(1.0, (Reading("cpu", "package-0", joules, "rapl-counter"),))
        return Record(name, "test", "failed", measurement, cap_j=1.0, verdict="over-cap", verdict_message="over")

    records = [over(f"t{index}", joules) for index, joules in enumerate([2, 50, 3, 9, 4, 8, 5, 7, 6, 10, 1.5, 20])]
    shown, more = flagged(records + [Record("fine", "test", "passed", None)])
    assert [record.nodeid for record in shown] == ["t1", "t11", "t9", "t3", "t5", "t7", "t8", "t6", "t4", "t2"]
    assert more == 2


def test_emissions_only_with_a_carbon_intensity(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_export=SUITE)
    plain = run_energy("--energy-meter=codecarbon")
    assert all("emissions" not in test for test in plain.report["tests"])  # no figure invented
    assert not any(line.startswith("emissions:") for line in plain.result.outlines)
    run = run_energy("--energy-meter=codecarbon", "--energy-carbon-intensity=56g/kWh")
    entry = run.entry("test_repeated")
    assert entry["emissions"] == {"kg_co2eq": pytest.approx(entry["energy_j"] / 3.6e6 * 0.056),
                                  "carbon_intensity_g_per_kwh": 56.0, "source": "carbon-intensity setting"}
    run.result.stdout.fnmatch_lines(["emissions: * kg CO2eq over 3 measured tests (56 g CO2eq/kWh, from the "
                                     "carbon-intensity setting)"])


@pytest.mark.parametrize("value", ["56", "56g", "56 W/kWh", "-1g/kWh", "56g/kW"])
def test_a_bad_carbon_intensity_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--energy-carbon-intensity={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("--energy-carbon-intensity" in line and "invalid carbon intensity" in line for line in result.errlines)
