"""Guarantee 4 of issue 19: every file the plugin writes survives faults without silent loss.

``WRITE_MATRIX`` has one row per file the plugin writes × fault: the JSON report and its
checkpoints, the stored run (``--energy-autosave``), a baseline cache entry, the GitHub job
summary and ``pytest-energy plot -o``. A full disk (ENOSPC) or a read-only file system
(EROFS) is injected in the process by replacing the writer the plugin calls; a fifo, a
directory and a device stand where the file should be. Each row runs the plugin (in a
subprocess with a deadline where the old code hung) and checks what the user is told: one
line, which file was written or not, and an exit status that is not 0 when a file asked for
is missing. A report checkpointed before the fault says ``"complete": false``.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import jsonschema
import pytest

from hostile import fifos, finishes  # noqa: F401 (fifos: a fixture)
from meters import rapl_alone, spend
from pytest_energy.account import baseline_cache
from pytest_energy.organise import plot
from pytest_energy.organise.cli import main as cli_main
from pytest_energy.report import json_report
from pytest_energy.store import runs
from pytest_energy.store.files import claim_report

TESTS = 30
MANY_TESTS = ("import pytest\n\n@pytest.mark.parametrize('index', range(%d))\n@pytest.mark.energy\n"
              "def test_many(index):\n    pass\n" % TESTS)
FAULTS = {"ENOSPC": errno.ENOSPC, "EROFS": errno.EROFS}
RUN_DEADLINE_S = 120.0


class FailingWrites:
    """A stand-in for a writer: the calls numbered in ``failing`` (from 1) raise ``OSError(code)``, the others write."""

    def __init__(self, real: Callable[..., None], failing: Callable[[int], bool], code: int):
        self.real, self.failing, self.code, self.calls = real, failing, code, 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.failing(self.calls):
            raise OSError(self.code, os.strerror(self.code))
        self.real(*args, **kwargs)


def energy_lines(result: pytest.RunResult) -> List[str]:
    return [line for line in result.outlines if line.startswith("pytest-energy:")]


def no_crash(output: str) -> None:
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]


def read_report(path: Path, schema: Dict[str, Any]) -> Dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema)
    return document


# -- the JSON report --------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_report_checkpointed_then_the_disk_fails_says_incomplete_inside_in_one_line_and_exits_1(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Dict[str, Any], fault: str
) -> None:
    """The first checkpoint holds one test, every later write fails: that was rc 0 and nothing said."""
    writes = FailingWrites(json_report.write_text_atomically, lambda call: call > 1, FAULTS[fault])
    monkeypatch.setattr(json_report, "write_text_atomically", writes)
    pytester.makepyfile(MANY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    no_crash(result.stdout.str() + result.stderr.str())
    result.assert_outcomes(passed=TESTS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report(pytester.path / "energy.json", report_schema)
    assert report["complete"] is False and len(report["tests"]) == 1
    assert energy_lines(result)[-1] == (
        f"pytest-energy: cannot write the energy JSON report to energy.json: [Errno {FAULTS[fault]}] "
        f"{os.strerror(FAULTS[fault])}; it holds the last checkpoint, 1 of {TESTS} tests, marked \"complete\": false")
    assert writes.calls >= 2


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_checkpoint_is_tried_again_and_the_final_report_is_complete(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Dict[str, Any], fault: str
) -> None:
    """The first write fails, the disk recovers: the old code gave up after one failure and wrote nothing."""
    writes = FailingWrites(json_report.write_text_atomically, lambda call: call == 1, FAULTS[fault])
    monkeypatch.setattr(json_report, "write_text_atomically", writes)
    pytester.makepyfile(MANY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    result.assert_outcomes(passed=TESTS)
    assert result.ret == pytest.ExitCode.OK
    report = read_report(pytester.path / "energy.json", report_schema)
    assert report["complete"] is True and len(report["tests"]) == TESTS
    assert "energy report written to energy.json" in result.outlines
    assert not [line for line in energy_lines(result) if "cannot write" in line]


def test_a_report_never_written_says_so_and_exits_1(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = FailingWrites(json_report.write_text_atomically, lambda call: True, errno.EROFS)
    monkeypatch.setattr(json_report, "write_text_atomically", writes)
    pytester.makepyfile(MANY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED and not (pytester.path / "energy.json").exists()
    assert energy_lines(result)[-1] == ("pytest-energy: cannot write the energy JSON report to energy.json: "
                                        "[Errno 30] Read-only file system; nothing of this session was written there")


def test_a_failing_run_keeps_its_own_exit_status_when_the_report_also_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_report, "write_text_atomically",
                        FailingWrites(json_report.write_text_atomically, lambda call: True, errno.ENOSPC))
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_fails():\n    assert False\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_second_session_writing_the_same_report_is_refused_with_one_line(pytester: pytest.Pytester) -> None:
    """Two sessions replacing one file: one session's tests vanished without a word."""
    pytester.makepyfile(MANY_TESTS)
    held = claim_report(pytester.path / "energy.json")  # the first session, still running
    try:
        result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    finally:
        held.release()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lock = pytester.path / ".energy.json.lock"
    assert f"ERROR: pytest-energy: --energy-json: another pytest session is writing {pytester.path / 'energy.json'} " \
           f"(it holds {lock}); give each session its own report path" in result.errlines
    assert not (pytester.path / "energy.json").exists() and not lock.exists()  # released and removed
    again = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    assert again.ret == pytest.ExitCode.OK and not lock.exists()


