"""Limits as a registry of pure functions with one signature: ``limit(figures, limits) -> Optional[CapFailure]``.

``Figures`` is what one test spent and what applies to it; ``Limits`` is the session's
settings. ``check`` runs every limit of ``LIMITS`` in order (cap, session cap, regression,
MACs cap, params cap). The live watchdog stops a test at ``live_limit`` and asks ``check``
for the failure it reports, so the message, the figure and the verdict are the same in the
stop, the final verdict and every report.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..account.normalize import Normalization
from ..measure.base import COMPONENTS, Measurement
from ..store.runs import StoredRun
from ..units import format_count, format_energy

NORMALIZED_PHASES = ("train", "test")  # the phases a normalised cap applies to (not the baseline's own)
ENERGY_LIMITS = ("cap", "session cap", "regression")  # the limits that give a test's energy verdict
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
    session_left_j: Optional[float] = None  # what was left of the session cap when the test started
    complexity: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # "macs", "params"
    fingerprint: Optional[str] = None  # this machine's, for the regression gate
    stopped_early: Optional[Mapping[str, Any]] = None  # the watchdog's stop: at_s, limit

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


Limit = Callable[[Figures, Limits], Optional[CapFailure]]


def cap_normalization(figures: Figures, limits: Limits) -> Optional[Normalization]:
    """The normalisation the test's cap compares with, if its cap applies to normalised energy."""
    return figures.normalization if limits.normalized_caps and figures.phase in NORMALIZED_PHASES else None


def energy_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy (normalised with ``--energy-normalized``) against its cap.

    A figure that is only a lower bound (see ``lower_bound_reasons``) never passes: under the
    cap it is "lower-bound".
    """
    cap_j, unit, measurement = figures.cap_j, limits.unit, figures.measurement
    if cap_j is None:
        return None
    normalization = cap_normalization(figures, limits)
    if limits.normalized_caps and normalization is None and figures.phase in NORMALIZED_PHASES:
        why = ("the baseline is being measured on another xdist worker; measure it once without -n (later runs reuse "
               "the cached baseline)" if figures.baseline_on_other_worker else
               "no baseline was measured before this test (mark the reference workload with @pytest.mark.energy_baseline)")
        return CapFailure(f"cannot enforce a normalised cap: {why}", "unmeasured")
    total = figures.energy_j
    if measurement is None or total is None:
        why = "; ".join(dict.fromkeys(r.note for r in measurement.readings if r.note)) if measurement else "test was not measured"
        return CapFailure(f"cannot enforce cap {format_energy(cap_j, unit)}: no meter measured this test ({why})", "unmeasured")
    compared, what = (total, "energy") if normalization is None else (normalization.normalize(total), "normalised energy")
    lost = "; ".join(lower_bound_reasons(measurement))
    details = ("" if normalization is None else f"raw {format_energy(total, unit)}: ") + split(measurement, unit)
    if compared > cap_j:
        at_least = f", and that is only a lower bound because {lost}" if lost else ""
        return CapFailure(f"{what} {format_energy(compared, unit)} exceeds cap {format_energy(cap_j, unit)} ({details}){at_least}")
    if lost:
        return CapFailure(
            f"cannot enforce cap {format_energy(cap_j, unit)}: {what} {format_energy(compared, unit)} is only a lower "
            f"bound because {lost} ({details})",
            "lower-bound",
        )
    return None


def session_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy against what was left of the session cap when it started."""
    total, left_j = figures.energy_j, figures.session_left_j
    if limits.session_cap_j is None or left_j is None or total is None or total <= left_j:
        return None
    left = (f"crosses what is left of the session cap {format_energy(left_j, limits.unit)}" if left_j > 0 else
            "was spent after the session cap was already spent (by tests that ran beside it)")
    return CapFailure(
        f"energy {format_energy(total, limits.unit)} {left} ({split(figures.measurement, limits.unit)}); "  # type: ignore[arg-type]
        f"session cap {format_energy(limits.session_cap_j, limits.unit)}",
        limit="session cap",
    )


def regression(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The test's energy grew by more than ``limits.regression`` over the stored run.

    On the same hardware raw energies are compared; on other hardware, normalised ones.
    """
    stored, energy_j = limits.stored, figures.energy_j
    if stored is None or limits.regression is None or energy_j is None:
        return None
    previous = stored.tests.get(figures.nodeid)
    if previous is None:
        return None
    if figures.fingerprint == stored.fingerprint:
        now, before, kind = energy_j, previous.get("energy_j"), "energy"
    else:
        normalized_j = figures.normalization.normalize(energy_j) if figures.normalization else None
        now, before, kind = normalized_j, previous.get("energy_normalized_j"), "normalised energy"
        if now is None or before is None:
            return CapFailure(
                f"cannot compare with {stored.path.name}: it was measured on other hardware (fingerprint "
                f"{stored.fingerprint} vs {figures.fingerprint}) and without normalisation; run a baseline "
                "(@pytest.mark.energy_baseline) in both runs or compare on the same machine",
                "not-comparable",
                "regression",
            )
    if not before:
        return None
    growth = now / before - 1
    if growth <= limits.regression:
        return None
    return CapFailure(
        f"{kind} {format_energy(now, limits.unit)} grew {growth:+.1%} over {format_energy(before, limits.unit)} in "
        f"{stored.path.name} (limit +{limits.regression * 100:g}%)",
        "regression",
        "regression",
    )


def _count_cap(what: str, cap: Optional[int], value: Any) -> Optional[CapFailure]:
    if cap is None or value is None or value <= cap:
        return None
    return CapFailure(f"{what} {format_count(value)} ({value:,}) exceed cap {format_count(cap)} ({cap:,})",
                      limit=f"{what} cap")


def macs_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The counted MACs against ``--energy-macs-cap`` (nothing counted: nothing to break)."""
    return _count_cap("MACs", limits.macs_cap, figures.complexity.get("macs"))


def params_cap(figures: Figures, limits: Limits) -> Optional[CapFailure]:
    """The counted parameters against ``--energy-params-cap``."""
    return _count_cap("parameters", limits.params_cap, figures.complexity.get("params"))


LIMITS: Tuple[Limit, ...] = (energy_cap, session_cap, regression, macs_cap, params_cap)


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
    if figures.cap_j is not None:
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
    return "pass" if limits.macs_cap is not None or limits.params_cap is not None else "no-cap"


def lower_bound_reasons(measurement: Measurement) -> List[str]:
    """Why ``measurement`` counts less than the test spent: devices a working source covered but lost.

    A device that stopped reporting (``partial``) or gave no figure for this window counts; a
    component no source measures here (a CPU-only machine's GPU) does not.
    """
    reasons = []
    for reading in measurement.readings:
        if reading.joules is None and reading.method != "unmeasured":
            why = reading.note or reading.partial or "unmeasured"
            reasons.append(why if why.startswith(reading.device) else f"{reading.device} {why}")
        elif reading.partial:
            reasons.append(reading.partial)
    return list(dict.fromkeys(reasons))


def split(measurement: Measurement, unit: Optional[str] = None) -> str:
    """``gpu 1.93 kWh, cpu 0.29 kWh, ram 0.09 kWh; meter nvml-counter``"""
    parts = [
        f"{component} {format_energy(measurement.component_j(component), unit)}"
        for component in COMPONENTS
        if any(r.component == component for r in measurement.readings)
    ]
    return ", ".join(parts) + f"; meter {measurement.meter}"
