"""What real NVIDIA boards do that the NVML source must get right, each driven by the fake
(docs/guarantees.md, "GPU measurement"): averaged against instant power, GPUs this process
does not use, CUDA's device order, MIG, window-edge synchronisation, counters that go back,
transient errors, other processes, and Grace Hopper's module-scope counter."""

from __future__ import annotations

import os
import sys
import time
import types
from typing import Callable, FrozenSet, Iterator, List, Mapping, Optional

import pytest

from fakes import fake_pynvml
from fakes.fake_pynvml import FakeGpu, gpus, install
from pytest_energy.measure.base import DeviceTotal, Source, SourceUnavailable
from pytest_energy.measure.meter import Meter, open_meter
from pytest_energy.measure.nvml import NvmlSource
from test_nvml import opened  # noqa: F401  (the fixture that opens NvmlSources and closes them after the test)


class SteadyCpu(Source):
    """Stands in for RAPL: 50 W of CPU package."""

    name = "rapl"

    def open(self) -> None:
        self._t0 = time.monotonic()

    @property
    def components(self) -> FrozenSet[str]:
        return frozenset({"cpu"})

    def totals(self) -> Mapping[str, DeviceTotal]:
        return {"package-0": DeviceTotal("cpu", "package-0", 50.0 * (time.monotonic() - self._t0), "rapl-counter")}


@pytest.fixture
def meter_of() -> Iterator[Callable[..., Meter]]:
    """open_meter("auto") on the fake NVML beside a steady CPU counter."""
    meters: List[Meter] = []

    def build(sampling_hz: float = 10.0) -> Meter:
        def factory(name: str) -> Source:
            if name == "nvml":
                return NvmlSource(sampling_hz=sampling_hz)
            if name == "rapl":
                return SteadyCpu()
            raise SourceUnavailable("left out of this test")

        meter = open_meter("auto", factory=factory)
        meters.append(meter)
        return meter

    yield build
    for meter in meters:
        meter.close()


