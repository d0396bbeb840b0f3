"""The JSON report (schema, totals, atomic writes), the JUnit properties, and reports under xdist."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List

import jsonschema
import pytest

from junit_read import junit_properties_by_test
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.account.record import Record
from pytest_energy.report.json_report import build_document
from pytest_energy.store.files import write_atomically
from pytest_energy.report.junit import junit_properties

KWH = 3.6e6

REPORTED_SUITE = """
import time

import pytest


def burn(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.energy(phase="train")
def test_train_a():
    burn(0.2)


@pytest.mark.energy(phase="train", cap="1MWh")
def test_train_b(energy):
    burn(0.2)
    energy.record_score("psds", 0.42)


@pytest.mark.energy
def test_inference_fails():
    burn(0.1)
    assert False


def test_unmarked():
    pass
"""


def validator(schema: Dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def temporary_files(directory: Path) -> List[str]:
    return sorted(path.name for path in directory.rglob("*.tmp"))


def sample_record(**changes: Any) -> Record:
    readings = (
        Reading("gpu", "gpu", None, "unmeasured", note="no NVML"),
        Reading("cpu", "package-0", 40.0, "rapl-counter", "Intel Xeon"),
        Reading("ram", "ram", 10.0, "codecarbon-ram-model"),
    )
    fields: Dict[str, Any] = dict(
        nodeid="t.py::test_x", phase="train", outcome="passed", measurement=Measurement(2.0, readings), cap_j=100.0, verdict="pass"
    )
    fields.update(changes)
    return Record(**fields)


# -- JSON ----------------------------------------------------------------------------------------


def test_json_report_validates_and_totals_each_phase(run_energy: Callable, pytester: pytest.Pytester, report_schema: Dict[str, Any]) -> None:
    pytester.makepyfile(REPORTED_SUITE)
    run = run_energy()
    run.result.assert_outcomes(passed=3, failed=1)
    report = run.report
    assert report is not None
    errors = [error.message for error in validator(report_schema).iter_errors(report)]
    assert errors == []
    assert report["schema"] == "pytest-energy/1"
    assert run.nodeids == ["test_train_a", "test_train_b", "test_inference_fails"]
    assert run.entry("test_inference_fails")["outcome"] == "failed"
    assert run.entry("test_train_b")["scores"] == {"psds": 0.42}

    for phase, names in (("train", ["test_train_a", "test_train_b"]), ("test", ["test_inference_fails"])):
        entries = [run.entry(name) for name in names]
        total = report["totals"][phase]
        assert (total["tests"], total["measured"]) == (len(names), len(names))
        assert total["energy_j"] == pytest.approx(sum(entry["energy_j"] for entry in entries))
        gpu = [entry["components"]["gpu"]["energy_j"] for entry in entries if entry["components"]["gpu"]["energy_j"] is not None]
        assert total["gpu_energy_j"] == (pytest.approx(sum(gpu)) if gpu else None)
    assert set(report["totals"]) == {"train", "test"}
    assert temporary_files(pytester.path) == []


def test_schema_rejects_documents_missing_or_mistyping_core_fields(report_schema: Dict[str, Any]) -> None:
    environment = {"cpu_model": "x", "cpu_count": 2, "ram_bytes": 1, "gpus": [], "gpu_count": 0, "gpu_driver": None,
                   "python": "3.11", "pytest": "9", "plugin": "0.1.0", "meter": {"choice": "auto"}}
    valid = build_document([sample_record(), sample_record(nodeid="t.py::test_y", measurement=None, outcome="error")],
                           environment, {}, {"meter": "auto", "caps_j": {}})
    check = validator(report_schema)
    assert list(check.iter_errors(valid)) == []

    def broken(change: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
        document = copy.deepcopy(valid)
        change(document)
        return document

    mutations = [
        lambda d: d.update(schema="pytest-energy/2"),
        lambda d: d.pop("totals"),
        lambda d: d["tests"][0].pop("energy_j"),
        lambda d: d["tests"][0].update(energy_j=-1.0),
        lambda d: d["tests"][0].update(verdict="fine"),
        lambda d: d["tests"][0].update(phase="eval"),
        lambda d: d["tests"][0]["components"].update(tpu={"energy_j": 1.0, "method": "x", "partial": None}),
        lambda d: d["tests"][0]["devices"][0].pop("method"),
        lambda d: d["tests"][0].update(gpu_share=1.5),
        lambda d: d["environment"].pop("cpu_model"),
        lambda d: d["totals"]["train"].pop("energy_j"),
        lambda d: d.update(created="yesterday"),
    ]
    for mutation in mutations:
        assert not check.is_valid(broken(mutation))
    assert check.is_valid(broken(lambda d: d["tests"][0].update(energy_normalized_j=3.0, macs=1e9)))


def test_write_atomically_keeps_the_previous_report_when_a_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "energy.json"
    write_atomically(target, {"schema": "pytest-energy/1", "tests": []})
    with pytest.raises(ValueError):
        write_atomically(target, {"tests": [float("nan")]})  # JSON has no NaN: fails mid-write
    assert json.loads(target.read_text(encoding="utf-8")) == {"schema": "pytest-energy/1", "tests": []}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["energy.json"]


def test_report_file_gets_the_permissions_of_an_ordinary_file(tmp_path: Path) -> None:
    """mkstemp creates its file 0600; the report must follow the umask like any file the user writes."""
    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "energy.json", {"tests": []})
        (tmp_path / "ordinary.json").write_text("{}", encoding="utf-8")
    finally:
        os.umask(previous)
    assert oct((tmp_path / "energy.json").stat().st_mode & 0o777) == oct((tmp_path / "ordinary.json").stat().st_mode & 0o777)


def test_unwritable_json_path_is_one_line_and_a_red_run_not_a_crash(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_marked():\n    pass\n")
    pytester.makefile("", blocker="a file where the report's directory should be")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=blocker/energy.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the report asked for is not there: not a green run
    result.assert_outcomes(passed=1, warnings=0)
    result.stdout.fnmatch_lines(["pytest-energy: cannot write the energy JSON report to blocker/energy.json: *; "
                                 "nothing of this session was written there"])
    result.stdout.no_fnmatch_line("*energy report written to*")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


# -- JUnit ---------------------------------------------------------------------------------------


def test_junit_properties_read_back_with_junitparser(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(REPORTED_SUITE)
    run = run_energy("--junitxml=junit.xml")
    properties = junit_properties_by_test(pytester.path / "junit.xml")
    assert properties["test_unmarked"] == {}
    for name in ("test_train_a", "test_train_b", "test_inference_fails"):
        entry, found = run.entry(name), properties[name]
        assert float(found["energy_j"]) == pytest.approx(entry["energy_j"], rel=1e-5)
        assert float(found["energy_kwh"]) == pytest.approx(entry["energy_j"] / KWH, rel=1e-5)
        assert found["energy_meter"] == entry["meter"]
        for component in ("gpu", "cpu", "ram"):
            figure = entry["components"][component]["energy_j"]
            if figure is None:
                assert f"{component}_energy_j" not in found
            else:
                assert float(found[f"{component}_energy_j"]) == pytest.approx(figure, rel=1e-5)
    assert float(properties["test_train_b"]["energy_cap_j"]) == pytest.approx(3.6e9)
    assert "energy_cap_j" not in properties["test_train_a"]
    assert float(properties["test_train_b"]["score_psds"]) == pytest.approx(0.42)
    assert not any(name.startswith("score_") for name in properties["test_train_a"])


def test_junit_leaves_unmeasured_figures_out_instead_of_writing_zero() -> None:
    measured = dict(junit_properties(sample_record()))
    assert "gpu_energy_j" not in measured
    assert (measured["cpu_energy_j"], measured["ram_energy_j"], measured["energy_j"]) == ("40", "10", "50")
    assert (measured["energy_cap_j"], measured["energy_meter"]) == ("100", "rapl-counter+codecarbon-ram-model")
    unmeasured = dict(junit_properties(sample_record(measurement=None, cap_j=None, verdict="no-cap")))
    assert not {"energy_j", "energy_kwh", "gpu_energy_j", "cpu_energy_j", "ram_energy_j", "energy_cap_j"} & set(unmeasured)
    assert unmeasured["energy_meter"] == "none"


# -- xdist ---------------------------------------------------------------------------------------


def test_xdist_controller_writes_one_report_with_every_worker_test(run_energy: Callable, pytester: pytest.Pytester, report_schema: Dict[str, Any]) -> None:
    pytester.makepyfile(
        """
        import time

        import pytest

        @pytest.mark.energy
        @pytest.mark.parametrize("index", range(4))
        def test_marked(index):
            time.sleep(0.1)
        """
    )
    run = run_energy("-n", "2", subprocess=True)
    run.result.assert_outcomes(passed=4)
    assert run.report is not None
    assert sorted(run.nodeids) == [f"test_marked[{index}]" for index in range(4)]
    assert all(entry["energy_j"] > 0 for entry in run.report["tests"])
    assert run.report["totals"]["test"]["tests"] == 4
    assert run.report["environment"]["cpu_model"]
    assert list(validator(report_schema).iter_errors(run.report)) == []
    assert temporary_files(pytester.path) == []
