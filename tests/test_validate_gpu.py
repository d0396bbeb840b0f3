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
        "--probe-seconds", "0.3", "--load-seconds", "1.0", "--fallback-seconds", "0.3", "--burst-seconds", "0.4",
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
    three_ways = steps["three_ways"]["figures"]
    assert three_ways["counter_method"] == "nvml-counter"
    assert three_ways["integral"]["rate_hz"] >= 20 and three_ways["integral"]["error"] is None
    assert abs(three_ways["integral_over_counter"] - 1) <= three_ways["reference_tolerance"], "the other process's integral"
    bursty = steps["sampling_fallback"]["figures"]["bursty"]
    assert (bursty["instant_method"], bursty["averaged_method"]) == ("nvml-instant-power-sampling", "nvml-averaged-power-sampling")
    assert steps["live_cap"]["figures"]["stopped_early"] is True
    assert steps["overhead"]["figures"]["tests"] == 10
    assert steps["macs_on_cuda"] == {**steps["macs_on_cuda"], "status": "skipped", "reason": "no CUDA"}
    ran = steps["example"]["figures"]
    assert ran["exit_code"] == 0 and [test["meter"] for test in ran["tests"]] == ["nvml-counter"]
    assert ran["scaled_cap_run"]["exit_code"] == 0 and ran["scaled_cap_run"]["cap_j"] > 0


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


def test_the_polling_fallbacks_are_forced_by_hiding_the_counter(validate_gpu: ModuleType,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened through ``sampling_meter`` the plugin's nvml meter samples instant power, or the averaged
    power with the instant field hidden too; opened plainly, it reads the counter."""
    install(monkeypatch, [FakeGpu(power_w=100.0)])
    meters = [validate_gpu.nvml_meter(10.0), validate_gpu.sampling_meter(10.0), validate_gpu.sampling_meter(10.0, instant=False)]
    try:
        methods = [validate_gpu.gpu_reading(meter.window().stop(), 0)[1] for meter in meters]
    finally:
        for meter in meters:
            meter.close()
    assert methods == ["nvml-counter", "nvml-instant-power-sampling", "nvml-averaged-power-sampling"]
    assert sys.modules["pynvml"].nvmlDeviceGetTotalEnergyConsumption  # the real module is back in place
    assert not isinstance(sys.modules["pynvml"], validate_gpu._CounterHidden)


def test_a_hanging_step_is_named_and_the_others_still_run(
    validate_gpu: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = __import__("threading").Event()

    def hangs(context, result):
        release.wait(30.0)

    def fine(context, result):
        result.summary = "done"

    monkeypatch.setattr(validate_gpu, "STEPS", ((1, "hangs", hangs), (2, "fine", fine)))
    output = tmp_path / "validation.json"
    try:
        assert validate_gpu.main(["--output", str(output), "--steps", "1,2", "--step-timeout", "1=0.5"]) == 1
    finally:
        release.set()
    recorded = json.loads(output.read_text())["steps"]
    assert recorded["hangs"]["status"] == "error" and "step 1 hangs still running" in recorded["hangs"]["reason"]
    assert recorded["fine"]["status"] == "ok"


def test_the_example_step_is_skipped_without_its_extras(
    validate_gpu: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "example" / "sed").mkdir(parents=True)
    monkeypatch.setattr(validate_gpu, "_importable", lambda name: name != "sed_scores_eval")
    output = tmp_path / "validation.json"
    assert validate_gpu.main(["--output", str(output), "--steps", "7", "--example", str(tmp_path / "example")]) == 0
    step = json.loads(output.read_text())["steps"]["example"]
    assert step["status"] == "skipped" and "sed_scores_eval" in step["reason"]


@pytest.mark.parametrize(
    "samples, t0, t1, expected",
    [
        ([(0.0, 100.0), (1.0, 100.0), (2.0, 100.0)], 0.5, 1.5, 100.0),
        ([(0.0, 0.0), (1.0, 100.0)], 0.0, 1.0, 50.0),
        ([(0.0, 0.0), (1.0, 100.0)], 0.5, 1.0, 0.5 * (50.0 + 100.0) / 2),  # the edge interpolated
        ([(0.5, 100.0), (1.0, 100.0)], 0.0, 1.0, None),  # the samples do not cover the window
    ],
)
def test_the_reference_integral(validate_gpu: ModuleType, samples, t0, t1, expected) -> None:
    assert validate_gpu.integrate(samples, t0, t1) == (pytest.approx(expected) if expected is not None else None)


def test_a_pytest_run_past_its_time_is_an_error_with_its_output(validate_gpu: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"pytest --version timed out after 0 s"):
        validate_gpu.run_pytest(["--version"], tmp_path, timeout=0.001)


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
