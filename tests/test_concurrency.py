"""The machine's activity file, on real files and real processes: when an interval counts as overlapped,
and the session total that xdist workers share."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from pytest_energy.measure import overlap
from pytest_energy.measure.overlap import ACTIVITY_NAME, Activity, SharedTotal


def _open_and_close_a_window(directory: str) -> None:
    activity = Activity(Path(directory))
    activity.close_window(activity.open_window())


def _open_a_window_and_exit(directory: str) -> None:
    Activity(Path(directory)).open_window()


def _in_another_process(target, directory: Path) -> None:
    process = multiprocessing.get_context("spawn").Process(target=target, args=(str(directory),))
    process.start()
    process.join(60)
    assert process.exitcode == 0


def test_an_interval_with_only_this_processs_windows_is_not_overlapped(tmp_path: Path) -> None:
    activity = Activity(tmp_path)
    mark = activity.mark()
    activity.close_window(activity.open_window())
    key = activity.open_window()
    assert not activity.overlapped_since(mark)
    activity.close_window(key)


def test_a_window_another_process_opened_and_closed_during_the_interval_overlaps_it(tmp_path: Path) -> None:
    activity = Activity(tmp_path)
    mark = activity.mark()
    _in_another_process(_open_and_close_a_window, tmp_path)
    assert activity.overlapped_since(mark)
    assert not activity.overlapped_since(activity.mark())


def test_a_window_left_open_by_a_process_that_died_does_not_count(tmp_path: Path) -> None:
    _in_another_process(_open_a_window_and_exit, tmp_path)
    assert len(json.loads((tmp_path / ACTIVITY_NAME).read_text())["active"]) == 1
    activity = Activity(tmp_path)
    assert not activity.overlapped_since(activity.mark())


def test_a_window_open_in_a_live_process_at_the_start_overlaps(tmp_path: Path) -> None:
    (tmp_path / ACTIVITY_NAME).write_text(json.dumps({"opened": 1, "active": {"parent-1": [os.getppid(), 0.0]}}))
    activity = Activity(tmp_path)
    assert activity.overlapped_since(activity.mark())


def test_a_garbled_activity_file_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / ACTIVITY_NAME).write_text("{not json")
    activity = Activity(tmp_path)
    assert not activity.overlapped_since(activity.mark())


def test_workers_add_to_one_session_total(tmp_path: Path) -> None:
    total = SharedTotal(tmp_path / "session.json")
    assert total.add(0.0) == 0.0
    SharedTotal(tmp_path / "session.json").add(2.5)
    assert total.add(1.5) == 4.0


def _add_one_joule_many_times(path: str) -> None:
    total = SharedTotal(Path(path))
    for _ in range(200):
        total.add(1.0)


def test_processes_adding_at_once_lose_no_update(tmp_path: Path) -> None:
    """The lock makes each read-add-write whole: four processes adding 200 J each give 800 J."""
    path = tmp_path / "session.json"
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_one_joule_many_times, args=(str(path),)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    assert SharedTotal(path).add(0.0) == 800.0


def test_a_file_locked_too_long_is_an_os_error_within_a_fraction_of_a_second(tmp_path: Path) -> None:
    """A holder that never lets go makes the file unusable (the caller gives a notice), not a hang."""
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "session.json"
    with open(path, "a+b") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(OSError, match=f"stayed locked for {overlap.LOCK_WAIT_S:g} s"):
            SharedTotal(path).add(1.0)
        assert time.monotonic() - started < 10 * overlap.LOCK_WAIT_S  # a hang guard: 30 s before
    assert SharedTotal(path).add(1.0) == 1.0
