"""A meter combines the best available source per component and opens windows on it.

``auto`` tries, in order of trust, NVML (GPU energy counter), RAPL (CPU and DRAM
counters) and CodeCarbon (estimates), and gives each component to the first
source that measures it. A component no source measures is reported as
unmeasured, never as zero; so is a device that was not reporting when a window
opened (a GPU lost in one test is unmeasured in the next, not 0 J).
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from . import METER_CHOICES
from .base import COMPONENTS, DeviceTotal, Measurement, Reading, Source, SourceUnavailable
from .cuda_devices import CudaGpus

_SOURCE_PATHS = {
    "nvml": "pytest_energy.measure.nvml:NvmlSource",
    "rapl": "pytest_energy.measure.rapl:RaplSource",
    "codecarbon": "pytest_energy.measure.codecarbon:CodecarbonSource",
}
SourceFactory = Callable[[str], Source]


def load_source(name: str, **options: object) -> Source:
    """Import and build a source by name; the heavy import happens only here."""
    module_name, class_name = _SOURCE_PATHS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)


def synchronize_accelerator() -> None:
    """Wait for the kernels queued on every CUDA device this process uses (each is measured), only
    when torch is already imported and CUDA initialised. A CUDA error raised here belongs to the
    code that queued the work: it is not swallowed."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    for ordinal in range(torch.cuda.device_count()):
        torch.cuda.synchronize(ordinal)


OTHER_GPU_PROCESSES = "other processes ran on the measured GPU"
OTHER_GPU_PROCESSES_NOTICE = (
    f"{OTHER_GPU_PROCESSES} during some tests (each test's notes name them): a GPU's figure is device-wide, "
    "so theirs include that energy (another CI job sharing the GPU shows up here)"
)


def other_processes_note(devices: Mapping[str, Tuple[int, ...]]) -> str:
    """What the window says when other processes ran on a measured GPU (its counter is device-wide)."""
    listed = "; ".join(f"{device}: PIDs {', '.join(map(str, pids))}" for device, pids in devices.items())
    return (f"{OTHER_GPU_PROCESSES} during this window ({listed}); the GPU's figure "
            "is device-wide, so it includes their energy")


class Meter:
    """The sources chosen for this run, each assigned the components it measures."""

    def __init__(self, choice: str, assigned: Sequence[Tuple[Source, FrozenSet[str]]], unavailable: Mapping[str, str]):
        self.choice = choice
        self.assigned = list(assigned)
        self.unavailable = dict(unavailable)

    @property
    def available(self) -> bool:
        return bool(self.assigned)

    @property
    def measured_components(self) -> FrozenSet[str]:
        return frozenset().union(*(components for _, components in self.assigned))

    def snapshot(self) -> Dict[str, DeviceTotal]:
        totals: Dict[str, DeviceTotal] = {}
        for source, components in self.assigned:
            for key, total in source.totals().items():
                if total.component in components:
                    totals[f"{source.name}:{key}"] = total
        return totals

    def cuda_gpus(self) -> CudaGpus:
        """The GPUs the GPU source measures, by UUID in CUDA order (empty for a source that cannot tell them apart)."""
        for source, components in self.assigned:
            if "gpu" in components and hasattr(source, "cuda_gpus"):
                return source.cuda_gpus()  # type: ignore[attr-defined, no-any-return]
        return CudaGpus()

    def window(self) -> "Window":
        return Window(self)

    def describe(self) -> Dict[str, object]:
        facts: Dict[str, object] = {"choice": self.choice, "sources": {}, "unavailable": self.unavailable}
        for source, components in self.assigned:
            facts["sources"][source.name] = {"components": sorted(components), **source.describe()}  # type: ignore[index]
        return facts

    @property
    def update_period_s(self) -> float:
        return max((source.update_period_s for source, _ in self.assigned), default=0.0)

    def close(self) -> None:
        for source, _ in self.assigned:
            source.close()


