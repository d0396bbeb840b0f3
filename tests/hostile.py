"""Hostile files for the fault matrices (tests/test_files_read.py, tests/test_files_written.py).

``FORMS`` makes a path into each hostile form a file can take; ``VALUES`` are hostile numbers
as raw JSON text (so that what Python would not write, NaN or a 400-digit integer, gets in).
``finishes`` runs a call with a deadline so that a hang fails the test, and the ``fifos``
fixture ends, at teardown, any read or write still blocked on a fifo under ``tmp_path``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest

DEADLINE_S = 20.0  # a reader or writer that takes longer hangs
SMALL_CAP = 4096  # the read limits, lowered for the rows so that "huge" stays cheap


def form_fifo(path: Path) -> None:
    os.mkfifo(path)


def form_device(path: Path) -> None:
    os.symlink("/dev/zero", path)  # a device that never ends; only ever read, and a discard unlinks the link


def form_directory(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("x", encoding="utf-8")


def form_symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)


def form_empty(path: Path) -> None:
    path.write_bytes(b"")


def form_huge(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(SMALL_CAP + 1)  # sparse: the limits are lowered to SMALL_CAP for the rows


def form_not_text(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00{\x80")


def form_unreadable(path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads a file of mode 000; tests/test_plugin_baseline.py refuses the read by monkeypatch instead")
    path.write_text("{}", encoding="utf-8")
    path.chmod(0)


FORMS: Dict[str, Callable[[Path], None]] = {
    "fifo": form_fifo, "device": form_device, "directory": form_directory, "symlink-loop": form_symlink_loop,
    "empty": form_empty, "huge": form_huge, "not-text": form_not_text, "unreadable": form_unreadable,
}
# values written as raw JSON text, so that what Python would not write (NaN, 1e999, a 400-digit integer) gets in
VALUES: Dict[str, str] = {
    "nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "1e308": "1e308", "5e-324": "5e-324",
    "10^400": str(10 ** 400), "negative": "-1.0", "zero": "0",
}


@pytest.fixture
def fifos(tmp_path: Path) -> Iterator[None]:
    """At teardown, end any read or write still blocked on a fifo under ``tmp_path`` (the old code's hang)."""
    yield
    for path in tmp_path.rglob("*"):
        if path.is_fifo():
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                try:
                    os.close(os.open(path, flags))
                except OSError:  # no one on the other end
                    pass


def finishes(call: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    """``call()``, failing the test if it does not return within ``deadline_s`` (a hang)."""
    outcome: Dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        pytest.fail(f"hung: no answer within {deadline_s:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def one_line(message: str) -> str:
    assert message and "\n" not in message and "Traceback" not in message, message
    return message
