"""The limits against the stored run: the energy regression, decided with the noise in it, and the
MACs and parameters regression (exact counts, no noise)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Dict, Optional, Union

from ..units import format_count, format_energies_apart
from .figures import CapFailure, Figures, Limits, doubts, trusted_total, unmeasured_reason
from .noise import Comparison, NoiseFloor, compare, fails


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
