"""``benchmarks/validate_gpu.py`` runs on a machine without a GPU, against the fake pynvml.

The script is meant for the first GPU this project is lent; these tests make sure it runs
before then: every step either gives figures (NVML steps against ``tests/fakes``, the
load on the CPU) or records why it could not, and one failing step does not stop the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

from fakes import fake_pynvml
from fakes.fake_pynvml import FakeGpu, install, install_no_driver

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "validate_gpu.py"
STEP_NAMES = ("nvml_facts", "three_ways", "sampling_fallback", "live_cap", "overhead", "macs_on_cuda", "example")

FAKE_PYNVML = textwrap.dedent(
    f"""
    # Found first on PYTHONPATH by the script and the pytest runs it starts: one fake GPU.
    import sys

    import pytest

    sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
    from fakes import fake_pynvml

    fake_pynvml.install(pytest.MonkeyPatch(), [fake_pynvml.FakeGpu(power_w=200.0, counter_update_period_s=0.1)])
    """
)

TINY_EXAMPLE = textwrap.dedent(
    """
    import pytest


    @pytest.mark.energy
    def test_small():
        sum(range(100_000))
    """
)


@pytest.fixture(scope="module")
def validate_gpu() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import validate_gpu
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return validate_gpu


def test_fake_counter_steps_at_its_update_period(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``counter_update_period_s`` the fake counter holds between refreshes, as the driver's does."""
    install(monkeypatch, [FakeGpu(power_w=8.0, counter_update_period_s=0.125)])  # 1 J per step, exact in binary
    fake_pynvml.nvmlInit()
    handle = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    first = fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    time.sleep(0.3)
    second = fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert first % 1000 == 0 and second % 1000 == 0
    assert second - first >= 2000


