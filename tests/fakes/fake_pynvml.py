"""A faithful stand-in for the ``pynvml`` module of nvidia-ml-py, for machines without a GPU.

It copies what the real module does that our code relies on: ``NVMLError(value)``
returns the subclass for that code (``NVMLError_NotSupported`` ...), the same
``NVML_ERROR_*`` values and messages, reference-counted ``nvmlInit`` /
``nvmlShutdown``, and ``Uninitialized`` for calls made before init. GPUs are
``FakeGpu`` objects whose energy counter advances with ``time.monotonic()`` at
their power, so a 0.3 s window on a 200 W GPU reads about 60 J; given
``counter_update_period_s``, the counter moves in steps of that period, as the
driver refreshes it (about every 100 ms on real GPUs).

Beyond counters it models what real boards do that measurement must survive:
``nvmlDeviceGetPowerUsage`` averages over a trailing second on Ampere and newer
(``power_average_s``) while ``nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)``
is instant; power the test drives (``FakeNvml.drive``); a per-call latency that
sleeps, so releases the GIL (``call_latency_s``); MIG mode with slice handles and
``MIG-`` UUIDs on which power and energy are ``NotSupported``; a GPU that
``nvmlDeviceGetCount`` counts but whose handle cannot be had (``handle_error``: lost,
or hidden by cgroups: Insufficient Permissions); other processes on a board; a
Grace Hopper module whose counter covers CPU, GPU and memory (``c2c_module``);
transient errors (``FakeNvml.fail_next``); and the calls CodeCarbon's GPU setup makes.

``install(monkeypatch, devices)`` puts this module in ``sys.modules["pynvml"]``
(so everything in the process, pytester's in-process runs included, sees it);
``install_no_driver(monkeypatch)`` makes ``nvmlInit`` fail as on a machine without
the NVIDIA driver.
"""

from __future__ import annotations

import dataclasses
import math
import string
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_FREQ_NOT_SUPPORTED = 24
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_INVALID_STATE = 29
NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30
NVML_ERROR_UNKNOWN = 999


class NVMLError(Exception):
    """As in nvidia-ml-py: ``NVMLError(code)`` builds the subclass registered for ``code``."""

    _valClassMapping: Dict[int, type] = {}
    _errcode_to_string = {
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
        NVML_ERROR_NOT_FOUND: "Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
        NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_TIMEOUT: "Timeout",
        NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
        NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_MEMORY: "Insufficient Memory",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }

    def __new__(cls, value: int):
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        error = Exception.__new__(cls)
        error.value = value
        return error

    def __str__(self) -> str:
        return NVMLError._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return self.value == getattr(other, "value", None)

    __hash__ = None  # type: ignore[assignment]  # as in the real class, which defines __eq__ only


def _make_error_classes() -> None:
    """``NVML_ERROR_GPU_IS_LOST`` -> ``NVMLError_GpuIsLost``, named as nvidia-ml-py names them."""
    module = sys.modules[__name__]
    for constant in [name for name in dir(module) if name.startswith("NVML_ERROR_")]:
        class_name = "NVMLError_" + string.capwords(constant.replace("NVML_ERROR_", ""), "_").replace("_", "")
        value = getattr(module, constant)

        def new(cls: type, *args: object, _value: int = value) -> NVMLError:
            return NVMLError.__new__(cls, _value)

        error_class = type(class_name, (NVMLError,), {"__new__": new})
        error_class.__module__ = __name__
        setattr(module, class_name, error_class)
        NVMLError._valClassMapping[value] = error_class


_make_error_classes()

Power = Union[float, Callable[[float], float]]

NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1
NVML_POWER_SCOPE_MEMORY = 2
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_TEMPERATURE_GPU = 0
NVML_COMPUTEMODE_DEFAULT = 0
NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_HOPPER = 9


