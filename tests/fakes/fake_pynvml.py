"""A faithful stand-in for the ``pynvml`` module of nvidia-ml-py, for machines without a GPU.

It copies what the real module does that our code relies on: ``NVMLError(value)``
returns the subclass for that code (``NVMLError_NotSupported`` ...), the same
``NVML_ERROR_*`` values and messages, reference-counted ``nvmlInit`` /
``nvmlShutdown``, and ``Uninitialized`` for calls made before init. GPUs are
``FakeGpu`` objects whose energy counter advances with ``time.monotonic()`` at
their power, so a 0.3 s window on a 200 W GPU reads about 60 J; given
``counter_update_period_s``, the counter moves in steps of that period, as the
driver refreshes it (about every 100 ms on real GPUs).

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
from typing import Callable, Dict, List, Optional, Sequence, Union

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


@dataclasses.dataclass
class FakeGpu:
    """One fake GPU. ``power_w`` is watts, or a function of seconds since install.

    ``counter_update_period_s`` > 0 makes the energy counter advance in steps, at the
    multiples of that period since install; 0 (the default) makes it continuous.

    Faults: after ``fail_at_s`` seconds or ``fail_after_calls`` calls on its handle,
    every call on it raises ``NVMLError(fail_error)`` (a lost GPU stays lost).
    """

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    power_w: Power = 200.0
    has_energy_counter: bool = True
    counter_update_period_s: float = 0.0
    fail_at_s: Optional[float] = None
    fail_after_calls: Optional[int] = None
    fail_error: int = NVML_ERROR_GPU_IS_LOST
    calls: int = dataclasses.field(default=0, init=False)
    vanished: bool = dataclasses.field(default=False, init=False)
    counter_mj: float = dataclasses.field(default=0.0, init=False)
    counted_until_s: float = dataclasses.field(default=0.0, init=False)

    def watts(self, t: float) -> float:
        return float(self.power_w(t) if callable(self.power_w) else self.power_w)

    def energy_j(self, t_from: float, t_to: float) -> float:
        """Energy between two times since install (midpoint rule in 1 ms steps for varying power)."""
        if not callable(self.power_w):
            return float(self.power_w) * (t_to - t_from)
        steps = max(1, math.ceil((t_to - t_from) / 1e-3))
        width = (t_to - t_from) / steps
        return sum(self.watts(t_from + (k + 0.5) * width) for k in range(steps)) * width


@dataclasses.dataclass(frozen=True)
class FakeHandle:
    """What ``nvmlDeviceGetHandleBy*`` returns: an opaque reference to one GPU."""

    device: FakeGpu = dataclasses.field(compare=False)
    index: int


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

    def vanish(self, index: int) -> None:
        """The GPU leaves the bus: it is no longer listed and its handle is invalid."""
        self.devices[index].vanished = True

    def reset_counter(self, index: int) -> None:
        """The energy counter restarts from zero, as after a driver reload."""
        with self._lock:
            device = self._advanced(self.devices[index])
            device.counter_mj = 0.0

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
        device.counted_until_s = now
        return device

    def _listed(self) -> List[FakeGpu]:
        return [device for device in self.devices if not device.vanished]

    def _check_ready(self) -> None:
        if self.init_count == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if self.driver_error is not None:
            raise NVMLError(self.driver_error)

    def _device(self, handle: FakeHandle) -> FakeGpu:
        """The GPU behind ``handle``, raising what NVML raises when it cannot answer."""
        self._check_ready()
        device = handle.device
        if device.vanished:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device.calls += 1
        failed_by_time = device.fail_at_s is not None and self.elapsed_s() >= device.fail_at_s
        failed_by_calls = device.fail_after_calls is not None and device.calls > device.fail_after_calls
        if failed_by_time or failed_by_calls:
            raise NVMLError(device.fail_error)
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
    driver = _current()
    driver._check_ready()
    return len(driver._listed())


def nvmlDeviceGetHandleByIndex(index: int) -> FakeHandle:
    driver = _current()
    driver._check_ready()
    listed = driver._listed()
    if not 0 <= index < len(listed):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return FakeHandle(listed[index], index)


def nvmlDeviceGetHandleByUUID(uuid: Union[str, bytes]) -> FakeHandle:
    driver = _current()
    driver._check_ready()
    wanted = uuid.decode() if isinstance(uuid, bytes) else uuid
    for index, device in enumerate(driver._listed()):
        if device.uuid == wanted:
            return FakeHandle(device, index)
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetName(handle: FakeHandle) -> str:
    return _current()._device(handle).name


def nvmlDeviceGetUUID(handle: FakeHandle) -> str:
    return _current()._device(handle).uuid


def nvmlDeviceGetTotalEnergyConsumption(handle: FakeHandle) -> int:
    """Millijoules since the driver loaded (Volta and newer)."""
    driver = _current()
    device = driver._device(handle)
    if not device.has_energy_counter:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    with driver._lock:
        return int(driver._advanced(device).counter_mj)


def nvmlDeviceGetPowerUsage(handle: FakeHandle) -> int:
    """Milliwatts now."""
    driver = _current()
    device = driver._device(handle)
    return int(device.watts(driver.elapsed_s()) * 1000.0)


# -- installing it -------------------------------------------------------------------------


def install(monkeypatch: pytest.MonkeyPatch, devices: Sequence[FakeGpu], **options: object) -> FakeNvml:
    """Make ``import pynvml`` return this module, driving ``devices``; undone after the test.

    ``CUDA_VISIBLE_DEVICES`` is cleared so the host's value does not leak in; set it after.
    """
    driver = FakeNvml(devices, **options)  # type: ignore[arg-type]
    monkeypatch.setattr(sys.modules[__name__], "_driver", driver)
    monkeypatch.setitem(sys.modules, "pynvml", sys.modules[__name__])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return driver


def install_no_driver(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """A machine without the NVIDIA driver: ``nvmlInit`` raises ``NVMLError_LibraryNotFound``."""
    return install(monkeypatch, [], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)


def gpus(*watts: float, has_energy_counter: bool = True) -> List[FakeGpu]:
    """Distinct GPUs drawing the given powers, with UUIDs ``GPU-<i>1111111-...``."""
    return [
        FakeGpu(
            name=f"NVIDIA Fake GPU {i}",
            uuid=f"GPU-{i}1111111-2222-3333-4444-555555555555",
            power_w=w,
            has_energy_counter=has_energy_counter,
        )
        for i, w in enumerate(watts)
    ]
