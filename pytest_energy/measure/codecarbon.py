"""CodeCarbon's offline tracker as a source: the figure DCASE asks participants to report.

One tracker runs for the whole session (its first start costs ~1.5 s of CPU
detection); each read forces a measurement and returns its running totals.
CodeCarbon's own scheduler threads measure too, so every call into the tracker
(theirs, ours from the main thread and the watchdog's, its start and stop) holds
one lock: unserialised, two threads read the same GPU counter interval twice.
CodeCarbon *estimates* unless it finds hardware counters: CPU from TDP × load,
RAM from a fixed power model. A GPU is read from NVML's energy counter, or (3.3,
where the counter is missing) from ``nvmlDeviceGetPowerUsage`` averaged over its
samples, a 1 s average itself on Ampere and newer. The method names say which
one gave each figure. It never touches the network and writes no file
(``output_methods=[]``).
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Callable, Dict, FrozenSet, Mapping

from .base import DeviceTotal, Source, SourceUnavailable

KWH_TO_J = 3.6e6
_ESTIMATES = {
    "cpu_load": "estimate: CPU TDP per thread × CPU load, not a measurement",
    "constant": "estimate: 50 % of CPU TDP, not a measurement",
    "tdp": "estimate: CPU TDP, not a measurement",
}
_RAM_NOTE = "estimate: RAM power model (a flat figure per machine), not a measurement"
_GPU_AVERAGED_NOTE = ("CodeCarbon averaged nvmlDeviceGetPowerUsage (no energy counter), a 1 s average on Ampere "
                      "and newer: the figure lags about 1 s")


class CodecarbonSource(Source):
    name = "codecarbon"

    def __init__(self, measure_power_secs: float = 1.0):
        self._measure_power_secs = measure_power_secs
        self._tracker = None
        self._lock = threading.Lock()
        self._components: FrozenSet[str] = frozenset()
        self._cpu_mode = ""
        self._gpus: list = []  # CodeCarbon's GPU devices, to tell which method each used
        self.version = ""

    def open(self) -> None:
        try:
            import codecarbon
            from codecarbon import OfflineEmissionsTracker
            from codecarbon.external.hardware import CPU, GPU
        except ImportError as exc:
            raise SourceUnavailable(f"codecarbon is not installed ({exc})") from exc
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.version = codecarbon.__version__
        try:
            tracker = OfflineEmissionsTracker(
                country_iso_code="USA",  # emissions are not used; energy does not depend on it
                output_methods=[],
                log_level="error",
                measure_power_secs=self._measure_power_secs,
                allow_multiple_runs=True,
            )
            for scheduler in (tracker._scheduler, tracker._scheduler_monitor_power):
                if scheduler is not None:  # CodeCarbon's timer threads take our lock too
                    scheduler.function = self._serialised(scheduler.function)
            with self._lock:
                tracker.start()
        except Exception as exc:  # CodeCarbon raises bare Exceptions
            raise SourceUnavailable(f"codecarbon tracker failed to start: {exc}") from exc
        self._tracker = tracker
        components = {"ram"}
        for hardware in tracker._hardware:
            if isinstance(hardware, CPU):
                components.add("cpu")
                self._cpu_mode = str(getattr(hardware, "_mode", ""))
            elif isinstance(hardware, GPU):
                components.add("gpu")
                self._gpus = list(getattr(getattr(hardware, "devices", None), "devices", []))
        self._components = frozenset(components)

    def _serialised(self, call: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(call)
        def locked() -> None:
            with self._lock:
                call()

        return locked

    @property
    def components(self) -> FrozenSet[str]:
        return self._components

    def totals(self) -> Mapping[str, DeviceTotal]:
        tracker = self._tracker
        if tracker is None:
            return {}
        with self._lock:
            try:
                tracker._measure_power_and_energy()
            except Exception as exc:
                return self._totals(tracker, partial=f"codecarbon failed to measure: {exc}")
            return self._totals(tracker)

    def _totals(self, tracker: object, partial: str = "") -> Dict[str, DeviceTotal]:
        averaged = any(getattr(device, "_use_power_fallback", False) for device in self._gpus)
        gpu_method = "codecarbon-nvml-averaged-power" if averaged else "codecarbon-nvml-counter"
        figures = {
            "cpu": (tracker._total_cpu_energy, f"codecarbon-{self._cpu_mode or 'cpu'}", _ESTIMATES.get(self._cpu_mode, "")),
            "gpu": (tracker._total_gpu_energy, gpu_method, _GPU_AVERAGED_NOTE if averaged else ""),
            "ram": (tracker._total_ram_energy, "codecarbon-ram-model", _RAM_NOTE),
        }
        return {
            component: DeviceTotal(component, component, energy.kWh * KWH_TO_J, method, partial=partial, note=note)
            for component, (energy, method, note) in figures.items()
            if component in self._components
        }

    def describe(self) -> Dict[str, object]:
        return {"codecarbon_version": self.version, "cpu_mode": self._cpu_mode}

    @property
    def update_period_s(self) -> float:
        return 0.0  # every read forces a measurement

    def close(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            try:
                with self._lock:
                    tracker.stop()
            except Exception:
                pass
