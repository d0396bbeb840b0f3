"""How open_meter combines NVML, RAPL and CodeCarbon, driven by the fake hardware."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterator, List, Mapping, Optional

import pytest

from fakes.fake_pynvml import FakeGpu, FakeNvml, gpus, install, install_no_driver
from fakes.powercap import FakePowercap
from pytest_energy.measure.base import DeviceTotal, Source, SourceUnavailable
from pytest_energy.measure.meter import Meter, open_meter
from pytest_energy.measure.nvml import NvmlSource
from pytest_energy.measure.rapl import RaplSource


class EstimatingSource(Source):
    """Stands in for CodeCarbon: claims every component, with a steady estimate."""

    name = "codecarbon"

    def __init__(self) -> None:
        self.closed = False
        self._opened_at = 0.0

    def open(self) -> None:
        self._opened_at = time.monotonic()

    @property
    def components(self) -> FrozenSet[str]:
        return frozenset({"gpu", "cpu", "ram"})

    def totals(self) -> Mapping[str, DeviceTotal]:
        seconds = time.monotonic() - self._opened_at
        return {c: DeviceTotal(c, c, 10.0 * seconds, "codecarbon-estimate") for c in ("gpu", "cpu", "ram")}

    def close(self) -> None:
        self.closed = True


class Hardware:
    """The fake machine a test sets up, and a factory that builds sources on it."""

    def __init__(self, powercap_root: Path, sampling_hz: float = 10.0, codecarbon: bool = True):
        self.powercap_root = powercap_root
        self.sampling_hz = sampling_hz
        self.codecarbon = codecarbon
        self.built: Dict[str, Source] = {}

    def build(self, name: str) -> Source:
        if name == "codecarbon" and not self.codecarbon:
            raise SourceUnavailable("codecarbon left out of this test")
        source: Source = {
            "nvml": lambda: NvmlSource(sampling_hz=self.sampling_hz),
            "rapl": lambda: RaplSource(self.powercap_root, poll_s=30.0),
            "codecarbon": EstimatingSource,
        }[name]()
        self.built[name] = source
        return source


@pytest.fixture
def meters() -> Iterator[Callable[..., Meter]]:
    """open_meter, with every meter closed after the test."""
    opened: List[Meter] = []

    def open_and_keep(choice: str, factory: Optional[Callable[[str], Source]] = None, **options: float) -> Meter:
        meter = open_meter(choice, factory=factory, **options)
        opened.append(meter)
        return meter

    yield open_and_keep
    for meter in opened:
        meter.close()


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "powercap").add_package(0)


def reading(measurement, component: str):
    (found,) = [r for r in measurement.readings if r.component == component]
    return found


def test_auto_takes_gpu_from_nvml_and_cpu_ram_from_rapl(
    monkeypatch: pytest.MonkeyPatch, powercap: FakePowercap, meters
) -> None:
    install(monkeypatch, gpus(200.0))
    hardware = Hardware(powercap.root)
    meter = meters("auto", factory=hardware.build)

    assert [(source.name, sorted(components)) for source, components in meter.assigned] == [
        ("nvml", ["gpu"]), ("rapl", ["cpu", "ram"]),
    ]
    assert hardware.built["codecarbon"].closed, "a source left with nothing to measure is closed"

    window = meter.window()
    started = time.monotonic()
    time.sleep(0.3)
    powercap.advance("intel-rapl:0", 9.0)
    powercap.advance("intel-rapl:0:1", 1.5)
    measurement = window.stop()
    elapsed = time.monotonic() - started

    assert 200.0 * 0.3 - 0.01 <= measurement.component_j("gpu") <= 200.0 * (elapsed + 0.05)
    assert measurement.component_j("cpu") == pytest.approx(9.0)
    assert measurement.component_j("ram") == pytest.approx(1.5)
    assert measurement.methods == {"gpu": "nvml-counter", "cpu": "rapl-counter", "ram": "rapl-counter"}
    assert measurement.meter == "nvml-counter+rapl-counter"
    assert measurement.notes == ()
    assert reading(measurement, "gpu").device == "gpu0"

    facts = meter.describe()
    assert facts["sources"]["nvml"]["gpus"][0]["uuid"] == "GPU-01111111-2222-3333-4444-555555555555"
    assert facts["sources"]["rapl"] == {"components": ["cpu", "ram"], "rapl_zones": ["package-0", "package-0/dram"]}


def test_auto_without_a_gpu_driver_estimates_the_gpu(
    monkeypatch: pytest.MonkeyPatch, powercap: FakePowercap, meters
) -> None:
    install_no_driver(monkeypatch)
    meter = meters("auto", factory=Hardware(powercap.root).build)
    assert [(source.name, sorted(components)) for source, components in meter.assigned] == [
        ("rapl", ["cpu", "ram"]), ("codecarbon", ["gpu"]),
    ]
    assert meter.unavailable == {"nvml": "NVML cannot start: NVML Shared Library Not Found"}
    measurement = meter.window().stop()
    assert measurement.methods == {"cpu": "rapl-counter", "ram": "rapl-counter", "gpu": "codecarbon-estimate"}


def test_nothing_works_leaves_every_component_unmeasured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, meters) -> None:
    install_no_driver(monkeypatch)
    meter = meters("auto", factory=Hardware(tmp_path / "no-powercap", codecarbon=False).build)
    assert not meter.available
    measurement = meter.window().stop()
    assert [(r.component, r.joules, r.method) for r in measurement.readings] == [
        ("gpu", None, "unmeasured"), ("cpu", None, "unmeasured"), ("ram", None, "unmeasured"),
    ]
    note = measurement.readings[0].note
    assert note.startswith("no meter works")
    assert "nvml: NVML cannot start" in note and "rapl: no RAPL powercap interface" in note
    assert measurement.total_j is None


def test_nvml_alone_leaves_cpu_and_ram_unmeasured(monkeypatch: pytest.MonkeyPatch, meters) -> None:
    install(monkeypatch, gpus(100.0))
    meter = meters("nvml")  # the default factory: load_source("nvml", sampling_hz=...) imports the real module
    time.sleep(0.25)
    measurement = meter.window().stop()
    assert measurement.component_j("gpu") is not None
    unmeasured = [r for r in measurement.readings if r.joules is None]
    assert [(r.component, r.note) for r in unmeasured] == [
        ("cpu", "not measured by meter 'nvml'"), ("ram", "not measured by meter 'nvml'"),
    ]


def test_default_factory_passes_the_sampling_rate(monkeypatch: pytest.MonkeyPatch, meters) -> None:
    install(monkeypatch, [FakeGpu(has_energy_counter=False)])
    meter = meters("nvml", sampling_hz=4.0)
    assert meter.update_period_s == pytest.approx(0.25)
    assert meter.describe()["sources"]["nvml"]["gpus"][0]["energy_counter"] is False


def test_default_factory_without_driver(monkeypatch: pytest.MonkeyPatch, meters) -> None:
    install_no_driver(monkeypatch)
    meter = meters("nvml")
    assert not meter.available and "NVML Shared Library Not Found" in meter.unavailable["nvml"]


def test_short_window_on_the_nvml_counter_is_flagged(
    monkeypatch: pytest.MonkeyPatch, powercap: FakePowercap, meters
) -> None:
    install(monkeypatch, gpus(100.0))
    meter = meters("auto", factory=Hardware(powercap.root).build)
    short = meter.window().stop()
    assert len(short.notes) == 1 and "shorter than twice the counter update period (0.100 s)" in short.notes[0]
    window = meter.window()
    time.sleep(0.25)
    assert window.stop().notes == ()


def test_short_window_on_rapl_alone_is_not_flagged(powercap: FakePowercap, meters) -> None:
    meter = meters("rapl", factory=Hardware(powercap.root).build)
    window = meter.window()
    time.sleep(0.01)
    assert window.stop().notes == ()


def test_sampled_gpu_needs_a_longer_window(monkeypatch: pytest.MonkeyPatch, meters) -> None:
    install(monkeypatch, gpus(100.0, has_energy_counter=False))
    meter = meters("nvml", sampling_hz=5.0)
    window = meter.window()
    time.sleep(0.25)
    notes = window.stop().notes
    assert len(notes) == 1 and "(0.200 s)" in notes[0]


def test_a_lost_gpu_shows_in_the_window_reading(
    monkeypatch: pytest.MonkeyPatch, powercap: FakePowercap, meters
) -> None:
    fake: FakeNvml = install(monkeypatch, gpus(100.0, 200.0))
    meter = meters("auto", factory=Hardware(powercap.root).build)
    window = meter.window()
    time.sleep(0.15)
    meter.snapshot()
    fake.fail(0)
    time.sleep(0.1)
    measurement = window.stop()
    gpu_readings = {r.device: r for r in measurement.readings if r.component == "gpu"}
    assert "GPU is lost" in gpu_readings["gpu0"].partial and 100.0 * 0.15 - 0.01 <= gpu_readings["gpu0"].joules < 100.0 * 0.2
    assert gpu_readings["gpu1"].partial == "" and gpu_readings["gpu1"].joules >= 200.0 * 0.25 - 0.01


def test_closing_the_meter_releases_nvml_and_threads(monkeypatch: pytest.MonkeyPatch, powercap: FakePowercap) -> None:
    fake = install(monkeypatch, gpus(100.0, has_energy_counter=False))
    meter = open_meter("auto", factory=Hardware(powercap.root, codecarbon=False).build)
    assert fake.init_count == 1
    meter.close()
    assert fake.init_count == 0
    names = {t.name for t in threading.enumerate()}
    assert not names & {"pytest-energy-nvml-sampler", "pytest-energy-rapl-poller"}
