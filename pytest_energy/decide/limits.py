"""Limits as a registry of pure functions with one signature: ``limit(figures, limits) -> Optional[CapFailure]``.

``Figures`` is what one test spent and what applies to it; ``Limits`` is the session's
settings. ``check`` runs every limit of ``LIMITS`` in order (cap, session cap, regression,
MACs cap, params cap). The live watchdog stops a test at ``live_limit`` and asks ``check``
for the failure it reports, so the message, the figure and the verdict are the same in the
stop, the final verdict and every report.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..account.normalize import Normalization
from ..measure.base import COMPONENTS, Measurement
from ..store.runs import StoredRun
from ..units import format_count, format_energies_apart, format_energy
from .noise import Comparison, NoiseFloor, compare, fails

NORMALIZED_PHASES = ("train", "test")  # the phases a normalised cap applies to (not the baseline's own)
ENERGY_LIMITS = ("cap", "cap per unit", "session cap", "regression")  # the limits that give a test's energy verdict
COMPLEXITY_LIMITS = ("MACs cap", "parameters cap")


@dataclasses.dataclass(frozen=True)
class CapFailure:
    """Why a test failed a limit, as the user reads it; ``limit`` names the limit that failed it."""

    message: str
    verdict: str = "over-cap"
    limit: str = "cap"

    def as_longrepr(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class Figures:
    """What the limits read of one test: its measurement, counts, and the limits that apply to it alone."""

    nodeid: str
    measurement: Optional[Measurement]
    phase: str = "test"
    cap_j: Optional[float] = None
    normalization: Optional[Normalization] = None  # the session's, once its baseline is known
    baseline_on_other_worker: bool = False  # why there is no normalisation yet (under xdist)
    normalization_refused: Optional[str] = None  # why the baseline's energies give no normalisation
    session_left_j: Optional[float] = None  # what was left of the session cap when the test started
    complexity: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # "macs", "params"
    fingerprint: Optional[str] = None  # this machine's, for the regression gate
    stopped_early: Optional[Mapping[str, Any]] = None  # the watchdog's stop: at_s, limit
    repeats: int = 1  # measured runs of the body planned
    repeats_j: Tuple[Optional[float], ...] = ()  # every repeat's figure, once all ran (the last is ``measurement``'s)
    repeats_lost: Tuple[str, ...] = ()  # why an earlier repeat's figure is only a lower bound
    cap_per_unit: Optional[Tuple[float, str]] = None  # joules per unit of work, and the unit
    work: Optional[Mapping[str, Any]] = None  # what record_work recorded: unit, amount, energy_per_unit_j

    @property
    def energy_j(self) -> Optional[float]:
        return self.measurement.total_j if self.measurement else None


@dataclasses.dataclass(frozen=True)
class Limits:
    """The session's limits, as the settings give them."""

    unit: Optional[str] = None
    normalized_caps: bool = False  # caps apply to normalised energies
    session_cap_j: Optional[float] = None
    macs_cap: Optional[int] = None
    params_cap: Optional[int] = None
    regression: Optional[float] = None  # the growth over ``stored`` that fails (0.10 = 10 %)
    stored: Optional[StoredRun] = None
    cap_on: str = "median"  # with repeats, what a cap applies to: "median", "max" or "each"
    regression_auto: bool = False  # the limit is each test's noise floor (``--energy-compare-fail=auto``)
    floors: Mapping[str, NoiseFloor] = dataclasses.field(default_factory=dict)  # nodeid -> this machine's noise
    complexity_regression: Optional[float] = None  # the growth of MACs or parameters over ``stored`` that fails


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


@dataclasses.dataclass(frozen=True)
class StoredComparison:
    """A test's figures against the stored run's: the comparison, what was compared, and the limit that applies."""

    comparison: Comparison
    kind: str  # "energy" or "normalised energy"
    limit: Optional[float]  # None: ``auto`` without a noise floor for this test
    floor: Optional[NoiseFloor]
    run: str
    now_j: float  # the medians compared
    before_j: float

    def to_json(self) -> Dict[str, Any]:
        return {**self.comparison.to_json(), "limit": self.limit,
                "noise_floor": {"noise": self.floor.noise, "source": self.floor.source} if self.floor else None}


