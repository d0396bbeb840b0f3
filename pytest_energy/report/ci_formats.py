"""The CI tools' own formats: github-action-benchmark's JSON and a GitLab metrics report (OpenMetrics text).

``benchmark_entries`` gives github-action-benchmark's ``customSmallerIsBetter`` list, one entry
per measured test: ``name``, ``unit``, ``value``, and ``range`` and ``extra`` (strings), so its
charts and PR alerts work unchanged. ``openmetrics_text`` gives one ``pytest_energy_joules``
sample per test and component (and ``total``), the text GitLab reads from a ``metrics`` report.
Tests without a whole figure (unmeasured, skipped, xfailed, errored, interrupted) are left out of
both: no figure is invented or cut short.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

from ..account.record import Record
from ..measure.base import COMPONENTS

METRIC = "pytest_energy_joules"
WHOLE = ("passed", "failed", "xpassed")  # outcomes whose figure is the test's whole run


def _charted(record: Record) -> bool:
    return record.outcome in WHOLE and record.energy_j is not None and math.isfinite(record.energy_j)


def benchmark_entries(records: Sequence[Record]) -> List[Dict[str, Any]]:
    """``[{"name": nodeid, "unit": "J", "value": joules, "range": "± J", "extra": "..."}]`` for measured tests."""
    entries = []
    for record in filter(_charted, records):
        energy_j: float = record.energy_j  # type: ignore[assignment]
        entry: Dict[str, Any] = {"name": record.nodeid, "unit": "J", "value": energy_j}
        repeats = record.extra.get("repeats") or {}
        facts = [f"phase {record.phase}", f"verdict {record.verdict}"]
        if repeats.get("spread") is not None and len(repeats.get("energy_j", ())) > 1:
            entry["range"] = f"± {repeats['spread'] * energy_j:.4g}"
            facts.insert(0, f"median of {len(repeats['energy_j'])} repeats")
        if record.measurement is not None:
            facts.append(f"meter {record.measurement.meter}")
        entry["extra"] = "; ".join(facts)
        entries.append(entry)
    return entries


def _label(value: str) -> str:
    """An OpenMetrics label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics_text(records: Sequence[Record]) -> str:
    """One gauge family, ``pytest_energy_joules{test, phase, component}``, ending with ``# EOF``."""
    lines = [f"# TYPE {METRIC} gauge", f"# UNIT {METRIC} joules",
             f"# HELP {METRIC} Energy of each measured test (median of its repeats), in total and per component."]
    for record in filter(_charted, records):
        figures = [("total", record.energy_j)] + [(component, record.component_j(component)) for component in COMPONENTS]
        for component, joules in figures:
            if joules is not None and math.isfinite(joules):
                labels = f'test="{_label(record.nodeid)}",phase="{_label(record.phase)}",component="{component}"'
                lines.append(f"{METRIC}{{{labels}}} {joules!r}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
