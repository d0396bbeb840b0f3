"""GitHub Actions: a Markdown job summary and an error annotation per test over its cap."""

from __future__ import annotations

import os
import stat
from typing import Iterable, List, Mapping, Optional, Tuple

from ..account.record import Record
from ..units import common_energy_unit, format_count, format_energy
from .json_report import phase_totals
from .table import Column, Table
from .terminal import energy_cell, meter_cell, shown_energy_j

MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error annotations a step
TEST_HEADERS = ("phase", "energy", "normalised", "MACs", "scores", "cap", "verdict", "meter")


def on_github_actions(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def summary_markdown(records: Iterable[Record], unit: Optional[str] = None) -> str:
    """The run as Markdown tables, per test and per phase; node ids, phases, score and meter names
    are escaped (they come from the test suite). Each energy column has one unit."""
    records = list(records)
    energy_unit = common_energy_unit((shown_energy_j(record) for record in records), unit)
    normalised_unit = common_energy_unit((record.extra.get("energy_normalized_j") for record in records), unit)
    cap_unit = common_energy_unit((record.cap_j for record in records), unit)
    rows = []
    for record in records:
        normalized = record.extra.get("energy_normalized_j")
        rows.append([
            record.nodeid,
            record.phase,
            energy_cell(record, energy_unit),
            "-" if normalized is None else format_energy(normalized, normalised_unit),
            format_count(record.extra.get("macs")),
            ", ".join(f"{name} {value:.3g}" for name, value in record.scores.items()) or "-",
            "-" if record.cap_j is None else format_energy(record.cap_j, cap_unit),
            _verdict_mark(record.verdict),
            meter_cell(record),
        ])
    tests = Table([Column("test", code=True), *(Column(header) for header in TEST_HEADERS)], rows)
    totals = phase_totals(records)
    total_unit = common_energy_unit((total["energy_j"] for total in totals.values()), unit)
    gpu_unit = common_energy_unit((total["gpu_energy_j"] for total in totals.values()), unit)
    phases = Table(
        [Column(header) for header in ("phase", "tests", "measured", "energy", "GPU energy")],
        [[phase, str(total["tests"]), str(total["measured"]), format_energy(total["energy_j"], total_unit),
          format_energy(total["gpu_energy_j"], gpu_unit)] for phase, total in totals.items()],
    )
    _, more = flagged(records)
    left_out = ["", f"{more} more flagged tests than the {MAX_ANNOTATIONS} annotated (GitHub shows "
                f"{MAX_ANNOTATIONS} annotations a step): see the table."] if more else []
    return "\n".join(["### Energy (pytest-energy)", "", *tests.render_markdown(), "", *phases.render_markdown(),
                      *left_out]) + "\n"


def _verdict_mark(verdict: str) -> str:
    return {"pass": "✅ pass", "over-cap": "❌ over cap", "unmeasured": "⚠️ unmeasured"}.get(verdict, verdict)


def _severity(record: Record) -> float:
    """How far past its limit a flagged test went: energy over cap, or the regression's lower bound; 0 if unknown."""
    comparison = record.extra.get("comparison") or {}
    if record.verdict == "regression" and isinstance(comparison.get("ratio"), (int, float)):
        return comparison.get("low") or comparison["ratio"]
    if record.cap_j and record.energy_j is not None:
        return record.energy_j / record.cap_j
    return 0.0


def flagged(records: Iterable[Record]) -> Tuple[List[Record], int]:
    """The tests to annotate, worst first, at most ``MAX_ANNOTATIONS``; and how many more were flagged."""
    found = sorted((record for record in records if record.verdict_message), key=_severity, reverse=True)
    return found[:MAX_ANNOTATIONS], max(len(found) - MAX_ANNOTATIONS, 0)


def annotations(records: Iterable[Record], level: str = "error") -> List[str]:
    """``::error`` (or ``::warning``) workflow commands, on the test's line, for the tests the plugin
    failed (or warned about) over a cap, an unenforceable cap or an energy regression: the worst
    ``MAX_ANNOTATIONS`` (GitHub shows no more a step; the summary says how many more)."""
    commands = []
    for record in flagged(records)[0]:
        path, line = record.location
        message = _escape(f"{record.nodeid}: {record.verdict_message}")
        commands.append(f"::{level} file={_escape_property(path)},line={line},title=energy cap::{message}")
    return commands


def notice_annotation(message: str) -> str:
    """A ``::warning`` workflow command for a plugin notice (figures incomplete, cache unusable, ...)."""
    return f"::warning title=pytest-energy::{_escape(message)}"


def write_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Append to ``$GITHUB_STEP_SUMMARY``; returns the path written, or None when unset.

    ``OSError`` when it cannot be written: not a regular file (a fifo, a directory), a full disk.
    """
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    # without blocking: a fifo with no reader would hang the session's end
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o666)
    with os.fdopen(descriptor, "ab") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path} is not a regular file")
        handle.write(markdown.encode("utf-8"))
    return path


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")
