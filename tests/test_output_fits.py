"""Output that fits the terminal and says what happened (issue 20): a real run under an 80-column pty,
the organisers' tables at a terminal's width, and the trend command's errors and notes."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import List

import pytest

from pytest_energy.measure.overlap import STATE_DIR_ENV
from pytest_energy.organise.cli import main
from test_cli_trend import make_report, reports, write  # noqa: F401  (reports: a fixture)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(arguments: List[str], cwd: Path, columns: int, timeout_s: float = 300) -> str:
    """``arguments`` run on a pseudo-terminal ``columns`` wide (``COLUMNS`` unset); its output without colours."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("COLUMNS", "LINES") and (not key.startswith(("PYTEST_", "GITHUB_")) or key == STATE_DIR_ENV)}
    process = subprocess.Popen(arguments, cwd=cwd, stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**environment, "CODECARBON_LOG_LEVEL": "error"}, start_new_session=True)
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + timeout_s  # a hang guard only
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    return ANSI.sub("", output.decode("utf-8", "replace")).replace("\r", "")


LONG_SUITE = '''
import time
import pytest


def burn(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(1000))


@pytest.mark.energy_baseline
def test_the_reference_workload_of_this_rather_verbose_project():
    burn(0.1)


@pytest.mark.energy(phase="train", cap="1 MWh", system="s")
def test_training_a_model_with_a_long_descriptive_name_for_ten_epochs():
    burn(0.1)


@pytest.mark.energy(phase="test", cap="1 MWh", system="s")
def test_inference_on_the_held_out_clips_of_the_evaluation_set(energy):
    burn(0.1)
    energy.record_score("psds1", 0.5)
'''


def test_the_energy_summary_fits_an_80_column_terminal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"test_a_module_with_quite_a_long_name_in_a_deep_project": LONG_SUITE})
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "10 J"\n'
                               'baseline-train-energy = "20 J"\nbaseline-test-energy = "5 J"\n')
    output = run_in_pty([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist"],
                        pytester.path, columns=80)
    assert "3 passed" in output, output
    summary = output[output.index("= energy =") + len("= energy ="):output.index("normalisation:")]
    too_wide = [line for line in summary.splitlines() if len(line) > 80]  # the table; log lines stay whole
    assert too_wide == [], summary
    assert "test_inference_on_the_held_out_clips_of_the_evaluation_set" in summary  # each test named whole


def test_the_trend_tables_fit_the_terminal(reports: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["trend", str(reports)]) == 0
    out = capsys.readouterr().out
    tables = out[out.index("Quartiles per edition"):]
    assert [line for line in tables.splitlines() if len(line) > 80] == []
    assert "All: n" in tables  # wrapped, not cut: the last column is still there
    monkeypatch.delenv("COLUMNS")
    assert main(["trend", str(reports)]) == 0  # not a terminal (captured): whole rows, for files and pipes
    assert any(len(line) > 80 for line in capsys.readouterr().out.splitlines())


def test_trend_with_a_score_no_input_has_is_a_usage_error_naming_the_ones_they_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = make_report("a", params=1e6, train_kwh=1, score=0.5)
    report["tests"][1]["scores"]["event_f1"] = 0.6
    write(tmp_path, "a.json", report)
    assert main(["trend", str(tmp_path), "--score", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "no system in the inputs has a score called 'bogus'" in err and "psds1" in err and "event_f1" in err


def test_the_gpu_energy_note_names_the_inputs_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "energy.json", make_report("cpu-only", params=1e6, train_kwh=1, score=0.5))
    assert main(["trend", str(tmp_path / "energy.json")]) == 0
    out = capsys.readouterr().out
    note = next(line for line in out.splitlines() if line.startswith("Note: no GPU energy"))
    assert "the JSON reports measured no GPU" in note and "DCASE" not in note


def test_energy_all_on_a_large_suite_shows_the_top_tests_totals_and_where_the_rest_is(
    pytester: pytest.Pytester, run_energy
) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.parametrize("n", range(45))
def test_many(n):
    pass

def test_fails():
    assert False
"""
    )
    run = run_energy("--energy-all", "--energy-meter=codecarbon")
    run.result.assert_outcomes(passed=45, failed=1)
    assert len(run.report["tests"]) == 46  # the JSON keeps every test
    out = run.result.stdout.str()
    table = out[out.index("= energy ="):out.index("(30 of 46 tests shown")]
    assert table.count("::test_") == 30
    run.result.stdout.fnmatch_lines([
        "(30 of 46 tests shown: failing ones, then the highest energies; every test is in energy.json)",
        "totals per phase: test * J (46 of 46 tests measured)",
        "verdicts: no-cap 46",
    ])


def test_totals_of_a_large_unmeasured_suite_say_unmeasured_never_zero(pytester: pytest.Pytester, run_energy) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.parametrize('n', range(40))\ndef test_many(n):\n    pass\n")
    run = run_energy("--energy-all", "--energy-meter=none")
    run.result.assert_outcomes(passed=40)
    run.result.stdout.fnmatch_lines(["totals per phase: test unmeasured (0 of 40 tests measured)"])
    assert "0 J" not in run.result.stdout.str()


@pytest.mark.parametrize("cacheprovider", [(), ("-p", "no:cacheprovider")])
def test_a_run_without_a_baseline_leaves_no_baseline_cache_directory(
    pytester: pytest.Pytester, cacheprovider: tuple
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    pytester.runpytest(*cacheprovider, "--energy-all", "--energy-meter=none").assert_outcomes(passed=1)
    assert not Path(pytester.path, ".pytest_cache", "d", "energy-baseline").exists()


def test_the_baseline_cache_follows_pytests_cache_dir_setting(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy_baseline\ndef test_reference():\n    pass\n")
    pytester.makeini("[pytest]\ncache_dir = elsewhere\n")
    pytester.runpytest("--energy-meter=codecarbon").assert_outcomes(passed=1)
    assert len(list(Path(pytester.path, "elsewhere", "d", "energy-baseline").glob("*.json"))) == 1


def test_pytest_energy_reporter_beside_it_is_said_once(pytester: pytest.Pytester, run_energy) -> None:
    """pytest-energy-reporter (on PyPI) also registers @pytest.mark.energy and re-runs marked tests."""
    package = pytester.mkpydir("pytest_energy_reporter")
    Path(package, "plugin.py").write_text(
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'energy: mark test to be run for energy consumption analysis')\n",
        encoding="utf-8",
    )
    pytester.syspathinsert()
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_a():\n    pass\n\n"
                        "@pytest.mark.energy\ndef test_b():\n    pass\n")
    run = run_energy("-p", "pytest_energy_reporter.plugin", "--energy-meter=none")
    run.result.assert_outcomes(passed=2)
    expected = ("pytest-energy-reporter is also active (plugin 'pytest_energy_reporter.plugin'): it too reads "
                "@pytest.mark.energy")
    assert run.result.stdout.str().count(expected) == 1
    assert [notice for notice in run.report["notices"] if notice.startswith(expected)]
    alone = run_energy("--energy-meter=none")
    assert "pytest-energy-reporter" not in alone.result.stdout.str()
