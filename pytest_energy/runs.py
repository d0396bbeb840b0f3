"""Stored runs, and the regression gate against one (as pytest-benchmark does for time).

``--energy-autosave`` stores each run's JSON report as
``.energy/<fingerprint>/<time>_<commit>.json``; ``--energy-compare[=RUN]`` loads the
latest (or a named) stored run, and ``--energy-compare-fail=10%`` fails a test whose
energy grew by more than that. Runs on different hardware are compared on normalised
energy, or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from .decide import CapFailure
from .report.json_report import SCHEMA, write_atomically
from .units import format_energy


class RunStoreError(Exception):
    """A stored run that cannot be used; the message says which and why."""


def parse_percentage(text: str) -> float:
    """``"10%"`` -> 0.10; the percent sign is required so ``10`` is not read as 1000 %."""
    value = str(text).strip()
    if not value.endswith("%"):
        raise ValueError(f"expected a percentage such as 10%, got {text!r}")
    try:
        number = float(value[:-1])
    except ValueError:
        raise ValueError(f"expected a percentage such as 10%, got {text!r}") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"expected a percentage of 0% or more, got {text!r}")
    return number / 100


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
        fingerprint = document.get("environment", {}).get("fingerprint") or "unknown-hardware"
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}_{str(commit.get('id', 'nocommit'))[:10]}.json"
        path = self.directory / fingerprint / name
        write_atomically(path, {**document, "commit": dict(commit)})
        return path

    def has_runs(self) -> bool:
        return any(self.directory.glob("*/*.json"))

    def find(self, name: Optional[str]) -> Path:
        """The stored run called ``name`` (a path, a file name or its prefix), or the latest."""
        if name and Path(name).is_file():
            return Path(name)
        runs = sorted(self.directory.glob("*/*.json"), key=lambda path: path.name)
        if name:
            runs = [path for path in runs if path.name.startswith(name) or path.stem == name]
        if not runs:
            what = f"no stored run matches {name!r}" if name else "no stored run yet"
            raise RunStoreError(f"{what} in {self.directory} (store one with --energy-autosave)")
        return runs[-1]

    def load(self, name: Optional[str]) -> Tuple[Path, Dict[str, Any]]:
        path = self.find(name)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunStoreError(f"stored run {path} cannot be read: {exc}") from None
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise RunStoreError(f"stored run {path} is not a {SCHEMA} report")
        return path, document


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """The stored run a session compares against."""

    path: Path
    fingerprint: Optional[str]
    tests: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_document(cls, path: Path, document: Mapping[str, Any]) -> "StoredRun":
        tests = {test["nodeid"]: test for test in document.get("tests", []) if isinstance(test, dict) and "nodeid" in test}
        return cls(path, document.get("environment", {}).get("fingerprint"), tests)


def check_regression(
    nodeid: str,
    energy_j: Optional[float],
    normalized_j: Optional[float],
    fingerprint: Optional[str],
    stored: StoredRun,
    limit: float,
    unit: Optional[str] = None,
) -> Optional[CapFailure]:
    """A failure when the test's energy grew by more than ``limit`` (0.10 = 10 %) over the stored run."""
    previous = stored.tests.get(nodeid)
    if previous is None or energy_j is None:
        return None
    if fingerprint == stored.fingerprint:
        now, before, kind = energy_j, previous.get("energy_j"), "energy"
    else:
        now, before, kind = normalized_j, previous.get("energy_normalized_j"), "normalised energy"
        if now is None or before is None:
            return CapFailure(
                f"cannot compare with {stored.path.name}: it was measured on other hardware (fingerprint "
                f"{stored.fingerprint} vs {fingerprint}) and without normalisation; run a baseline "
                "(@pytest.mark.energy_baseline) in both runs or compare on the same machine",
                "not-comparable",
            )
    if not before:
        return None
    growth = now / before - 1
    if growth <= limit:
        return None
    return CapFailure(
        f"{kind} {format_energy(now, unit)} grew {growth:+.1%} over {format_energy(before, unit)} in "
        f"{stored.path.name} (limit +{limit * 100:g}%)",
        "regression",
    )
