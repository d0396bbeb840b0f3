"""Normalised energies and EW scores in ``--junitxml`` come from the controller's accounted records.

A test's EW depends on the linked test of the other phase (``energy(system=...)``), which may
run later or on another xdist worker; the JUnit file must say what the JSON report says.
The run measures with RAPL on fake powercap trees, one per xdist worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from fakes.powercap import FakePowercap
from junit_read import junit_properties_by_test
from pytest_energy.account.record import Record
from pytest_energy.report.junit import add_accounted_properties, junit_test_address
from test_plugin_concurrency import PER_WORKER_RAPL, SPEND

TRAIN = SPEND + """

@pytest.mark.energy(phase="train", system="sed")
def test_train(energy):
    spend(20.0)
    energy.record_score("f1", 0.4)
"""

INFERENCE = SPEND + """

@pytest.mark.energy(phase="test", system="sed")
def test_inference(energy):
    spend(2.0)
    energy.record_score("f1", 0.5)
"""

# No reference energy: EW weighs the raw energies, so no baseline test is needed.
BASELINE_PHASES = '[tool.pytest-energy]\nbaseline-train-energy = "10 J"\nbaseline-test-energy = "1 J"\n'


def test_junit_ew_properties_under_xdist_match_the_json_report(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Both tests score; whichever worker and order runs them, each needs the other's energy for one phase."""
    roots = {worker: str(FakePowercap(tmp_path / worker).add_package(0).root) for worker in ("gw0", "gw1")}
    pytester.makeconftest(PER_WORKER_RAPL.format(roots=roots))
    pytester.makepyfile(test_a_train=TRAIN, test_b_inference=INFERENCE)
    pytester.makepyprojecttoml(BASELINE_PHASES)
    run = run_energy("--energy-meter=rapl", "-n", "2", "--junitxml=junit.xml", subprocess=True)
    run.result.assert_outcomes(passed=2)
    properties = junit_properties_by_test(pytester.path / "junit.xml")
    for name in ("test_train", "test_inference"):
        ew_scores = run.entry(name)["ew_scores"]
        assert sorted(ew_scores) == ["test", "train"]
        expected = {f"ew_{score}_{phase}": value for phase, weighted in ew_scores.items() for score, value in weighted.items()}
        found = {key: float(value) for key, value in properties[name].items() if key.startswith("ew_")}
        assert found == pytest.approx(expected, rel=1e-5)
    assert float(properties["test_train"]["ew_f1_train"]) == pytest.approx(0.4 * 10 / 20, rel=1e-3)
    assert float(properties["test_train"]["ew_f1_test"]) == pytest.approx(0.4 * 1 / 2, rel=1e-3)


@pytest.mark.parametrize(
    ("nodeid", "prefix", "address"),
    [
        ("tests/test_a.py::test_x", None, ("tests.test_a", "test_x")),
        ("tests/test_a.py::TestK::test_x[a/b.py::c]", "ci", ("ci.tests.test_a.TestK", "test_x[a/b.py::c]")),
    ],
)
def test_junit_test_address_is_the_one_junitxml_writes(nodeid: str, prefix: Any, address: Any) -> None:
    assert junit_test_address(nodeid, prefix) == address


def test_accounted_properties_replace_earlier_ones_and_leave_others(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="2">'
        '<testcase classname="test_a" name="test_x"><properties><property name="energy_j" value="3"/>'
        '<property name="ew_f1_test" value="9"/></properties></testcase>'
        '<testcase classname="test_a" name="test_y"/></testsuite></testsuites>', encoding="utf-8")
    record = Record(nodeid="test_a.py::test_x", phase="test", outcome="passed", measurement=None, cap_j=None,
                    verdict="pass", extra={"energy_normalized_j": 2.0, "ew_scores": {"test": {"f1": 0.25}}})
    assert add_accounted_properties(path, [record]) == 1
    properties = junit_properties_by_test(path)
    assert properties["test_x"] == {"energy_j": "3", "ew_f1_test": "0.25", "energy_normalized_j": "2"}
    assert properties["test_y"] == {}


def test_junit_ew_of_a_test_includes_the_linked_test_that_ran_after_it(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without xdist too: test_train runs first, yet its JUnit entry has the test phase's EW (added at the end)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # set when this suite itself runs under xdist
    root = str(FakePowercap(tmp_path / "gw0").add_package(0).root)
    pytester.makeconftest(PER_WORKER_RAPL.format(roots={"gw0": root}))
    pytester.makepyfile(test_a_train=TRAIN, test_b_inference=INFERENCE)
    pytester.makepyprojecttoml(BASELINE_PHASES)
    run = run_energy("--energy-meter=rapl", "--junitxml=junit.xml", "-p", "no:xdist", subprocess=True)
    run.result.assert_outcomes(passed=2)
    assert run.nodeids == ["test_train", "test_inference"]
    properties = junit_properties_by_test(pytester.path / "junit.xml")["test_train"]
    assert float(properties["ew_f1_test"]) == pytest.approx(run.entry("test_train")["ew_scores"]["test"]["f1"], rel=1e-5)
    assert properties["energy_verdict"] == "no-cap"  # the test's own properties are kept
