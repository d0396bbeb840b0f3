"""NVIDIA GPUs through NVML: the driver's energy counter, or sampled power where it has none.

Volta and newer GPUs keep a millijoule counter since the driver loaded
(``nvmlDeviceGetTotalEnergyConsumption``); it is read whenever totals are asked
for. Older GPUs only report power: one daemon thread samples all of them at
``sampling_hz`` and integrates by the trapezoid rule (totals also take a sample,
so window edges are exact). Only the GPUs this process can see count, as
``CUDA_VISIBLE_DEVICES`` says. A GPU that fails mid-run keeps its last total and
says why in ``partial``; the others keep counting. ``pynvml`` is imported in
``open`` only.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from types import ModuleType
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence

from .base import DeviceTotal, Source, SourceUnavailable

COUNTER_UPDATE_PERIOD_S = 0.1  # NVML refreshes the energy counter about every 100 ms
_INDEX = re.compile(r"^\d+$")


@dataclasses.dataclass
class _Gpu:
    """One visible GPU and what has been counted on it since ``open``."""

    index: int
    handle: object
    name: str
    uuid: str
    has_counter: bool
    joules: float = 0.0
    last_mj: int = 0  # counter: last reading
    last_w: float = 0.0  # sampling: last power and when it was read
    last_t: float = 0.0
    partial: str = ""

    @property
    def key(self) -> str:
        return f"gpu{self.index}"

    @property
    def method(self) -> str:
        return "nvml-counter" if self.has_counter else "nvml-power-sampling"


def cuda_visible(spec: Optional[str], uuids: Sequence[str]) -> List[int]:
    """NVML indices of the GPUs CUDA exposes when ``CUDA_VISIBLE_DEVICES=spec``.

    ``uuids`` lists every GPU's UUID by NVML index. Entries are indices or
    (prefixes of) ``GPU-`` UUIDs; as in CUDA, the first entry naming no single
    device (``-1``, out of range, unknown or ambiguous, ``MIG-``) ends the list.
    A repeated device counts once. Indices are read in NVML (PCI bus) order,
    which is CUDA's under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
    """
    if spec is None:
        return list(range(len(uuids)))
    chosen: List[int] = []
    for entry in (part.strip() for part in spec.split(",")):
        if _INDEX.match(entry):
            index = int(entry)
            if index >= len(uuids):
                break
        elif entry.startswith("GPU-"):
            matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
            if len(matches) != 1:
                break
            index = matches[0]
        else:
            break
        if index not in chosen:
            chosen.append(index)
    return chosen


def _text(value: object) -> str:
    """NVML strings: ``str`` in current nvidia-ml-py, ``bytes`` in old releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource(Source):
    name = "nvml"

    def __init__(self, sampling_hz: float = 10.0):
        if not sampling_hz > 0:
            raise ValueError(f"sampling_hz must be positive, got {sampling_hz!r}")
        self._sampling_hz = float(sampling_hz)
        self._nvml: Optional[ModuleType] = None
        self._gpus: List[_Gpu] = []
        self._driver = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler: Optional[threading.Thread] = None

    def open(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise SourceUnavailable(f"nvidia-ml-py is not installed ({exc})") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SourceUnavailable(f"NVML cannot start: {exc}") from exc
        try:
            self._gpus = self._visible_gpus(pynvml)
            self._driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as exc:
            _shutdown_quietly(pynvml)
            raise SourceUnavailable(f"NVML cannot list GPUs: {exc}") from exc
        except SourceUnavailable:
            _shutdown_quietly(pynvml)
            raise
        self._nvml = pynvml
        if any(not gpu.has_counter and not gpu.partial for gpu in self._gpus):
            self._sampler = threading.Thread(target=self._sample_forever, name="pytest-energy-nvml-sampler", daemon=True)
            self._sampler.start()

    def _visible_gpus(self, pynvml: ModuleType) -> List[_Gpu]:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(handle)) for handle in handles]
        spec = os.environ.get("CUDA_VISIBLE_DEVICES")
        indices = cuda_visible(spec, uuids)
        if not indices:
            where = "" if spec is None else f" (CUDA_VISIBLE_DEVICES={spec!r})"
            raise SourceUnavailable(f"no NVIDIA GPU visible{where}")
        return [self._probe(pynvml, i, handles[i], uuids[i]) for i in indices]

    def _probe(self, pynvml: ModuleType, index: int, handle: object, uuid: str) -> _Gpu:
        """Find how this GPU can be measured and take the first reading."""
        gpu = _Gpu(index, handle, _text(pynvml.nvmlDeviceGetName(handle)), uuid, has_counter=True)
        try:
            gpu.last_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return gpu
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
            gpu.has_counter = False
        except pynvml.NVMLError as exc:
            gpu.partial = f"cannot read the energy counter: {exc}"
            return gpu
        try:
            gpu.last_w = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            gpu.last_t = time.monotonic()
        except pynvml.NVMLError as exc:
            gpu.partial = f"no energy counter and cannot read power: {exc}"
        return gpu

    @property
    def components(self) -> FrozenSet[str]:
        return frozenset({"gpu"}) if self._gpus else frozenset()

    def totals(self) -> Mapping[str, DeviceTotal]:
        with self._lock:
            if self._nvml is not None:
                now = time.monotonic()
                for gpu in self._gpus:
                    self._refresh(gpu, now)
            return {
                gpu.key: DeviceTotal("gpu", gpu.key, gpu.joules, gpu.method, gpu.name, gpu.partial)
                for gpu in self._gpus
            }

    def _refresh(self, gpu: _Gpu, now: float) -> None:
        """Add what ``gpu`` used since its last reading; on any fault, freeze it with the reason."""
        if gpu.partial:
            return
        try:
            if gpu.has_counter:
                millijoules = self._nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)  # type: ignore[union-attr]
                # a counter that went backwards was reset (driver reload): it counted from zero since
                gpu.joules += (millijoules - gpu.last_mj if millijoules >= gpu.last_mj else millijoules) / 1000.0
                gpu.last_mj = millijoules
            else:
                watts = self._nvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0  # type: ignore[union-attr]
                gpu.joules += (gpu.last_w + watts) / 2.0 * (now - gpu.last_t)
                gpu.last_w, gpu.last_t = watts, now
        except Exception as exc:  # totals() must never raise: NVMLError or anything else
            gpu.partial = f"{gpu.key} stopped reporting mid-run ({exc}); its last total is kept"

    def _sample_forever(self) -> None:
        period = 1.0 / self._sampling_hz
        while not self._stop.wait(period):
            with self._lock:
                now = time.monotonic()
                for gpu in self._gpus:
                    if not gpu.has_counter:
                        self._refresh(gpu, now)

    def describe(self) -> Dict[str, object]:
        gpus = [
            {"index": gpu.index, "name": gpu.name, "uuid": gpu.uuid, "energy_counter": gpu.has_counter}
            for gpu in self._gpus
        ]
        return {"gpus": gpus, "driver": self._driver, "gpu_count": len(gpus)}

    @property
    def update_period_s(self) -> float:
        periods = [COUNTER_UPDATE_PERIOD_S if gpu.has_counter else 1.0 / self._sampling_hz for gpu in self._gpus]
        return max(periods, default=0.0)

    def close(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5.0)
            self._sampler = None
        with self._lock:
            pynvml, self._nvml = self._nvml, None
        if pynvml is not None:
            _shutdown_quietly(pynvml)


def _shutdown_quietly(pynvml: ModuleType) -> None:
    try:
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:  # the driver went away: nothing left to release
        pass