@dataclasses.dataclass
class FakeGpu:
    """One fake GPU. ``power_w`` is watts, or a function of seconds since install.

    ``counter_update_period_s`` > 0 makes the energy counter advance in steps, at the
    multiples of that period since install; 0 (the default) makes it continuous.
    ``power_average_s`` is the trailing window ``nvmlDeviceGetPowerUsage`` averages over
    (1 s on Ampere and newer; 0 for the instant power of older boards);
    ``has_instant_power`` says whether ``NVML_FI_DEV_POWER_INSTANT`` is supported.

    Faults: after ``fail_at_s`` seconds or ``fail_after_calls`` calls on its handle,
    every call on it raises ``NVMLError(fail_error)`` (a lost GPU stays lost);
    ``handle_error`` makes ``nvmlDeviceGetHandleByIndex`` raise for it while
    ``nvmlDeviceGetCount`` still counts it.
    """

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    power_w: Power = 200.0
    has_energy_counter: bool = True
    counter_update_period_s: float = 0.0
    power_average_s: float = 1.0
    has_instant_power: bool = True
    architecture: int = NVML_DEVICE_ARCH_AMPERE
    call_latency_s: float = 0.0
    mig_uuids: Sequence[str] = ()
    c2c_module: bool = False
    compute_pids: Sequence[int] = ()
    graphics_pids: Sequence[int] = ()
    memory_total_b: int = 40 * 2**30
    memory_used_b: int = 2**30
    handle_error: Optional[int] = None
    fail_at_s: Optional[float] = None
    fail_after_calls: Optional[int] = None
    fail_error: int = NVML_ERROR_GPU_IS_LOST
    calls: int = dataclasses.field(default=0, init=False)
    failing_calls: int = dataclasses.field(default=0, init=False)
    vanished: bool = dataclasses.field(default=False, init=False)
    counter_mj: float = dataclasses.field(default=0.0, init=False)
    counted_until_s: float = dataclasses.field(default=0.0, init=False)
    steps: List[Tuple[float, float]] = dataclasses.field(default_factory=list, init=False)

    def watts(self, t: float) -> float:
        for since, watts in reversed(self.steps):
            if t >= since:
                return watts
        return float(self.power_w(t) if callable(self.power_w) else self.power_w)

    def energy_j(self, t_from: float, t_to: float) -> float:
        """Energy between two times since install (midpoint rule in 1 ms steps for varying power)."""
        if t_to <= t_from:
            return 0.0
        if not callable(self.power_w) and not self.steps:
            return float(self.power_w) * (t_to - t_from)
        edges = sorted({t_from, t_to, *(since for since, _ in self.steps if t_from < since < t_to)})
        total = 0.0
        for start, end in zip(edges, edges[1:]):
            if not callable(self.power_w) or any(since <= start for since, _ in self.steps):
                total += self.watts(start) * (end - start)  # constant on this piece
                continue
            pieces = max(1, math.ceil((end - start) / 1e-3))
            width = (end - start) / pieces
            total += sum(self.watts(start + (k + 0.5) * width) for k in range(pieces)) * width
        return total

    def averaged_w(self, t: float) -> float:
        """What ``nvmlDeviceGetPowerUsage`` reports at ``t``: the mean over the trailing window."""
        window = self.power_average_s
        if window <= 0:
            return self.watts(t)
        before_install = max(window - t, 0.0) * self.watts(0.0)  # the board drew its initial power before
        return (before_install + self.energy_j(max(t - window, 0.0), t)) / window


@dataclasses.dataclass(frozen=True)
class FakeHandle:
    """What ``nvmlDeviceGetHandleBy*`` returns: an opaque reference to one GPU."""

    device: FakeGpu = dataclasses.field(compare=False)
    index: int


@dataclasses.dataclass(frozen=True)
class FakeMigHandle:
    """A MIG slice of a board: its own UUID, no power or energy of its own."""

    parent: FakeHandle
    slice_index: int

    @property
    def uuid(self) -> str:
        return self.parent.device.mig_uuids[self.slice_index]


@dataclasses.dataclass
class FakeValue:
    """The union ``c_nvmlValue_t``: the same number read as each type."""

    uiVal: int = 0
    siVal: int = 0
    ullVal: int = 0
    dVal: float = 0.0


@dataclasses.dataclass
class FakeFieldValue:
    """One entry of ``nvmlDeviceGetFieldValues``: its own return code, as ``c_nvmlFieldValue_t``."""

    fieldId: int
    scopeId: int = 0
    timestamp: int = 0
    latencyUsec: int = 0
    valueType: int = NVML_VALUE_TYPE_UNSIGNED_INT
    nvmlReturn: int = NVML_SUCCESS
    value: FakeValue = dataclasses.field(default_factory=FakeValue)


@dataclasses.dataclass
class FakeProcessInfo:
    """One entry of ``nvmlDeviceGet{Compute,Graphics}RunningProcesses``."""

    pid: int
    usedGpuMemory: Optional[int] = 2**28
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclasses.dataclass
class c_nvmlMemory_t:  # noqa: N801  # named as in nvidia-ml-py, which CodeCarbon builds directly
    total: int = 0
    free: int = 0
    used: int = 0