def test_two_real_sessions_on_one_report_one_refused(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Two pytest processes: the second, started while the first measures, is refused; the first's report is whole."""
    gate = tmp_path / "first-is-running"
    pytester.makepyfile(
        "import pathlib, time\n\nimport pytest\n\n@pytest.mark.energy\ndef test_slow():\n"
        f"    pathlib.Path({str(gate)!r}).touch()\n    time.sleep(3)\n")
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json"]
    first = subprocess.Popen(command, cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        finishes(lambda: _wait_for(gate), RUN_DEADLINE_S)
        second = subprocess.run(command, cwd=pytester.path, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
        first_output, _ = first.communicate(timeout=RUN_DEADLINE_S)
    finally:
        first.kill()
    assert second.returncode == pytest.ExitCode.USAGE_ERROR and "another pytest session is writing" in second.stderr
    assert first.returncode == 0, first_output[-2000:]
    report = json.loads((pytester.path / "energy.json").read_text(encoding="utf-8"))
    assert [test["nodeid"].split("::")[-1] for test in report["tests"]] == ["test_slow"] and report["complete"]


def _wait_for(path: Path) -> None:
    import time

    while not path.exists():
        time.sleep(0.05)


# -- the stored run, the baseline cache, the GitHub summary -------------------------------------------


def test_a_run_that_cannot_be_stored_says_so_and_exits_1(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "write_atomically", FailingWrites(runs.write_atomically, lambda call: True, errno.ENOSPC))
    pytester.makepyfile(MANY_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-autosave")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert [line for line in energy_lines(result) if "cannot store" in line] == [
        "pytest-energy: cannot store this run under .energy: [Errno 28] No space left on device"]
    assert not list((pytester.path / ".energy").rglob("*.json"))  # no empty placeholder left behind


@pytest.fixture
def fake_rapl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """RAPL from a fake powercap tree (no GPU, no CodeCarbon): a test spends what it writes to the counter."""
    return rapl_alone(monkeypatch, tmp_path)


def test_a_baseline_that_cannot_be_cached_says_so_and_still_normalises(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_rapl: Path
) -> None:
    monkeypatch.setattr(baseline_cache, "write_text_atomically",
                        FailingWrites(baseline_cache.write_text_atomically, lambda call: True, errno.EROFS))
    pytester.makepyfile("import os, pathlib\n\nimport pytest\n\n@pytest.mark.energy_baseline\ndef test_reference():\n"
                        + spend(fake_rapl, 2.0) + "\n\n@pytest.mark.energy\ndef test_work():\n" + spend(fake_rapl, 4.0))
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "1 J"\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=rapl", "--energy-json=energy.json")
    result.assert_outcomes(passed=2)
    assert "pytest-energy: cannot cache the baseline: [Errno 30] Read-only file system" in result.outlines
    report = json.loads((pytester.path / "energy.json").read_text(encoding="utf-8"))
    assert report["normalization"]["factor"] == pytest.approx(0.5)


SUMMARY_TARGETS = {
    "directory": lambda path: path.mkdir(),
    "device": lambda path: os.symlink("/dev/full", path),  # never written: refused as not a regular file
    "fifo": lambda path: os.mkfifo(path),  # the old code's open() waited for a reader forever
}


@pytest.mark.parametrize("target", sorted(SUMMARY_TARGETS))
def test_a_github_summary_that_cannot_be_written_is_one_line_never_a_hang(
    pytester: pytest.Pytester, target: str, fifos: None
) -> None:
    summary = pytester.path / "summary.md"
    SUMMARY_TARGETS[target](summary)
    pytester.makepyfile(MANY_TESTS)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        if target != "fifo":
            result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
        else:  # in a subprocess with a deadline: where the old code hung
            try:
                result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=none", timeout=RUN_DEADLINE_S)
            except pytester.TimeoutExpired:
                pytest.fail("a GitHub summary that is a fifo hung the session")
    no_crash(result.stdout.str() + result.stderr.str())
    assert result.ret == pytest.ExitCode.OK
    assert len([line for line in result.outlines if line.startswith("pytest-energy: cannot write the GitHub job summary: ")]) == 1


# -- pytest-energy plot -o ---------------------------------------------------------------------------


def plot_inputs(directory: Path) -> Path:
    """Two systems and a baseline, as reports: enough to draw."""
    kwh = 3.6e6
    inputs = directory / "reports"
    inputs.mkdir()
    for name, normalized_kwh, score, baseline in (("Base", 1.4, 0.33, True), ("Cheap", 0.7, 0.40, False),
                                                  ("Big", 12.0, 0.55, False)):
        document = {"schema": "pytest-energy/1",
                    "metadata": {"system": name, "year": 2024, "ensemble": False, "baseline": baseline},
                    "tests": [{"nodeid": "t::eval", "phase": "test", "energy_j": 0.01 * kwh, "scores": {"psds1": score}}],
                    "totals": {"train": {"energy_j": 2 * kwh, "energy_normalized_j": normalized_kwh * kwh}}}
        (inputs / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    return inputs


def refuse_writes(code: int) -> Callable[[pytest.MonkeyPatch], None]:
    def install(monkeypatch: pytest.MonkeyPatch) -> None:
        real = getattr(plot, "write_bytes_atomically", None)
        monkeypatch.setattr(plot, "write_bytes_atomically", FailingWrites(real, lambda call: True, code), raising=False)
    return install


PLOT_OUTPUTS: Dict[str, Any] = {  # row -> (output name, how to spoil it, what the one line says)
    "directory": ("out.png", lambda path, patch: path.mkdir(), "is a directory, not a regular file"),
    "fifo": ("out.png", lambda path, patch: os.mkfifo(path), "is a fifo, not a regular file"),
    "device": ("out.png", lambda path, patch: os.symlink("/dev/null", path), "is a character device, not a regular file"),
    "no-extension": ("out", lambda path, patch: None, "the name must end in a known image extension"),
    "unknown-extension": ("out.txt", lambda path, patch: None, "the name must end in a known image extension"),
    "read-only": ("out.png", lambda path, patch: refuse_writes(errno.EROFS)(patch), "Read-only file system"),
    "full-disk": ("out.png", lambda path, patch: refuse_writes(errno.ENOSPC)(patch), "No space left on device"),
}


@pytest.mark.parametrize("row", sorted(PLOT_OUTPUTS))
def test_plot_output_that_cannot_be_written_is_one_line_exit_2_and_nothing_written(
    row: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fifos: None
) -> None:
    pytest.importorskip("matplotlib")
    inputs = plot_inputs(tmp_path)
    name, spoil, why = PLOT_OUTPUTS[row]
    output = tmp_path / name
    spoil(output, monkeypatch)
    before = sorted(os.listdir(tmp_path))
    status = finishes(lambda: cli_main(["plot", str(inputs), "-o", str(output)]))
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2 and len([line for line in lines if "error:" in line]) == 1, captured.err
    assert why in captured.err and captured.err.rstrip().endswith("; nothing was written")
    assert "wrote" not in captured.out and sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("extension, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_writes_the_format_its_name_says_and_names_the_file(
    extension: str, magic: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / f"trend{extension}"
    assert cli_main(["plot", str(plot_inputs(tmp_path)), "-o", str(output)]) == 0
    assert output.read_bytes().startswith(magic)
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {output}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reports", output.name]  # no temporary left
