"""GitHub Actions: a Markdown job summary and an error annotation per test over its cap."""

from __future__ import annotations

import os
from typing import Iterable, List, Mapping, Optional

from ..account.record import Record
from ..units import common_energy_unit, format_count, format_energy
from .json_report import phase_totals
from .table import Column, Table
from .terminal import energy_cell, meter_cell, shown_energy_j

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
    return "\n".join(["### Energy (pytest-energy)", "", *tests.render_markdown(), "", *phases.render_markdown()]) + "\n"


def _verdict_mark(verdict: str) -> str:
    return {"pass": "✅ pass", "over-cap": "❌ over cap", "unmeasured": "⚠️ unmeasured"}.get(verdict, verdict)


def annotations(records: Iterable[Record], level: str = "error") -> List[str]:
    """``::error`` (or ``::warning``) workflow commands, on the test's line, for each test the plugin
    failed (or warned about) over a cap, an unenforceable cap or an energy regression."""
    commands = []
    for record in records:
        text = record.verdict_message
        if text:
            path, line = record.location
            message = _escape(f"{record.nodeid}: {text}")
            commands.append(f"::{level} file={_escape_property(path)},line={line},title=energy cap::{message}")
    return commands


def notice_annotation(message: str) -> str:
    """A ``::warning`` workflow command for a plugin notice (figures incomplete, cache unusable, ...)."""
    return f"::warning title=pytest-energy::{_escape(message)}"


def write_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Append to ``$GITHUB_STEP_SUMMARY``; returns the path written, or None when unset."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown)
    return path


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")
