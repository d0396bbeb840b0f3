"""Score against training energy, as a PNG: the organisers' energy-weighted view.

One series per edition and single/ensemble, the baselines as stars, and quadrant lines
through one baseline's energy and score. The energy axis is logarithmic and reversed, so
that cheaper is to the right and better is up: the top-right quadrant holds the systems
better and cheaper than the baseline. matplotlib is imported only when a plot is drawn
(through its object API, leaving pyplot's global state alone).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from pytest_energy.report.trend import KWH_J, Collection, System

PLOT_INSTALL = 'pip install "pytest-energy[plot]"'
MARKERS = {"single": "o", "ensemble": "^", "ensemble unstated": "s"}


class PlotError(Exception):
    """Nothing can be drawn, or matplotlib is missing; the message says what to do."""


def _kind(system: System) -> str:
    return "single" if system.ensemble is False else "ensemble" if system.ensemble else "ensemble unstated"


def _energy(system: System, energy: str) -> Optional[float]:
    joules = system.train_normalized_j if energy == "normalized" else system.train_j
    return None if joules is None or joules <= 0 else joules / KWH_J


def _reference(collection: Collection, energy: str, name: Optional[str]) -> Optional[System]:
    """The system whose energy and score draw the quadrant lines."""
    usable = [s for s in collection.baselines + collection.systems if s.score is not None and _energy(s, energy)]
    if name is not None:
        named = sorted((s for s in usable if s.name == name), key=lambda s: s.edition)
        if not named:
            raise PlotError(f"--baseline {name!r}: no such system with a score and a {energy} training energy")
        return named[-1]
    baselines = sorted((s for s in usable if s.baseline), key=lambda s: s.edition, reverse=True)
    return baselines[0] if baselines else None


def plot_trend(
    collection: Collection,
    output: Path,
    *,
    score: str = "psds1",
    energy: str = "normalized",
    baseline: Optional[str] = None,
) -> List[str]:
    """Write the PNG to ``output``; returns notes on what was left out."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(f"plotting needs matplotlib: {PLOT_INSTALL}") from None
    if not output.parent.is_dir():
        raise PlotError(f"{output.parent}: no such directory")

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
    reference = _reference(collection, energy, baseline)

    figure = Figure(figsize=(9, 6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    editions = sorted({edition for edition, _ in series})
    colours = {edition: f"C{index % 10}" for index, edition in enumerate(editions)}
    for (edition, kind), systems in sorted(series.items()):
        axes.scatter(
            [_energy(s, energy) for s in systems],
            [s.score for s in systems],
            marker=MARKERS[kind],
            color=colours[edition],
            alpha=0.75 if kind == "single" else 0.45,
            label=f"{edition} {kind} (n={len(systems)})",
        )
    for system in collection.baselines:
        x = _energy(system, energy)
        if x is None or system.score is None:
            continue
        axes.scatter(
            [x], [system.score], marker="*", s=260, color=colours.get(system.edition, "grey"),
            edgecolors="black", linewidths=0.8, zorder=3,
        )
        axes.annotate(system.name, (x, system.score), xytext=(6, -12), textcoords="offset points", fontsize=8)
    axes.scatter([], [], marker="*", s=160, color="white", edgecolors="black", label="baseline")

    axes.set_xscale("log")
    axes.invert_xaxis()
    if reference is not None:
        x_ref, y_ref = _energy(reference, energy), reference.score
        axes.axvline(x_ref, color="black", linestyle="--", linewidth=0.9)
        axes.axhline(y_ref, color="black", linestyle="--", linewidth=0.9)
        left, right = axes.get_xlim()
        bottom, top = axes.get_ylim()
        axes.fill_between([x_ref, right], y_ref, top, color="tab:green", alpha=0.08, linewidth=0)
        axes.set_xlim(left, right)
        axes.set_ylim(bottom, top)
        axes.text(
            0.98, 0.97, f"better and cheaper than\n{reference.name} ({reference.edition})",
            transform=axes.transAxes, ha="right", va="top", fontsize=9, color="darkgreen",
        )
    else:
        notes.append("no baseline among the inputs: no quadrant lines (name one with --baseline)")

    kind_of_energy = "normalised training energy" if energy == "normalized" else "training energy (raw)"
    axes.set_xlabel(f"{kind_of_energy}, kWh (log scale, reversed: cheaper →)")
    axes.set_ylabel(f"{score} (better ↑)")
    axes.set_title(f"{score} against {kind_of_energy}, per edition")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="best", fontsize=8, framealpha=0.9)
    figure.savefig(output, dpi=150)
    return notes
