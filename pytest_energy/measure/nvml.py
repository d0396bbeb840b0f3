"""NVIDIA GPUs through NVML: the driver's energy counter, or sampled power where it has none.

Only the GPUs this process's CUDA uses are measured (``cuda_devices``: by UUID, from
torch when CUDA is initialised, else from ``CUDA_VISIBLE_DEVICES`` as CUDA reads it);
another GPU that cannot be opened is a note, not a failure. Volta and newer GPUs
keep a millijoule counter since the driver loaded; it is read whenever totals are
asked for. Where it is missing, one daemon thread samples power at ``sampling_hz``
and integrates by the trapezoid rule: instant power (``NVML_FI_DEV_POWER_INSTANT``)
where the field is supported, else ``nvmlDeviceGetPowerUsage``, which on Ampere and
newer is a mean over the last second, so it lags about 1 s (the method name says which).

NVML has no per-slice energy: a MIG slice is reported unmeasured. On a Grace superchip
(NVLink-C2C) the counter covers the whole module, CPU and memory included; the source
then claims the CPU too, so no CPU figure is added on top. A counter that goes back
adds nothing for that interval. A failed read is retried on the next one; a GPU freezes
(keeps its last total, says why in ``partial``) after ``MAX_FAILED_READS`` failures in a
row, or at once when NVML says it is gone. Each read also lists the other processes on
the measured GPUs. ``pynvml`` is imported in ``open`` only.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from types import ModuleType
from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

from .base import DeviceTotal, Source, SourceUnavailable
from .cuda_devices import Board, CudaGpus, Visible, cuda_visible, torch_uuids

COUNTER_UPDATE_PERIOD_S = 0.1  # NVML refreshes the energy counter about every 100 ms
AVERAGED_POWER_LAG_S = 1.0  # nvmlDeviceGetPowerUsage: "power averaged over 1 sec" on Ampere (but GA100) and newer
MAX_FAILED_READS = 3
_GONE = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_UNINITIALIZED",
         "NVML_ERROR_INVALID_ARGUMENT", "NVML_ERROR_RESET_REQUIRED")
_AVERAGED_NOTE = ("nvmlDeviceGetPowerUsage is a 1 s average on Ampere and newer: the figure lags about 1 s "
                  "and reads low on short windows")
_MODULE_NOTE = "module scope: the Grace superchip's counter covers its GPU, CPU and memory together"


@dataclasses.dataclass
class _Gpu:
    """One measured GPU and what has been counted on it since ``open``."""

    index: int
    handle: object
    name: str
    uuid: str
    method: str = "nvml-counter"  # or nvml-instant-power-sampling, nvml-averaged-power-sampling
    module_scope: bool = False
    joules: float = 0.0
    last_mj: int = 0  # counter: last reading
    last_w: float = 0.0  # sampling: last power and when it was read
    last_t: float = 0.0
    failed_reads: int = 0
    failing: str = ""  # the last read failed: why (retried on the next)
    partial: str = ""  # frozen: why
    backwards: int = 0
    others: Tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return f"gpu{self.index}"

    @property
    def sampled(self) -> bool:
        return self.method != "nvml-counter"

    @property
    def note(self) -> str:
        notes = [_AVERAGED_NOTE] if self.method == "nvml-averaged-power-sampling" else []
        if self.module_scope:
            notes.append(_MODULE_NOTE)
        if self.backwards:
            notes.append(f"its energy counter went back {self.backwards} time(s); those intervals count 0 J")
        return "; ".join(notes)


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
        self._slices: List[str] = []  # MIG UUIDs this process uses: unmeasured
        self._unresolved = ""  # which GPUs CUDA uses cannot be told: why (the GPU is unmeasured)
        self._cuda = CudaGpus()  # the GPUs CUDA uses, by UUID, in CUDA order: which a rank of a launch counts
        self.notes: List[str] = []  # other GPUs that could not be opened
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
            self._open_used(pynvml)
            self._driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as exc:
            _shutdown_quietly(pynvml)
            raise SourceUnavailable(f"NVML cannot list GPUs: {exc}") from exc
        except SourceUnavailable:
            _shutdown_quietly(pynvml)
            raise
        self._nvml = pynvml
        if any(gpu.sampled and not gpu.partial for gpu in self._gpus):
            self._sampler = threading.Thread(target=self._sample_forever, name="pytest-energy-nvml-sampler", daemon=True)
            self._sampler.start()

    def _open_used(self, pynvml: ModuleType) -> None:
        """Find the GPUs this process uses and how to measure each."""
        uuids = torch_uuids()
        spec = os.environ.get("CUDA_VISIBLE_DEVICES")
        handles: Dict[int, object] = {}
        if uuids is not None:
            visible = self._by_torch(pynvml, uuids, handles)
        else:
            visible = cuda_visible(spec, self._boards(pynvml, handles), os.environ.get("CUDA_DEVICE_ORDER"))
        if visible.unresolved:  # claimed all the same: no other source may measure a guessed set of GPUs
            self._unresolved = visible.unresolved
            return
        if not visible.devices:
            where = "" if spec is None or uuids is not None else f" (CUDA_VISIBLE_DEVICES={spec!r})"
            raise SourceUnavailable(f"no NVIDIA GPU visible{where}")
        self._slices = [mig for _, mig in visible.devices if mig]
        for index in dict.fromkeys(index for index, mig in visible.devices if not mig):
            self._gpus.append(self._probe(pynvml, index, handles[index]))
        uuids_by_index = {gpu.index: gpu.uuid for gpu in self._gpus}
        devices = {**{gpu.uuid: gpu.key for gpu in self._gpus}, **{mig: mig for mig in self._slices}}
        order = tuple(mig or uuids_by_index[index] for index, mig in visible.devices) if visible.ordered else ()
        self._cuda = CudaGpus(order, devices)

    def _boards(self, pynvml: ModuleType, handles: Dict[int, object]) -> List[Board]:
        """Every GPU NVML can open; one it cannot (lost, hidden by cgroups) is a note."""
        boards = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                boards.append(Board(index, _text(pynvml.nvmlDeviceGetUUID(handle)),
                                    _text(pynvml.nvmlDeviceGetName(handle)), _mig_uuids(pynvml, handle)))
            except pynvml.NVMLError as exc:
                self.notes.append(f"GPU {index} cannot be opened by this process ({exc}); it is not measured")
                continue
            handles[index] = handle
        return boards

    def _by_torch(self, pynvml: ModuleType, uuids: List[str], handles: Dict[int, object]) -> Visible:
        devices = []
        for uuid in uuids:
            for prefix in ("GPU-", "MIG-"):
                try:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(prefix + uuid)
                except pynvml.NVMLError:
                    continue
                mig = _mig_uuids(pynvml, handle) if prefix == "GPU-" else ()
                if prefix == "MIG-" or mig:  # a slice, or a board in MIG mode: CUDA runs on one of its slices
                    devices.append((-1, prefix + uuid if prefix == "MIG-" else mig[0]))
                else:
                    index = pynvml.nvmlDeviceGetIndex(handle)
                    handles[index] = handle
                    devices.append((index, ""))
                break
            else:
                return Visible(unresolved=f"NVML knows no GPU with CUDA's UUID {uuid}")
        return Visible(tuple(devices))

    def _probe(self, pynvml: ModuleType, index: int, handle: object) -> _Gpu:
        """Find how this GPU can be measured and take the first reading."""
        gpu = _Gpu(index, handle, _text(pynvml.nvmlDeviceGetName(handle)), _text(pynvml.nvmlDeviceGetUUID(handle)))
        gpu.module_scope = _is_module(pynvml, handle)
        try:
            gpu.last_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return gpu
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
            gpu.method = "nvml-instant-power-sampling" if _instant_w(pynvml, handle) is not None else "nvml-averaged-power-sampling"
        except pynvml.NVMLError as exc:
            gpu.partial = f"cannot read the energy counter: {exc}"
            return gpu
        try:
            gpu.last_w, gpu.last_t = self._watts(pynvml, gpu), time.monotonic()
        except pynvml.NVMLError as exc:
            gpu.partial = f"no energy counter and cannot read power: {exc}"
        return gpu

    @staticmethod
    def _watts(pynvml: ModuleType, gpu: _Gpu) -> float:
        if gpu.method == "nvml-instant-power-sampling":
            watts = _instant_w(pynvml, gpu.handle)
            if watts is None:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return watts
        return pynvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0

    def cuda_gpus(self) -> CudaGpus:
        """The measured GPUs (and MIG slices) by UUID, in CUDA order, with the device each reading names."""
        return self._cuda

    @property
    def components(self) -> FrozenSet[str]:
        claimed = {"gpu"} if self._gpus or self._slices or self._unresolved else set()
        if any(gpu.module_scope for gpu in self._gpus):
            claimed.add("cpu")  # inside the module's figure: nothing may add it on top
        return frozenset(claimed)

    def totals(self) -> Mapping[str, DeviceTotal]:
        with self._lock:
            if self._nvml is not None:
                now = time.monotonic()
                for gpu in self._gpus:
                    self._refresh(gpu, now)
                    gpu.others = () if gpu.partial or gpu.failing else self._other_processes(gpu)
            totals = {
                gpu.key: DeviceTotal("gpu", gpu.key, gpu.joules, gpu.method, gpu.name, gpu.partial or gpu.failing,
                                     gpu.note, others=gpu.others)
                for gpu in self._gpus
            }
        if self._unresolved:
            totals["gpu"] = DeviceTotal("gpu", "gpu", 0.0, "unmeasured", unmeasured=self._unresolved)
        for mig in self._slices:
            totals[mig] = DeviceTotal("gpu", mig, 0.0, "unmeasured", mig, unmeasured=(
                "MIG slice: NVML has no per-slice energy, and the board's counter includes the other slices"))
        for gpu in self._gpus:
            if gpu.module_scope:
                totals["cpu"] = DeviceTotal("cpu", "cpu", 0.0, "unmeasured", unmeasured=(
                    f"inside {gpu.key}'s module-scope figure (Grace superchip: GPU, CPU and memory together)"))
        return totals

    def _refresh(self, gpu: _Gpu, now: float) -> None:
        """Add what ``gpu`` used since its last reading; a failed read is retried on the next."""
        if gpu.partial:
            return
        try:
            if not gpu.sampled:
                millijoules = self._nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)  # type: ignore[union-attr]
                if millijoules < gpu.last_mj:  # the driver cannot reload under an open handle: a glitch
                    gpu.backwards += 1
                else:
                    gpu.joules += (millijoules - gpu.last_mj) / 1000.0
                gpu.last_mj = millijoules
            else:
                watts = self._watts(self._nvml, gpu)  # type: ignore[arg-type]
                gpu.joules += (gpu.last_w + watts) / 2.0 * (now - gpu.last_t)
                gpu.last_w, gpu.last_t = watts, now
        except Exception as exc:  # totals() must never raise: NVMLError or anything else
            gpu.failed_reads += 1
            gone = any(getattr(exc, "value", None) == getattr(self._nvml, name, None) for name in _GONE)
            if gone or gpu.failed_reads >= MAX_FAILED_READS:
                gpu.partial = f"{gpu.key} stopped reporting mid-run ({exc}); its last total is kept"
            else:
                gpu.failing = f"{gpu.key} did not answer ({exc}); retried on the next read"
            return
        gpu.failed_reads, gpu.failing = 0, ""

    def _other_processes(self, gpu: _Gpu) -> Tuple[int, ...]:
        """PIDs of the other processes with a compute or graphics context on ``gpu`` now."""
        pids = set()
        for listing in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                pids.update(process.pid for process in getattr(self._nvml, listing)(gpu.handle))
            except Exception:  # not supported on this board or driver: nothing to say
                continue
        pids.discard(os.getpid())
        return tuple(sorted(pids))

    def _sample_forever(self) -> None:
        period = 1.0 / self._sampling_hz
        while not self._stop.wait(period):
            with self._lock:
                now = time.monotonic()
                for gpu in self._gpus:
                    if gpu.sampled:
                        self._refresh(gpu, now)

    def describe(self) -> Dict[str, object]:
        gpus = [
            {"index": gpu.index, "name": gpu.name, "uuid": gpu.uuid, "energy_counter": not gpu.sampled,
             "method": gpu.method, "scope": "module" if gpu.module_scope else "gpu"}
            for gpu in self._gpus
        ]
        facts: Dict[str, object] = {"gpus": gpus, "driver": self._driver, "gpu_count": len(gpus)}
        if self._slices:
            facts["mig_slices"] = list(self._slices)
        if self.notes:
            facts["notes"] = list(self.notes)
        return facts

    @property
    def update_period_s(self) -> float:
        """How far the figures may lag the GPU: the counter's refresh, the sampling period, or the 1 s average."""
        periods = {"nvml-counter": COUNTER_UPDATE_PERIOD_S, "nvml-instant-power-sampling": 1.0 / self._sampling_hz,
                   "nvml-averaged-power-sampling": max(AVERAGED_POWER_LAG_S, 1.0 / self._sampling_hz)}
        return max((periods[gpu.method] for gpu in self._gpus), default=0.0)

    def close(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5.0)
            self._sampler = None
        with self._lock:
            pynvml, self._nvml = self._nvml, None
        if pynvml is not None:
            _shutdown_quietly(pynvml)


