"""CodeCarbon's GPU path on the fake NVML: serialised reads, and the method it really used."""

from __future__ import annotations

import threading
import time
from typing import Iterator, List

import pytest

from fakes import fake_pynvml
from fakes.fake_pynvml import gpus, install
from pytest_energy.measure.codecarbon import CodecarbonSource


@pytest.fixture
def codecarbon_on_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[CodecarbonSource]]:
    """CodeCarbon's NVML module pointed at the fake (it imported the real one, or none, at import)."""
    gpu_nvidia = pytest.importorskip("codecarbon.core.gpu_nvidia")
    gpu = pytest.importorskip("codecarbon.core.gpu")
    monkeypatch.setattr(gpu_nvidia, "pynvml", fake_pynvml)
    monkeypatch.setattr(gpu_nvidia, "PYNVML_AVAILABLE", True)
    monkeypatch.setattr(gpu, "PYNVML_AVAILABLE", True)
    monkeypatch.setattr(gpu, "is_nvidia_system", lambda: True)
    hardware_cache = pytest.importorskip("codecarbon.core.hardware_cache")
    monkeypatch.setattr(hardware_cache, "_plans", {})  # its process-wide probe cache must not keep the fake GPUs
    monkeypatch.setenv("CODECARBON_LOG_LEVEL", "error")
    sources: List[CodecarbonSource] = []
    yield sources
    for source in sources:
        source.close()


def test_no_two_threads_are_ever_inside_the_tracker_at_once(monkeypatch, codecarbon_on_fake_gpus) -> None:
    """CodeCarbon's scheduler threads, the main thread and the watchdog all measure; unserialised, they
    interleave updates of the tracker's running state (last counter reading, last measured time, totals)."""
    from codecarbon import OfflineEmissionsTracker

    install(monkeypatch, gpus(200.0, call_latency_s=0.002))
    inside = {"now": 0, "most": 0}
    guard = threading.Lock()

    def counted(method):
        def call(self, *args, **kwargs):
            with guard:
                inside["now"] += 1
                inside["most"] = max(inside["most"], inside["now"])
            try:
                return method(self, *args, **kwargs)
            finally:
                with guard:
                    inside["now"] -= 1
        return call

    for name in ("_do_measurements", "_monitor_power"):
        monkeypatch.setattr(OfflineEmissionsTracker, name, counted(getattr(OfflineEmissionsTracker, name)))
    source = CodecarbonSource(measure_power_secs=0.01)
    codecarbon_on_fake_gpus.append(source)
    source.open()
    assert "gpu" in source.components
    first = source.totals()["gpu"].joules
    started = time.monotonic()
    stop = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            source.totals()

    readers = [threading.Thread(target=read_forever) for _ in range(2)]
    for reader in readers:
        reader.start()
    time.sleep(1.5)  # CodeCarbon's power monitor runs once a second
    stop.set()
    for reader in readers:
        reader.join(10.0)
    last = source.totals()["gpu"]
    assert inside["most"] == 1, f"{inside['most']} threads measured at once"
    assert last.method == "codecarbon-nvml-counter"
    assert last.joules - first <= 200.0 * (time.monotonic() - started) + 1.0


def test_the_averaged_power_method_is_named(monkeypatch, codecarbon_on_fake_gpus) -> None:
    install(monkeypatch, gpus(150.0, has_energy_counter=False))
    source = CodecarbonSource(measure_power_secs=0.05)
    codecarbon_on_fake_gpus.append(source)
    source.open()
    time.sleep(0.1)
    total = source.totals()["gpu"]
    assert total.method == "codecarbon-nvml-averaged-power" and "1 s average" in total.note
    assert total.joules > 0
