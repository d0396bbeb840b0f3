"""Shard reports merged into one: ``pytest-energy merge a.json b.json -o all.json``.

A suite split over several jobs (a CI matrix, pytest-split, pytest-shard) writes one JSON
report per job. Each is read as the organisers' readers read a report (size limit, finite
numbers) and checked against ``report-schema.json``; a test in two shards is refused. The
merged report has the same schema: every test, tagged with the index of its shard; totals
per phase summed; and a ``shards`` list keeping each job's environment, session and the
tests that failed their energy limits there. The top-level environment is the first
shard's (without a fingerprint when the shards ran on different hardware, so a mixed run
is never compared as one machine's). A merged report can be merged again: its shards are
taken over.

The gate: the merged run fails when a shard's test failed an energy limit (in ``fail``
mode) or when the energy of all shards together is over the session cap (``--session-cap``,
else the one every shard recorded).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from pytest_energy.organise.input_rows import ReportError
from pytest_energy.organise.json_reports import read_report
from pytest_energy.store.schemas import REPORT_SCHEMA, check
from pytest_energy.units import format_energy

SHOWN_FAILURES = 3  # failed tests named in a shard's gate line


class MergeError(Exception):
    """Inputs that cannot be merged; the message says which and why, in one line."""


@dataclasses.dataclass(frozen=True)
class Merged:
    """The merged report, and why the merged run fails its gate (one line each; none: it passes)."""

    document: Dict[str, Any]
    failures: List[str]

    @property
    def energy_j(self) -> Optional[float]:
        measured = [test["energy_j"] for test in self.document["tests"] if test["energy_j"] is not None]
        return sum(measured) if measured else None


def load_shard(path: Path) -> Dict[str, Any]:
    """A shard's report, read and checked against the report schema; ``MergeError`` naming the file if unusable."""
    try:
        document = read_report(path)
        check(document, REPORT_SCHEMA)
    except (ReportError, ValueError, RecursionError) as error:
        raise MergeError(f"{path}: {error}") from None
    return document


def _failed_tests(document: Mapping[str, Any]) -> List[str]:
    """The tests of a report that failed an energy or complexity limit (none in ``warn`` mode)."""
    if document.get("session", {}).get("cap_mode") == "warn":
        return []
    return [test["nodeid"] for test in document["tests"] if test.get("verdict_message")]


