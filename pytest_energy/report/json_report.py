"""The JSON report: one versioned document, checkpointed while the session runs.

Every write replaces the file in one step (a temporary file beside the target, then
a rename), so a crash or kill leaves the last complete document, never a half-written
one. Checkpoints come at most once a second (``Checkpoints``): the first record is
written at once, later ones by the next test to finish after a second, or else by a
background thread, so a test that finished more than a second before a crash is in the
report. Each test's JSON is serialized once (``ReportWriter``): a checkpoint costs the
session's accounting and one file write, not a re-encoding of every earlier test.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..account.record import Record
from ..store.files import write_text_atomically
from ..store.runs import SCHEMA

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "report-schema.json"
CHECKPOINT_INTERVAL_S = 1.0
WRITE_WAIT_S = 2.0  # how long a write waits for one under way on the other thread
CLOSE_WAIT_S = 2.0  # how long the session's end waits for the report thread


def phase_totals(records: Iterable[Record]) -> Dict[str, Dict[str, Any]]:
    """Energy per phase, summed over its measured tests, with the GPU part."""
    totals: Dict[str, Dict[str, Any]] = {}
    for record in records:
        entry = totals.setdefault(record.phase, {"tests": 0, "measured": 0, "energy_j": None, "gpu_energy_j": None})
        entry["tests"] += 1
        if record.energy_j is None:
            continue
        entry["measured"] += 1
        entry["energy_j"] = (entry["energy_j"] or 0.0) + record.energy_j
        gpu = record.component_j("gpu")
        if gpu is not None:
            entry["gpu_energy_j"] = (entry["gpu_energy_j"] or 0.0) + gpu
    return totals


def _frame(
    records: Sequence[Record],
    environment: Mapping[str, Any],
    metadata: Mapping[str, Any],
    session: Mapping[str, Any],
    extra: Optional[Mapping[str, Any]],
) -> Dict[str, Any]:
    """The document with ``tests`` left as None for the caller to fill in."""
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugin_version": environment.get("plugin"),
        "metadata": dict(metadata),
        "environment": dict(environment),
        "session": dict(session),
        "tests": None,
        "totals": phase_totals(records),
        **(extra or {}),
    }


def build_document(
    records: Iterable[Record],
    environment: Mapping[str, Any],
    metadata: Mapping[str, Any],
    session: Mapping[str, Any],
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    records = list(records)
    document = _frame(records, environment, metadata, session, extra)
    document["tests"] = [record.to_json() for record in records]
    return document


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class ReportWriter:
    """Renders and writes the report of one session, serializing each test's entry once.

    A record is encoded again only if it changed since the last write (the session's
    accounting can add normalised energies or EW scores to earlier tests). The text is
    compact JSON with one line per top-level key and per test.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._encoded: List[Tuple[Record, str]] = []

    def render(
        self,
        records: Sequence[Record],
        environment: Mapping[str, Any],
        metadata: Mapping[str, Any],
        session: Mapping[str, Any],
        extra: Optional[Mapping[str, Any]] = None,
    ) -> str:
        del self._encoded[len(records):]
        for index, record in enumerate(records):
            if index == len(self._encoded):
                self._encoded.append((record, _compact(record.to_json())))
            elif self._encoded[index][0] is not record:  # an equal record keeps its text, and is the one compared next
                previous, text = self._encoded[index]
                self._encoded[index] = (record, text if previous == record else _compact(record.to_json()))
        lines = []
        for key, value in _frame(records, environment, metadata, session, extra).items():
            if key == "tests":
                text = "[\n" + ",\n".join(encoded for _, encoded in self._encoded) + "\n]" if self._encoded else "[]"
            else:
                text = _compact(value)
            lines.append(f"{json.dumps(key)}:{text}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    def write(self, *document_parts: Any) -> None:
        """Render (see ``render`` for the parts) and replace the report file in one step."""
        write_text_atomically(self.path, self.render(*document_parts))


class Checkpoints:
    """Calls ``write`` at most once per ``interval_s`` while something changed, and soon after each change.

    ``changed`` writes on the caller's thread when the last write is old enough (between
    tests, outside any measured window); otherwise a background thread writes once the
    interval has passed, so a change is on disk within about ``interval_s`` even while a
    long test runs (that write, milliseconds of CPU, falls inside the long test's window).
    ``flush`` writes at once (session end, Ctrl-C, internal error).

    Nothing here can hang the session: the main thread, where Ctrl-C raises at any
    bytecode, takes no lock the thread waits on without a time limit (a lock it left held
    when interrupted would otherwise block the thread, and ``close`` joining it, forever).
    The flags are plain attributes, the thread is woken through a ``SimpleQueue`` (no
    Python-level lock), and every wait and join is bounded.
    """

    def __init__(self, write: Callable[[], None], interval_s: Optional[float] = None):
        self._write = write
        self._interval_s = CHECKPOINT_INTERVAL_S if interval_s is None else interval_s
        self._wake: "queue.SimpleQueue[None]" = queue.SimpleQueue()
        self._writing = threading.Lock()  # one write at a time
        self._dirty = False
        self._closed = False
        self._last_write = -math.inf
        self._thread: Optional[threading.Thread] = None

    def changed(self) -> None:
        self._dirty = True
        if time.monotonic() - self._last_write >= self._interval_s:
            self.flush()
        elif self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._write_when_due, name="pytest-energy-report", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Write now; waits at most ``WRITE_WAIT_S`` for a write under way on the thread, then writes anyway."""
        self._write_locked(WRITE_WAIT_S)

    def _write_locked(self, wait_s: float) -> bool:
        """Write, holding the write lock when it comes within ``wait_s``; False if the thread should skip."""
        locked = self._writing.acquire(timeout=wait_s)
        if not locked and threading.current_thread() is not threading.main_thread():
            return False  # the main thread writes, or left the lock held when interrupted: its write counts
        try:
            self._dirty = False
            self._write()
        finally:
            self._last_write = time.monotonic()
            if locked:
                self._writing.release()
        return True

    def close(self) -> None:
        """Stop the background thread (a write it started gets ``CLOSE_WAIT_S`` to complete); ``flush`` still works."""
        self._closed = True
        self._wake.put(None)
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT_S)

    def _write_when_due(self) -> None:
        while not self._closed:
            wait_s = self._last_write + self._interval_s - time.monotonic() if self._dirty else self._interval_s
            try:
                self._wake.get(timeout=max(wait_s, 0.001))
            except queue.Empty:
                pass
            if self._closed or not self._dirty or time.monotonic() - self._last_write < self._interval_s:
                continue
            try:
                self._write_locked(WRITE_WAIT_S)
            except Exception:  # nothing escapes this thread: try again after the interval
                self._dirty = True


def load_schema() -> Dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
