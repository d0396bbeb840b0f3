"""CodeCarbon's offline tracker as a source: the figure DCASE asks participants to report.

One tracker runs for the whole session (its first start costs ~1.5 s of CPU
detection); each read forces a measurement and returns its running totals.
CodeCarbon *estimates* unless it finds hardware counters: CPU from TDP × load,
RAM from a fixed power model. The method names say which one gave each figure.
It never touches the network and writes no file (``output_methods=[]``).
"""

from __future__ import annotations

import logging
import threading
from typing import Dict, FrozenSet, Mapping

from .base import DeviceTotal, Source, SourceUnavailable

KWH_TO_J = 3.6e6
_ESTIMATES = {
    "cpu_load": "estimate: CPU TDP per thread × CPU load, not a measurement",
    "constant": "estimate: 50 % of CPU TDP, not a measurement",
    "tdp": "estimate: CPU TDP, not a measurement",
}
_RAM_NOTE = "estimate: RAM power model (a flat figure per machine), not a measurement"


class CodecarbonSource(Source):
    name = "codecarbon"

    def __init__(self, measure_power_secs: float = 1.0):
        self._measure_power_secs = measure_power_secs
        self._tracker = None
        self._lock = threading.Lock()
        self._components: FrozenSet[str] = frozenset()
        self._cpu_mode = ""
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
        self._components = frozenset(components)

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
        figures = {
            "cpu": (tracker._total_cpu_energy, f"codecarbon-{self._cpu_mode or 'cpu'}", _ESTIMATES.get(self._cpu_mode, "")),
            "gpu": (tracker._total_gpu_energy, "codecarbon-nvml", ""),
            "ram": (tracker._total_ram_energy, "codecarbon-ram-model", _RAM_NOTE),
        }
        # CodeCarbon reports 0 kWh on GPUs without an energy counter: a GPU total of
        # exactly zero is left out, so the window reports the GPU as unmeasured.
        return {
            component: DeviceTotal(component, component, energy.kWh * KWH_TO_J, method, partial=partial, note=note)
            for component, (energy, method, note) in figures.items()
            if component in self._components and not (component == "gpu" and energy.kWh == 0)
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
                tracker.stop()
            except Exception:
                pass