@dataclasses.dataclass
class FakeUtilization:
    gpu: int = 0
    memory: int = 0


@dataclasses.dataclass
class FakeC2cModeInfo:
    isC2cEnabled: int = 0


class FakeNvml:
    """The driver behind the fake module: its GPUs, its init count, and the faults tests inject."""

    def __init__(self, devices: Sequence[FakeGpu], driver_version: str = "550.54.15", init_error: Optional[int] = None):
        self.devices: List[FakeGpu] = list(devices)
        self.driver_version = driver_version
        self.init_error = init_error
        self.init_count = 0
        self.driver_error: Optional[int] = None
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    # -- what tests do to the GPUs ---------------------------------------------------

    def fail(self, index: int, error: int = NVML_ERROR_GPU_IS_LOST) -> None:
        """From now on every call on this GPU raises ``NVMLError(error)``."""
        self.devices[index].fail_error = error
        self.devices[index].fail_at_s = 0.0

    def fail_next(self, index: int, calls: int, error: int = NVML_ERROR_UNKNOWN) -> None:
        """The next ``calls`` calls on this GPU raise ``NVMLError(error)``; then it answers again."""
        self.devices[index].fail_error = error
        self.devices[index].failing_calls = calls

    def drive(self, index: int, watts: float) -> None:
        """From now on this GPU draws ``watts`` (a load the test switches on or off)."""
        with self._lock:
            self._advanced(self.devices[index])
            self.devices[index].steps.append((self.elapsed_s(), float(watts)))

    def vanish(self, index: int) -> None:
        """The GPU leaves the bus: it is no longer listed and its handle is invalid."""
        self.devices[index].vanished = True

    def reset_counter(self, index: int) -> None:
        """The energy counter restarts from zero, as after a driver reload."""
        with self._lock:
            device = self._advanced(self.devices[index])
            device.counter_mj = 0.0

    def dip_counter(self, index: int, millijoules: float) -> None:
        """The energy counter reads ``millijoules`` lower than before (a glitch, not a reload)."""
        with self._lock:
            device = self._advanced(self.devices[index])
            device.counter_mj = max(device.counter_mj - millijoules, 0.0)

    def unload_driver(self, error: int = NVML_ERROR_DRIVER_NOT_LOADED) -> None:
        """The driver goes away: every later call raises ``NVMLError(error)``."""
        self.driver_error = error

    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0

    # -- what the driver does ----------------------------------------------------------

    def _advanced(self, device: FakeGpu) -> FakeGpu:
        now = self.elapsed_s()
        period = device.counter_update_period_s
        if period > 0:  # the driver last refreshed the counter at the latest multiple of its period
            now = max(device.counted_until_s, math.floor(now / period) * period)
        device.counter_mj += device.energy_j(device.counted_until_s, now) * 1000.0
        device.counted_until_s = max(now, device.counted_until_s)
        return device

    def _listed(self) -> List[FakeGpu]:
        return [device for device in self.devices if not device.vanished]

    def _check_ready(self) -> None:
        if self.init_count == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if self.driver_error is not None:
            raise NVMLError(self.driver_error)

    def _device(self, handle: Union[FakeHandle, FakeMigHandle]) -> FakeGpu:
        """The GPU behind ``handle``, raising what NVML raises when it cannot answer."""
        self._check_ready()
        if isinstance(handle, FakeMigHandle):
            handle = handle.parent
        if not isinstance(handle, FakeHandle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device = handle.device
        if device.call_latency_s:
            time.sleep(device.call_latency_s)  # the driver call, with the GIL released
        if device.vanished:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device.calls += 1
        if device.failing_calls > 0:
            device.failing_calls -= 1
            raise NVMLError(device.fail_error)
        failed_by_time = device.fail_at_s is not None and self.elapsed_s() >= device.fail_at_s
        failed_by_calls = device.fail_after_calls is not None and device.calls > device.fail_after_calls
        if failed_by_time or failed_by_calls:
            raise NVMLError(device.fail_error)
        return device

    def _board(self, handle: object) -> FakeGpu:
        """A whole board's GPU; a MIG slice answers NotSupported, as for power and energy."""
        device = self._device(handle)  # type: ignore[arg-type]
        if isinstance(handle, FakeMigHandle):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return device


_driver: Optional[FakeNvml] = None


def _current() -> FakeNvml:
    if _driver is None:  # not installed: behave like a machine without the library
        raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
    return _driver


# -- the pynvml functions ------------------------------------------------------------------


def nvmlInit() -> None:
    driver = _current()
    if driver.init_error is not None:
        raise NVMLError(driver.init_error)
    if driver.driver_error is not None:
        raise NVMLError(driver.driver_error)
    driver.init_count += 1


def nvmlShutdown() -> None:
    driver = _current()
    if driver.init_count == 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    driver.init_count -= 1


def nvmlSystemGetDriverVersion() -> str:
    driver = _current()
    driver._check_ready()
    return driver.driver_version


def nvmlDeviceGetCount() -> int:
    """Every board on the bus, those this process may not open included (as NVML counts them)."""
    driver = _current()
    driver._check_ready()
    return len(driver._listed())


def nvmlDeviceGetHandleByIndex(index: int) -> FakeHandle:
    driver = _current()
    driver._check_ready()
    listed = driver._listed()
    if not 0 <= index < len(listed):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    if listed[index].handle_error is not None:
        raise NVMLError(listed[index].handle_error)
    return FakeHandle(listed[index], index)


def nvmlDeviceGetHandleByUUID(uuid: Union[str, bytes]) -> Union[FakeHandle, FakeMigHandle]:
    driver = _current()
    driver._check_ready()
    wanted = uuid.decode() if isinstance(uuid, bytes) else uuid
    for index, device in enumerate(driver._listed()):
        if device.uuid == wanted:
            if device.handle_error is not None:
                raise NVMLError(device.handle_error)
            return FakeHandle(device, index)
        if wanted in device.mig_uuids:
            return FakeMigHandle(FakeHandle(device, index), list(device.mig_uuids).index(wanted))
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetIndex(handle: FakeHandle) -> int:
    _current()._device(handle)
    return handle.index


def nvmlDeviceGetName(handle: FakeHandle) -> str:
    return _current()._device(handle).name


def nvmlDeviceGetUUID(handle: Union[FakeHandle, FakeMigHandle]) -> str:
    device = _current()._device(handle)
    return handle.uuid if isinstance(handle, FakeMigHandle) else device.uuid


def nvmlDeviceGetArchitecture(handle: FakeHandle) -> int:
    return _current()._device(handle).architecture


def nvmlDeviceGetTotalEnergyConsumption(handle: FakeHandle) -> int:
    """Millijoules since the driver loaded (Volta and newer); the whole module on Grace Hopper."""
    driver = _current()
    device = driver._board(handle)
    if not device.has_energy_counter:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    with driver._lock:
        return int(driver._advanced(device).counter_mj)


def nvmlDeviceGetPowerUsage(handle: FakeHandle) -> int:
    """Milliwatts: the mean over the trailing ``power_average_s`` (1 s on Ampere and newer)."""
    driver = _current()
    device = driver._board(handle)
    with driver._lock:
        return int(device.averaged_w(driver.elapsed_s()) * 1000.0)


def nvmlDeviceGetFieldValues(handle: FakeHandle, fieldIds: Sequence[Union[int, Tuple[int, int]]]) -> List[FakeFieldValue]:
    """Each field with its own ``nvmlReturn``; power fields in milliwatts, ``(fieldId, scopeId)`` for a scope."""
    driver = _current()
    device = driver._board(handle)
    values = []
    with driver._lock:
        now = driver.elapsed_s()
        for requested in fieldIds:
            field_id, scope = requested if isinstance(requested, tuple) else (requested, NVML_POWER_SCOPE_GPU)
            entry = FakeFieldValue(field_id, scope, timestamp=int((driver.t0 + now) * 1e6))
            supported_scope = scope == NVML_POWER_SCOPE_GPU or (scope == NVML_POWER_SCOPE_MODULE and device.c2c_module)
            if field_id == NVML_FI_DEV_POWER_INSTANT and device.has_instant_power and supported_scope:
                milliwatts = int(device.watts(now) * 1000.0)
            elif field_id == NVML_FI_DEV_POWER_AVERAGE and supported_scope:
                milliwatts = int(device.averaged_w(now) * 1000.0)
            else:
                entry.nvmlReturn = NVML_ERROR_NOT_SUPPORTED
                values.append(entry)
                continue
            entry.value = FakeValue(uiVal=milliwatts, siVal=milliwatts, ullVal=milliwatts, dVal=float(milliwatts))
            values.append(entry)
    return values


def nvmlDeviceGetC2cModeInfoV(handle: FakeHandle) -> FakeC2cModeInfo:
    """Whether the board is a Grace superchip, its GPU linked to the CPU by NVLink-C2C."""
    return FakeC2cModeInfo(int(_current()._board(handle).c2c_module))


def nvmlDeviceGetMigMode(handle: FakeHandle) -> List[int]:
    """``[current, pending]``: MIG enabled when the board has slices."""
    mode = NVML_DEVICE_MIG_ENABLE if _current()._board(handle).mig_uuids else NVML_DEVICE_MIG_DISABLE
    return [mode, mode]


def nvmlDeviceIsMigDeviceHandle(handle: object) -> int:
    _current()._device(handle)  # type: ignore[arg-type]
    return int(isinstance(handle, FakeMigHandle))


def nvmlDeviceGetMaxMigDeviceCount(handle: FakeHandle) -> int:
    return len(_current()._board(handle).mig_uuids)


def nvmlDeviceGetMigDeviceHandleByIndex(handle: FakeHandle, index: int) -> FakeMigHandle:
    device = _current()._board(handle)
    if not 0 <= index < len(device.mig_uuids):
        raise NVMLError(NVML_ERROR_NOT_FOUND)
    return FakeMigHandle(handle, index)


def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle: FakeMigHandle) -> FakeHandle:
    _current()._device(handle)
    if not isinstance(handle, FakeMigHandle):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return handle.parent


