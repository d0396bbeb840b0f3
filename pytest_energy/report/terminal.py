"""The summary table printed after the run."""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

from ..measure.base import COMPONENTS
from ..record import Record
from ..units import format_energy

HEADERS = ("test", "phase", "energy", "gpu", "cpu", "ram", "%gpu", "cap", "verdict", "meter")


def summary_rows(records: Iterable[Record], unit: Optional[str]) -> List[Sequence[str]]:
    rows = []
    for record in records:
        share = record.measurement.gpu_share if record.measurement else None
        rows.append((
            record.nodeid,
            record.phase,
            format_energy(record.energy_j, unit),
            *(_component(record, component, unit) for component in COMPONENTS),
            "-" if share is None else f"{100 * share:.0f}%",
            "-" if record.cap_j is None else format_energy(record.cap_j, unit),
            record.verdict,
            record.measurement.meter if record.measurement else "none",
        ))
    return rows


def _component(record: Record, component: str, unit: Optional[str]) -> str:
    if record.measurement is None or not any(r.component == component for r in record.measurement.readings):
        return "-"
    return format_energy(record.component_j(component), unit)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line("-" * width for width in widths), *(line(row) for row in rows)]


def caveats(records: Iterable[Record]) -> List[str]:
    """How the figures were obtained, once per distinct method note (e.g. CodeCarbon estimates)."""
    seen: List[str] = []
    for record in records:
        if record.measurement is None:
            continue
        for reading in record.measurement.readings:
            text = f"{reading.component} [{reading.method}]: {reading.note}" if reading.note else ""
            if text and text not in seen:
                seen.append(text)
        for note in record.measurement.notes:
            text = f"{record.nodeid}: {note}"
            if text not in seen:
                seen.append(text)
    return seen