def test_validate_gpu_runs_on_cpu_against_the_fake_nvml(tmp_path: Path) -> None:
    shim, example = tmp_path / "shim", tmp_path / "example"
    shim.mkdir()
    example.mkdir()
    (shim / "pynvml.py").write_text(FAKE_PYNVML, encoding="utf-8")
    (example / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (example / "test_tiny.py").write_text(TINY_EXAMPLE, encoding="utf-8")
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTEST_", "CUDA_VISIBLE_DEVICES"))}
    environment.update(
        PYTHONPATH=os.pathsep.join([str(shim), str(REPO_ROOT)]),
        CODECARBON_LOG_LEVEL="error",
        TMPDIR=str(tmp_path),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    output = tmp_path / "validation.json"
    command = [
        sys.executable, str(SCRIPT), "--output", str(output), "--example", str(example),
        "--probe-seconds", "0.3", "--load-seconds", "0.5", "--fallback-seconds", "0.3", "--burst-seconds", "0.4",
        "--burst-period", "0.1", "--cap-after", "0.3", "--overhead-tests", "10", "--overhead-runs", "1",
    ]
    completed = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    table = completed.stdout.split("\n\nstep ", 1)[1]
    for name in STEP_NAMES:
        assert f" {name} " in table
    steps = json.loads(output.read_text())["steps"]
    assert list(steps) == list(STEP_NAMES)
    for name, step in steps.items():
        assert step["status"] in ("ok", "skipped"), (name, step)
        assert step["figures"] if step["status"] == "ok" else step["reason"], (name, step)
    facts = steps["nvml_facts"]["figures"]
    assert facts["driver"] == "550.54.15" and facts["counter_supported"] and facts["counter_steps"] > 0
    assert steps["three_ways"]["figures"]["counter_method"] == "nvml-counter"
    assert steps["three_ways"]["figures"]["integral"]["energy_j"] > 0
    assert steps["sampling_fallback"]["figures"]["bursty"]["sampling_method"] == "nvml-power-sampling"
    assert steps["live_cap"]["figures"]["stopped_early"] is True
    assert steps["overhead"]["figures"]["tests"] == 10
    assert steps["macs_on_cuda"] == {**steps["macs_on_cuda"], "status": "skipped", "reason": "no CUDA"}
    ran = steps["example"]["figures"]
    assert ran["exit_code"] == 0 and [test["meter"] for test in ran["tests"]] == ["nvml-counter"]


def test_a_failing_step_is_recorded_and_the_others_still_run(
    validate_gpu: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(context, result):
        raise RuntimeError("the GPU fell off the bus")

    def unavailable(context, result):
        raise validate_gpu.Skip("no NVML: NVML Shared Library Not Found")

    def wrong(context, result):
        result.figures["macs"] = 1
        result.checks["MACs equal"] = False

    def fine(context, result):
        result.figures["figure"] = 2
        result.summary = "figure 2"

    steps = ((1, "broken", broken), (2, "unavailable", unavailable), (3, "wrong", wrong), (4, "fine", fine),
             (5, "unselected", fine))
    monkeypatch.setattr(validate_gpu, "STEPS", steps)
    output = tmp_path / "validation.json"

    assert validate_gpu.main(["--output", str(output), "--steps", "1,2,3,4"]) == 1

    recorded = json.loads(output.read_text())["steps"]
    assert {name: step["status"] for name, step in recorded.items()} == {
        "broken": "error", "unavailable": "skipped", "wrong": "fail", "fine": "ok", "unselected": "skipped"}
    assert recorded["broken"]["reason"] == "RuntimeError: the GPU fell off the bus"
    assert "the GPU fell off the bus" in recorded["broken"]["figures"]["traceback"]
    assert recorded["wrong"]["reason"] == "check failed: MACs equal"
    assert recorded["unselected"]["reason"] == "not selected (--steps)"
    printed = capsys.readouterr().out
    assert "RuntimeError: the GPU fell off the bus" in printed and "figure 2" in printed


def test_steps_past_the_time_budget_are_skipped(validate_gpu: ModuleType, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_gpu, "STEPS", ((1, "late", lambda context, result: None),))
    output = tmp_path / "validation.json"

    assert validate_gpu.main(["--output", str(output), "--steps", "1", "--budget", "1"]) == 0

    assert json.loads(output.read_text())["steps"]["late"]["reason"] == "time budget of 1 s spent"


def test_the_polling_fallback_is_forced_by_hiding_the_counter(validate_gpu: ModuleType,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin's nvml meter opened through ``sampling_meter`` samples power; opened plainly, it reads the counter."""
    install(monkeypatch, [FakeGpu(power_w=100.0)])
    counter, sampling = validate_gpu.nvml_meter(10.0), validate_gpu.sampling_meter(10.0)
    try:
        counted, sampled = counter.window().stop(), sampling.window().stop()
    finally:
        counter.close()
        sampling.close()
    assert validate_gpu.gpu_reading(counted, 0)[1] == "nvml-counter"
    assert validate_gpu.gpu_reading(sampled, 0)[1] == "nvml-power-sampling"
    assert sys.modules["pynvml"].nvmlDeviceGetTotalEnergyConsumption  # the real module is back in place
    assert not isinstance(sys.modules["pynvml"], validate_gpu._CounterHidden)


def test_a_pytest_run_past_its_time_is_an_error_with_its_output(validate_gpu: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"pytest --version timed out after 0 s"):
        validate_gpu.run_pytest(["--version"], tmp_path, timeout=0.001)


def test_the_power_integral_is_power_times_time_at_constant_power(validate_gpu: ModuleType,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [FakeGpu(power_w=150.0)])
    fake_pynvml.nvmlInit()
    integrator = validate_gpu.PowerIntegrator(fake_pynvml, fake_pynvml.nvmlDeviceGetHandleByIndex(0), hz=50.0).start()
    time.sleep(0.2)
    figures = integrator.stop()
    span_s = (figures["samples"] - 1) / figures["rate_hz"]
    assert figures["samples"] >= 3 and figures["error"] is None
    assert figures["energy_j"] == pytest.approx(150.0 * span_s)
    assert figures["min_w"] == figures["max_w"] == 150.0


def test_a_gpu_lost_while_sampling_power_is_reported(validate_gpu: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [FakeGpu(power_w=100.0, fail_after_calls=3)])
    fake_pynvml.nvmlInit()
    handle = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    integrator = validate_gpu.PowerIntegrator(fake_pynvml, handle, hz=100.0).start()
    time.sleep(0.2)
    figures = integrator.stop()
    assert figures["error"] == "NVMLError_GpuIsLost: GPU is lost"
    assert figures["samples"] == 3 and figures["energy_j"] > 0


def test_without_nvml_the_nvml_steps_are_skipped_with_the_reason(
    validate_gpu: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_no_driver(monkeypatch)
    output = tmp_path / "validation.json"

    assert validate_gpu.main(["--output", str(output), "--steps", "1,2,3,4,5,7"]) == 0

    steps = json.loads(output.read_text())["steps"]
    for name in ("nvml_facts", "three_ways", "sampling_fallback", "live_cap", "overhead", "example"):
        assert steps[name]["status"] == "skipped"
        assert steps[name]["reason"].startswith("no NVML: ") and "NVML Shared Library Not Found" in steps[name]["reason"]
