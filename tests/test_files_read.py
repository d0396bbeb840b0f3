"""Guarantee 3 of issue 19: every file the plugin reads may be hostile (docs/guarantees.md, "Files read and written").

``READ_MATRIX`` has one row per file the plugin reads × hostile form. Each row runs the
reader the plugin calls (``RunStore.latest``, ``BaselineCache.load``, the activity and
session-total files, ``read_pyproject``, the trend CLI) on that form, in a thread with a
deadline, so a hang is a failure and not a stuck CI; the row says what must come out (one
line and the entry discarded, or a one-line usage error). A fifo left blocking a reader of
the old code is opened for writing at teardown, which ends the read. The read limits are
lowered with ``raising=False``, so that the rows run, and fail for their own reason, on code
that has no limit.

The plugin runs (``pytester`` in a subprocess with a timeout) prove the instances the issue
found, each of which failed on the code before this change: a cached baseline of 1e308 J
passed every normalised cap, one of 5e-324 J made the report unwritable, a fifo in the run
store hung the run, a file in place of ``.pytest_cache/d/energy-baseline`` was an
INTERNALERROR, and a stored run dated in the future shadowed the newer ones. Hypothesis
then throws hostile numbers at cache entries and stored runs.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.account import baseline_cache
from pytest_energy.account.baseline_cache import BaselineCache, BaselineEntry
from pytest_energy.account.record import Record
from pytest_energy.config import ConfigError, read_pyproject
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.measure.machine import environment
from pytest_energy.measure.overlap import Activity, SharedTotal
from pytest_energy.organise.cli import main as cli_main
from pytest_energy.report.json_report import build_document
from pytest_energy.store import runs
from pytest_energy.store.plausible import MAX_ENERGY_J
from pytest_energy.store.runs import RunStore, check_run_document

from hostile import FORMS, SMALL_CAP, VALUES, fifos, finishes, one_line  # noqa: F401 (fifos: a fixture)
from suites import NORMALISED_CAP_SUITE

RUN_DEADLINE_S = 120.0  # a whole pytest run (CodeCarbon, a busy 2-core CI)
BASELINE_SUITE = NORMALISED_CAP_SUITE
REFERENCE = '[tool.pytest-energy]\nreference-energy = "0.001 J"\n'
CACHE_DIR = Path(".pytest_cache", "d", "energy-baseline")
OLDER_RUN = "20200101T000000.000000_seed.json"
PLUGIN_ARGS = ("-p", "no:cacheprovider", "--energy-meter=codecarbon", "-rs")


# -- what each reader must do with a hostile file --------------------------------------------------

FINGERPRINT = "0123456789abcdef"


def valid_run(energy_j: float = 1.0) -> Dict[str, Any]:
    """A stored run of one test that spent ``energy_j``, as the plugin writes one."""
    measurement = Measurement(1.0, (Reading("cpu", "cpu", energy_j, "codecarbon-estimate"),))
    record = Record("test_x.py::test_x", "test", "passed", measurement, location=("test_x.py", 1))
    document = build_document([record], {**environment({}), "fingerprint": FINGERPRINT}, {}, {"meter": "codecarbon"})
    return json.loads(json.dumps(document))


def stored_run_row(tmp_path: Path, spoil: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The latest valid run is used; the hostile newer file is skipped with one line naming it."""
    monkeypatch.setattr(runs, "MAX_RUN_BYTES", SMALL_CAP, raising=False)
    store = RunStore(tmp_path / ".energy")
    folder = store.directory / FINGERPRINT
    folder.mkdir(parents=True)
    document = valid_run()
    try:
        check_run_document(document)
    except ValueError as error:  # the fixture itself must be a valid run
        pytest.fail(f"the valid run is not valid: {error}")
    (folder / OLDER_RUN).write_text(json.dumps(document), encoding="utf-8")
    hostile = folder / "20210101T000000.000000_hostile.json"
    spoil(hostile)
    path, used, skipped = finishes(lambda: store.latest(FINGERPRINT))
    assert path.name == OLDER_RUN and used["tests"][0]["energy_j"] == 1.0
    assert len(skipped) == 1 and str(hostile) in one_line(skipped[0]), skipped


