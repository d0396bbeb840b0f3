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
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..account.record import Record
from ..store.files import write_text_atomically
from ..store.runs import SCHEMA

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "report-schema.json"
CHECKPOINT_INTERVAL_S = 1.0


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
    """

    def __init__(self, write: Callable[[], None], interval_s: Optional[float] = None):
        self._write = write
        self._interval_s = CHECKPOINT_INTERVAL_S if interval_s is None else interval_s
        self._condition = threading.Condition()
        self._writing = threading.Lock()
        self._dirty = False
        self._closed = False
        self._last_write = -math.inf
        self._thread: Optional[threading.Thread] = None

    def changed(self) -> None:
        with self._condition:
            self._dirty = True
            due = time.monotonic() - self._last_write >= self._interval_s
            if not due:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._write_when_due, name="pytest-energy-report", daemon=True)
                    self._thread.start()
                self._condition.notify()
        if due:
            self.flush()

    def flush(self) -> None:
        with self._writing:
            with self._condition:
                self._dirty = False
            try:
                self._write()
            finally:
                with self._condition:
                    self._last_write = time.monotonic()

    def close(self) -> None:
        """Stop the background thread (a write it started completes first); ``flush`` still works."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join()

    def _write_when_due(self) -> None:
        with self._condition:
            while not self._closed:
                wait_s = self._last_write + self._interval_s - time.monotonic()
                if not self._dirty:
                    self._condition.wait()
                elif wait_s > 0:
                    self._condition.wait(wait_s)
                else:
                    self._condition.release()
                    try:
                        self.flush()
                        retry = False
                    except Exception:  # nothing escapes this thread: try again after the interval
                        retry = True
                    finally:
                        self._condition.acquire()
                    self._dirty = self._dirty or retry


def load_schema() -> Dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