def fake_torch(monkeypatch: pytest.MonkeyPatch, uuids: List[str], synchronize: Optional[Callable[..., None]] = None) -> list:
    """A torch already imported with CUDA initialised on devices of these UUIDs; returns the devices synchronised."""
    synchronised: list = []

    def sync(device: Optional[int] = None) -> None:
        synchronised.append(device)
        if synchronize is not None:
            synchronize(device)

    cuda = types.SimpleNamespace(
        is_initialized=lambda: True,
        device_count=lambda: len(uuids),
        get_device_properties=lambda i: types.SimpleNamespace(uuid=uuids[i]),
        synchronize=sync,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    return synchronised


# -- 1. instant power where the counter is missing; averaged power only where that is unsupported ----------


def test_a_short_burst_is_read_whole_from_instant_power(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    """On a 1 s averaged reading the 0.5 s burst read about 0.36 of its energy."""
    fake = install(monkeypatch, gpus(50.0, has_energy_counter=False))
    source = opened(sampling_hz=50.0)
    time.sleep(0.05)
    before = source.totals()["gpu0"].joules
    fake.drive(0, 350.0)
    time.sleep(0.5)
    fake.drive(0, 50.0)
    after = source.totals()["gpu0"]
    true_j = 50.0 * 0.05 + 350.0 * 0.5  # at least: the burst and the idle around it
    assert after.method == "nvml-instant-power-sampling"
    assert after.joules - before >= 0.85 * 350.0 * 0.5, f"read {after.joules - before:.1f} J of a ~{true_j:.0f} J burst"


def test_averaged_power_only_where_the_instant_field_is_unsupported(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    install(monkeypatch, gpus(100.0, has_energy_counter=False, has_instant_power=False))
    meter = meter_of(sampling_hz=20.0)
    window = meter.window()
    time.sleep(0.2)
    measurement = window.stop()
    (gpu,) = [r for r in measurement.readings if r.component == "gpu"]
    assert gpu.method == "nvml-averaged-power-sampling" and "1 s average" in gpu.note
    assert meter.update_period_s == pytest.approx(1.0), "the averaged method lags ~1 s, not 1/sampling_hz"
    assert any("(1.000 s): the figure may read low" in note for note in measurement.notes)


# -- 2. a GPU this process does not use -------------------------------------------------------------------


@pytest.mark.parametrize("error, reason", [(fake_pynvml.NVML_ERROR_NO_PERMISSION, "Insufficient Permissions"),
                                           (fake_pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost")])
def test_a_gpu_this_process_cannot_open_is_a_note(monkeypatch: pytest.MonkeyPatch, opened, error, reason) -> None:
    devices = gpus(100.0, 200.0)
    devices[1].handle_error = error  # nvmlDeviceGetCount still counts it
    install(monkeypatch, devices)
    source = opened()
    assert list(source.totals()) == ["gpu0"]
    assert any("GPU 1" in note and reason in note for note in source.describe()["notes"])


def test_a_broken_gpu_outside_cuda_visible_devices_is_not_touched(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    fake = install(monkeypatch, gpus(100.0, 200.0))
    fake.fail(1, fake_pynvml.NVML_ERROR_NO_PERMISSION)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    source = opened()
    assert list(source.totals()) == ["gpu0"] and source.totals()["gpu0"].partial == ""


# -- 3. CUDA's devices, by UUID ----------------------------------------------------------------------------


def test_torchs_cuda_devices_are_found_by_uuid(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    devices = gpus(100.0, 200.0, 300.0)
    install(monkeypatch, devices)
    fake_torch(monkeypatch, [devices[2].uuid[len("GPU-"):]])  # CUDA's device 0 is NVML's GPU 2
    source = opened()
    assert list(source.totals()) == ["gpu2"]


def test_ordinals_on_different_models_under_fastest_first_are_not_guessed(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    """The GPU is unmeasured with the reason, and no other source measures a guessed set of GPUs instead."""
    install(monkeypatch, gpus(100.0, 200.0))  # two models: CUDA may put either first
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    measurement = meter_of().window().stop()
    (gpu,) = [r for r in measurement.readings if r.component == "gpu"]
    assert gpu.joules is None and gpu.method == "unmeasured"
    assert "fastest first" in gpu.note and "CUDA_DEVICE_ORDER=PCI_BUS_ID" in gpu.note


def test_torch_on_a_board_in_mig_mode_is_a_slice(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    board = FakeGpu(uuid="GPU-0aaa", mig_uuids=("MIG-0aaa-1",))
    install(monkeypatch, [board])
    fake_torch(monkeypatch, ["0aaa"])  # an older CUDA naming the board, not the slice
    (gpu,) = [r for r in meter_of().window().stop().readings if r.component == "gpu"]
    assert gpu.joules is None and "MIG slice" in gpu.note


def test_ordinals_under_pci_bus_id_follow_nvml(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, gpus(100.0, 200.0, 300.0))
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-01111111")  # a GPU- entry ends a list of ordinals
    assert list(opened().totals()) == ["gpu1"]


def test_a_repeated_ordinal_leaves_cuda_no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [FakeGpu(uuid=f"GPU-{i}aaa") for i in range(2)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,0")
    with pytest.raises(SourceUnavailable, match="no NVIDIA GPU visible"):
        NvmlSource().open()


# -- 4. MIG ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [None, "MIG-bbbb"])
def test_a_mig_slice_is_unmeasured_not_charged_the_whole_board(monkeypatch: pytest.MonkeyPatch, meter_of, spec) -> None:
    install(monkeypatch, [FakeGpu(mig_uuids=("MIG-aaaa-1", "MIG-bbbb-2"))])
    if spec is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    meter = meter_of()
    measurement = meter.window().stop()
    gpu = [r for r in measurement.readings if r.component == "gpu"]
    assert gpu and all(r.joules is None and r.method == "unmeasured" and "MIG slice" in r.note for r in gpu)
    assert measurement.component_j("gpu") is None


# -- 5. synchronise every measured device, and do not swallow its error -----------------------------------


def test_each_cuda_device_is_synchronised_at_both_edges(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    devices = gpus(100.0, 200.0)
    install(monkeypatch, devices)
    synchronised = fake_torch(monkeypatch, [d.uuid[len("GPU-"):] for d in devices])
    window = meter_of().window()
    window.stop()
    assert synchronised == [0, 1, 0, 1]


def test_a_cuda_error_at_the_window_edge_reaches_the_test(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    devices = gpus(100.0, 200.0)
    install(monkeypatch, devices)
    meter = meter_of()
    fail = {"now": False}

    def sync(device: Optional[int]) -> None:
        if fail["now"] and device == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    fake_torch(monkeypatch, [d.uuid[len("GPU-"):] for d in devices], sync)
    window = meter.window()
    fail["now"] = True
    with pytest.raises(RuntimeError, match="illegal memory access"):
        window.stop()
    assert window.result is not None and window.result.component_j("gpu") is not None, "the window still closed"


# -- 7. a transient error ----------------------------------------------------------------------------------


def test_a_transient_error_is_retried_and_the_counter_catches_up(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    fake = install(monkeypatch, gpus(200.0))
    source = opened()
    first = source.totals()["gpu0"]
    fake.fail_next(0, 1, fake_pynvml.NVML_ERROR_TIMEOUT)
    time.sleep(0.1)
    during = source.totals()["gpu0"]
    assert "Timeout" in during.partial and during.joules == first.joules, "a window ending now is a lower bound"
    time.sleep(0.1)
    after = source.totals()["gpu0"]
    assert after.partial == "" and after.joules - first.joules >= 200.0 * 0.2 - 0.01, "the counter covered the gap"


def test_repeated_failures_freeze_the_gpu(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    fake = install(monkeypatch, gpus(200.0))
    source = opened()
    fake.fail_next(0, 3, fake_pynvml.NVML_ERROR_TIMEOUT)
    totals = [source.totals()["gpu0"] for _ in range(4)]
    assert "retried" in totals[0].partial and "stopped reporting" in totals[2].partial
    assert totals[3] == totals[2], "frozen after 3 failed reads in a row, though the GPU answers again"


# -- 9. other processes on the measured GPU ----------------------------------------------------------------


def test_other_processes_on_the_measured_gpu_are_named(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    install(monkeypatch, gpus(100.0, compute_pids=(os.getpid(), 4242), graphics_pids=(4343,)))
    measurement = meter_of().window().stop()
    (note,) = [note for note in measurement.notes if "other processes" in note]
    assert "gpu0: PIDs 4242, 4343" in note and str(os.getpid()) not in note


def test_no_note_when_the_gpu_is_this_process_alone(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    install(monkeypatch, gpus(100.0, compute_pids=(os.getpid(),)))
    assert not [note for note in meter_of().window().stop().notes if "other processes" in note]


# -- 10. Grace Hopper: the module's counter ----------------------------------------------------------------


def test_a_module_scope_counter_is_not_added_to_a_cpu_figure(monkeypatch: pytest.MonkeyPatch, meter_of) -> None:
    install(monkeypatch, [FakeGpu(name="NVIDIA GH200 480GB", c2c_module=True, architecture=fake_pynvml.NVML_DEVICE_ARCH_HOPPER)])
    meter = meter_of()
    window = meter.window()
    time.sleep(0.1)
    measurement = window.stop()
    (gpu,) = [r for r in measurement.readings if r.component == "gpu"]
    assert "module scope" in gpu.note and gpu.joules and gpu.joules > 0
    assert measurement.component_j("cpu") is None, "the CPU is inside the module's figure: nothing is added on top"
    (cpu,) = [r for r in measurement.readings if r.component == "cpu"]
    assert "module-scope" in cpu.note
    assert meter.describe()["sources"]["nvml"]["gpus"][0]["scope"] == "module"
