"""What the organisers' tools share: one ``System`` per submitted system, and a ``Collection`` of them.

The readers (``organise.readers`` and its one module per input) produce them from reports,
CSV and the DCASE results files; the trend statistics, the renderers and the plots consume
them. Energies are in joules; the published inputs and outputs use kWh (``KWH_J`` joules each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from pytest_energy.units import JOULES_PER_UNIT

KWH_J = JOULES_PER_UNIT["kWh"]


@dataclass(frozen=True)
class System:
    """One submitted system; energies in joules, None where the source has no figure."""

    name: str
    edition: str
    source: str
    ensemble: Optional[bool]  # None: the source does not say
    baseline: bool = False
    params: Optional[float] = None
    macs: Optional[float] = None
    train_j: Optional[float] = None
    test_j: Optional[float] = None
    train_normalized_j: Optional[float] = None
    test_normalized_j: Optional[float] = None
    train_gpu_j: Optional[float] = None
    test_gpu_j: Optional[float] = None
    score: Optional[float] = None

    def gpu_share(self, phase: str) -> Optional[float]:
        """GPU energy over total energy for ``"train"`` or ``"test"``."""
        total, gpu = (self.train_j, self.train_gpu_j) if phase == "train" else (self.test_j, self.test_gpu_j)
        if total is None or gpu is None or total <= 0:
            return None
        return gpu / total


@dataclass(frozen=True)
class Rejection:
    source: str
    row: str
    reason: str


@dataclass(frozen=True)
class FieldIssue:
    """A field that could not be read; its row was kept with the field empty."""

    source: str
    row: str
    field: str
    value: str


@dataclass
class Collection:
    """Everything read from the inputs."""

    systems: List[System] = field(default_factory=list)  # usable, baselines excluded
    baselines: List[System] = field(default_factory=list)
    rejected: List[Rejection] = field(default_factory=list)
    issues: List[FieldIssue] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    files: int = 0

    def editions(self) -> List[str]:
        return sorted({system.edition for system in self.systems})
