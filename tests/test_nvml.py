"""NvmlSource against the fake NVML driver: counters, sampling, visibility and faults."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Iterator, Mapping, Tuple

import pytest

from fakes import fake_pynvml
from fakes.fake_pynvml import FakeGpu, gpus, install, install_no_driver
from pytest_energy.measure.base import DeviceTotal, SourceUnavailable
from pytest_energy.measure.nvml import NvmlSource

Timed = Tuple[Mapping[str, DeviceTotal], float, float]


def timed_totals(source: NvmlSource) -> Timed:
    """Totals with the monotonic times just before and just after they were read."""
    before = time.monotonic()
    totals = source.totals()
    return totals, before, time.monotonic()


def energy_bounds(watts: float, first: Timed, second: Timed) -> Tuple[float, float]:
    """The least and most a constant ``watts`` can have used between the two reads (1 mJ rounding)."""
    _, a_start, a_end = first
    _, b_start, b_end = second
    return watts * (b_start - a_end) - 0.002, watts * (b_end - a_start) + 0.002


def used(key: str, first: Timed, second: Timed) -> float:
    return second[0][key].joules - first[0][key].joules


@pytest.fixture
def opened() -> Iterator[Callable[..., NvmlSource]]:
    """Open NvmlSources and make sure each is closed after the test."""
    sources = []

    def open_source(**options: float) -> NvmlSource:
        source = NvmlSource(**options)
        source.open()
        sources.append(source)
        return source

    yield open_source
    for source in sources:
        source.close()


def sampler_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "pytest-energy-nvml-sampler"]


def test_the_fake_matches_the_real_modules_errors() -> None:
    real = pytest.importorskip("pynvml")
    if real is fake_pynvml:
        pytest.skip("the fake is installed")
    shared = {n for n in dir(real) if n.startswith("NVML_ERROR_")} & {n for n in dir(fake_pynvml) if n.startswith("NVML_ERROR_")}
    assert {"NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND", "NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_UNINITIALIZED",
            "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_INVALID_ARGUMENT"} <= shared
    for name in shared:
        value = getattr(real, name)
        assert getattr(fake_pynvml, name) == value, name
        fake_error, real_error = fake_pynvml.NVMLError(value), real.NVMLError(value)
        assert type(fake_error).__name__ == type(real_error).__name__ and fake_error.value == value
        if value in real.NVMLError._errcode_to_string:
            assert str(fake_error) == str(real_error)


def test_the_fake_refuses_calls_before_init(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, gpus(100.0))
    import pynvml

    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlShutdown()


def test_energy_counter_reads_power_times_time(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, gpus(200.0))
    source = opened()
    first = timed_totals(source)
    time.sleep(0.3)
    second = timed_totals(source)

    total = second[0]["gpu0"]
    assert (total.component, total.device, total.method, total.label, total.partial) == (
        "gpu", "gpu0", "nvml-counter", "NVIDIA Fake GPU 0", "",
    )
    low, high = energy_bounds(200.0, first, second)
    assert low <= used("gpu0", first, second) <= high
    assert 55.0 < used("gpu0", first, second) < 75.0
    assert source.components == frozenset({"gpu"})
    assert source.update_period_s == pytest.approx(0.1)
    assert not sampler_threads()


def test_totals_count_from_open_not_from_driver_load(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, gpus(300.0))
    time.sleep(0.2)  # the driver's counter already holds ~60 J
    before_open = time.monotonic()
    source = opened()
    totals, _, after = timed_totals(source)
    assert 0.0 <= totals["gpu0"].joules <= 300.0 * (after - before_open) + 0.002


def test_sampling_fallback_when_counter_not_supported(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    fake = install(monkeypatch, gpus(150.0, has_energy_counter=False))
    source = opened(sampling_hz=50.0)
    first = timed_totals(source)
    calls_before = fake.devices[0].calls
    time.sleep(0.3)
    calls_during_sleep = fake.devices[0].calls - calls_before
    second = timed_totals(source)

    assert second[0]["gpu0"].method == "nvml-instant-power-sampling"
    low, high = energy_bounds(150.0, first, second)
    assert low <= used("gpu0", first, second) <= high
    assert calls_during_sleep >= 5, "the background thread should sample while the test sleeps"
    assert source.update_period_s == pytest.approx(1 / 50.0)
    assert len(sampler_threads()) == 1


def test_sampling_integrates_varying_power_by_trapezoids(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    def ramp(t: float) -> float:
        return 100.0 + 200.0 * t

    def energy(t_from: float, t_to: float) -> float:  # the exact integral of the ramp
        return 100.0 * (t_to - t_from) + 100.0 * (t_to**2 - t_from**2)

    fake = install(monkeypatch, [FakeGpu(power_w=ramp, has_energy_counter=False)])
    source = opened(sampling_hz=20.0)
    first = timed_totals(source)
    time.sleep(0.4)
    second = timed_totals(source)

    (_, a_start, a_end), (_, b_start, b_end) = first, second
    low = energy(a_end - fake.t0, b_start - fake.t0)
    high = energy(a_start - fake.t0, b_end - fake.t0)
    assert low - 0.01 <= used("gpu0", first, second) <= high + 0.01


def test_several_devices_each_count_their_own(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, gpus(100.0, 200.0, 300.0), driver_version="535.129.03")
    source = opened()
    first = timed_totals(source)
    time.sleep(0.3)
    second = timed_totals(source)

    assert sorted(second[0]) == ["gpu0", "gpu1", "gpu2"]
    for index, watts in enumerate((100.0, 200.0, 300.0)):
        low, high = energy_bounds(watts, first, second)
        assert low <= used(f"gpu{index}", first, second) <= high
    facts = source.describe()
    assert facts["driver"] == "535.129.03" and facts["gpu_count"] == 3
    assert facts["gpus"][1] == {
        "index": 1, "name": "NVIDIA Fake GPU 1", "uuid": "GPU-11111111-2222-3333-4444-555555555555", "energy_counter": True,
        "method": "nvml-counter", "scope": "gpu",
    }


def test_a_mix_of_counter_and_sampled_gpus(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    devices = gpus(100.0) + [FakeGpu(name="Tesla P100", uuid="GPU-ffff", power_w=50.0, has_energy_counter=False)]
    install(monkeypatch, devices)
    source = opened(sampling_hz=4.0)
    totals = source.totals()
    assert (totals["gpu0"].method, totals["gpu1"].method) == ("nvml-counter", "nvml-instant-power-sampling")
    assert [gpu["energy_counter"] for gpu in source.describe()["gpus"]] == [True, False]
    assert source.update_period_s == pytest.approx(0.25)


def test_cuda_visible_devices_by_index(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, gpus(100.0, 200.0, 300.0))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    source = opened()
    assert sorted(source.totals()) == ["gpu0", "gpu2"]
    assert [gpu["index"] for gpu in source.describe()["gpus"]] == [2, 0]


def test_cuda_visible_devices_by_uuid_prefix(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, gpus(100.0, 200.0, 300.0))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1111")
    source = opened()
    totals = source.totals()
    assert list(totals) == ["gpu1"] and totals["gpu1"].label == "NVIDIA Fake GPU 1"


def test_empty_cuda_visible_devices_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, gpus(100.0))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(SourceUnavailable, match=r"no NVIDIA GPU visible \(CUDA_VISIBLE_DEVICES=''\)"):
        NvmlSource().open()
    assert fake.init_count == 0, "NVML must be shut down when open gives up"


def test_no_gpu_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [])
    with pytest.raises(SourceUnavailable, match="^no NVIDIA GPU visible$"):
        NvmlSource().open()


def test_no_driver_is_unavailable_with_a_one_line_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    install_no_driver(monkeypatch)
    with pytest.raises(SourceUnavailable) as raised:
        NvmlSource().open()
    assert str(raised.value) == "NVML cannot start: NVML Shared Library Not Found"


def test_driver_not_loaded_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, gpus(100.0), init_error=fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(SourceUnavailable, match="Driver Not Loaded"):
        NvmlSource().open()


def test_without_nvidia_ml_py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes ``import pynvml`` raise ImportError
    with pytest.raises(SourceUnavailable, match="nvidia-ml-py is not installed"):
        NvmlSource().open()


@pytest.mark.parametrize(
    "error, reason",
    [(fake_pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost"), (fake_pynvml.NVML_ERROR_UNKNOWN, "Unknown Error")],
)
def test_a_gpu_failing_mid_window_keeps_its_total(monkeypatch: pytest.MonkeyPatch, opened, error, reason) -> None:
    fake = install(monkeypatch, gpus(100.0, 200.0))
    source = opened()
    time.sleep(0.1)
    first = timed_totals(source)
    fake.fail(0, error)
    time.sleep(0.2)
    second = timed_totals(source)

    lost = second[0]["gpu0"]
    assert lost.joules == first[0]["gpu0"].joules > 5.0
    assert reason in lost.partial and "gpu0" in lost.partial
    assert second[0]["gpu1"].partial == ""
    low, high = energy_bounds(200.0, first, second)
    assert low <= used("gpu1", first, second) <= high
    assert source.totals()["gpu0"].joules == lost.joules


def test_a_sampled_gpu_lost_after_some_calls_is_no_longer_queried(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    device = FakeGpu(power_w=100.0, has_energy_counter=False, fail_after_calls=16)  # opening takes ~9 calls
    install(monkeypatch, [device])
    source = opened(sampling_hz=50.0)
    time.sleep(0.3)  # the sampler reaches the 16th call after about 0.15 s
    frozen = source.totals()["gpu0"]
    assert "GPU is lost" in frozen.partial
    assert 0.0 < frozen.joules < 100.0 * 0.3
    calls = device.calls
    time.sleep(0.1)
    assert source.totals()["gpu0"] == frozen
    assert device.calls == calls


def test_a_gpu_lost_at_a_given_time(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    install(monkeypatch, [FakeGpu(power_w=100.0, fail_at_s=0.2)])
    source = opened()
    early = source.totals()["gpu0"]
    time.sleep(0.3)
    late = source.totals()["gpu0"]
    assert early.partial == "" and "GPU is lost" in late.partial
    assert late.joules == early.joules


def test_a_vanishing_gpu(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    fake = install(monkeypatch, gpus(100.0, 200.0))
    source = opened()
    first = timed_totals(source)
    fake.vanish(1)
    time.sleep(0.2)
    second = timed_totals(source)
    assert "Invalid Argument" in second[0]["gpu1"].partial
    assert second[0]["gpu1"].joules == first[0]["gpu1"].joules
    low, high = energy_bounds(100.0, first, second)
    assert low <= used("gpu0", first, second) <= high


@pytest.mark.parametrize(
    "error, reason",
    [
        (fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
        (fake_pynvml.NVML_ERROR_UNINITIALIZED, "Uninitialized"),
    ],
)
def test_driver_unloaded_mid_window(monkeypatch: pytest.MonkeyPatch, error, reason) -> None:
    fake = install(monkeypatch, gpus(100.0, 200.0))
    source = NvmlSource()
    source.open()
    first = source.totals()
    fake.unload_driver(error)
    second = source.totals()
    assert all(reason in total.partial for total in second.values())
    assert {key: total.joules for key, total in second.items()} == {key: total.joules for key, total in first.items()}
    source.close()  # must not raise with the driver gone


def test_a_counter_that_goes_back_adds_nothing_for_that_interval(monkeypatch: pytest.MonkeyPatch, opened) -> None:
    """A 5 mJ dip once added the whole since-driver-load total (3.6 MJ on a long-running board)."""
    fake = install(monkeypatch, gpus(200.0, counter_update_period_s=0.05))
    fake.devices[0].counter_mj = 3.6e9  # 3.6 MJ since the driver loaded
    source = opened()
    first = source.totals()["gpu0"]
    fake.dip_counter(0, 5.0)
    dipped = source.totals()["gpu0"]
    assert dipped.joules - first.joules < 1.0, "a counter that went back must add 0 J, not its whole total"
    assert "went back 1 time(s)" in dipped.note and dipped.partial == ""
    time.sleep(0.2)
    later = timed_totals(source)
    assert 200.0 * 0.1 <= later[0]["gpu0"].joules - dipped.joules <= 200.0 * 0.35, "it counts on after the dip"


def test_close_stops_the_sampler_promptly(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, gpus(100.0, has_energy_counter=False))
    source = NvmlSource(sampling_hz=0.5)  # a 2 s period: close must not wait for it
    source.open()
    assert len(sampler_threads()) == 1 and fake.init_count == 1
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 0.5
    assert not sampler_threads()
    assert fake.init_count == 0
    calls = fake.devices[0].calls
    source.close()
    assert source.totals()["gpu0"].partial == "" and fake.devices[0].calls == calls


def test_sampling_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sampling_hz"):
        NvmlSource(sampling_hz=0)


def test_real_nvml_opens_or_says_why() -> None:
    """On this machine's real driver (or its absence): a working source, or one clear reason."""
    real = pytest.importorskip("pynvml")
    if real is fake_pynvml:
        pytest.skip("the fake is installed")
    source = NvmlSource()
    try:
        source.open()
    except SourceUnavailable as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    try:
        first = source.totals()
        time.sleep(0.25)
        second = source.totals()
        assert first and set(first) == set(second)
        assert all(second[key].joules >= first[key].joules for key in first)
        assert source.describe()["gpu_count"] == len(first)
    finally:
        source.close()
