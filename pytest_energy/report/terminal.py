"""The energy summary printed after the run: the table of measured tests, accounting lines and caveats."""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..account.normalize import Normalization
from ..measure.base import COMPONENTS
from ..account.record import Record
from ..store.runs import StoredRun
from ..units import common_energy_unit, format_count, format_energy
from .gate import GATE_COLUMNS, gate_cells, gate_entry, gate_notes
from .json_report import phase_totals
from .table import Column, Table

COLUMNS = (
    Column("test", shortenable=True, code=True, key=True),
    Column("phase"),
    Column("energy", numeric=True),
    Column("gpu", numeric=True, optional=5),
    Column("cpu", numeric=True, optional=4),
    Column("ram", numeric=True, optional=3),
    Column("%gpu", numeric=True, optional=1),
    Column("normalised", short="norm.", numeric=True),
    Column("MACs", numeric=True),
    Column("params", short="par.", numeric=True, optional=2),
    Column("cap", numeric=True),
    Column("verdict"),
    Column("meter", legend=True),
)
OPTIONAL_COLUMNS = ("normalised", "MACs", "params")  # shown only when some test has the figure


def summary_table(records: Iterable[Record], unit: Optional[str]) -> Table:
    """The energy table; normalised and complexity columns only when a test has them.

    Every energy column has one unit (``unit``, else the one that reads best for the
    column's largest figure), so figures compare at a glance.
    """
    records = list(records)
    energy_column = common_energy_unit((shown_energy_j(record) for record in records), unit)
    component_units = {component: common_energy_unit((record.component_j(component) for record in records), unit)
                       for component in COMPONENTS}
    normalised_unit = common_energy_unit((record.extra.get("energy_normalized_j") for record in records), unit)
    cap_unit = common_energy_unit((record.cap_j for record in records), unit)
    rows = []
    for record in records:
        share = record.measurement.gpu_share if record.measurement else None
        normalized_j = record.extra.get("energy_normalized_j")
        rows.append([
            record.nodeid,
            record.phase,
            energy_cell(record, energy_column),
            *(_component(record, component, component_units[component]) for component in COMPONENTS),
            "-" if share is None else f"{100 * share:.0f}%",
            "-" if normalized_j is None else format_energy(normalized_j, normalised_unit),
            format_count(record.extra.get("macs")),
            format_count(record.extra.get("params")),
            "-" if record.cap_j is None else format_energy(record.cap_j, cap_unit),
            _verdict(record),
            meter_cell(record),
        ])
    shown = [
        index for index, column in enumerate(COLUMNS)
        if column.header not in OPTIONAL_COLUMNS or any(row[index] != "-" for row in rows)
    ]
    return Table([COLUMNS[index] for index in shown], [[row[index] for index in shown] for row in rows])


def accounting_lines(
    records: Iterable[Record], normalization: Optional[Normalization], targets: Sequence[Mapping[str, Any]], unit: Optional[str]
) -> List[str]:
    """How figures were normalised, and each recorded score with its energy-weighted values."""
    lines = []
    if normalization is not None:
        local = ", ".join(
            f"E_local {format_energy(t.get('energy_j'), unit)} ({t.get('source') or 'measured'}"
            f"{', ' + str(t.get('measured_at')) if t.get('measured_at') else ''}, {t.get('meter')}) "
            f"-> E_ref {format_energy(t.get('reference_j'), unit)}"
            for t in targets
        )
        rule = (f"factor {normalization.factor:.4g}" if normalization.factor is not None
                else f"E_ref = {normalization.fit.a:.4g} E_local + {format_energy(normalization.fit.b, unit)}")  # type: ignore[union-attr]
        lines.append(f"normalisation: {normalization.rule}, {rule}; {local}")
    for record in records:
        for phase, weighted in record.extra.get("ew_scores", {}).items():
            figures = ", ".join(f"{name} {value:.3g}" for name, value in weighted.items())
            lines.append(f"EW ({phase} energy) {record.nodeid}: {figures}")
        if record.extra.get("ew_scores_missing"):
            lines.append(f"EW {record.nodeid}: {record.extra['ew_scores_missing']}")
    return lines


TABLE_ROWS = 30  # a longer table shows its first rows by energy and totals
QUIET_VERDICTS = ("pass", "no-cap")


def condensed(records: Sequence[Record], json_path: Optional[str], unit: Optional[str],
              rows: int = TABLE_ROWS) -> Tuple[List[Record], List[str]]:
    """The records a table of ``rows`` rows shows (all of them, or failing tests and then the highest
    energies), and lines with the totals per phase and verdict and where every row is."""
    if len(records) <= rows:
        return list(records), []
    ranked = sorted(records, key=lambda r: (r.verdict in QUIET_VERDICTS, -(shown_energy_j(r) or 0.0)))[:rows]
    phases = ", ".join(f"{phase} {format_energy(total['energy_j'], unit)} ({total['measured']} of {total['tests']} tests "
                       "measured)" for phase, total in phase_totals(records).items())  # unmeasured, never 0 J
    verdicts = ", ".join(f"{verdict} {count}" for verdict, count in Counter(r.verdict for r in records).most_common())
    where = f"every test is in {json_path}" if json_path else "--energy-json=PATH writes every test"
    return ranked, [f"({rows} of {len(records)} tests shown: failing ones, then the highest energies; {where})",
                    f"totals per phase: {phases}", f"verdicts: {verdicts}"]


