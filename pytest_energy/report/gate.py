"""The regression gate's columns in the terminal's comparison table (interval, repeats, limit, noise, verdict),
and the session's emissions, where a carbon intensity was given."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

from ..account.record import Record
from .table import Column

GATE_COLUMNS = (Column("interval", numeric=True), Column("repeats", optional=1), Column("limit", numeric=True),
                Column("noise", numeric=True, optional=2), Column("gate"))


def gate_entry(record: Record) -> Optional[Mapping[str, Any]]:
    """The regression gate's comparison of ``record`` with the stored run, where it was gated."""
    entry = record.extra.get("comparison")
    return entry if isinstance(entry, Mapping) and "ratio" in entry else None


def gate_cells(entry: Optional[Mapping[str, Any]]) -> List[str]:
    """``-9.2%..+30.2%``, ``5 vs 5``, ``+10%``, ``3%``, ``pass``: one gated test's cells ("-" where not gated)."""
    if entry is None:
        return ["-"] * len(GATE_COLUMNS)
    low, high = entry.get("low"), entry.get("high")
    now, before = entry.get("repeats") or (1, 1)
    limit, floor = entry.get("limit"), entry.get("noise_floor")
    return ["-" if low is None or high is None else f"{low - 1:+.1%}..{high - 1:+.1%}", f"{now} vs {before}",
            "none yet" if limit is None else f"+{limit * 100:.3g}%", f"{floor['noise']:.0%}" if floor else "-",
            str(entry.get("verdict", "pass"))]


def gate_notes(entries: Sequence[Optional[Mapping[str, Any]]]) -> List[str]:
    """What the gate's cells mean, once per table: the interval, and its dash where there is one."""
    gated = [entry for entry in entries if entry is not None]
    if not gated:
        return []
    confidence = gated[0].get("confidence", 0.95)
    notes = [f"interval: {confidence:.0%} bootstrap interval of the ratio of medians; the gate fails a test when its "
             "lower end is over the limit"]
    if any(entry.get("low") is None for entry in gated):
        notes.append("interval -: one figure on a side cannot separate a change from noise (the ratio alone decides)")
    return notes


def emissions_lines(records: Sequence[Record]) -> List[str]:
    """``emissions: 1.2e-05 kg CO2eq over 3 tests (56 g CO2eq/kWh, from the carbon-intensity setting)``; none without one."""
    emissions = [record.extra["emissions"] for record in records if isinstance(record.extra.get("emissions"), Mapping)]
    if not emissions:
        return []
    total = sum(entry["kg_co2eq"] for entry in emissions)
    intensity = emissions[0]["carbon_intensity_g_per_kwh"]
    return [f"emissions: {total:.3g} kg CO2eq over {len(emissions)} measured tests ({intensity:g} g CO2eq/kWh, from the "
            f"{emissions[0]['source']})"]
