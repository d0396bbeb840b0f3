"""Caps as pure functions: measured figures in, an optional failure out.

A ``CapFailure`` renders its own one-line message; the plugin only decides when
to turn a passed test into a failed one with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..measure.base import COMPONENTS, Measurement
from ..units import format_count, format_energy


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

    With ``normalize``, the cap applies to the normalised energy. A figure that is only a
    lower bound (see ``lower_bound_reasons``) never passes: under the cap it is "lower-bound".
    """
    if cap_j is None:
        return "no-cap", None
    total = measurement.total_j if measurement else None
    if total is None:
        why = "; ".join(dict.fromkeys(r.note for r in measurement.readings if r.note)) if measurement else "test was not measured"
        return "unmeasured", CapFailure(f"cannot enforce cap {format_energy(cap_j, unit)}: no meter measured this test ({why})", "unmeasured")
    compared, what = (total, "energy") if normalize is None else (normalize(total), "normalised energy")
    lost = "; ".join(lower_bound_reasons(measurement))  # type: ignore[arg-type]
    details = ("" if normalize is None else f"raw {format_energy(total, unit)}: ") + split(measurement, unit)  # type: ignore[arg-type]
    if compared > cap_j:
        at_least = f", and that is only a lower bound because {lost}" if lost else ""
        return "over-cap", CapFailure(
            f"{what} {format_energy(compared, unit)} exceeds cap {format_energy(cap_j, unit)} ({details}){at_least}"
        )
    if lost:
        return "lower-bound", CapFailure(
            f"cannot enforce cap {format_energy(cap_j, unit)}: {what} {format_energy(compared, unit)} is only a lower "
            f"bound because {lost} ({details})",
            "lower-bound",
        )
    return "pass", None


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


def session_cap_failure(measurement: Measurement, left_j: float, session_cap_j: float, unit: Optional[str] = None) -> CapFailure:
    """A test whose energy crossed what was left of the session cap when it started."""
    return CapFailure(
        f"energy {format_energy(measurement.total_j, unit)} crosses what is left of the session cap "
        f"{format_energy(left_j, unit)} ({split(measurement, unit)}); session cap {format_energy(session_cap_j, unit)}"
    )


def verdict_of(energy_failures: Sequence[CapFailure], cap_j: Optional[float]) -> str:
    """A test's one energy verdict: its first energy failure's (cap, then regression), else pass or no-cap."""
    return energy_failures[0].verdict if energy_failures else ("no-cap" if cap_j is None else "pass")


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
