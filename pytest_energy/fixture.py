"""What a test sees of its own measurement: the ``energy`` fixture."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional

from .measure.base import Measurement
from .measure.meter import Window


@dataclasses.dataclass
class TestState:
    """The mutable state of one measured test, kept in the item's stash."""

    phase: str
    cap_j: Optional[float]
    system: Optional[str] = None
    window: Optional[Window] = None
    measurement: Optional[Measurement] = None
    scores: Dict[str, float] = dataclasses.field(default_factory=dict)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    reported: bool = False


class EnergyProbe:
    """The running measurement of the current test.

    ``elapsed()`` gives the energy so far (before the test body starts: nothing);
    ``record_score(name, value)`` stores a performance figure (e.g. PSDS) in the reports.
    """

    def __init__(self, state: TestState):
        self._state = state

    def elapsed(self) -> Measurement:
        if self._state.window is None:
            return Measurement(0.0)
        return self._state.window.read()

    def record_score(self, name: str, value: float) -> None:
        number = float(value)
        if not name or not math.isfinite(number):
            raise ValueError(f"record_score needs a name and a finite number, got {name!r}={value!r}")
        self._state.scores[name] = number

    @property
    def phase(self) -> str:
        return self._state.phase
