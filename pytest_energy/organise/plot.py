"""The organisers' figures as PNG: score against training energy, and EW score against score.

``energy-score`` (Douwes & Serizel's Fig. 1): one series per edition and single/ensemble,
the baselines as stars, quadrant lines through one baseline's energy and score. The
energy axis is logarithmic and reversed, so that cheaper is to the right and better is
up: the top-right quadrant holds the systems better and cheaper than the baseline.

``ew`` (Fig. 2): the energy-weighted score (score × E_baseline / E, training energy)
against the score, with lines at the baseline's score and EW score; the top-right
quadrant holds the systems better than the baseline on both. The baseline is a baseline
row of the inputs, the system named by ``--baseline``, or else the reference values a
JSON report was configured with (its ``reference`` block), so one participant's report
can be drawn against the challenge baseline.

matplotlib is imported only when a plot is drawn (through its object API, with the Agg
canvas, leaving pyplot's global state alone).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from pytest_energy.organise.input_rows import ReportError
from pytest_energy.organise.json_reports import read_report
from pytest_energy.organise.systems import KWH_J, Collection, System
from pytest_energy.store.files import NotARegularFileError, regular_file_target, write_bytes_atomically

PLOT_INSTALL = 'pip install "pytest-energy[plot]"'
MARKERS = {"single": "o", "ensemble": "^", "ensemble unstated": "s"}
KINDS = ("energy-score", "ew")


class PlotError(Exception):
    """Nothing can be drawn, or matplotlib is missing; the message says what to do."""


def _kind(system: System) -> str:
    return "single" if system.ensemble is False else "ensemble" if system.ensemble else "ensemble unstated"


def _energy(system: System, energy: str) -> Optional[float]:
    joules = system.train_normalized_j if energy == "normalized" else system.train_j
    return None if joules is None or joules <= 0 else joules / KWH_J


def _configured_reference(collection: Collection, energy: str, score: str) -> Optional[System]:
    """The baseline a JSON report was configured with: its ``reference`` training energy and score.

    Used only where that energy is on the plotted scale: normalised energies against a
    normalising reference, raw energies against one that does not normalise (DCASE 2022).
    """
    for system in sorted(collection.systems, key=lambda s: (s.edition, s.source)):
        if not system.source.lower().endswith(".json"):
            continue
        try:
            reference = read_report(Path(system.source)).get("reference")
        except (ReportError, OSError):
            continue
        if not isinstance(reference, dict):
            continue
        normalizes = reference.get("reference_energy_j") is not None
        energy_j, scores = reference.get("baseline_train_energy_j"), reference.get("baseline_scores")
        value = scores.get(score) if isinstance(scores, dict) else None
        if normalizes != (energy == "normalized") or not _positive(energy_j) or not _positive(value):
            continue
        return System(
            name="baseline (configured reference)", edition=system.edition, source=system.source, ensemble=False,
            baseline=True, train_j=energy_j, train_normalized_j=energy_j, score=value,
        )
    return None


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _reference(collection: Collection, energy: str, score: str, name: Optional[str]) -> Optional[System]:
    """The system whose energy and score draw the quadrant lines."""
    usable = [s for s in collection.baselines + collection.systems if s.score is not None and _energy(s, energy)]
    if name is not None:
        named = sorted((s for s in usable if s.name == name), key=lambda s: s.edition)
        if not named:
            raise PlotError(f"--baseline {name!r}: no such system with a score and a {energy} training energy")
        return named[-1]
    baselines = sorted((s for s in usable if s.baseline), key=lambda s: s.edition, reverse=True)
    return baselines[0] if baselines else _configured_reference(collection, energy, score)


def _ew(system: System, reference: System, energy: str) -> float:
    """The energy-weighted score: score × E_baseline / E (training energy of the plotted kind)."""
    return system.score * _energy(reference, energy) / _energy(system, energy)  # type: ignore[operator]


def _pad(axes: Any, points: List[Tuple[float, float]], log_x: bool, log_y: bool) -> None:
    """Limits that keep every point (and a lone one) well inside the axes, a sixth of the range from the edges."""
    for values, log, set_limits in (([x for x, _ in points], log_x, axes.set_xlim),
                                    ([y for _, y in points], log_y, axes.set_ylim)):
        if not values:
            continue
        low, high = min(values), max(values)
        if log:
            low, high = math.log10(low), math.log10(high)
        margin = (high - low) / 6 or (0.3 if log else max(abs(high) * 0.15, 0.05))
        low, high = low - margin, high + margin
        if log:
            low, high = 10 ** low, 10 ** high
        set_limits(low, high)


def plot_trend(
    collection: Collection,
    output: Path,
    *,
    kind: str = "energy-score",
    score: str = "psds1",
    energy: str = "normalized",
    baseline: Optional[str] = None,
) -> List[str]:
    """Write the image to ``output`` (its format from its extension), in one step; returns notes on what was left out.

    ``PlotError`` when ``output`` is not a regular file's name (a directory, fifo, device), has no
    known image extension, or cannot be written (a read-only place, a full disk).
    """
    if kind not in KINDS:
        raise PlotError(f"unknown plot kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(f"plotting needs matplotlib: {PLOT_INSTALL}") from None
    if not output.parent.is_dir():
        raise PlotError(f"{output.parent}: no such directory")
    image_format = output.suffix[1:].lower()
    formats = FigureCanvasAgg.get_supported_filetypes()
    if image_format not in formats:
        raise PlotError(f"{output}: the name must end in a known image extension ({', '.join('.' + name for name in sorted(formats))})")
    try:
        regular_file_target(output)
    except NotARegularFileError as error:
        raise PlotError(str(error)) from None

    notes: List[str] = []
    series: Dict[Tuple[str, str], List[System]] = {}
    left_out: Counter = Counter()
    for system in collection.systems:
        if _energy(system, energy) is None or system.score is None:
            left_out[system.edition] += 1
            continue
        series.setdefault((system.edition, _kind(system)), []).append(system)
    for edition, count in sorted(left_out.items()):
        notes.append(f"{edition}: {count} systems without a score or a {energy} training energy, not plotted")
    if not series:
        hint = " (try --energy raw)" if energy == "normalized" else ""
        raise PlotError(f"nothing to plot: no system has both a {score} and a {energy} training energy{hint}")
    reference = _reference(collection, energy, score, baseline)
    if kind == "ew" and reference is None:
        raise PlotError(
            "the ew plot weighs scores by a baseline's energy: no baseline among the inputs "
            "(name a system with --baseline, or configure the report's baseline-train-energy and baseline-scores)"
        )

    figure = Figure(figsize=(9, 6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    editions = sorted({edition for edition, _ in series})
    colours = {edition: f"C{index % 10}" for index, edition in enumerate(editions)}
    stars = [s for s in collection.baselines if _energy(s, energy) is not None and s.score is not None]
    if reference is not None and reference not in stars:
        stars.append(reference)

    def position(system: System) -> Tuple[float, float]:
        if kind == "ew":
            return system.score, _ew(system, reference, energy)  # type: ignore[arg-type,return-value]
        return _energy(system, energy), system.score  # type: ignore[return-value]

    for (edition, system_kind), systems in sorted(series.items()):
        points = [position(s) for s in systems]
        axes.scatter(
            [x for x, _ in points], [y for _, y in points],
            marker=MARKERS[system_kind],
            color=colours[edition],
            alpha=0.75 if system_kind == "single" else 0.45,
            label=f"{edition} {system_kind} (n={len(systems)})",
        )
    for system in stars:  # named in the legend: labels beside close stars would overlap
        x, y = position(system)
        axes.scatter(
            [x], [y], marker="*", s=260, color=colours.get(system.edition, "grey"),
            edgecolors="black", linewidths=0.8, zorder=3, label=f"baseline {system.name} ({system.edition})",
        )
    _pad(axes, [position(s) for systems in series.values() for s in systems] + [position(s) for s in stars],
         log_x=kind != "ew", log_y=kind == "ew")

    kind_of_energy = "normalised training energy" if energy == "normalized" else "training energy (raw)"
    if kind == "ew":
        axes.set_yscale("log")
        axes.set_xlabel(f"{score} (better →)")
        axes.set_ylabel(f"EW {score} = {score} × E_baseline / E (log scale, better ↑)")
        axes.set_title(f"Energy-weighted {score} ({kind_of_energy}) against {score}")
        quadrant = "better than {name} ({edition})\non both {score} and EW {score}"
    else:
        axes.set_xscale("log")
        axes.invert_xaxis()
        axes.set_xlabel(f"{kind_of_energy}, kWh (log scale, reversed: cheaper →)")
        axes.set_ylabel(f"{score} (better ↑)")
        axes.set_title(f"{score} against {kind_of_energy}, per edition")
        quadrant = "better and cheaper than\n{name} ({edition})"
    if reference is not None:
        x_ref, y_ref = position(reference)
        axes.axvline(x_ref, color="black", linestyle="--", linewidth=0.9)
        axes.axhline(y_ref, color="black", linestyle="--", linewidth=0.9)
        left, right = axes.get_xlim()
        bottom, top = axes.get_ylim()
        axes.fill_between([x_ref, right], y_ref, top, color="tab:green", alpha=0.08, linewidth=0,
                          label=quadrant.format(name=reference.name, edition=reference.edition, score=score))
        axes.set_xlim(left, right)
        axes.set_ylim(bottom, top)
    else:
        notes.append("no baseline among the inputs: no quadrant lines (name one with --baseline)")

    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="best", fontsize=8, framealpha=0.9)
    image = io.BytesIO()
    figure.savefig(image, dpi=150, format=image_format)
    try:  # in one step: a full disk or a read-only place leaves no half-written image
        write_bytes_atomically(output, image.getvalue())
    except OSError as error:
        raise PlotError(f"cannot write {output}: {error.strerror or error}") from None
    return notes
