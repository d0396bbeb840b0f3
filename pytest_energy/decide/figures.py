"""What a limit reads and returns, and how far a measured figure can be trusted.

``Figures`` is what one test spent and what applies to it; ``Limits`` is the session's
settings; ``CapFailure`` is why a test failed a limit. ``trusted_total``, ``doubts`` and
their kin say when a figure is missing or only a lower bound, for every limit alike.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, List, Mapping, Optional, Tuple

from ..account.normalize import Normalization
from ..measure.base import Measurement
from ..store.runs import StoredRun
from .noise import NoiseFloor


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
