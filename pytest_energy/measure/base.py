"""What every energy source answers, and the values a measurement window returns.

A *source* (NVML, RAPL, CodeCarbon) exposes cumulative energy per device since it
was opened. A *window* (see ``meter.py``) remembers the totals at its start and
returns the difference as a ``Measurement``. Sources that only know power
integrate it on a background thread, so they too look like counters.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Dict, FrozenSet, Mapping, Optional, Tuple

COMPONENTS = ("gpu", "cpu", "ram")


class SourceUnavailable(Exception):
    """A source cannot measure on this machine; the message says why."""


@dataclasses.dataclass(frozen=True)
class DeviceTotal:
    """Cumulative energy of one device since its source was opened."""

    component: str  # "gpu" | "cpu" | "ram"
    device: str  # stable key, e.g. "gpu0", "package-0", "ram"
    joules: float
    method: str  # how it was obtained, e.g. "nvml-counter", "rapl-counter", "codecarbon-estimate"
    label: str = ""  # human name, e.g. "NVIDIA A100-SXM4-40GB"
    partial: str = ""  # non-empty when the figure stopped advancing: the reason
    note: str = ""  # a caveat on the method, e.g. "estimate: ... not a measurement"
    unmeasured: str = ""  # non-empty: the source owns this device but cannot measure it, and why (``joules`` unused)
    others: Tuple[int, ...] = ()  # PIDs of other processes seen on this device at this read


@dataclasses.dataclass(frozen=True)
class Reading:
    """Energy of one device over one window; ``joules`` is None when unmeasured."""

    component: str
    device: str
    joules: Optional[float]
    method: str
    label: str = ""
    partial: str = ""
    note: str = ""

    def to_json(self) -> Dict[str, object]:
        return dict(self.__dict__)  # its fields in order; dataclasses.asdict deep-copies them, 30 times slower


@dataclasses.dataclass(frozen=True)
class Measurement:
    """The energy of one window, per device, with how each figure was obtained."""

    duration_s: float
    readings: Tuple[Reading, ...] = ()
    notes: Tuple[str, ...] = ()

    def component_j(self, component: str) -> Optional[float]:
        """Joules of one component; None when no device of it was measured."""
        figures = [r.joules for r in self.readings if r.component == component and r.joules is not None]
        return sum(figures) if figures else None

    @property
    def total_j(self) -> Optional[float]:
        figures = [r.joules for r in self.readings if r.joules is not None]
        return sum(figures) if figures else None

    @property
    def gpu_share(self) -> Optional[float]:
        """GPU energy as a fraction of the total, as the DCASE 2024 analysis reports it."""
        total, gpu = self.total_j, self.component_j("gpu")
        if not total or gpu is None:
            return None
        return gpu / total

    @property
    def methods(self) -> Dict[str, str]:
        """Per component, the method(s) that gave its figure."""
        found: Dict[str, list] = {}
        for reading in self.readings:
            methods = found.setdefault(reading.component, [])
            if reading.method not in methods:
                methods.append(reading.method)
        return {component: "+".join(methods) for component, methods in found.items()}

    @property
    def meter(self) -> str:
        """One label for the whole window, e.g. ``nvml-counter+codecarbon-estimate``."""
        labels: list = []
        for method in self.methods.values():
            if method == "unmeasured":
                continue
            for part in method.split("+"):
                if part not in labels:
                    labels.append(part)
        return "+".join(labels) if labels else "none"


class Source(ABC):
    """One kind of energy counter or estimator."""

    name: str = "source"

    @abstractmethod
    def open(self) -> None:
        """Prepare to measure; raise ``SourceUnavailable`` with the reason if it cannot."""

    @property
    @abstractmethod
    def components(self) -> FrozenSet[str]:
        """The components this source measures (known after ``open``)."""

    @abstractmethod
    def totals(self) -> Mapping[str, DeviceTotal]:
        """Cumulative energy per device key since ``open``. Must not raise for device faults:
        a device that fails keeps its last total and says why in ``partial``."""

    def describe(self) -> Dict[str, object]:
        """Hardware facts for the report's environment and the baseline fingerprint."""
        return {}

    @property
    def update_period_s(self) -> float:
        """How often the underlying counter advances; windows shorter than this read low."""
        return 0.0

    def close(self) -> None:
        """Release what ``open`` took; safe to call twice."""
