"""The JSON report at scale and on odd paths: checkpoints at most once a second, each test
serialized once, a valid report after a crash, Ctrl-C or internal error; symlinks, devices
and fifos as report paths; file modes of cache files; ``pytest --help``."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import jsonschema
import pytest

from pytest_energy.account.baseline_cache import BaselineCache, BaselineEntry
from pytest_energy.measure.machine import fingerprint, hardware_facts
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.account.record import Record
from pytest_energy.report.json_report import (
    Checkpoints,
    ReportWriter,
    build_document,
)
from pytest_energy.store.files import NotARegularFileError, write_text_atomically
from pytest_energy.store.runs import RunStore

ENVIRONMENT = {"cpu_model": "x", "cpu_count": 2, "ram_bytes": 1, "gpus": [], "gpu_count": 0, "gpu_driver": None,
               "python": "3.11", "pytest": "9", "plugin": "0.1.0", "meter": {"choice": "none"}}
SESSION = {"meter": "none", "caps_j": {}}

# A conftest for subprocess runs: no timed checkpoints (only the first record, Ctrl-C, internal errors and the
# end are written), and the process dies in the first session-finish hook, before the plugin's own write.
RARE_CHECKPOINTS_CONFTEST = """
import os

import pytest

from pytest_energy.report import json_report

json_report.CHECKPOINT_INTERVAL_S = 3600.0


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    os._exit(7)  # the process dies before the plugin's own end-of-session write
"""


def record(index: int, **changes: Any) -> Record:
    readings = (Reading("cpu", "package-0", 1.0 + index, "rapl-counter", "Intel Xeon"),)
    fields: Dict[str, Any] = dict(nodeid=f"t.py::test_{index}", phase="test", outcome="passed",
                                  measurement=Measurement(0.1, readings))
    fields.update(changes)
    return Record(**fields)


def names(report: Dict[str, Any]) -> List[str]:
    return [test["nodeid"].split("::")[-1] for test in report["tests"]]


def read_valid(path: Path, schema: Dict[str, Any]) -> Dict[str, Any]:
    report = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(report, schema)
    return report


# -- each test serialized once --------------------------------------------------------------


def test_report_writer_encodes_each_record_once_and_again_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report_schema: Dict[str, Any]
) -> None:
    encoded: List[str] = []
    to_json = Record.to_json
    monkeypatch.setattr(Record, "to_json", lambda self: encoded.append(self.nodeid) or to_json(self))
    writer = ReportWriter(tmp_path / "energy.json")
    records = [record(index) for index in range(3)]
    writer.write(records, ENVIRONMENT, {}, SESSION, {"notices": []})
    records.append(record(3))
    records[1] = record(1, extra={"energy_normalized_j": 0.5})  # the session's accounting changed an earlier test
    writer.write(records, ENVIRONMENT, {}, SESSION, {"notices": []})
    assert encoded == ["t.py::test_0", "t.py::test_1", "t.py::test_2", "t.py::test_1", "t.py::test_3"]

    written = read_valid(tmp_path / "energy.json", report_schema)
    monkeypatch.undo()
    expected = build_document(records, ENVIRONMENT, {}, SESSION, {"notices": []})
    assert {**written, "created": None} == {**expected, "created": None}
    lines = (tmp_path / "energy.json").read_text(encoding="utf-8").splitlines()
    assert sum(line.startswith('{"nodeid":') for line in lines) == 4  # compact, one line per test


# -- when checkpoints are written ------------------------------------------------------------


def test_checkpoints_write_the_first_change_at_once_and_later_ones_at_most_once_per_interval() -> None:
    writes: List[int] = []
    checkpoints = Checkpoints(lambda: writes.append(1), interval_s=3600.0)
    for _ in range(100):
        checkpoints.changed()
    assert len(writes) == 1
    checkpoints.flush()
    checkpoints.close()
    assert len(writes) == 2


def test_a_pending_change_is_written_without_a_further_call_once_the_interval_passed() -> None:
    written = threading.Event()
    calls: List[int] = []

    def write() -> None:
        calls.append(1)
        if len(calls) == 2:
            written.set()

    checkpoints = Checkpoints(write, interval_s=0.05)
    checkpoints.changed()  # written at once
    checkpoints.changed()  # too soon: left to the background thread
    assert written.wait(timeout=30)
    checkpoints.close()
    assert len(calls) == 2


def test_a_failed_background_write_is_retried_and_raises_nothing_on_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    escaped: List[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    written = threading.Event()
    calls: List[int] = []

    def write() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("dictionary changed size during iteration")
        if len(calls) == 3:
            written.set()

    checkpoints = Checkpoints(write, interval_s=0.05)
    checkpoints.changed()  # written at once
    checkpoints.changed()  # left to the background thread, whose first try fails
    assert written.wait(timeout=30)
    checkpoints.close()
    assert len(calls) == 3 and not escaped


# -- a report survives a crash, Ctrl-C and internal errors ------------------------------------


def test_a_killed_run_keeps_every_test_finished_a_second_before(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Dict[str, Any]
) -> None:
    pytester.makepyfile(
        """
        import os
        import signal
        import time

        import pytest

        pytestmark = pytest.mark.energy


        def test_first():
            pass


        def test_second():
            pass


        def test_third():
            pass


        def test_killed():
            time.sleep(2.5)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run = run_energy("--energy-meter=none", subprocess=True)
    assert run.result.ret == -signal.SIGKILL
    assert run.report is not None
    jsonschema.validate(run.report, report_schema)
    assert run.nodeids == ["test_first", "test_second", "test_third"]
    assert [entry for entry in os.listdir(pytester.path) if entry.endswith(".tmp")] == []