class Window:
    """Energy since the window opened: ``read()`` while running, ``stop()`` at the end."""

    def __init__(self, meter: Meter):
        self.meter = meter
        synchronize_accelerator()  # work queued before the window is not the window's
        self._start = meter.snapshot()
        self._t0 = time.perf_counter()
        self.result: Optional[Measurement] = None

    def read(self) -> Measurement:
        if self.result is not None:
            return self.result
        return self._measure(self.meter.snapshot(), time.perf_counter() - self._t0)

    def stop(self) -> Measurement:
        """The window's measurement; a CUDA error met while waiting for queued work is raised after
        the window is closed (its figure is then a lower bound of what ran)."""
        if self.result is None:
            error: Optional[BaseException] = None
            try:
                synchronize_accelerator()
            except Exception as exc:
                error = exc
            self.result = self._measure(self.meter.snapshot(), time.perf_counter() - self._t0)
            if error is not None:
                raise error
        return self.result

    def _measure(self, now: Mapping[str, DeviceTotal], duration_s: float) -> Measurement:
        readings: List[Reading] = []
        others: Dict[str, Tuple[int, ...]] = {}
        for key, end in now.items():
            start = self._start.get(key)
            if end.unmeasured:
                readings.append(Reading(end.component, end.device, None, "unmeasured", end.label, note=end.unmeasured))
                continue
            pids = tuple(sorted(set(end.others) | set(start.others if start else ())))
            if pids:
                others[end.device] = pids
            if start is None:
                readings.append(Reading(end.component, end.device, None, end.method, end.label, note="appeared mid-window"))
                continue
            if start.partial:  # its total was already frozen when the window opened: it counted none of it
                note = f"{end.device} was not reporting when this window opened, so it is unmeasured here"
                readings.append(Reading(end.component, end.device, None, end.method, end.label, end.partial, note))
                continue
            joules = max(end.joules - start.joules, 0.0)
            readings.append(Reading(end.component, end.device, joules, end.method, end.label, end.partial, end.note))
        for component in COMPONENTS:
            if component not in self.meter.measured_components:
                readings.append(Reading(component, component, None, "unmeasured", note=self._why_unmeasured()))
            elif not any(r.component == component for r in readings):
                readings.append(Reading(component, component, None, "unmeasured", note="its source reported no figure"))
        notes: List[str] = []
        period = self.meter.update_period_s
        if period and duration_s < 2 * period:
            notes.append(
                f"window of {duration_s:.3f} s is shorter than twice the counter update period "
                f"({period:.3f} s): the figure may read low"
            )
        if others:
            notes.append(other_processes_note(others))
        return Measurement(duration_s, tuple(readings), tuple(notes))

    def _why_unmeasured(self) -> str:
        reasons = "; ".join(f"{name}: {why}" for name, why in self.meter.unavailable.items())
        if not self.meter.available:
            return f"no meter works ({reasons})"
        return f"not measured by meter {self.meter.choice!r}" + (f" ({reasons})" if reasons else "")


def open_meter(choice: str, sampling_hz: float = 10.0, factory: Optional[SourceFactory] = None) -> Meter:
    """Open the sources for ``choice`` and give each component to the most trusted one."""
    if choice not in METER_CHOICES:
        raise ValueError(f"unknown meter {choice!r}: choose one of {', '.join(METER_CHOICES)}")
    names = ["nvml", "rapl", "codecarbon"] if choice == "auto" else [] if choice == "none" else [choice]
    build = factory or (lambda name: load_source(name, **({"sampling_hz": sampling_hz} if name == "nvml" else {})))
    assigned: List[Tuple[Source, FrozenSet[str]]] = []
    unavailable: Dict[str, str] = {}
    taken: FrozenSet[str] = frozenset()
    for name in names:
        try:
            source = build(name)
            source.open()
        except SourceUnavailable as exc:
            unavailable[name] = str(exc)
            continue
        except ImportError as exc:
            unavailable[name] = f"cannot import: {exc}"
            continue
        wanted = source.components - taken
        if not wanted:
            source.close()
            continue
        assigned.append((source, wanted))
        taken |= wanted
    if choice == "none":
        unavailable["none"] = "measurement disabled by --energy-meter=none"
    return Meter(choice, assigned, unavailable)
