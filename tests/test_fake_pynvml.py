"""The fake NVML against real nvidia-ml-py: the same names, and the behaviours measurement depends on."""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Set

import pytest

from fakes import fake_pynvml
from fakes.fake_pynvml import FakeGpu, gpus, install

ROOT = Path(__file__).resolve().parents[1]
_CALLED = re.compile(r"\bpynvml\.((?:nvml|NVML)\w+|c_nvml\w+)")


def real_pynvml() -> ModuleType:
    """nvidia-ml-py's module (skips where it is not installed, or where the fake stands in for it)."""
    real = pytest.importorskip("pynvml")
    if real is fake_pynvml:
        pytest.skip("the fake is installed")
    return real


def called_names(*paths: Path) -> Set[str]:
    return {name for path in paths for name in _CALLED.findall(path.read_text())}


def codecarbon_gpu_files() -> list:
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or spec.origin is None:
        pytest.skip("codecarbon is not installed")
    return sorted(Path(spec.origin).parent.joinpath("core").glob("gpu*.py"))


def test_every_name_of_the_fake_is_real_nvidia_ml_py() -> None:
    real = real_pynvml()
    fake_names = {name for name in dir(fake_pynvml) if re.match(r"^(nvml|NVML_|NVMLError|c_nvml)", name)}
    assert fake_names - set(dir(real)) == set()
    for name in fake_names:
        if name.startswith("NVML_"):
            assert getattr(fake_pynvml, name) == getattr(real, name), name
        if name.startswith("NVMLError_"):
            assert issubclass(getattr(real, name), real.NVMLError)


def test_the_fake_has_every_nvml_call_of_the_plugin_and_of_codecarbon() -> None:
    ours = called_names(*sorted((ROOT / "pytest_energy").rglob("*.py")), ROOT / "benchmarks" / "validate_gpu.py")
    theirs = called_names(*codecarbon_gpu_files())
    assert {"nvmlDeviceGetMemoryInfo", "nvmlDeviceGetComputeRunningProcesses"} <= theirs
    missing = sorted(name for name in ours | theirs if not hasattr(fake_pynvml, name))
    assert missing == []


def test_the_real_field_value_struct_has_the_fakes_fields() -> None:
    real = real_pynvml()
    real_fields = [name for name, _ in real.c_nvmlFieldValue_t._fields_]
    assert real_fields == [f.name for f in fake_pynvml.dataclasses.fields(fake_pynvml.FakeFieldValue)]
    assert {"uiVal", "siVal", "ullVal", "dVal"} <= {name for name, _ in real.c_nvmlValue_t._fields_}


def test_averaged_power_lags_a_load_while_instant_power_follows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, gpus(50.0))
    fake_pynvml.nvmlInit()
    handle = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    time.sleep(0.05)
    fake.drive(0, 350.0)
    time.sleep(0.2)
    averaged = fake_pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    (instant,) = fake_pynvml.nvmlDeviceGetFieldValues(handle, [fake_pynvml.NVML_FI_DEV_POWER_INSTANT])
    assert instant.nvmlReturn == fake_pynvml.NVML_SUCCESS and instant.value.uiVal == 350_000
    assert 50.0 < averaged < 50.0 + 300.0 * 0.6, "a 1 s trailing mean cannot have caught up after ~0.2 s"
    fake_pynvml.nvmlShutdown()


def test_unsupported_fields_answer_in_their_own_return_code(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [FakeGpu(has_instant_power=False), FakeGpu(uuid="GPU-1", c2c_module=True)])
    fake_pynvml.nvmlInit()
    plain, module = (fake_pynvml.nvmlDeviceGetHandleByIndex(i) for i in (0, 1))
    instant, by_module = fake_pynvml.nvmlDeviceGetFieldValues(
        plain, [fake_pynvml.NVML_FI_DEV_POWER_INSTANT, (fake_pynvml.NVML_FI_DEV_POWER_AVERAGE, fake_pynvml.NVML_POWER_SCOPE_MODULE)])
    assert instant.nvmlReturn == by_module.nvmlReturn == fake_pynvml.NVML_ERROR_NOT_SUPPORTED
    (module_power,) = fake_pynvml.nvmlDeviceGetFieldValues(
        module, [(fake_pynvml.NVML_FI_DEV_POWER_INSTANT, fake_pynvml.NVML_POWER_SCOPE_MODULE)])
    assert module_power.nvmlReturn == fake_pynvml.NVML_SUCCESS and module_power.scopeId == 1
    assert fake_pynvml.nvmlDeviceGetC2cModeInfoV(module).isC2cEnabled == 1
    fake_pynvml.nvmlShutdown()


