"""Stored runs: each run's JSON report kept for later comparison (as pytest-benchmark does for time).

``--energy-autosave`` stores each run's JSON report as
``.energy/<fingerprint>/<UTC time to the microsecond>_<commit>.json`` (a name no other
run has, so names sort in time order); ``--energy-compare[=RUN]`` loads the latest stored
run of this hardware (or a named one), and ``--energy-compare-fail=10%`` fails a test
whose energy grew by more than that (``decide/regression.py``). Runs on different hardware are compared on
normalised energy, or not at all. Files that are not named like stored runs are not
runs; a run that is not a valid report (checked against ``report-schema.json``, its numbers
finite) is skipped with the reason: the JSON path of what is wrong, and jsonschema's message.
A run is read without blocking (a fifo or device in the store is refused, not waited on), at
most ``MAX_RUN_BYTES``; its tests' energies must be plausible (``plausible.py``), and the latest
run of a hardware is the latest one not dated in the future (a run named 2999-... would
otherwise shadow every newer one).
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .files import read_bytes_bounded, write_atomically
from .plausible import MIN_MEASURED_J, implausible_energy
from .schemas import REPORT_SCHEMA, check


SCHEMA = "pytest-energy/1"  # the JSON report's schema: a stored run is a report
RUN_NAME = re.compile(r"\d{8}T\d{6}(\.\d{6})?_[\w.-]+\.json")  # also the names of older versions, without microseconds
MAX_RUN_BYTES = 64 * 2**20  # a stored test is about a kilobyte: room for 60 000 tests
CLOCK_SKEW_S = 300.0  # a run named later than this in the future is not the latest
COMPARED_ENERGIES = ("energy_j", "energy_normalized_j")  # what the regression gate reads of a stored test


class RunStoreError(Exception):
    """A stored run that cannot be used; the message says which and why."""


def check_run_document(document: Any) -> None:
    """Raise ``ValueError`` saying what makes ``document`` unusable as a stored run.

    A stored run is a valid JSON report (``report-schema.json``) whose environment names its
    hardware's fingerprint, which the report's schema leaves optional.
    """
    check(document, REPORT_SCHEMA)
    fingerprint = document["environment"].get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError("$.environment.fingerprint: the hardware fingerprint is missing or not a string")
    for index, test in enumerate(document["tests"]):
        for key in COMPARED_ENERGIES:
            if test.get(key) is not None:
                why = implausible_energy(test[key], MIN_MEASURED_J, zero_allowed=True)
                if why is not None:
                    raise ValueError(f"$.tests[{index}].{key}: {why}")


def run_time(path: Path) -> float:
    """The UTC time in a stored run's name, in seconds since the epoch."""
    stamp = path.name.split("_", 1)[0]
    seconds = calendar.timegm(time.strptime(stamp[:15], "%Y%m%dT%H%M%S"))
    return seconds + (float(stamp[15:]) if len(stamp) > 15 else 0.0)


