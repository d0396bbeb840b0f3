"""The plugin through real pytest runs: which tests are measured, caps, outcomes, the fixture.

Runs that need a figure measure for real (here CodeCarbon's offline tracker, what
``auto`` falls back to without NVML or RAPL); runs about selection, outcomes and
usage use ``--energy-meter=none`` and start no meter.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Callable

import pytest
from suites import BURN


MEASURED_SUITE = BURN + """

@pytest.mark.energy(phase="train")
def test_marked():
    burn(0.3)


def test_fixture_only(energy):
    first = energy.elapsed()
    burn(0.3)
    second = energy.elapsed()
    assert second.duration_s > first.duration_s
    assert second.total_j > (first.total_j or 0.0)
    energy.record_score("psds", 0.42)
    with pytest.raises(ValueError):
        energy.record_score("bad", float("nan"))


def test_unmarked():
    pass
"""

CAP_SUITE = BURN + """

@pytest.mark.energy
def test_over_cap():
    burn(0.5)


@pytest.mark.energy(cap="1MWh")
def test_under_own_cap():
    burn(0.2)


@pytest.mark.energy(cap="1MWh")
def test_fails_for_its_own_reasons():
    burn(0.2)
    assert 1 + 1 == 3, "its own failure"
"""

OVER_CAP_MESSAGE = re.compile(
    r"energy \S+ (J|kJ|MJ|Wh|kWh|MWh) exceeds cap 1\.00e-03 J "
    r"\(gpu [^,]+, cpu \S+ (J|Wh|kWh), ram \S+ (J|Wh|kWh); meter codecarbon-\S+\)"
)
HEAVY_MODULES = ("torch", "codecarbon", "pynvml", "thop")


def test_marked_and_fixture_tests_are_measured_unmarked_ones_are_not(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MEASURED_SUITE)
    run = run_energy()
    run.result.assert_outcomes(passed=3)
    assert run.nodeids == ["test_marked", "test_fixture_only"]
    marked, fixture_only = run.entry("test_marked"), run.entry("test_fixture_only")
    assert (marked["phase"], fixture_only["phase"]) == ("train", "test")
    for entry in (marked, fixture_only):
        assert entry["energy_j"] > 0
        assert entry["duration_s"] >= 0.3
        assert entry["meter"] not in ("", "none")
        assert entry["outcome"] == "passed"
        assert entry["verdict"] == "no-cap"
    assert fixture_only["scores"] == {"psds": 0.42}
    assert marked["scores"] == {}


def test_terminal_table_lists_measured_tests_and_codecarbon_caveats(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a terminal wide enough for every column
    pytester.makepyfile(MEASURED_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=codecarbon")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= energy =*",
            "test * phase * energy * gpu * cpu * ram * %gpu * cap * verdict * meter",
            "*::test_marked * train *codecarbon-*",
            "*::test_fixture_only * test *codecarbon-*",
            "*note: cpu [[]codecarbon-*[]]: estimate*not a measurement*",
            "*note: ram [[]codecarbon-ram-model[]]: estimate*not a measurement*",
        ]
    )
    result.stdout.no_fnmatch_line("*::test_unmarked *")


def test_a_narrow_terminal_keys_the_meter_and_names_the_columns_left_out(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "64")
    pytester.makepyfile(MEASURED_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=codecarbon")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "test * phase * energy * verdict * meter",
            "…*::test_marked * train * [[]1[]]",
            "…*::test_fixture_only * test * [[]1[]]",
            "meter [[]1[]]: codecarbon-*",
            "(left out to fit 64 columns: *)",
        ]
    )
    table = result.stdout.lines[result.stdout.lines.index(next(l for l in result.stdout.lines if l.startswith("test "))):]
    assert all(len(line) <= 64 for line in table[:4])


def test_energy_all_measures_unmarked_tests(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    assert run_energy("--energy-meter=none").report["tests"] == []
    run = run_energy("--energy-meter=none", "--energy-all")
    assert run.nodeids == ["test_one", "test_two"]
    assert {entry["phase"] for entry in run.report["tests"]} == {"test"}


def test_over_cap_fails_under_cap_passes_and_own_failures_are_measured(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CAP_SUITE)
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=0.001J")
    run.result.assert_outcomes(passed=1, failed=2)
    over = run.entry("test_over_cap")
    assert (over["outcome"], over["verdict"], over["cap_j"]) == ("failed", "over-cap", pytest.approx(1e-3))
    assert over["energy_j"] > 1e-3
    [message] = [line for line in run.result.outlines if "exceeds cap" in line and not line.startswith("FAILED")]
    assert OVER_CAP_MESSAGE.search(message), message

    under = run.entry("test_under_own_cap")
    assert (under["outcome"], under["verdict"], under["cap_j"]) == ("passed", "pass", pytest.approx(3.6e9))

    own = run.entry("test_fails_for_its_own_reasons")
    assert (own["outcome"], own["verdict"]) == ("failed", "pass")
    assert own["energy_j"] > 0 and own["duration_s"] >= 0.2
    run.result.stdout.fnmatch_lines(["*its own failure*"])


def test_meter_none_with_a_cap_fails_the_test_as_unenforceable(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_capped():\n    pass\n")
    run = run_energy("--energy-meter=none", "--energy-cap=2kWh")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*cannot enforce cap 2.00 kWh*"])
    entry = run.entry("test_capped")
    assert (entry["energy_j"], entry["verdict"], entry["meter"]) == (None, "unmeasured", "none")
    assert all(figure["energy_j"] is None for figure in entry["components"].values())


def test_meter_none_without_a_cap_passes_unmeasured(run_energy: Callable, pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_uncapped():\n    pass\n")
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(passed=1)
    assert (run.entry("test_uncapped")["energy_j"], run.entry("test_uncapped")["verdict"]) == (None, "no-cap")


def test_setup_error_of_a_marked_test_is_recorded_as_error(run_energy: Callable, pytester: pytest.Pytester) -> None:
    """A marked test whose fixture fails never reaches its call phase; it is still reported."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        @pytest.mark.energy
        def test_setup_fails(broken):
            pass
        """
    )
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(errors=1)
    entry = run.entry("test_setup_fails")
    assert (entry["outcome"], entry["energy_j"]) == ("error", None)


def test_skipped_marked_tests_are_recorded_as_skipped(run_energy: Callable, pytester: pytest.Pytester) -> None:
    """Skipped in its body or by a marker (in setup, before any measurement): either way it is reported."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.energy
        def test_skips_itself():
            pytest.skip("not today")

        @pytest.mark.energy
        @pytest.mark.skip(reason="never")
        def test_skip_marker():
            pass
        """
    )
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(skipped=2)
    assert run.entry("test_skips_itself")["outcome"] == "skipped"
    assert run.entry("test_skip_marker")["outcome"] == "skipped"


def test_plugin_is_loaded_through_its_entry_point_and_p_no_energy_disables_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_capped():\n    pass\n")
    enabled = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=none", "--energy-cap=2kWh")
    enabled.assert_outcomes(failed=1)
    enabled.stdout.fnmatch_lines(["*cannot enforce cap 2.00 kWh*"])
    disabled = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:energy", "--energy-cap=2kWh")
    assert disabled.ret == pytest.ExitCode.USAGE_ERROR
    disabled.stderr.fnmatch_lines(["*unrecognized arguments: --energy-cap=2kWh*"])


def test_importing_the_plugin_imports_no_heavy_module() -> None:
    probe = (
        "import json, sys\n"
        "import pytest_energy.plugin\n"
        f"print(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}} & {set(HEAVY_MODULES)!r})))\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(completed.stdout) == []