def baseline_row(tmp_path: Path, spoil: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry is discarded with one line naming it and saying why; nothing of it is used."""
    monkeypatch.setattr(baseline_cache, "MAX_ENTRY_BYTES", SMALL_CAP, raising=False)
    cache = BaselineCache(tmp_path / "energy-baseline")
    cache.directory.mkdir()
    spoil(cache.path(FINGERPRINT))
    lookup = finishes(lambda: cache.load(FINGERPRINT))
    assert lookup.entry is None and lookup.status == "corrupt"
    assert str(cache.path(FINGERPRINT)) in one_line(lookup.message)


def activity_row(tmp_path: Path, spoil: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's activity file: refused with an OSError (the session says it in one line), or read as empty."""
    from pytest_energy.measure import overlap

    monkeypatch.setattr(overlap, "MAX_STATE_BYTES", SMALL_CAP, raising=False)
    activity = Activity(tmp_path)
    spoil(activity.path)
    try:
        key = finishes(activity.open_window)
    except OSError as error:
        one_line(str(error))
    else:
        assert finishes(lambda: activity.close_window(key)) is None


def session_total_row(tmp_path: Path, spoil: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The xdist session's shared total: refused with an OSError, or counted afresh, never below what was added."""
    from pytest_energy.measure import overlap

    monkeypatch.setattr(overlap, "MAX_STATE_BYTES", SMALL_CAP, raising=False)
    path = tmp_path / "session-energy.json"
    spoil(path)
    try:
        total = finishes(lambda: SharedTotal(path).add(2.0))
    except OSError as error:
        one_line(str(error))
    else:
        assert total == 2.0


def pyproject_row(tmp_path: Path, spoil: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """A pyproject.toml: one-line ``ConfigError`` (a usage error), or no settings when it is empty."""
    from pytest_energy import config

    monkeypatch.setattr(config, "MAX_PYPROJECT_BYTES", SMALL_CAP, raising=False)
    path = tmp_path / "pyproject.toml"
    spoil(path)
    try:
        table = finishes(lambda: read_pyproject(path))
    except ConfigError as error:
        assert str(path) in one_line(str(error))
    else:
        assert table == {}


def trend_input_row(tmp_path: Path, spoil: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    """A trend input in a directory: ``pytest-energy trend`` ends with exit 2 and one line (or skips it)."""
    from pytest_energy.organise import input_rows

    monkeypatch.setattr(input_rows, "MAX_INPUT_BYTES", SMALL_CAP)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    spoil(inputs / "report.json")
    status = finishes(lambda: cli_main(["trend", str(inputs)]))
    captured = capsys.readouterr()
    assert status == 2 and "Traceback" not in captured.err
    assert len([line for line in captured.err.splitlines() if "error:" in line]) == 1, captured.err


READERS: Dict[str, Callable[..., None]] = {
    "stored-run": stored_run_row, "baseline-entry": baseline_row, "activity-file": activity_row,
    "session-total": session_total_row, "pyproject": pyproject_row, "trend-input": trend_input_row,
}
READ_MATRIX: List[Tuple[str, str]] = [(reader, form) for reader in READERS for form in FORMS]


@pytest.mark.parametrize("reader, form", READ_MATRIX, ids=[f"{reader}-{form}" for reader, form in READ_MATRIX])
def test_read_matrix_every_hostile_form_gets_one_line_and_never_hangs(
    reader: str, form: str, tmp_path: Path, fifos: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = READERS[reader]
    arguments = (tmp_path, FORMS[form], monkeypatch) + ((capsys,) if reader == "trend-input" else ())
    row(*arguments)


# -- hostile values: cache entries and stored runs ---------------------------------------------------


def entry_with(energy_text: str) -> str:
    """A baseline entry of one repeat whose energy is ``energy_text`` (raw JSON)."""
    entry = BaselineEntry.from_repeats(environment({})["hardware"], [1.0], "codecarbon", "test_x.py::test_reference_workload")
    BaselineEntry.from_json(json.loads(json.dumps(entry.to_json())))  # the template itself is a valid entry
    text = json.dumps({**entry.to_json(), "energy_j": "@", "energies_j": ["@"], "std_j": 0.0})
    return text.replace('"@"', energy_text)


@pytest.mark.parametrize("value", sorted(VALUES))
def test_a_baseline_entry_of_a_hostile_energy_is_discarded_saying_why(value: str, tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path)
    text = entry_with(VALUES[value])
    fingerprint = json.loads(entry_with("1.0"))["fingerprint"]
    cache.path(fingerprint).write_text(text, encoding="utf-8")
    lookup = cache.load(fingerprint)
    assert lookup.entry is None and lookup.status == "corrupt", lookup
    assert "energ" in one_line(lookup.message)


@pytest.mark.parametrize("measured_at, why", [
    ("2999-01-01T00:00:00+00:00", "in the future"), ("2020-01-01T00:00:00", "has no time zone"),
])
def test_a_baseline_entry_dated_in_the_future_or_without_a_time_zone_is_discarded(
    measured_at: str, why: str, tmp_path: Path
) -> None:
    cache = BaselineCache(tmp_path)
    data = json.loads(entry_with("1.0"))
    cache.path(data["fingerprint"]).write_text(json.dumps({**data, "measured_at": measured_at}), encoding="utf-8")
    lookup = cache.load(data["fingerprint"])
    assert lookup.entry is None and why in one_line(lookup.message)


@pytest.mark.parametrize("value", sorted(set(VALUES) - {"zero"}))
def test_a_stored_run_of_a_hostile_energy_is_skipped_saying_why(value: str, tmp_path: Path) -> None:
    folder = tmp_path / FINGERPRINT
    folder.mkdir()
    (folder / OLDER_RUN).write_text(json.dumps(valid_run()), encoding="utf-8")
    newer = folder / "20210101T000000.000000_hostile.json"
    newer.write_text(json.dumps(valid_run(12345.0)).replace("12345.0", VALUES[value]), encoding="utf-8")
    path, _, skipped = RunStore(tmp_path).latest(FINGERPRINT)
    assert path.name == OLDER_RUN and len(skipped) == 1 and "energy_j" in one_line(skipped[0])


def test_a_stored_run_dated_in_the_future_is_skipped_saying_so(tmp_path: Path) -> None:
    folder = tmp_path / FINGERPRINT
    folder.mkdir()
    (folder / OLDER_RUN).write_text(json.dumps(valid_run()), encoding="utf-8")
    (folder / "29990101T000000.000000_future.json").write_text(json.dumps(valid_run(3.0)), encoding="utf-8")
    path, _, skipped = RunStore(tmp_path).latest(FINGERPRINT)
    assert path.name == OLDER_RUN and skipped == [
        f"stored run {folder / '29990101T000000.000000_future.json'} is dated in the future (its name is later "
        "than now): skipped it"]


def test_a_stored_run_created_without_a_time_zone_is_not_a_run() -> None:
    with pytest.raises(ValueError, match=r"\$\.created"):
        check_run_document({**valid_run(), "created": "2020-01-01T00:00:00"})


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.sampled_from([5e-324, 1e308, -0.0, 1e-3, 3.6e15, 3.6e15 * (1 + 1e-15)]),
)


@settings(deadline=None)
@given(energies=st.lists(NUMBERS, min_size=1, max_size=4))
def test_property_a_cached_baseline_is_used_only_within_the_plausible_range(energies: List[Any]) -> None:
    """Whatever numbers an entry holds, an entry is used only if every repeat lies in [1 mJ, 1 TWh]."""
    entry = json.loads(entry_with("1.0"))
    text = json.dumps({**entry, "energies_j": ["@"] * len(energies)})
    for energy in energies:
        text = text.replace('"@"', json.dumps(energy) if not isinstance(energy, int) else str(energy), 1)
    data = json.loads(text)
    plausible = all(isinstance(e, float) or abs(e) < 1e300 for e in energies) and \
        all(1e-3 <= float(e) <= MAX_ENERGY_J for e in energies)
    try:
        mean, std, _ = baseline_cache.summarize_repeats(data["energies_j"])
        data.update(energy_j=mean, std_j=std)
    except (ValueError, OverflowError):
        pass
    try:
        used = BaselineEntry.from_json(data)
    except (ValueError, TypeError, OverflowError):
        return
    assert plausible, f"an entry of {energies} was used"
    assert 1e-3 <= used.energy_j <= MAX_ENERGY_J and math.isfinite(0.001 / used.energy_j)


@settings(deadline=None)
@given(energy=NUMBERS)
def test_property_a_stored_run_is_used_only_with_plausible_energies(energy: Any) -> None:
    """A stored test's energy is used only if it is zero or in [1 µJ, 1 TWh]: a growth over it is finite."""
    document = json.loads(json.dumps(valid_run()).replace('"energy_j": 1.0', f'"energy_j": {json.dumps(energy)}'))
    try:
        check_run_document(document)
    except ValueError:
        return
    stored = float(document["tests"][0]["energy_j"])
    assert stored == 0 or 1e-6 <= stored <= MAX_ENERGY_J
    assert stored == 0 or math.isfinite(1.0 / stored - 1)


# -- the plugin itself: the instances the issue found ------------------------------------------------


def plugin_env(tmp_path: Path) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    own_temp = tmp_path / "tmp"
    own_temp.mkdir(exist_ok=True)
    env.update(CODECARBON_LOG_LEVEL="error", TMPDIR=str(own_temp), HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    return env


def run_plugin(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest with the plugin in ``directory``, in a subprocess with a deadline (a hang fails the test)."""
    try:
        return subprocess.run([sys.executable, "-m", "pytest", *PLUGIN_ARGS, "--energy-json=energy.json", *args],
                              cwd=directory, env=plugin_env(directory), capture_output=True, text=True,
                              timeout=RUN_DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pytest {' '.join(args)} hung: no end within {RUN_DEADLINE_S:.0f} s")


def report_of(directory: Path) -> Dict[str, Any]:
    return json.loads((directory / "energy.json").read_text(encoding="utf-8"))


def entry(report: Dict[str, Any], name: str) -> Dict[str, Any]:
    [found] = [test for test in report["tests"] if test["nodeid"].endswith("::" + name)]
    return found


def no_crash(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]
    return output


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose baseline is cached and whose first run is stored (one real CodeCarbon run)."""
    directory = tmp_path_factory.mktemp("seeded")
    (directory / "test_suite.py").write_text(BASELINE_SUITE, encoding="utf-8")
    (directory / "pyproject.toml").write_text(REFERENCE, encoding="utf-8")
    result = run_plugin(directory, "--energy-normalized", "--energy-autosave")
    no_crash(result)
    assert result.returncode == 1, result.stdout[-3000:]  # test_over_normalised_cap fails
    return directory


@pytest.fixture
def project(seeded: Path, tmp_path: Path) -> Path:
    """A copy of the seeded project, to spoil."""
    directory = tmp_path / "project"
    shutil.copytree(seeded, directory, symlinks=True)
    (directory / "energy.json").unlink()
    return directory


def cached_entry(project: Path) -> Path:
    [path] = sorted((project / CACHE_DIR).glob("*.json"))
    return path


@pytest.mark.parametrize("raw_energy, why", [
    ("1e308", "1e+308 J is above 3.6e+15 J (1 TWh)"), ("5e-324", "5e-324 J is below 0.001 J"),
])
def test_a_cached_baseline_far_out_of_range_is_discarded_and_measured_again(
    project: Path, raw_energy: str, why: str
) -> None:
    """1e308 J made every normalised cap pass; 5e-324 J made the factor infinite and the report unwritable."""
    path = cached_entry(project)
    data = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps({**data, "energy_j": "@", "energies_j": ["@"], "std_j": 0.0}).replace('"@"', raw_energy)
    path.write_text(text, encoding="utf-8")
    result = run_plugin(project, "--energy-normalized")
    output = no_crash(result)
    assert f"discarded the corrupt or foreign baseline cache entry {path}: $.energies_j[0]: {why}" in output
    report = report_of(project)
    assert entry(report, "test_over_normalised_cap")["verdict"] == "over-cap"
    assert entry(report, "test_under_normalised_cap")["verdict"] == "pass"
    assert result.returncode == 1 and report["baseline"][0]["source"] == "measured"


def test_a_fifo_as_the_cached_baseline_is_discarded_not_waited_on(project: Path, fifos: None) -> None:
    path = cached_entry(project)
    path.unlink()
    os.mkfifo(path)
    output = no_crash(run_plugin(project, "--energy-normalized"))
    assert f"discarded the unreadable baseline cache entry {path}: {path} is a fifo, not a regular file" in output
    assert report_of(project)["baseline"][0]["source"] == "measured"


def test_a_file_in_place_of_the_baseline_cache_directory_is_one_line_not_an_internal_error(project: Path) -> None:
    """With pytest's cache plugin on, ``cache.mkdir`` raised and pytest ended with an INTERNALERROR."""
    shutil.rmtree(project / CACHE_DIR)
    (project / CACHE_DIR).write_text("not a directory", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--energy-meter=codecarbon", "--energy-json=energy.json"],
        cwd=project, env=plugin_env(project), capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    output = no_crash(result)
    lines = [line for line in output.splitlines() if "baseline cache unusable" in line]
    assert len(lines) == 1, output[-3000:]
    assert result.returncode == 1  # the session ran: test_over_normalised_cap fails on its raw energy


def test_every_hostile_file_in_the_run_store_is_skipped_with_one_line_in_one_run(project: Path, fifos: None) -> None:
    """A fifo in the store hung the run; each hostile form beside it is skipped too, and the valid run used."""
    [stored] = list((project / ".energy").glob("*/*.json"))
    folder = stored.parent
    hostile = []
    for index, (name, spoil) in enumerate(sorted(FORMS.items())):
        if name in ("huge", "unreadable"):
            continue  # a 64 MiB read per run: the row above covers it with a lowered limit
        stored_at = calendar.timegm(time.strptime(stored.name[:15], "%Y%m%dT%H%M%S"))
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(stored_at + 1 + index))
        path = folder / f"{stamp}.000000_{name}.json"  # newer than the stored run: tried first
        spoil(path)
        hostile.append(path)
    result = run_plugin(project, "--energy-compare-fail=1000%")
    output = no_crash(result)
    for path in hostile:
        assert len([line for line in output.splitlines() if str(path) in line]) == 1, (path, output[-3000:])
    report = report_of(project)
    assert report["session"]["compared_with"] == str(stored)


def test_a_stored_run_dated_in_the_future_does_not_shadow_the_latest(project: Path) -> None:
    """A run named 2999-... held figures 1000 times larger: every growth over the real latest run passed."""
    [stored] = list((project / ".energy").glob("*/*.json"))
    document = json.loads(stored.read_text(encoding="utf-8"))
    tiny = {**document, "tests": [{**test, "energy_j": 1e-6} for test in document["tests"]]}
    stored.write_text(json.dumps(tiny), encoding="utf-8")  # the latest run: anything measured now is a growth
    future = stored.with_name("29990101T000000.000000_future.json")
    huge = {**document, "tests": [{**test, "energy_j": 1e6} for test in document["tests"]]}
    future.write_text(json.dumps(huge), encoding="utf-8")
    result = run_plugin(project, "--energy-compare-fail=200%")
    output = no_crash(result)
    assert f"stored run {future} is dated in the future (its name is later than now): skipped it" in output
    report = report_of(project)
    assert report["session"]["compared_with"] == str(stored)
    assert entry(report, "test_under_normalised_cap")["comparison"]["verdict"] == "regression"
    assert result.returncode == 1
