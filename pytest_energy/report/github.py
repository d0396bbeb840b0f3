"""GitHub Actions: a Markdown job summary and an error annotation per test over its cap."""

from __future__ import annotations

import os
from typing import Iterable, List, Mapping, Optional

from ..account.record import Record
from ..units import format_count, format_energy
from .escape import md_code, md_text
from .json_report import phase_totals


def on_github_actions(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def summary_markdown(records: Iterable[Record], unit: Optional[str] = None) -> str:
    """The run as a Markdown table, per test and per phase; node ids, phases, score and meter names
    are escaped (they come from the test suite)."""
    records = list(records)
    lines = [
        "### Energy (pytest-energy)",
        "",
        "| test | phase | energy | normalised | MACs | scores | cap | verdict | meter |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        normalized = record.extra.get("energy_normalized_j")
        scores = ", ".join(f"{md_text(name)} {value:.3g}" for name, value in record.scores.items()) or "-"
        meter = md_text(record.measurement.meter) if record.measurement else "none"
        lines.append(
            f"| {md_code(record.nodeid)} | {md_text(record.phase)} | {format_energy(record.energy_j, unit)} | "
            f"{'-' if normalized is None else format_energy(normalized, unit)} | {format_count(record.extra.get('macs'))} | "
            f"{scores} | {'-' if record.cap_j is None else format_energy(record.cap_j, unit)} | "
            f"{_verdict_mark(record.verdict)} | {meter} |"
        )
    lines += ["", "| phase | tests | measured | energy | GPU energy |", "|---|---|---|---|---|"]
    for phase, total in phase_totals(records).items():
        lines.append(
            f"| {md_text(phase)} | {total['tests']} | {total['measured']} | {format_energy(total['energy_j'], unit)} | "
            f"{format_energy(total['gpu_energy_j'], unit)} |"
        )
    return "\n".join(lines) + "\n"


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