def compare_with_stored(figures: Figures, limits: Limits) -> Union[StoredComparison, CapFailure, None]:
    """The test's repeats against the stored run's (raw on the same hardware, else one normalised figure each).

    A ``CapFailure`` when the runs cannot be compared; None when there is nothing to compare.
    """
    stored = limits.stored
    if stored is None or (limits.regression is None and not limits.regression_auto):
        return None
    previous = stored.tests.get(figures.nodeid)
    if previous is None or previous.get("outcome") == "skipped":
        return None
    energy_j = trusted_total(figures.measurement)
    if energy_j is None:
        return CapFailure(f"cannot compare with {stored.path.name}: {unmeasured_reason(figures.measurement)}",
                          "unmeasured", "regression")
    measured = [energy for energy in figures.repeats_j if energy is not None]
    if figures.fingerprint == stored.fingerprint:
        now, before, kind = measured or [energy_j], list(stored.energies(figures.nodeid)), "energy"
        work, worked = figures.work or {}, previous.get("work") or {}
        if work and worked and work.get("unit") == worked.get("unit"):  # the workload may have changed: per unit
            now = [energy / work["amount"] for energy in now]
            before = [energy / worked["amount"] for energy in before]
            kind = f"energy per {work['unit']}"
    else:
        middle_j = statistics.median(measured) if measured else energy_j
        normalized_j = figures.normalization.normalize(middle_j) if figures.normalization else None
        before_j = previous.get("energy_normalized_j")
        if normalized_j is None or before_j is None:
            return CapFailure(
                f"cannot compare with {stored.path.name}: it was measured on other hardware (fingerprint "
                f"{stored.fingerprint} vs {figures.fingerprint}) and without normalisation; run a baseline "
                "(@pytest.mark.energy_baseline) in both runs or compare on the same machine",
                "not-comparable",
                "regression",
            )
        now, before, kind = [normalized_j], [before_j], "normalised energy"
    if not before or not all(_positive_finite(energy) for energy in before):
        return CapFailure(f"cannot compare with {stored.path.name}: its {kind} for this test is "
                          f"{', '.join(repr(energy) for energy in before) or 'missing'}, not an energy more than zero",
                          "not-comparable", "regression")
    comparison = compare(now, before)
    if comparison is None:
        return None
    floor = limits.floors.get(figures.nodeid)
    limit = (floor.noise if floor else None) if limits.regression_auto else limits.regression
    return StoredComparison(comparison, kind, limit, floor, stored.path.name, statistics.median(now),
                            statistics.median(before))