def _shards_of(source: str, document: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The ``shards`` entries an input brings: one for a job's report, its own for a merged report."""
    if document.get("shards"):
        return [dict(shard) for shard in document["shards"]]
    return [{
        "source": source,
        "created": document["created"],
        "environment": document["environment"],
        "session": document.get("session", {}),
        "normalization": document.get("normalization"),
        "tests": len(document["tests"]),
        "failed_tests": _failed_tests(document),
    }]


def _recorded_session_cap(inputs: Sequence[Tuple[str, Mapping[str, Any]]]) -> Optional[float]:
    """The session cap every shard recorded; ``MergeError`` when they disagree."""
    caps = {source: (document.get("session", {}).get("session_cap") or {}).get("cap_j") for source, document in inputs}
    if len(set(caps.values())) > 1:
        shown = ", ".join(f"{source} {format_energy(cap) if cap is not None else 'none'}" for source, cap in caps.items())
        raise MergeError(f"the shards recorded different session caps ({shown}): give the whole run's with --session-cap")
    return next(iter(caps.values()), None)


def _summed_totals(documents: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    totals: Dict[str, Dict[str, Any]] = {}
    for document in documents:
        for phase, total in document["totals"].items():
            entry = totals.setdefault(phase, {"tests": 0, "measured": 0, "energy_j": None, "gpu_energy_j": None})
            entry["tests"] += total["tests"]
            entry["measured"] += total["measured"]
            for key in ("energy_j", "gpu_energy_j"):
                if total[key] is not None:
                    entry[key] = (entry[key] or 0.0) + total[key]
    return totals


def merge(inputs: Sequence[Tuple[str, Mapping[str, Any]]], session_cap_j: Optional[float] = None) -> Merged:
    """The reports ``inputs`` (source name, checked document), in order, as one report and its gate.

    ``session_cap_j``: the whole run's session cap; None takes the one the shards recorded.
    """
    if not inputs:
        raise MergeError("no reports to merge")
    shards: List[Dict[str, Any]] = []
    tests: List[Dict[str, Any]] = []
    seen: Dict[str, str] = {}
    notices: List[str] = []
    for source, document in inputs:
        offset = len(shards)
        shards += _shards_of(source, document)
        prefix = "" if document.get("shards") else f"shard {offset} ({source}): "
        notices += [prefix + notice for notice in document.get("notices", [])]
        for test in document["tests"]:
            nodeid = test["nodeid"]
            if nodeid in seen:
                where = "twice in " + source if seen[nodeid] == source else f"in both {seen[nodeid]} and {source}"
                raise MergeError(f"test {nodeid!r} is {where}: each test must run in one shard only")
            seen[nodeid] = source
            tests.append({**test, "shard": offset + test.get("shard", 0)})
    cap_j = session_cap_j if session_cap_j is not None else _recorded_session_cap(inputs)
    first = inputs[0][1]
    fingerprints = {shard["environment"].get("fingerprint") for shard in shards}
    environment = dict(first["environment"])
    if len(fingerprints) > 1:
        environment.pop("fingerprint", None)
        environment.pop("hardware", None)
        notices.append(f"the shards ran on {len(fingerprints)} kinds of hardware: the environment is shard 0's, "
                       "each shard's is in shards")
    normalizations = [json.dumps(shard["normalization"], sort_keys=True) for shard in shards]
    baseline = list({json.dumps(target, sort_keys=True): target
                     for _, document in inputs for target in document.get("baseline", [])}.values())
    document: Dict[str, Any] = {
        "schema": first["schema"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugin_version": first.get("plugin_version"),
        "metadata": first.get("metadata", {}),
        "environment": environment,
        "session": {key: value for key, value in first.get("session", {}).items() if key != "session_cap"},
        "tests": tests,
        "totals": _summed_totals([document for _, document in inputs]),
        "normalization": shards[0]["normalization"] if len(set(normalizations)) == 1 else None,
        "baseline": baseline,
        "reference": first.get("reference", {}),
        "notices": list(dict.fromkeys(notices)),
        "shards": shards,
    }
    merged = Merged(document, [])
    for index, shard in enumerate(shards):
        failed = shard["failed_tests"]
        if failed:
            more = f" and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
            merged.failures.append(f"shard {index} ({shard['source']}): {len(failed)} test(s) failed their energy "
                                   f"limits: {', '.join(failed[:SHOWN_FAILURES])}{more}")
    if cap_j is not None:
        document["session"]["session_cap"] = _session_cap_over_shards(cap_j, merged.energy_j, shards, tests,
                                                                      merged.failures)
    return merged


def _session_cap_over_shards(cap_j: float, total_j: Optional[float], shards: Sequence[Mapping[str, Any]],
                             tests: Sequence[Mapping[str, Any]], failures: List[str]) -> Dict[str, Any]:
    """The session cap's one verdict over all shards (adds to ``failures`` when it fails): reached by their sum,
    or unknown when a test that ran has no figure or a shard did not measure a test fully."""
    unmeasured = [test["nodeid"] for test in tests if test["energy_j"] is None and test.get("outcome") != "skipped"]
    unmeasured += [outcome["unmeasured_by"] for outcome in (shard["session"].get("session_cap") or {} for shard in shards)
                   if outcome.get("unmeasured_by")]
    unmeasured_by = unmeasured[0] if unmeasured else None
    spent_j = total_j or 0.0  # what the measured tests spent; with a test unmeasured, only a lower bound
    reached = spent_j > cap_j
    if reached:
        failures.append(f"the shards together spent {format_energy(spent_j)}, over the session cap {format_energy(cap_j)}")
    elif unmeasured_by:
        failures.append(f"the session cap {format_energy(cap_j)} cannot be enforced over the shards: {unmeasured_by} "
                        "was not measured fully")
    return {"cap_j": cap_j, "spent_j": spent_j, "reached": reached, "reached_by": None, "unmeasured_by": unmeasured_by,
            "verdict": "over-cap" if reached else "unmeasured" if unmeasured_by else "pass"}