def test_mig_slices_have_their_own_uuids_and_no_power(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [FakeGpu(mig_uuids=("MIG-aaaa", "MIG-bbbb"))])
    fake_pynvml.nvmlInit()
    board = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    assert fake_pynvml.nvmlDeviceGetMigMode(board) == [fake_pynvml.NVML_DEVICE_MIG_ENABLE] * 2
    assert fake_pynvml.nvmlDeviceGetMaxMigDeviceCount(board) == 2
    second = fake_pynvml.nvmlDeviceGetMigDeviceHandleByIndex(board, 1)
    assert fake_pynvml.nvmlDeviceIsMigDeviceHandle(second) and not fake_pynvml.nvmlDeviceIsMigDeviceHandle(board)
    assert fake_pynvml.nvmlDeviceGetUUID(second) == "MIG-bbbb"
    assert fake_pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(second) == board
    assert fake_pynvml.nvmlDeviceGetHandleByUUID("MIG-aaaa") == fake_pynvml.nvmlDeviceGetMigDeviceHandleByIndex(board, 0)
    for call in (fake_pynvml.nvmlDeviceGetTotalEnergyConsumption, fake_pynvml.nvmlDeviceGetPowerUsage):
        with pytest.raises(fake_pynvml.NVMLError_NotSupported):
            call(second)
    fake_pynvml.nvmlShutdown()


def test_a_forbidden_gpu_is_counted_but_cannot_be_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, gpus(100.0) + [FakeGpu(uuid="GPU-x", handle_error=fake_pynvml.NVML_ERROR_NO_PERMISSION)])
    fake_pynvml.nvmlInit()
    assert fake_pynvml.nvmlDeviceGetCount() == 2
    with pytest.raises(fake_pynvml.NVMLError_NoPermission, match="Insufficient Permissions"):
        fake_pynvml.nvmlDeviceGetHandleByIndex(1)
    fake_pynvml.nvmlShutdown()


def test_transient_errors_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, gpus(100.0))
    fake_pynvml.nvmlInit()
    handle = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    fake.fail_next(0, 2)
    for _ in range(2):
        with pytest.raises(fake_pynvml.NVMLError_Unknown):
            fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) >= 0
    fake_pynvml.nvmlShutdown()


def test_call_latency_lets_other_threads_run(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, gpus(100.0, call_latency_s=0.3))
    fake_pynvml.nvmlInit()
    handle = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    ran_meanwhile = threading.Event()
    in_call = threading.Event()

    def other() -> None:
        in_call.wait(5.0)
        ran_meanwhile.set()

    thread = threading.Thread(target=other)
    thread.start()
    in_call.set()
    fake_pynvml.nvmlDeviceGetPowerUsage(handle)
    assert ran_meanwhile.is_set(), "the other thread got no turn during a 0.3 s driver call"
    thread.join(5.0)
    fake_pynvml.nvmlShutdown()


def test_other_processes_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, gpus(100.0, compute_pids=(11, 12), graphics_pids=(13,)))
    fake_pynvml.nvmlInit()
    handle = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    assert [p.pid for p in fake_pynvml.nvmlDeviceGetComputeRunningProcesses(handle)] == [11, 12]
    assert [p.pid for p in fake_pynvml.nvmlDeviceGetGraphicsRunningProcesses(handle)] == [13]
    memory = fake_pynvml.nvmlDeviceGetMemoryInfo(handle)
    assert memory.total == memory.free + memory.used
    fake_pynvml.nvmlShutdown()


def test_codecarbons_gpu_setup_runs_against_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_nvidia = pytest.importorskip("codecarbon.core.gpu_nvidia")
    gpu = pytest.importorskip("codecarbon.core.gpu")
    install(monkeypatch, gpus(120.0, 80.0))
    monkeypatch.setattr(gpu_nvidia, "pynvml", fake_pynvml)
    monkeypatch.setattr(gpu_nvidia, "PYNVML_AVAILABLE", True)
    monkeypatch.setattr(gpu, "PYNVML_AVAILABLE", True)
    devices = gpu.AllGPUDevices()
    try:
        assert [info["name"] for info in devices.get_gpu_static_info()] == ["NVIDIA Fake GPU 0", "NVIDIA Fake GPU 1"]
        details = devices.get_gpu_details()
        assert [d["uuid"] for d in details] == [g.uuid for g in fake_pynvml._current().devices]
    finally:
        while fake_pynvml._current().init_count:
            fake_pynvml.nvmlShutdown()