BROKEN_PLUGIN_CONFTEST = """

def pytest_runtest_logfinish(nodeid, location):
    if nodeid.endswith("test_stop"):
        raise RuntimeError("a broken plugin")
"""


@pytest.mark.parametrize(
    "stop, conftest, stopped_test_reported",
    [
        ("raise KeyboardInterrupt", RARE_CHECKPOINTS_CONFTEST, False),
        ("pass", RARE_CHECKPOINTS_CONFTEST + BROKEN_PLUGIN_CONFTEST, True),  # an internal error after test_stop
    ],
    ids=["ctrl-c", "internal-error"],
)
def test_ctrl_c_and_internal_errors_write_what_is_pending(
    pytester: pytest.Pytester, report_schema: Dict[str, Any], stop: str, conftest: str, stopped_test_reported: bool
) -> None:
    """test_first is written at once, test_second is pending; the process dies before the session's last write."""
    pytester.makeconftest(conftest)
    pytester.makepyfile(
        "import pytest\n\npytestmark = pytest.mark.energy\n\n\n"
        f"def test_first():\n    pass\n\n\ndef test_second():\n    pass\n\n\ndef test_stop():\n    {stop}\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    assert result.ret == 7  # the conftest's os._exit
    report = read_valid(pytester.path / "energy.json", report_schema)
    assert names(report) == ["test_first", "test_second"] + (["test_stop"] if stopped_test_reported else [])


# -- report paths: symlinks, devices, fifos --------------------------------------------------

MARKED_TEST = "import pytest\n\n@pytest.mark.energy\ndef test_marked():\n    pass\n"


def test_a_symlinked_report_path_stays_a_symlink_and_its_target_is_written(
    pytester: pytest.Pytester, report_schema: Dict[str, Any]
) -> None:
    pytester.makepyfile(MARKED_TEST)
    reports = pytester.mkdir("reports")
    (reports / "energy.json").write_text("old", encoding="utf-8")
    os.symlink("reports/energy.json", pytester.path / "latest.json")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=latest.json")
    result.assert_outcomes(passed=1)
    assert os.readlink(pytester.path / "latest.json") == "reports/energy.json"
    assert names(read_valid(reports / "energy.json", report_schema)) == ["test_marked"]
    assert sorted(os.listdir(reports)) == ["energy.json"] and "latest.json" in os.listdir(pytester.path)


def test_a_dangling_symlink_gets_its_target_created(tmp_path: Path) -> None:
    os.symlink(tmp_path / "target.json", tmp_path / "link.json")
    write_text_atomically(tmp_path / "link.json", "{}\n")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "target.json").read_text(encoding="utf-8") == "{}\n"


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "symlink to a fifo"])
def test_a_report_path_that_is_not_a_regular_file_is_a_usage_error(pytester: pytest.Pytester, kind: str) -> None:
    """Never the real /dev/null: run as root against a regression, the test would replace the machine's own."""
    pytester.makepyfile(MARKED_TEST)
    path = pytester.path / "energy.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink to a fifo":
        os.mkfifo(pytester.path / "fifo")
        os.symlink("fifo", path)
    else:
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a null device of its own
        except PermissionError:
            pytest.skip("creating a device node needs root")
    before = os.lstat(path)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", "--energy-json=energy.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if "energy.json" in line]
    assert len(errors) == 1 and "not a regular file" in errors[0], result.stderr.lines
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert not [name for name in os.listdir(pytester.path) if name.endswith(".tmp")]


def test_writing_refuses_a_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotARegularFileError, match="fifo"):
        write_text_atomically(tmp_path / "fifo", "{}")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode) and os.listdir(tmp_path) == ["fifo"]


# -- cache files get an ordinary file's mode -------------------------------------------------


def test_baseline_cache_entries_and_stored_runs_get_the_mode_of_an_ordinary_file(tmp_path: Path) -> None:
    hardware = hardware_facts(["NVIDIA A100-SXM4-40GB"], "550.54", "AMD EPYC 7742", "nvml-counter")
    entry = BaselineEntry.from_repeats(hardware, [100.0], meter="nvml-counter", nodeid="t.py::test_base")
    previous = os.umask(0o022)
    try:
        cached = BaselineCache(tmp_path / "baseline").store(entry)
        stored = RunStore(tmp_path / "runs").save({"environment": {"fingerprint": fingerprint(hardware)}}, {})
        (tmp_path / "ordinary.json").write_text("{}", encoding="utf-8")
    finally:
        os.umask(previous)
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in (cached, stored, tmp_path / "ordinary.json")}
    assert set(modes.values()) == {"0o644"}, modes


# -- pytest --help ------------------------------------------------------------------------------


def test_help_lists_the_energy_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["energy measurement (pytest-energy):", "*--energy-json=VALUE*"])
    help_text = result.stdout.str()
    for option in ("--energy-cap", "--energy-compare-fail", "--energy-session-cap", "--macs-cap"):
        assert option in help_text
    assert "e.g. 10%" in help_text and "10%%" not in help_text
