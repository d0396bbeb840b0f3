"""A ``Trend`` shown: a text table, Markdown, or long-format CSV (energies in kWh).

The three formats say the same: counts of usable, rejected and left-out systems, the
quartile method, then the quartile, GPU-share and threshold tables.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pytest_energy.organise.systems import KWH_J, System
from pytest_energy.organise.trend_statistics import POPULATIONS, ThresholdRow, Trend, method_text, normalization_factor
from pytest_energy.report.escape import csv_cell, md_text, printable
from pytest_energy.report.table import Column, Table
from pytest_energy.units import energy_unit, format_count, format_energy

def _format(kind: str, value: Optional[float], unit: Optional[str] = None) -> str:
    if value is None:
        return "-"
    if kind == "energy":
        return format_energy(value, unit)
    if kind == "count":
        return format_count(value)
    if kind == "share":
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"


def _system_label(system: Optional[System]) -> Tuple[str, str]:
    if system is None:
        return "-", "-"
    return f"{system.score:.3f}", system.name


def _threshold_cells(row: ThresholdRow) -> Tuple[str, ...]:
    kind = row.metric.kind
    unit = energy_unit(row.threshold) if kind == "energy" else None
    maximum = () if row.level == "all" else (_format(kind, row.threshold, unit),)
    return maximum + (str(row.candidates),) + _system_label(row.best)


def tables(trend: Trend) -> List[Table]:
    """The trend as display tables (the same content the CSV gives as numbers)."""
    quartile_rows = []
    for row in trend.quartiles:
        unit = energy_unit(row.median) if row.metric.kind == "energy" else None
        quartile_rows.append(
            (row.edition, row.metric.label, str(row.n))
            + tuple(_format(row.metric.kind, value, unit) for value in (row.p25, row.median, row.p75))
        )
    share_rows = []
    for share in trend.shares:
        spread = "" if share.std is None else f" ± {100 * share.std:.1f}"
        mean = "-" if share.mean is None else f"{100 * share.mean:.1f}%{spread}"
        phase = "training" if share.phase == "train" else "test"
        share_rows.append(
            (share.edition, phase, str(share.n), mean, _format("share", share.minimum), _format("share", share.maximum))
        )
    threshold_rows_ = []
    groups: Dict[Tuple[str, str], List[ThresholdRow]] = {}
    for row in trend.thresholds:
        groups.setdefault((row.edition, row.metric.label), []).append(row)
    for (edition, label), cells in groups.items():
        threshold_rows_.append(
            (edition, label, str(cells[0].population)) + tuple(c for cell in cells for c in _threshold_cells(cell))
        )
    score = trend.score
    return [
        Table(
            _columns("edition", "metric", "n", "P25", "median", "P75"),
            quartile_rows,
            "Quartiles per edition (usable systems, baselines excluded)",
        ),
        Table(
            _columns("edition", "phase", "n", "mean ± std", "min", "max"),
            share_rows,
            "GPU share of energy (GPU energy / total energy; std: sample, n-1)",
        ),
        Table(
            _columns("edition", "metric", "n", "25% Max", "under", score, "system", "median Max", "under", score,
                     "system", "All: n", score, "system"),
            threshold_rows_,
            f"Best {score} under thresholds, {POPULATIONS[trend.population]}: Max is the P25 / median of "
            f"the n ranked systems that have the metric; 'under' counts scored systems with a value <= Max",
        ),
    ]


KEY_HEADERS = ("edition", "metric", "phase")  # repeated in each part of a table wrapped to the terminal


def _columns(*headers: str) -> List[Column]:
    return [Column(header, key=header in KEY_HEADERS) for header in headers]


def summary_lines(trend: Trend) -> List[str]:
    """Counts, method, rejections, unreadable fields and notes, as plain lines."""
    collection = trend.collection
    per_edition = Counter(s.edition for s in collection.systems)
    editions = ", ".join(f"{edition}: {per_edition[edition]}" for edition in collection.editions())
    ensembles = Counter(
        "single" if s.ensemble is False else "ensemble" if s.ensemble else "ensemble unstated"
        for s in collection.systems
    )
    lines = [
        f"{len(collection.systems)} usable systems from {collection.files} files ({editions or 'none'}); "
        + ", ".join(f"{count} {kind}" for kind, count in sorted(ensembles.items())),
        f"{len(collection.baselines)} baselines kept out of the statistics"
        + (f": {', '.join(f'{b.name} ({b.edition})' for b in collection.baselines)}" if collection.baselines else ""),
    ]
    if trend.factor_limit is not None:
        limit = trend.factor_limit
        left_out = Counter(s.edition for s in trend.unreliable)
        per = ", ".join(f"{edition}: {per_edition[edition] - left_out[edition]} of {per_edition[edition]} kept"
                        for edition in collection.editions())
        lines.append(
            f"Reliable baseline: normalisation factor (normalised / raw training energy) within "
            f"[1/{limit:g}, {limit:g}]; {len(trend.unreliable)} systems left out ({per})"
            + (f"; {trend.unchecked} without normalised energy kept unchecked" if trend.unchecked else "")
        )
        if trend.unreliable:
            shown = ", ".join(f"{s.name} ({normalization_factor(s):.3g})" for s in trend.unreliable)
            lines.append(f"  left out: {shown}")
    lines += [
        f"Method: {method_text(trend.method)}; the threshold table ranks {POPULATIONS[trend.population]} "
        f"by {trend.score}, with thresholds from their own quartiles; 'under' means at most the threshold.",
        f"Rejected rows: {len(collection.rejected)}",
    ]
    by_reason = Counter(r.reason for r in collection.rejected)
    for reason, count in by_reason.most_common():
        examples = [r.row for r in collection.rejected if r.reason == reason][:3]
        lines.append(f"  {count:4d}  {reason} (e.g. {', '.join(examples)})")
    if collection.issues:
        lines.append(f"Unreadable fields, left empty (row kept): {len(collection.issues)}")
        by_field = Counter(issue.field for issue in collection.issues)
        for name, count in by_field.most_common():
            values = Counter(i.value for i in collection.issues if i.field == name)
            shown = ", ".join(f"{value} ×{n}" for value, n in values.most_common(4))
            lines.append(f"  {count:4d}  {name}: {shown}")
    if ensembles.get("ensemble unstated") and trend.population == "single":
        lines.append(
            f"Note: {ensembles['ensemble unstated']} systems do not say whether they are ensembles; "
            "the threshold table leaves them out (set metadata.ensemble, or use --population all)."
        )
    no_share = sorted({s.edition for s in trend.shares} - {s.edition for s in trend.shares if s.n})
    if no_share:
        lines.append(f"Note: no GPU energy for {', '.join(no_share)} ({_why_no_gpu_energy(trend, no_share)})")
    lines.extend(f"Note: {note}" for note in collection.notes)
    return lines


def _why_no_gpu_energy(trend: Trend, editions: List[str]) -> str:
    """Why the inputs of ``editions`` give no GPU energy, for the kinds of input they are."""
    sources = {Path(s.source).suffix.lower() for s in trend.collection.systems if s.edition in editions}
    reasons = []
    if ".json" in sources:
        reasons.append("the JSON reports measured no GPU: no NVIDIA GPU, or --energy-meter left it out")
    if ".csv" in sources:
        reasons.append("the CSV has no energy_training_gpu_kwh / energy_test_gpu_kwh column")
    if sources & {".yaml", ".yml"}:
        reasons.append("the DCASE results files publish none")
    return "; ".join(reasons) or "no input gives it"


def render_text(trend: Trend, width: Optional[int] = None) -> str:
    """The summary lines and tables; tables wrapped to ``width`` columns when given (a terminal's)."""
    lines = [printable(line) for line in summary_lines(trend)]
    out = [f"pytest-energy trend — {line}" if i == 0 else line for i, line in enumerate(lines)]
    for table in tables(trend):
        out += ["", *table.render_text(width)]
    return "\n".join(out) + "\n"


def render_markdown(trend: Trend) -> str:
    out = ["## pytest-energy trend", ""]
    for line in summary_lines(trend):
        out.append(f"  - {md_text(line.strip())}" if line.startswith("  ") else f"- {md_text(line)}")
    for table in tables(trend):
        out += ["", *table.render_markdown()]
    return "\n".join(out) + "\n"


CSV_HEADER = ("table", "edition", "row", "column", "value")


def _csv_energy(value: Optional[float]) -> Optional[float]:
    return None if value is None else value / KWH_J


def csv_records(trend: Trend) -> Iterator[Tuple[Any, ...]]:
    """The trend as long-format rows: table, edition, row, column, value (energies in kWh)."""
    yield ("method", "", "quartiles", "method", method_text(trend.method))
    yield ("method", "", "threshold table", "population", POPULATIONS[trend.population])
    if trend.factor_limit is not None:
        yield ("method", "", "reliable baseline", "factor limit", trend.factor_limit)
        for system in trend.unreliable:
            yield ("left_out", system.edition, system.name, "normalisation factor", normalization_factor(system))
    for row in trend.quartiles:
        convert = _csv_energy if row.metric.kind == "energy" else (lambda v: v)
        label = row.metric.label + (" (kWh)" if row.metric.kind == "energy" else "")
        yield ("quartiles", row.edition, label, "n", row.n)
        for column, value in (("p25", row.p25), ("median", row.median), ("p75", row.p75)):
            yield ("quartiles", row.edition, label, column, convert(value))
    for share in trend.shares:
        for column in ("n", "mean", "std", "minimum", "maximum"):
            yield ("gpu_share", share.edition, share.phase, column, getattr(share, column))
    table = f"thresholds_{trend.population}_systems"
    for edition, best in trend.best_overall.items():
        yield (table, edition, "no threshold", trend.score, best.score if best else None)
        yield (table, edition, "no threshold", "system", best.name if best else None)
    for row in (r for r in trend.thresholds if r.level != "all"):
        label = f"{row.metric.label} <= {row.level}"
        threshold = _csv_energy(row.threshold) if row.metric.kind == "energy" else row.threshold
        unit = " (kWh)" if row.metric.kind == "energy" else ""
        yield (table, row.edition, label, "threshold" + unit, threshold)
        yield (table, row.edition, label, "n", row.population)
        yield (table, row.edition, label, "n_under", row.candidates)
        yield (table, row.edition, label, trend.score, row.best.score if row.best else None)
        yield (table, row.edition, label, "system", row.best.name if row.best else None)
    for reason, count in Counter(r.reason for r in trend.collection.rejected).most_common():
        yield ("rejected", "", reason, "count", count)


def render_csv(trend: Trend) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for record in csv_records(trend):
        writer.writerow([csv_cell(value) for value in record])
    return buffer.getvalue()


RENDERERS = {"table": render_text, "md": render_markdown, "csv": render_csv}