def comparison_table(records: Iterable[Record], stored: StoredRun, fingerprint: Optional[str], unit: Optional[str]) -> Table:
    """Each measured test's energy before (in ``stored``) and now, and the change; normalised energies
    when ``stored`` was measured on other hardware. Where the regression gate compared, its columns too."""
    same = fingerprint == stored.fingerprint
    key, what = ("energy_j", "energy") if same else ("energy_normalized_j", "normalised energy")
    compared = []
    for record in records:
        now = record.energy_j if same else record.extra.get("energy_normalized_j")
        before = stored.tests.get(record.nodeid, {}).get(key)
        if now is not None or before is not None:
            compared.append((record.nodeid, before, now, gate_entry(record)))
    figure_unit = common_energy_unit([figure for _, before, now, _ in compared for figure in (before, now)], unit)
    gated = any(entry is not None for *_, entry in compared)
    rows = [[nodeid, "-" if before is None else format_energy(before, figure_unit),
             "-" if now is None else format_energy(now, figure_unit), _change(before, now, entry),
             *(gate_cells(entry) if gated else [])] for nodeid, before, now, entry in compared]
    columns = [Column("test", shortenable=True, key=True), Column("before", numeric=True),
               Column("after", numeric=True), Column("change", numeric=True), *(GATE_COLUMNS if gated else ())]
    return Table(columns, rows, f"{what} compared with {stored.path.name}" + ("" if same else " (other hardware)"))


def comparison_lines(records: Sequence[Record], stored: StoredRun, fingerprint: Optional[str], unit: Optional[str],
                     width: int) -> List[str]:
    """The comparison table fitted to ``width``, and what its gate columns mean."""
    records = list(records)
    notes = gate_notes([gate_entry(record) for record in records])
    lines = comparison_table(records, stored, fingerprint, unit).render_text(width)
    return lines + [line for note in notes for line in textwrap.wrap(note, max(width, 40), initial_indent="  ",
                                                                     subsequent_indent="    ")]


def _change(before: Optional[float], now: Optional[float], entry: Optional[Mapping[str, Any]]) -> str:
    """The gate's ratio of medians where it compared, else now over before."""
    if entry is not None:
        return f"{entry['ratio'] - 1:+.1%}"
    return f"{now / before - 1:+.1%}" if now is not None and before else "-"


def _reused(record: Record) -> bool:
    """A baseline test skipped because its energy here was cached."""
    return record.measurement is None and (record.extra.get("baseline") or {}).get("source") == "cached"


def _repeats(record: Record) -> int:
    """How many measurements a baseline test's ``E_local`` is the mean of (0: not a baseline)."""
    return len((record.extra.get("baseline") or {}).get("energies_j") or [])


def shown_energy_j(record: Record) -> Optional[float]:
    """The test's energy; for a baseline reused from the cache or run several times, the ``E_local``
    that normalises (the mean of its repeats), so the row and the normalisation line agree."""
    return record.extra["baseline"].get("energy_j") if _reused(record) or _repeats(record) > 1 else record.energy_j


def energy_cell(record: Record, unit: Optional[str]) -> str:
    """The energy as every table shows it: a reused baseline's reads ``cached …``, never ``unmeasured``."""
    figure = format_energy(shown_energy_j(record), unit)
    if _reused(record):
        return f"cached {figure}"
    return f"{figure} (mean of {_repeats(record)})" if _repeats(record) > 1 else figure


def meter_cell(record: Record) -> str:
    return record.measurement.meter if record.measurement else ("cache" if _reused(record) else "none")


def _verdict(record: Record) -> str:
    """The energy verdict, and the complexity verdict when a complexity cap failed."""
    complexity = record.extra.get("complexity_verdict")
    return record.verdict if complexity in (None, "pass", "no-cap") else f"{record.verdict}, complexity {complexity}"


def _component(record: Record, component: str, unit: Optional[str]) -> str:
    if record.measurement is None or not any(r.component == component for r in record.measurement.readings):
        return "-"
    return format_energy(record.component_j(component), unit)


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


def session_cap_line(outcome: Optional[Mapping[str, Any]], unit: Optional[str], cap_mode: str) -> Optional[str]:
    """The session cap's verdict in one line, when it was reached or cannot be enforced (``decide.session_cap``)."""
    if outcome is None or outcome["verdict"] == "pass":
        return None
    cap, spent = format_energy(outcome["cap_j"], unit), format_energy(outcome["spent_j"], unit)
    if outcome["verdict"] == "over-cap":
        line = f"energy session cap {cap} reached by {outcome['reached_by']} ({spent} spent)"
    else:
        line = (f"energy session cap {cap} cannot be enforced: {outcome['unmeasured_by']} was not measured fully, "
                f"so the session spent more than the {spent} counted")
    return line + (": the run fails" if cap_mode == "fail" else " (warn mode: the run does not fail)")