def commit_info(directory: Path) -> Dict[str, Any]:
    """The git commit of ``directory``, if it is a checkout (else empty)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"id": commit, "dirty": bool(dirty)}


class RunStore:
    """A directory of stored run reports, one folder per hardware fingerprint."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def save(self, document: Mapping[str, Any], commit: Mapping[str, Any]) -> Path:
        """Store ``document`` under a new name: runs saved in the same microsecond take the next one."""
        fingerprint = document.get("environment", {}).get("fingerprint") or "unknown-hardware"
        directory = self.directory / fingerprint
        directory.mkdir(parents=True, exist_ok=True)
        commit_id = re.sub(r"[^\w.-]", "-", str(commit.get("id", "nocommit"))[:10])
        microseconds = time.time_ns() // 1000
        while True:
            seconds, fraction = divmod(microseconds, 1_000_000)
            path = directory / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{fraction:06d}_{commit_id}.json"
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # claim the name
                break
            except FileExistsError:
                microseconds += 1
        try:
            write_atomically(path, {**document, "commit": dict(commit)})
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def runs(self, fingerprint: str = "*") -> List[Path]:
        """The stored runs (of one hardware fingerprint), oldest first; other files are not runs."""
        return sorted((path for path in self.directory.glob(f"{fingerprint}/*.json") if RUN_NAME.fullmatch(path.name)),
                      key=lambda path: path.name)

    def has_runs(self) -> bool:
        return bool(self.runs())

    def find(self, name: str) -> Path:
        """The stored run called ``name``: a path, or a stored run's file name or its prefix (the latest match)."""
        if Path(name).exists():
            return Path(name)
        runs = [path for path in self.runs() if path.name.startswith(name) or path.stem == name]
        if not runs:
            raise RunStoreError(f"no stored run matches {name!r} in {self.directory} (store one with --energy-autosave)")
        return runs[-1]

    def load(self, name: str) -> Tuple[Path, Dict[str, Any]]:
        """The run ``name`` names; ``RunStoreError`` when there is none or it is not a valid run."""
        path = self.find(name)
        return path, self.read(path)

    def latest(self, fingerprint: str) -> Tuple[Path, Dict[str, Any], List[str]]:
        """The latest valid stored run of this hardware, and a line for each newer file skipped as invalid."""
        skipped = []
        now = time.time()
        for path in reversed(self.runs(fingerprint)):
            try:
                future = run_time(path) > now + CLOCK_SKEW_S
            except (ValueError, OverflowError):
                skipped.append(f"stored run {path} cannot be used: its name is not a date: skipped it")
                continue
            if future:
                skipped.append(f"stored run {path} is dated in the future (its name is later than now): skipped it")
                continue
            try:
                return path, self.read(path), skipped
            except RunStoreError as exc:
                skipped.append(f"{exc}: skipped it")
        others = sorted({path.parent.name for path in self.runs()} - {fingerprint})
        elsewhere = f" (stored runs are for {', '.join(others)})" if others else ""
        raise RunStoreError(
            f"no stored run of this hardware (fingerprint {fingerprint}) in {self.directory}{elsewhere}")

    def recent(self, fingerprint: str, count: int = 20) -> List["StoredRun"]:
        """The latest ``count`` valid stored runs of this hardware, oldest first (invalid ones skipped)."""
        runs = []
        for path in self.runs(fingerprint)[-count:]:
            try:
                runs.append(StoredRun.from_document(path, self.read(path)))
            except RunStoreError:
                continue
        return runs

    @staticmethod
    def read(path: Path) -> Dict[str, Any]:
        try:
            document = json.loads(read_bytes_bounded(path, MAX_RUN_BYTES).decode("utf-8"))
            check_run_document(document)
        except (OSError, ValueError, RecursionError) as exc:
            raise RunStoreError(f"stored run {path} cannot be used: {exc}") from None
        return document


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """The stored run a session compares against."""

    path: Path
    fingerprint: Optional[str]
    tests: Mapping[str, Mapping[str, Any]]
    commit: Optional[str] = None  # the git commit it was run at, if known

    @classmethod
    def from_document(cls, path: Path, document: Mapping[str, Any]) -> "StoredRun":
        tests = {test["nodeid"]: test for test in document.get("tests", []) if isinstance(test, dict) and "nodeid" in test}
        commit = document.get("commit") or {}
        return cls(path, document.get("environment", {}).get("fingerprint"), tests,
                   commit.get("id") if isinstance(commit, dict) and not commit.get("dirty") else None)

    def energies(self, nodeid: str) -> Tuple[float, ...]:
        """Every measured repeat's energy of ``nodeid`` (one figure for a run without repeats, or stored before them)."""
        test = self.tests.get(nodeid) or {}
        repeats = (test.get("repeats") or {}).get("energy_j")
        figures = repeats if repeats and None not in repeats else [test.get("energy_j")]
        return tuple(float(energy) for energy in figures if energy is not None)