def regression(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy grew by more than ``limits.regression`` over the stored run, noise considered.

    With repeats on both sides it fails only when the lower bound of the ratio's interval is over
    the limit (``decide/noise.py``); with one figure on a side, when the ratio is, and it says so.
    A figure that is only a lower bound does not pass.
    """
    compared = compare_with_stored(figures, limits)
    if not isinstance(compared, StoredComparison) or compared.limit is None:
        return compared if isinstance(compared, CapFailure) else None
    comparison, limit, unit = compared.comparison, compared.limit, limits.unit
    shown_limit = f"limit +{limit * 100:g}%"
    if limits.regression_auto and compared.floor is not None:
        shown_limit += f": this runner's noise, the {compared.floor.source}"
    shown_now, shown_before = format_energies_apart(compared.now_j, compared.before_j, unit)
    if fails(comparison, limit):
        return CapFailure(
            f"{compared.kind} {shown_now} grew {_growth(comparison.ratio - 1, limit)} over {shown_before} in "
            f"{compared.run} ({shown_limit}); {comparison.describe()}",
            "regression",
            "regression",
        )
    lost = [*doubts(figures, figures.normalization if compared.kind == "normalised energy" else None),
            *(f"repeat {index} of {len(figures.repeats_j)} was not measured"
              for index, energy in enumerate(figures.repeats_j, 1) if energy is None)]
    if lost:
        return CapFailure(f"cannot pass the regression gate ({shown_limit}): {compared.kind} "
                          f"{shown_now} is only a lower bound because {'; '.join(dict.fromkeys(lost))}",
                          "lower-bound", "regression")
    return None


def _growth(growth: float, limit: float) -> str:
    """``growth`` as a percentage with enough digits to read above ``limit``."""
    for digits in range(1, 16):
        shown = f"{growth:+.{digits}%}"
        if float(shown.rstrip("%")) / 100 > limit:
            return shown
    return f"{growth:+.15%}"


def _positive_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


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


def complexity_regression(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The counted MACs or parameters grew by more than ``--macs-compare-fail`` over the stored run: exact counts, no noise."""
    stored, limit = limits.stored, limits.complexity_regression
    previous = stored.tests.get(figures.nodeid) if stored is not None else None
    if previous is None or limit is None:
        return None
    grown = []
    for key, what in (("macs", "MACs"), ("params", "parameters")):
        now, before = figures.complexity.get(key), previous.get(key)
        if isinstance(now, (int, float)) and isinstance(before, (int, float)) and now > before * (1 + limit):
            growth = f" ({now / before - 1:+.1%})" if before else ""
            grown.append(f"{what} {format_count(now)} ({now:,}) grew over {format_count(before)} ({before:,}){growth}")
    if not grown:
        return None
    return CapFailure(f"{'; '.join(grown)} in {stored.path.name} (limit +{limit * 100:g}%)",  # type: ignore[union-attr]
                      "regression", "MACs regression")


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


def lower_bound_reasons(measurement: Measurement) -> List[str]:
    """Why ``measurement`` counts less than the test spent: devices a working source covered but lost.

    A device that stopped reporting (``partial``) or gave no figure for this window counts; a
    component no source measures here (a CPU-only machine's GPU) does not.
    """
    reasons = []
    for reading in measurement.readings:
        if reading.joules is not None and not (math.isfinite(reading.joules) and reading.joules >= 0):
            continue  # not a lower bound: no figure at all (see trusted_total)
        if reading.joules is None and reading.method != "unmeasured":
            why = reading.note or reading.partial or "unmeasured"
            reasons.append(why if why.startswith(reading.device) else f"{reading.device} {why}")
        elif reading.partial:
            reasons.append(reading.partial)
    return list(dict.fromkeys(reasons))


def doubts(figures: Figures, normalization: Optional[Normalization] = None) -> List[str]:
    """Why the test's figure is only a lower bound: devices lost in its window or in an earlier repeat,
    and the caveat of the normalisation it is compared through."""
    measurement = figures.measurement
    reasons = [*(lower_bound_reasons(measurement) if measurement is not None else []), *figures.repeats_lost]
    if normalization is not None and normalization.caveat:
        reasons.append(normalization.caveat)
    return list(dict.fromkeys(reasons))


def trusted_total(measurement: Optional[Measurement]) -> Optional[float]:
    """The measurement's total, or None when there is none or a reading is not a finite energy of 0 or more."""
    if measurement is None or any(r.joules is not None and not (math.isfinite(r.joules) and r.joules >= 0)
                                  for r in measurement.readings):
        return None
    total = measurement.total_j
    return total if total is not None and math.isfinite(total) else None


def unmeasured_reason(measurement: Optional[Measurement]) -> str:
    """Why ``trusted_total(measurement)`` is None, in one clause."""
    if measurement is None:
        return "no meter measured this test (test was not measured)"
    invalid = [f"{r.device} gave {r.joules!r} J" for r in measurement.readings
               if r.joules is not None and not (math.isfinite(r.joules) and r.joules >= 0)]
    if invalid:
        return f"a meter gave an invalid figure ({'; '.join(invalid)})"
    if measurement.total_j is not None:
        return f"the total {measurement.total_j!r} J is not finite"
    notes = "; ".join(dict.fromkeys(r.note for r in measurement.readings if r.note))
    return f"no meter measured this test ({notes})"


def split(measurement: Measurement, unit: Optional[str] = None) -> str:
    """``gpu 1.93 kWh, cpu 0.29 kWh, ram 0.09 kWh; meter nvml-counter``"""
    parts = [
        f"{component} {format_energy(measurement.component_j(component), unit)}"
        for component in COMPONENTS
        if any(r.component == component for r in measurement.readings)
    ]
    return ", ".join(parts) + f"; meter {measurement.meter}"
