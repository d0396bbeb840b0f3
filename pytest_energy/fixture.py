"""What a test sees of its own measurement: the ``energy`` fixture."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Optional, Tuple

from .measure.base import Measurement
from .measure.meter import Window

if TYPE_CHECKING:
    from .account.complexity import Complexity
    from .measure.watchdog import Watchdog


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
    in_call: bool = False  # inside the call phase: a report made now is a subtest's, not the test's
    failed_subtests: int = 0
    session_left_j: Optional[float] = None  # what was left of the session cap when the call phase started
    activity: Optional[str] = None  # its window's key in the machine's activity file
    watchdog: Optional["Watchdog"] = None
    children_before: FrozenSet[int] = frozenset()  # this process's children when its window opened
    repeats: int = 1  # measured runs of the body: the last is pytest's own call
    warmup: int = 0  # unmeasured runs before them
    cooldown_s: float = 0.0  # pause after the warm-up and between repeats
    cap_per_unit: Optional[Tuple[float, str]] = None  # joules per unit of work (record_work)


class EnergyProbe:
    """The running measurement of the current test.

    ``elapsed()`` gives the energy so far (before the test body starts: nothing);
    ``record_score(name, value)`` stores a performance figure (e.g. PSDS) in the reports;
    ``count_macs(model, example_inputs)`` counts the model's MACs and parameters for the reports.
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

    def count_macs(self, model: Any, example_inputs: Any) -> "Complexity":
        """Count MACs of one forward pass on ``example_inputs`` and the parameters; record them.

        Counting runs on a CPU copy of ``model`` and leaves it untouched; it needs the ``macs``
        extra (torch and ultralytics-thop). Its own energy is part of this test's measurement.
        """
        from .account.complexity import count_complexity

        complexity = count_complexity(model, example_inputs)
        record_complexity(self._state, complexity)
        return complexity

    def record_work(self, **amount: float) -> None:
        """The work the test did, e.g. ``record_work(samples=512)`` (or epochs, tokens, seconds of audio).

        The record then carries its energy per unit, which ``cap_per_unit="5 J/sample"`` caps.
        """
        from .units import WORK_UNITS

        if len(amount) != 1 or next(iter(amount)) not in WORK_UNITS:
            raise ValueError(f"record_work takes one of {', '.join(WORK_UNITS)}, e.g. record_work(samples=512); "
                             f"got {', '.join(amount) or 'none'}")
        [(name, value)] = amount.items()
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"record_work needs a finite number above zero, got {name}={value!r}")
        self._state.extra["work"] = {"unit": WORK_UNITS[name], "amount": number}

    @property
    def phase(self) -> str:
        return self._state.phase


def record_complexity(state: TestState, complexity: "Complexity") -> None:
    """Keep a count's report fields (``macs``, ``params``, ...) and its notes with the test."""
    state.extra.update(complexity.to_json())
    if complexity.notes:
        state.extra["macs_notes"] = list(complexity.notes)
