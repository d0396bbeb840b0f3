"""Limits as a registry of pure functions with one signature: ``limit(figures, limits) -> Optional[CapFailure]``.

``check`` runs every limit of ``LIMITS`` in order (cap, cap per unit, session cap, regression,
MACs cap, params cap, MACs regression; the inputs are in ``figures.py``, the regressions in
``regression.py``). The live watchdog stops a test at ``live_limit`` and asks ``check``
for the failure it reports, so the message, the figure and the verdict are the same in the
stop, the final verdict and every report.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..account.normalize import Normalization
from ..measure.base import COMPONENTS, Measurement
from ..units import format_count, format_energies_apart, format_energy
from .figures import CapFailure, Figures, Limits, doubts, trusted_total, unmeasured_reason
from .regression import complexity_regression, regression

NORMALIZED_PHASES = ("train", "test")  # the phases a normalised cap applies to (not the baseline's own)
ENERGY_LIMITS = ("cap", "cap per unit", "session cap", "regression")  # the limits that give a test's energy verdict
COMPLEXITY_LIMITS = ("MACs cap", "parameters cap")

Limit = Callable[[Figures, Limits], Optional[CapFailure]]


def cap_normalization(figures: Figures, limits: Limits) -> Optional[Normalization]:
    """The normalisation the test's cap compares with, if its cap applies to normalised energy."""
    return figures.normalization if limits.normalized_caps and figures.phase in NORMALIZED_PHASES else None


def energy_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy (normalised with ``--energy-normalized``; with repeats, see ``capped_figure``) against its cap.

    A figure that is only a lower bound (see ``lower_bound_reasons``, a lost repeat, and a
    normalisation with a caveat) never passes: under the cap it is "lower-bound"; one with no
    trustworthy figure (none measured, an invalid reading, an unmeasured repeat, no normalised
    figure) is "unmeasured".
    """
    cap_j, unit, measurement = figures.cap_j, limits.unit, figures.measurement
    if cap_j is None:
        return None
    normalization = cap_normalization(figures, limits)
    if limits.normalized_caps and normalization is None and figures.phase in NORMALIZED_PHASES:
        why = figures.normalization_refused or (
            "the baseline is being measured on another xdist worker; measure it once without -n (later runs reuse "
            "the cached baseline)" if figures.baseline_on_other_worker else
            "no baseline was measured before this test (mark the reference workload with @pytest.mark.energy_baseline)")
        return CapFailure(f"cannot enforce a normalised cap: {why}", "unmeasured")
    if measurement is None or trusted_total(measurement) is None:
        return CapFailure(f"cannot enforce cap {format_energy(cap_j, unit)}: {unmeasured_reason(measurement)}", "unmeasured")
    unmeasured = [str(index) for index, energy in enumerate(figures.repeats_j, 1) if energy is None]
    if unmeasured:
        return CapFailure(f"cannot enforce cap {format_energy(cap_j, unit)}: repeat {', '.join(unmeasured)} of "
                          f"{len(figures.repeats_j)} was not measured", "unmeasured")
    total, which = capped_figure(figures, limits.cap_on)
    compared, what = (total, "energy") if normalization is None else (normalization.normalize(total), "normalised energy")
    if compared is None:
        why = normalization.why_not_normalized(total)  # type: ignore[union-attr]
        return CapFailure(f"cannot enforce cap {format_energy(cap_j, unit)}: {why}", "unmeasured")
    what += f" ({which})" if which else ""
    lost = "; ".join(doubts(figures, normalization))
    details = ("" if normalization is None else f"raw {format_energy(total, unit)}: ") + split(measurement, unit)
    figure, cap = format_energies_apart(compared, cap_j, unit)
    if compared > cap_j:
        at_least = f", and that is only a lower bound because {lost}" if lost else ""
        return CapFailure(f"{what} {figure} exceeds cap {cap} ({details}){at_least}")
    if lost:
        return CapFailure(f"cannot enforce cap {cap}: {what} {figure} is only a lower bound because {lost} ({details})",
                          "lower-bound")
    return None


def capped_figure(figures: Figures, cap_on: str) -> Tuple[float, str]:
    """The figure a cap applies to, and which it is: with repeats, their median or the largest (``max``, ``each``)."""
    repeats = [energy for energy in figures.repeats_j if energy is not None]
    if len(repeats) < 2:
        return trusted_total(figures.measurement), ""  # type: ignore[return-value]
    if cap_on == "median":
        return statistics.median(repeats), f"median of {len(repeats)} repeats"
    return max(repeats), f"largest of {len(repeats)} repeats"


def per_unit_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy per unit of work (``energy.record_work``) against its ``cap_per_unit``."""
    if figures.cap_per_unit is None:
        return None
    cap_j, unit = figures.cap_per_unit
    shown_cap = f"{format_energy(cap_j, limits.unit)}/{unit}"
    work = figures.work or {}
    if work.get("unit") != unit:
        recorded = f"it recorded work in {work['unit']}s" if work else "it recorded no work"
        return CapFailure(f"cannot enforce cap {shown_cap}: {recorded} (call energy.record_work({unit}s=...) in the test)",
                          "unmeasured", "cap per unit")
    energy_j, _ = capped_figure(figures, limits.cap_on) if trusted_total(figures.measurement) is not None else (None, "")
    if energy_j is None:
        return CapFailure(f"cannot enforce cap {shown_cap}: {unmeasured_reason(figures.measurement)}", "unmeasured",
                          "cap per unit")
    per_unit = energy_j / work["amount"]
    if per_unit > cap_j:
        return CapFailure(f"energy per {unit} {format_energy(per_unit, limits.unit)} ({format_energy(energy_j, limits.unit)} "
                          f"over {work['amount']:g} {unit}s) exceeds cap {shown_cap}", limit="cap per unit")
    lost = doubts(figures)
    if lost:
        return CapFailure(f"cannot enforce cap {shown_cap}: energy per {unit} {format_energy(per_unit, limits.unit)} is "
                          f"only a lower bound because {'; '.join(lost)}", "lower-bound", "cap per unit")
    return None


