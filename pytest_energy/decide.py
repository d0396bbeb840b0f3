"""Caps as pure functions: measured figures in, an optional failure out.

A ``CapFailure`` renders its own one-line message; the plugin only decides when
to turn a passed test into a failed one with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, Mapping, Optional, Tuple

from .measure.base import COMPONENTS, Measurement
from .units import format_count, format_energy


@dataclasses.dataclass(frozen=True)
class CapFailure:
    """Why a test failed its cap, as the user reads it."""

    message: str
    verdict: str = "over-cap"

    def as_longrepr(self) -> str:
        return self.message


def energy_verdict(
    measurement: Optional[Measurement],
    cap_j: Optional[float],
    unit: Optional[str] = None,
    normalize: Optional[Callable[[float], float]] = None,
) -> Tuple[str, Optional[CapFailure]]:
    """The verdict on a test's energy against its cap, and the failure if it broke it.

    With ``normalize``, the cap applies to the normalised energy.
    """
    if cap_j is None:
        return "no-cap", None
    total = measurement.total_j if measurement else None
    if total is None:
        why = "; ".join(dict.fromkeys(r.note for r in measurement.readings if r.note)) if measurement else "test was not measured"
        return "unmeasured", CapFailure(f"cannot enforce cap {format_energy(cap_j, unit)}: no meter measured this test ({why})", "unmeasured")
    compared, what = (total, "energy") if normalize is None else (normalize(total), "normalised energy")
    if compared <= cap_j:
        return "pass", None
    raw = "" if normalize is None else f"raw {format_energy(total, unit)}: "
    return "over-cap", CapFailure(
        f"{what} {format_energy(compared, unit)} exceeds cap {format_energy(cap_j, unit)} ({raw}{split(measurement, unit)})"  # type: ignore[arg-type]
    )


def split(measurement: Measurement, unit: Optional[str] = None) -> str:
    """``gpu 1.93 kWh, cpu 0.29 kWh, ram 0.09 kWh; meter nvml-counter``"""
    parts = [
        f"{component} {format_energy(measurement.component_j(component), unit)}"
        for component in COMPONENTS
        if any(r.component == component for r in measurement.readings)
    ]
    return ", ".join(parts) + f"; meter {measurement.meter}"


def complexity_failures(
    complexity: Mapping[str, Any], macs_cap: Optional[int], params_cap: Optional[int]
) -> List[CapFailure]:
    """The complexity caps a counted model breaks (nothing counted: nothing to break)."""
    failures = []
    for figure, cap, what in (("macs", macs_cap, "MACs"), ("params", params_cap, "parameters")):
        value = complexity.get(figure)
        if cap is not None and value is not None and value > cap:
            failures.append(CapFailure(f"{what} {format_count(value)} ({value:,}) exceed cap {format_count(cap)} ({cap:,})",
                                       "over-cap"))
    return failures