def _instant_w(pynvml: ModuleType, handle: object) -> Optional[float]:
    """Instant power in watts, as Zeus reads it; None where the field is not supported."""
    (value,) = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
    if value.nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED:
        return None
    if value.nvmlReturn != pynvml.NVML_SUCCESS:
        raise pynvml.NVMLError(value.nvmlReturn)
    return value.value.uiVal / 1000.0


def _mig_uuids(pynvml: ModuleType, handle: object) -> Tuple[str, ...]:
    """The UUIDs of a board's MIG slices; none where MIG is off or not supported."""
    try:
        if pynvml.nvmlDeviceGetMigMode(handle)[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return ()
        uuids = []
        for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                uuids.append(_text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot))))
            except pynvml.NVMLError_NotFound:  # an empty slot
                continue
        return tuple(uuids)
    except (pynvml.NVMLError, AttributeError):  # an old board, driver or nvidia-ml-py: no MIG
        return ()


def _is_module(pynvml: ModuleType, handle: object) -> bool:
    """Whether this GPU is on a Grace superchip (NVLink-C2C), whose counter covers the whole module."""
    try:
        return bool(pynvml.nvmlDeviceGetC2cModeInfoV(handle).isC2cEnabled)
    except (pynvml.NVMLError, AttributeError):
        return False


def _shutdown_quietly(pynvml: ModuleType) -> None:
    try:
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:  # the driver went away: nothing left to release
        pass