def nvmlDeviceGetComputeRunningProcesses(handle: FakeHandle) -> List[FakeProcessInfo]:
    return [FakeProcessInfo(pid) for pid in _current()._device(handle).compute_pids]


def nvmlDeviceGetGraphicsRunningProcesses(handle: FakeHandle) -> List[FakeProcessInfo]:
    return [FakeProcessInfo(pid) for pid in _current()._device(handle).graphics_pids]


def nvmlDeviceGetMemoryInfo(handle: FakeHandle) -> c_nvmlMemory_t:
    device = _current()._device(handle)
    return c_nvmlMemory_t(device.memory_total_b, device.memory_total_b - device.memory_used_b, device.memory_used_b)


def nvmlDeviceGetTemperature(handle: FakeHandle, sensor: int) -> int:
    _current()._board(handle)
    return 45


def nvmlDeviceGetEnforcedPowerLimit(handle: FakeHandle) -> int:
    _current()._board(handle)
    return 400_000


def nvmlDeviceGetPowerManagementLimit(handle: FakeHandle) -> int:
    _current()._board(handle)
    return 400_000


def nvmlDeviceGetUtilizationRates(handle: FakeHandle) -> FakeUtilization:
    _current()._board(handle)
    return FakeUtilization(gpu=50, memory=10)