def session_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy against what was left of the session cap when it started; a test without a
    trustworthy figure (unmeasured, or only a lower bound under what was left) does not pass it."""
    if limits.session_cap_j is None:
        return None
    measurement, left_j, unit = figures.measurement, figures.session_left_j, limits.unit
    total = trusted_total(measurement)
    if total is not None and len(figures.repeats_j) > 1:  # the session spent every repeat
        total = None if None in figures.repeats_j else sum(figures.repeats_j)  # type: ignore[arg-type]
    cap = format_energy(limits.session_cap_j, unit)
    if total is None or left_j is None:
        why = unmeasured_reason(measurement) if total is None else "what was left of it is unknown"
        return CapFailure(f"cannot enforce session cap {cap}: {why}", "unmeasured", "session cap")
    figure, left = format_energies_apart(total, left_j, unit)
    lost = "; ".join(doubts(figures))  # an earlier repeat lost counts too: the session spent it
    if total <= left_j:
        if not lost:
            return None
        return CapFailure(f"cannot enforce session cap {cap}: energy {figure} is only a lower bound because {lost} "
                          f"({split(measurement, unit)})", "lower-bound", "session cap")  # type: ignore[arg-type]
    crosses = (f"crosses what is left of the session cap {left}" if left_j > 0 else
               "was spent after the session cap was already spent (by tests that ran beside it)")
    return CapFailure(
        f"energy {figure} {crosses} ({split(measurement, unit)}); session cap {cap}",  # type: ignore[arg-type]
        limit="session cap",
    )


def _count_cap(what: str, cap: Optional[int], complexity: Mapping[str, Any], key: str) -> Optional[CapFailure]:
    """A counted figure against its cap: nothing counted (no model), nothing to cap; a count that is
    not a number of 0 or more never passes."""
    value = complexity.get(key)
    if cap is None or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return CapFailure(f"cannot enforce the {what} cap {format_count(cap)}: the count is {value!r}", "error",
                          f"{what} cap")
    if value <= cap:
        return None
    return CapFailure(f"{what} {format_count(value)} ({value:,}) exceed cap {format_count(cap)} ({cap:,})",
                      limit=f"{what} cap")


def macs_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The counted MACs against ``--energy-macs-cap`` (nothing counted: nothing to break)."""
    return _count_cap("MACs", limits.macs_cap, figures.complexity, "macs")


def params_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The counted parameters against ``--energy-params-cap``."""
    return _count_cap("parameters", limits.params_cap, figures.complexity, "params")


LIMITS: Tuple[Limit, ...] = (energy_cap, per_unit_cap, session_cap, regression, macs_cap, params_cap, complexity_regression)


def check(figures: Figures, limits: Limits) -> List[CapFailure]:
    """Every limit the test breaks, in the registry's order; the one that stopped it says when."""
    failures = [failure for failure in (limit(figures, limits) for limit in LIMITS) if failure is not None]
    stopped = figures.stopped_early
    if not stopped:
        return failures
    return [dataclasses.replace(failure, message=f"{failure.message}; stopped early at {stopped['at_s']:.2f} s")
            if failure.limit == stopped["limit"] else failure for failure in failures]


def live_limit(figures: Figures, limits: Limits) -> Optional[Tuple[float, str]]:
    """The lowest energy measured here at which an energy limit fails, and which: what the watchdog watches."""
    candidates = []
    if figures.cap_j is not None and (figures.repeats == 1 or limits.cap_on != "median"):  # one repeat can't fail a median
        normalization = cap_normalization(figures, limits)
        candidates.append((normalization.local_energy_for(figures.cap_j) if normalization else figures.cap_j, "cap"))
    if limits.session_cap_j is not None and figures.session_left_j is not None:
        candidates.append((figures.session_left_j, "session cap"))
    return min(candidates) if candidates else None


def verdict_of(failures: Sequence[CapFailure], cap_j: Optional[float]) -> str:
    """A test's one energy verdict: its first energy limit's failure, else pass or no-cap."""
    energy = [failure for failure in failures if failure.limit in ENERGY_LIMITS]
    return energy[0].verdict if energy else ("no-cap" if cap_j is None else "pass")


def complexity_verdict(failures: Sequence[CapFailure], limits: Limits) -> str:
    """The verdict on a counted model: over a complexity cap, within them, or no cap."""
    if any(failure.limit in COMPLEXITY_LIMITS for failure in failures):
        return "over-cap"
    if any(failure.limit == "MACs regression" for failure in failures):
        return "regression"
    capped = (limits.macs_cap, limits.params_cap, limits.complexity_regression)
    return "pass" if any(limit is not None for limit in capped) else "no-cap"


def split(measurement: Measurement, unit: Optional[str] = None) -> str:
    """``gpu 1.93 kWh, cpu 0.29 kWh, ram 0.09 kWh; meter nvml-counter``"""
    parts = [
        f"{component} {format_energy(measurement.component_j(component), unit)}"
        for component in COMPONENTS
        if any(r.component == component for r in measurement.readings)
    ]
    return ", ".join(parts) + f"; meter {measurement.meter}"
