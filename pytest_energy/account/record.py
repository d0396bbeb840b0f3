"""A measured test as a plain value, and its one JSON form.

Records travel from xdist workers to the controller as JSON (an attribute of the
test report), so ``to_json`` and ``from_json`` are the only conversions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

from ..measure.base import COMPONENTS, Measurement, Reading

VERDICTS = ("pass", "over-cap", "lower-bound", "no-cap", "unmeasured", "regression", "not-comparable", "warn", "skipped")
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error", "interrupted")


def repeated_energy_j(extra: Mapping[str, Any], measurement: Optional[Measurement]) -> Optional[float]:
    """The median of a test's measured repeats (``extra["repeats"]``) if every one was measured, else its window's total."""
    median_j = (extra.get("repeats") or {}).get("median_j")
    if median_j is not None:
        return median_j
    return measurement.total_j if measurement else None


@dataclasses.dataclass(frozen=True)
class Record:
    """One measured test: what it cost, how that was measured, and what was decided."""

    nodeid: str
    phase: str
    outcome: str
    measurement: Optional[Measurement]
    cap_j: Optional[float] = None
    verdict: str = "no-cap"
    verdict_message: Optional[str] = None  # why it failed (or was warned about), as its failure reads
    scores: Mapping[str, float] = dataclasses.field(default_factory=dict)
    system: Optional[str] = None
    location: Tuple[str, int] = ("", 0)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # complexity, normalisation, ...

    @property
    def energy_j(self) -> Optional[float]:
        """The test's figure: the median of its repeats when it has them, else its window's total."""
        return repeated_energy_j(self.extra, self.measurement)

    def component_j(self, component: str) -> Optional[float]:
        return self.measurement.component_j(component) if self.measurement else None

    def to_json(self) -> Dict[str, Any]:
        measurement = self.measurement
        components: Dict[str, Any] = {}
        if measurement is not None:
            methods = measurement.methods
            for component in COMPONENTS:
                readings = [r for r in measurement.readings if r.component == component]
                components[component] = {
                    "energy_j": measurement.component_j(component),
                    "method": methods.get(component, "unmeasured"),
                    "partial": "; ".join(r.partial for r in readings if r.partial) or None,
                }
        return {
            "nodeid": self.nodeid,
            "phase": self.phase,
            "system": self.system,
            "outcome": self.outcome,
            "duration_s": measurement.duration_s if measurement else None,
            "energy_j": self.energy_j,
            "components": components,
            "devices": [reading.to_json() for reading in measurement.readings] if measurement else [],
            "gpu_share": measurement.gpu_share if measurement else None,
            "meter": measurement.meter if measurement else "none",
            "notes": list(measurement.notes) if measurement else ["not measured: the test did not reach its call phase"],
            "cap_j": self.cap_j,
            "verdict": self.verdict,
            "scores": dict(self.scores),
            "location": list(self.location),
            **self.extra,
            **({"verdict_message": self.verdict_message} if self.verdict_message else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Record":
        measurement = None
        if data.get("duration_s") is not None:
            readings = tuple(Reading(**reading) for reading in data.get("devices", []))
            measurement = Measurement(data["duration_s"], readings, tuple(data.get("notes", ())))
        own = {"nodeid", "phase", "system", "outcome", "duration_s", "energy_j", "components", "devices", "gpu_share",
               "meter", "notes", "cap_j", "verdict", "verdict_message", "scores", "location"}
        return cls(
            nodeid=data["nodeid"],
            phase=data["phase"],
            outcome=data["outcome"],
            measurement=measurement,
            cap_j=data.get("cap_j"),
            verdict=data.get("verdict", "no-cap"),
            verdict_message=data.get("verdict_message"),
            scores=dict(data.get("scores", {})),
            system=data.get("system"),
            location=tuple(data.get("location", ("", 0))),  # type: ignore[arg-type]
            extra={key: value for key, value in data.items() if key not in own},
        )
