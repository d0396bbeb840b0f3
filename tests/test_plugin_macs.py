"""Complexity through real pytest runs: ``energy.count_macs``, the ``macs_input`` marker, the caps, the reports.

The model is a two-layer MLP whose counts are written by hand: 128 x 64 + 64 x 10 = 8,832
MACs for one input row, and 128 x 64 + 64 + 64 x 10 + 10 = 8,906 parameters (the 10 of the
last bias frozen, so 8,896 trainable).

One count runs in this process before any in-process ``pytester`` run: a run drops the
modules it imported when it ends, and torch (with the modules a count imports lazily) cannot
be imported twice in one process.
"""

from __future__ import annotations

import json
from typing import Callable

import pytest
import torch

from junit_read import junit_properties_by_test
from pytest_energy.account.complexity import count_complexity

MLP_MACS = 128 * 64 + 64 * 10
MLP_PARAMS = 128 * 64 + 64 + 64 * 10 + 10
MLP_TRAINABLE = MLP_PARAMS - 10

MODEL_FIXTURE = """
import pytest
import torch
from torch import nn


@pytest.fixture
def mlp():
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    model[2].bias.requires_grad_(False)
    return model
"""

COUNTING_SUITE = MODEL_FIXTURE + """

@pytest.mark.energy(phase="test")
def test_counts_in_its_body(energy, mlp):
    complexity = energy.count_macs(mlp, torch.zeros(1, 128))
    assert complexity.macs == 8832
    assert "total_ops" not in mlp.state_dict()


@pytest.mark.energy(phase="test", macs_input=(1, 128))
def test_counted_by_the_marker(mlp):
    mlp(torch.zeros(4, 128))
"""


@pytest.fixture(scope="module", autouse=True)
def counting_modules_loaded() -> None:
    """Import everything a count needs once, before the first ``pytester`` snapshot of ``sys.modules``."""
    count_complexity(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def test_fixture_and_marker_counts_reach_json_junit_and_terminal(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a terminal wide enough for every column
    pytester.makepyfile(COUNTING_SUITE)
    run = run_energy("--energy-meter=none", "--junitxml=junit.xml")
    run.result.assert_outcomes(passed=2)
    for name in ("test_counts_in_its_body", "test_counted_by_the_marker"):
        entry = run.entry(name)
        assert (entry["macs"], entry["params"], entry["params_trainable"]) == (MLP_MACS, MLP_PARAMS, MLP_TRAINABLE)
        assert entry["macs_input_shapes"] == [[1, 128]]
        assert entry["macs_tool"].startswith("torch.utils.flop_counter")
        assert entry["macs_thop"] > 0
        assert entry["complexity_verdict"] == "no-cap"
    run.result.stdout.fnmatch_lines(["*MACs*params*", "*::test_counted_by_the_marker*8.83K*8.91K*"])
    properties = junit_properties_by_test(pytester.path / "junit.xml")
    assert properties["test_counted_by_the_marker"]["macs"] == str(MLP_MACS)
    assert properties["test_counts_in_its_body"]["params_trainable"] == str(MLP_TRAINABLE)


def test_tests_without_a_count_show_no_complexity_columns(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_plain():\n    pass\n")
    run = run_energy("--energy-meter=none")
    assert "macs" not in run.entry("test_plain")
    assert "MACs" not in run.result.stdout.str()


def test_complexity_caps_fail_the_test_with_figure_and_cap(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(COUNTING_SUITE)
    run = run_energy("--energy-meter=none", "--macs-cap=8k", "--params-cap=1M")
    run.result.assert_outcomes(failed=2)
    run.result.stdout.fnmatch_lines(["*MACs 8.83K (8,832) exceed cap 8.00K (8,000)*", "*::test_counted_by_the_marker*no-cap, complexity over-cap*"])
    assert "parameters" not in run.result.stdout.str()
    assert run.entry("test_counted_by_the_marker")["complexity_verdict"] == "over-cap"


def test_complexity_caps_under_the_figures_pass(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(COUNTING_SUITE)
    run = run_energy("--energy-meter=none", "--macs-cap=8832", "--params-cap=8.906K")
    run.result.assert_outcomes(passed=2)
    assert run.entry("test_counts_in_its_body")["complexity_verdict"] == "pass"


def test_params_cap_from_pyproject(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(COUNTING_SUITE)
    pytester.makefile(".toml", pyproject='[tool.pytest-energy]\nparams-cap = "8k"\n')
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(failed=2)
    run.result.stdout.fnmatch_lines(["*parameters 8.91K (8,906) exceed cap 8.00K (8,000)*"])


@pytest.mark.parametrize("option", ["--macs-cap=2kW", "--params-cap=-1", "--macs-cap=lots"])
def test_bad_complexity_cap_is_a_usage_error(run_energy: Callable, pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(COUNTING_SUITE)
    run = run_energy(option)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines([f"*{option.split('=')[0]}*{option.split('=')[1]}*SI suffix*"])


def test_marker_without_a_model_fixture_fails_and_says_how(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        MODEL_FIXTURE
        + """

@pytest.mark.energy(macs_input=(1, 128))
def test_no_model():
    pass


@pytest.mark.energy(macs_input=(1, 128), macs_model="missing")
def test_wrong_name(mlp):
    pass


@pytest.mark.energy(macs_input=(1, 7), macs_model="mlp")
def test_wrong_shape(mlp):
    pass
"""
    )
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(failed=3)
    run.result.stdout.fnmatch_lines(
        [
            "*cannot count MACs for macs_input=(1, 128): LookupError: the test needs exactly one torch.nn.Module fixture*",
            "*macs_model='missing' is not a fixture of this test (it has: mlp)*",
            "*cannot count MACs for macs_input=(1, 7): RuntimeError*",
        ]
    )
    assert run.entry("test_wrong_shape")["complexity_verdict"] == "error"


def test_missing_thop_names_the_extra_to_install(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\n\nsys.modules['thop'] = None  # as if ultralytics-thop were not installed\n")
    pytester.makepyfile(COUNTING_SUITE)
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(failed=2)
    run.result.stdout.fnmatch_lines(["*MissingExtraError*pip install*pytest-energy[[]macs[]]*"])


def test_macs_compare_fail_fails_a_model_that_grew_by_one_mac(run_energy: Callable, pytester: pytest.Pytester) -> None:
    """``--macs-compare-fail=0%``: counts are exact, any growth over the stored run fails; an equal count passes."""
    pytester.makepyfile(test_counting=COUNTING_SUITE)
    run_energy("--energy-meter=none", "--energy-autosave").result.assert_outcomes(passed=2)
    again = run_energy("--energy-meter=none", "--macs-compare-fail=0%")
    again.result.assert_outcomes(passed=2)
    assert again.entry("test_counted_by_the_marker")["complexity_verdict"] == "pass"
    [stored] = sorted((pytester.path / ".energy").glob("*/*.json"))
    document = json.loads(stored.read_text(encoding="utf-8"))
    for test in document["tests"]:
        test["macs"] -= 1
    stored.write_text(json.dumps(document), encoding="utf-8")
    grown = run_energy("--energy-meter=none", "--macs-compare-fail=0%")
    grown.result.assert_outcomes(failed=2)
    grown.result.stdout.fnmatch_lines([f"*MACs 8.83K (8,832) grew over 8.83K (8,831) (+0.0%) in {stored.name} (limit +0%)*"])
    assert grown.entry("test_counted_by_the_marker")["complexity_verdict"] == "regression"