def nvmlDeviceGetComputeMode(handle: FakeHandle) -> int:
    _current()._device(handle)
    return NVML_COMPUTEMODE_DEFAULT


# -- installing it -------------------------------------------------------------------------


def install(monkeypatch: pytest.MonkeyPatch, devices: Sequence[FakeGpu], **options: object) -> FakeNvml:
    """Make ``import pynvml`` return this module, driving ``devices``; undone after the test.

    ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` are cleared so the host's values do not
    leak in; set them after.
    """
    driver = FakeNvml(devices, **options)  # type: ignore[arg-type]
    monkeypatch.setattr(sys.modules[__name__], "_driver", driver)
    monkeypatch.setitem(sys.modules, "pynvml", sys.modules[__name__])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return driver


def install_no_driver(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """A machine without the NVIDIA driver: ``nvmlInit`` raises ``NVMLError_LibraryNotFound``."""
    return install(monkeypatch, [], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)


def gpus(*watts: float, has_energy_counter: bool = True, **options: object) -> List[FakeGpu]:
    """Distinct GPUs drawing the given powers, with UUIDs ``GPU-<i>1111111-...``."""
    return [
        FakeGpu(
            name=f"NVIDIA Fake GPU {i}",
            uuid=f"GPU-{i}1111111-2222-3333-4444-555555555555",
            power_w=w,
            has_energy_counter=has_energy_counter,
            **options,  # type: ignore[arg-type]
        )
        for i, w in enumerate(watts)
    ]
