"""One-command validation of pytest-energy on a real NVIDIA GPU, in under five minutes.

Seven steps, each a function whose figures become a row of the printed table and a key of
``validation.json``, written as each step ends; a step that fails records its error and the
others still run. Each step runs on its own thread with its own timeout: one that hangs is
recorded as timed out, by name, and the run goes on (nothing is joined without a timeout).
Steps needing what a bare GPU box lacks (codecarbon, thop, sed_scores_eval) are skipped
with the reason:

  1. NVML facts: driver, device, whether the total-energy counter is supported and
     advances, and its update period (read in a tight loop, the interval between steps).
  2. A fixed matmul load measured three ways in one run: the plugin's ``nvml-counter``
     window, an independent reference (instant power, ``NVML_FI_DEV_POWER_INSTANT``,
     sampled at ``--integral-hz`` >= 20 Hz by a separate process and integrated over the
     window), and CodeCarbon's GPU figure (offline tracker, no output), when installed.
  3. The plugin's power-sampling fallbacks (its NVML source with the counter hidden, so it
     samples instant power; and with the instant field hidden too, so it samples the 1 s
     averaged power) against the counter, on the steady load and on a bursty one.
  4. Live cap overshoot: a pytest run with ``--energy-meter=nvml`` and a cap calibrated to
     be crossed after about ``--cap-after`` seconds of the load.
  5. Per-test overhead of the counter meter: trivial marked tests against ``-p no:energy``.
  6. The example's CRNN: MACs counted with the model on CUDA equal the CPU count, and the
     model stays on CUDA.
  7. The example end to end: ``pytest examples/dcase_sed --energy-meter=nvml`` with
     ``--energy-cap-mode=warn`` (its caps were set on a CPU-only machine): every measured
     test uses ``nvml-counter``; then, where time is left, once more with a cap scaled to
     what the first run measured, which it must pass.

Without CUDA the load runs on the CPU and step 6 is skipped; without NVML the steps that
need it are skipped. Whatever ``import pynvml`` gives is used: the CPU test of this script
puts the fake of ``tests/fakes`` there (through ``PYTHONPATH``), for this process and the
pytest runs it starts. The whole run keeps to ``--budget`` seconds. Exit status: 0 when no
step errored or failed a check, 1 otherwise.

    python benchmarks/validate_gpu.py [--output validation.json] [--steps 1,2,...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import types
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.insert(1, str(REPO_ROOT))  # validate this checkout, even where another copy is installed

from bench_overhead import write_suite  # noqa: E402  (benchmarks/ is sys.path[0] for a script)

from pytest_energy.measure.base import Measurement, SourceUnavailable  # noqa: E402
from pytest_energy.measure.meter import Meter, open_meter  # noqa: E402
from pytest_energy.measure.nvml import COUNTER_UPDATE_PERIOD_S, NvmlSource  # noqa: E402

SCHEMA = "pytest-energy-gpu-validation/1"
KWH_TO_J = 3.6e6
BATCH = 10  # matmuls queued between synchronisations: the load checks the clock this often
CUDA_MATMUL_SIZE, CPU_MATMUL_SIZE = 8192, 256
MIN_STEP_SECONDS = 3.0  # a step is not started with less of the budget left
STEP_TIMEOUTS_S = {1: 20.0, 2: 60.0, 3: 60.0, 4: 60.0, 5: 60.0, 6: 60.0, 7: 150.0}  # each clipped to the budget left


class Skip(Exception):
    """The step cannot run on this machine; the message says why."""


@dataclasses.dataclass
class StepResult:
    """What one step recorded: its status, figures, checks (name -> passed) and a one-line summary."""

    number: int
    name: str
    status: str = "ok"  # ok | fail (a check did not hold) | error | skipped
    seconds: float = 0.0
    summary: str = ""
    figures: Dict[str, Any] = dataclasses.field(default_factory=dict)
    checks: Dict[str, bool] = dataclasses.field(default_factory=dict)
    reason: str = ""

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Context:
    """The options, the time budget, and what earlier steps learnt that later ones use."""

    options: argparse.Namespace
    deadline: float
    load_power_w: Optional[float] = None  # measured by step 2, used by step 4 to set its cap
    hung: List[str] = dataclasses.field(default_factory=list)  # steps left running past their timeout
    _torch: Any = None

    def seconds_left(self) -> float:
        return self.deadline - time.perf_counter()

    def clip(self, seconds: float, reserve: float = 5.0) -> float:
        """``seconds``, shortened when the budget would not leave ``reserve`` after it."""
        return max(0.1, min(seconds, self.seconds_left() - reserve))

    @property
    def torch(self) -> Any:
        if self._torch is None:
            try:
                self._torch = importlib.import_module("torch")
            except ImportError as exc:
                raise Skip(f"torch is not installed ({exc})") from exc
        return self._torch

    @property
    def device(self) -> str:
        return load_device(self.torch)

    def load(self) -> "MatmulLoad":
        return MatmulLoad(self.torch, self.device, self.options.matmul_size)


def load_device(torch: Any) -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# -- the loads -------------------------------------------------------------------------------


class MatmulLoad:
    """A fixed load: square matmuls (float16 on CUDA, float32 on the CPU), synchronised every ``BATCH``."""

    def __init__(self, torch: Any, device: str, size: Optional[int] = None):
        self.torch, self.device = torch, device
        self.size = size or (CUDA_MATMUL_SIZE if device == "cuda" else CPU_MATMUL_SIZE)
        dtype = torch.float16 if device == "cuda" else torch.float32
        generator = torch.Generator(device).manual_seed(0)
        self.a, self.b = (torch.randn(self.size, self.size, generator=generator, device=device, dtype=dtype)
                          for _ in range(2))
        self.out = torch.empty_like(self.a)
        self.iterations = 0
        self.busy_s = 0.0
        self.run(0.0)  # warm-up: library start-up (cuBLAS) stays outside every measurement

    def _synchronize(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def run(self, seconds: float) -> None:
        """Run matmuls for ``seconds`` (at least one batch), returning when the GPU is done."""
        start = time.perf_counter()
        while True:
            for _ in range(BATCH):
                self.torch.matmul(self.a, self.b, out=self.out)
            self._synchronize()
            self.iterations += BATCH
            if time.perf_counter() - start >= seconds:
                break
        self.busy_s += time.perf_counter() - start

    def bursty(self, seconds: float, period: float) -> None:
        """``period`` seconds of load, ``period`` seconds idle, in turns, for ``seconds``."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.run(min(period, end - time.perf_counter()))
            time.sleep(max(0.0, min(period, end - time.perf_counter())))

    def tflops(self) -> float:
        return 2 * self.size**3 * self.iterations / self.busy_s / 1e12 if self.busy_s else 0.0

    def describe(self) -> Dict[str, Any]:
        return {"device": self.device, "matmul_size": self.size, "dtype": str(self.a.dtype).replace("torch.", "")}


class InstantPowerReference:
    """Instant power (``NVML_FI_DEV_POWER_INSTANT``) sampled by a separate process at ``hz``, integrated
    over a window afterwards: a reference that shares neither the plugin's thread nor its method."""

    def __init__(self, index: int, hz: float, seconds: float, directory: Path):
        self.path = directory / "instant-power.txt"
        command = [sys.executable, str(Path(__file__).resolve()), "--sample-power", str(index), "--sample-hz", str(hz),
                   "--sample-seconds", f"{seconds:.1f}", "--sample-out", str(self.path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float) -> None:
        """Return once the first sample (or the sampler's error) is written; RuntimeError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.path.exists() and self.path.read_text().strip():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop(0.0, 0.0)
        raise RuntimeError(f"the reference sampler gave no sample in {timeout:.0f} s: {self._stderr()}")

    def _stderr(self) -> str:
        try:
            return (self.process.communicate(timeout=5.0)[1] or "").strip()[-500:]
        except subprocess.TimeoutExpired:
            return ""

    def stop(self, t0: float, t1: float) -> Dict[str, Any]:
        """Stop the sampler; its energy between monotonic times ``t0`` and ``t1`` by the trapezoid rule."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5.0)
        samples, error = [], None
        for line in self.path.read_text().splitlines() if self.path.exists() else []:
            if line.startswith("error "):
                error = line[len("error "):]
            elif line.strip():
                moment, watts = line.split()
                samples.append((float(moment), float(watts)))
        inside = [sample for sample in samples if t0 <= sample[0] <= t1]
        return {
            "energy_j": integrate(samples, t0, t1),
            "samples_in_window": len(inside),
            "rate_hz": (len(inside) - 1) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else None,
            "min_w": min((w for _, w in inside), default=None),
            "max_w": max((w for _, w in inside), default=None),
            "error": error,
        }


def integrate(samples: Sequence[Tuple[float, float]], t0: float, t1: float) -> Optional[float]:
    """Energy of timed power samples between ``t0`` and ``t1`` (trapezoids; the edges interpolated)."""
    if len(samples) < 2 or samples[0][0] > t0 or samples[-1][0] < t1:
        return None  # the samples do not cover the window

    def at(moment: float) -> float:
        for (ta, wa), (tb, wb) in zip(samples, samples[1:]):
            if ta <= moment <= tb:
                return wa if tb == ta else wa + (wb - wa) * (moment - ta) / (tb - ta)
        return samples[-1][1]

    points = [(t0, at(t0))] + [sample for sample in samples if t0 < sample[0] < t1] + [(t1, at(t1))]
    return sum((wa + wb) / 2.0 * (tb - ta) for (ta, wa), (tb, wb) in zip(points, points[1:]))


def sample_power(index: int, hz: float, seconds: float, out: Path) -> int:
    """The reference sampler's process: ``<monotonic time> <watts>`` lines of instant power, flushed as read."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    period, end = 1.0 / hz, time.monotonic() + seconds
    with out.open("w", encoding="utf-8") as samples:
        tick = time.monotonic()
        while time.monotonic() < end:
            (value,) = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
            if value.nvmlReturn != pynvml.NVML_SUCCESS:
                samples.write(f"error instant power field: {pynvml.NVMLError(value.nvmlReturn)}\n")
                return 1
            samples.write(f"{time.monotonic():.6f} {value.value.uiVal / 1000.0:.3f}\n")
            samples.flush()
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))
    return 0


# -- NVML helpers ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(call: Callable[..., Any], *args: Any) -> Any:
    """A figure NVML may not give on every GPU or driver: None when it does not."""
    try:
        value = call(*args)
    except Exception:
        return None
    return _text(value) if isinstance(value, (bytes, str)) else value


@contextlib.contextmanager
def nvml_gpu() -> Iterator[Tuple[Any, int, Any]]:
    """``(pynvml, index, handle)`` of the first GPU the plugin measures for this process, NVML started."""
    try:
        pynvml = importlib.import_module("pynvml")
    except ImportError as exc:
        raise Skip(f"no NVML: nvidia-ml-py is not installed ({exc})") from exc
    source = NvmlSource()
    try:
        source.open()
    except SourceUnavailable as exc:
        raise Skip(f"no NVML: {exc}") from exc
    gpus = source.describe()["gpus"]
    source.close()
    if not gpus:
        raise Skip("no NVML: no whole GPU to measure (a MIG slice has no energy of its own)")
    pynvml.nvmlInit()
    try:
        yield pynvml, gpus[0]["index"], pynvml.nvmlDeviceGetHandleByIndex(gpus[0]["index"])
    finally:
        pynvml.nvmlShutdown()


def nvml_meter(sampling_hz: float) -> Meter:
    """The plugin's ``--energy-meter=nvml`` meter; Skip when it measures nothing."""
    meter = open_meter("nvml", sampling_hz=sampling_hz)
    if not meter.available:
        raise Skip(f"no NVML: {meter.unavailable.get('nvml', meter.unavailable)}")
    return meter


def require_nvml() -> None:
    """Skip, with the reason, where the plugin's nvml meter cannot measure (for the steps that run pytest)."""
    nvml_meter(10.0).close()


class _CounterHidden(types.ModuleType):
    """``pynvml`` as on a GPU without an energy counter (and, with ``instant=False``, without the
    instant power field): those calls answer ``NotSupported``."""

    def __init__(self, real: types.ModuleType, instant: bool = True):
        super().__init__(real.__name__)
        self._real, self._instant = real, instant

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        raise self._real.NVMLError(self._real.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: Any) -> Any:
        values = self._real.nvmlDeviceGetFieldValues(handle, field_ids)
        if not self._instant:
            for value in values:
                value.nvmlReturn = self._real.NVML_ERROR_NOT_SUPPORTED
        return values


def sampling_meter(sampling_hz: float, instant: bool = True) -> Meter:
    """The plugin's nvml meter forced onto a polling fallback: ``nvml-instant-power-sampling``, or
    with ``instant=False`` ``nvml-averaged-power-sampling``.

    The plugin has no switch for this, so ``pynvml`` is swapped for a view without the
    counter while the source opens; the source keeps using that view afterwards.
    """
    real = importlib.import_module("pynvml")
    sys.modules["pynvml"] = _CounterHidden(real, instant)
    try:
        return nvml_meter(sampling_hz)
    finally:
        sys.modules["pynvml"] = real


def gpu_reading(measurement: Measurement, index: int) -> Tuple[Optional[float], str]:
    """Joules and method of GPU ``index`` in a window of the nvml meter."""
    for reading in measurement.readings:
        if reading.device == f"gpu{index}":
            return reading.joules, reading.method
    return None, "absent"


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    return numerator / denominator if numerator is not None and denominator else None


def _fmt(value: Optional[float], spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


# -- pytest subprocesses ---------------------------------------------------------------------


def plugin_options() -> List[str]:
    """``-p pytest_energy.plugin`` where the package is not installed (no pytest11 entry point)."""
    installed = any(entry.value.startswith("pytest_energy") for entry in _pytest_entry_points())
    return [] if installed else ["-p", "pytest_energy.plugin"]


def _pytest_entry_points() -> Sequence[Any]:
    entry_points = importlib.metadata.entry_points()
    if hasattr(entry_points, "select"):
        return list(entry_points.select(group="pytest11"))
    return list(entry_points.get("pytest11", []))  # Python 3.9


def run_pytest(arguments: Sequence[str], cwd: Path, timeout: float) -> Tuple[subprocess.CompletedProcess, float]:
    """One ``python -m pytest`` run of this checkout; returns it and its wall time."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    environment["CODECARBON_LOG_LEVEL"] = "error"
    command = [sys.executable, "-m", "pytest", *arguments]
    start = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part
                         for part in (exc.output, exc.stderr) if part)
        last = "\n".join(output.strip().splitlines()[-15:])
        raise RuntimeError(f"pytest {' '.join(arguments)} timed out after {timeout:.0f} s; its last output:\n{last}") from None
    return completed, time.perf_counter() - start


def _tail(completed: subprocess.CompletedProcess, lines: int = 15) -> str:
    return "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-lines:])


# -- the steps -------------------------------------------------------------------------------


def step_nvml_facts(context: Context, result: StepResult) -> None:
    """Driver, device, the energy counter: supported, advancing, and how often it steps."""
    with nvml_gpu() as (pynvml, index, handle):
        figures = result.figures
        figures.update(
            driver=_text(pynvml.nvmlSystemGetDriverVersion()),
            nvml_version=_optional(getattr(pynvml, "nvmlSystemGetNVMLVersion", None)),
            cuda_driver_version=_optional(getattr(pynvml, "nvmlSystemGetCudaDriverVersion", None)),
            gpu_count=pynvml.nvmlDeviceGetCount(),
            index=index,
            name=_text(pynvml.nvmlDeviceGetName(handle)),
            power_now_w=_optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),
            power_limit_w=_optional(lambda: pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0),
        )
        try:
            first = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            figures["counter_supported"] = True
        except pynvml.NVMLError as exc:
            figures.update(counter_supported=False, counter_error=str(exc))
            result.checks["energy counter supported"] = False
            result.summary = f"{figures['name']}, driver {figures['driver']}, no energy counter ({exc})"
            return
        figures.update(_counter_steps(pynvml, handle, first, context.options.probe_seconds))
    result.checks["energy counter supported"] = True
    result.checks["energy counter advances"] = figures["counter_steps"] > 0
    result.checks["energy counter never went back"] = not figures["counter_went_back"]
    period = figures["update_period_ms_median"]
    result.summary = (
        f"{figures['name']}, driver {figures['driver']}, counter yes, {figures['counter_steps']} steps in "
        f"{figures['probe_s']:.1f} s, update period {_fmt(period, '.1f')} ms median "
        f"(plugin assumes {COUNTER_UPDATE_PERIOD_S * 1000:.0f} ms)"
    )


def _counter_steps(pynvml: Any, handle: Any, first: int, seconds: float, most: int = 50) -> Dict[str, Any]:
    """Read the counter in a tight loop; the times between changes of its value are its update period."""
    changes: List[float] = []
    reads, last, went_back = 0, first, False
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and len(changes) < most:
        value = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        reads += 1
        if value != last:
            changes.append(time.perf_counter())
            went_back |= value < last
            last = value
    elapsed = time.perf_counter() - start
    intervals = [1000 * (later - earlier) for earlier, later in zip(changes, changes[1:])]
    return {
        "probe_s": elapsed,
        "counter_reads": reads,
        "read_cost_us": 1e6 * elapsed / reads if reads else None,
        "counter_steps": len(changes),
        "counter_went_back": went_back,
        "counter_advance_mj": last - first,
        "update_period_ms_median": statistics.median(intervals) if intervals else None,
        "update_period_ms_min": min(intervals) if intervals else None,
        "update_period_ms_max": max(intervals) if intervals else None,
        "plugin_assumed_period_ms": COUNTER_UPDATE_PERIOD_S * 1000,
    }


def step_three_ways(context: Context, result: StepResult) -> None:
    """One run of the load, measured by the plugin's counter window, an instant-power reference sampled
    by another process, and CodeCarbon (where installed)."""
    options = context.options
    figures = result.figures
    seconds = context.clip(options.load_seconds, reserve=15.0)
    with nvml_gpu() as (_pynvml, index, _handle), tempfile.TemporaryDirectory(prefix="validate-gpu-ref-") as name:
        load = context.load()
        figures["load"] = load.describe()
        meter = nvml_meter(options.sampling_hz)
        reference = InstantPowerReference(index, options.integral_hz, seconds + 20.0, Path(name))
        tracker, codecarbon_note = _codecarbon_tracker()
        try:
            reference.wait_ready(timeout=15.0)
            if tracker is not None:
                tracker.start()
            window = meter.window()
            t0 = time.monotonic()
            load.run(seconds)
            measurement = window.stop()
            t1 = time.monotonic()
        finally:
            codecarbon_j, stop_note = _codecarbon_gpu_j(tracker)  # stopped in any case: its timer thread would keep us alive
            meter.close()
            integral = reference.stop(t0, t1) if "t1" in locals() else reference.stop(0.0, 0.0)
        codecarbon_note = codecarbon_note or stop_note
    counter_j, method = gpu_reading(measurement, index)
    figures.update(
        duration_s=measurement.duration_s,
        counter_j=counter_j,
        counter_method=method,
        counter_mean_w=_ratio(counter_j, measurement.duration_s),
        integral=integral,
        codecarbon_gpu_j=codecarbon_j,
        codecarbon_note=codecarbon_note,
        integral_over_counter=_ratio(integral["energy_j"], counter_j),
        codecarbon_over_counter=_ratio(codecarbon_j, counter_j),
        load_tflops=load.tflops(),
        load_iterations=load.iterations,
    )
    context.load_power_w = figures["counter_mean_w"]
    ratio = figures["integral_over_counter"]
    result.checks["window measured by nvml-counter"] = method == "nvml-counter"
    result.checks["reference sampled instant power without error"] = integral["error"] is None
    result.checks[f"reference sampled at >= 20 Hz ({options.integral_hz:g} Hz asked)"] = (integral["rate_hz"] or 0) >= 20
    # the counter moves in steps of its update period: on a short window that alone can be more than 10 %
    tolerance = max(0.10, 2 * COUNTER_UPDATE_PERIOD_S / measurement.duration_s)
    figures["reference_tolerance"] = tolerance
    result.checks[f"counter within {100 * tolerance:.0f} % of the instant-power reference"] = (
        ratio is not None and abs(ratio - 1) <= tolerance)
    result.summary = (
        f"{_fmt(counter_j, '.1f')} J on the counter in {measurement.duration_s:.1f} s "
        f"({_fmt(figures['counter_mean_w'], '.0f')} W); instant-power reference x{_fmt(ratio)} "
        f"at {_fmt(integral['rate_hz'], '.0f')} Hz; CodeCarbon x{_fmt(figures['codecarbon_over_counter'])}"
        + (f" ({codecarbon_note})" if codecarbon_note else "")
    )


def _codecarbon_tracker() -> Tuple[Any, str]:
    """A CodeCarbon offline tracker that writes nothing, or None and why not."""
    try:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        return OfflineEmissionsTracker(
            country_iso_code="USA", output_methods=[], save_to_file=False, log_level="error",
            measure_power_secs=1, allow_multiple_runs=True,
        ), ""
    except Exception as exc:  # not installed, or CodeCarbon's own start-up failed: the other two figures stand
        return None, f"codecarbon unavailable: {type(exc).__name__}: {exc}"


def _codecarbon_gpu_j(tracker: Any) -> Tuple[Optional[float], str]:
    """Stop the tracker; its GPU energy in joules, or None and why."""
    if tracker is None:
        return None, ""
    try:
        tracker.stop()
        kwh = tracker.final_emissions_data.gpu_energy
    except Exception as exc:
        return None, f"codecarbon failed: {type(exc).__name__}: {exc}"
    if not kwh:
        return None, "codecarbon reported no GPU energy (it found no GPU it can read)"
    return kwh * KWH_TO_J, ""


def step_sampling_fallback(context: Context, result: StepResult) -> None:
    """The plugin's nvml source without the counter (instant power sampled) and without the instant field
    too (the 1 s averaged power sampled) against the counter, on a steady and a bursty load."""
    options = context.options
    figures = result.figures
    with nvml_gpu() as (_, index, _handle):
        load = context.load()
        figures.update(load=load.describe(), sampling_hz=options.sampling_hz)
        meters: Dict[str, Meter] = {}
        try:
            meters["counter"] = nvml_meter(options.sampling_hz)
            meters["instant"] = sampling_meter(options.sampling_hz)
            meters["averaged"] = sampling_meter(options.sampling_hz, instant=False)
            runs = {
                "steady": lambda: load.run(context.clip(options.fallback_seconds, reserve=10.0)),
                "bursty": lambda: load.bursty(context.clip(options.burst_seconds, reserve=10.0), options.burst_period),
            }
            for name, run in runs.items():
                windows = {kind: meter.window() for kind, meter in meters.items()}
                run()
                readings = {kind: gpu_reading(window.stop(), index) for kind, window in windows.items()}
                counter_j = readings["counter"][0]
                figures[name] = {"duration_s": windows["counter"].result.duration_s}  # type: ignore[union-attr]
                for kind, (joules, method) in readings.items():
                    figures[name].update({f"{kind}_j": joules, f"{kind}_method": method,
                                          f"{kind}_over_counter": _ratio(joules, counter_j)})
                expected = {"counter": "nvml-counter", "instant": "nvml-instant-power-sampling",
                            "averaged": "nvml-averaged-power-sampling"}
                for kind, method in expected.items():
                    result.checks[f"{name}: {kind} is {method}"] = readings[kind][1] == method
        finally:
            for meter in meters.values():
                meter.close()
    figures["burst_period_s"] = options.burst_period
    result.summary = (
        f"over the counter at {options.sampling_hz:g} Hz: instant steady {_fmt(figures['steady']['instant_over_counter'])}, "
        f"bursty {_fmt(figures['bursty']['instant_over_counter'])}; 1 s averaged steady "
        f"{_fmt(figures['steady']['averaged_over_counter'])}, bursty {_fmt(figures['bursty']['averaged_over_counter'])} "
        f"({options.burst_period:g} s on/off)"
    )


CAP_TEST = textwrap.dedent(
    """
    import sys

    import pytest
    import torch

    sys.path.insert(0, {benchmarks!r})
    from validate_gpu import MatmulLoad, load_device


    @pytest.fixture(scope="module")
    def load():
        return MatmulLoad(torch, load_device(torch), {size!r})  # warm-up outside the measured call


    @pytest.mark.energy
    def test_runaway(load):
        load.run({seconds!r})
    """
)


def step_live_cap(context: Context, result: StepResult) -> None:
    """A pytest run whose test would spend far past a cap set to be crossed after ``--cap-after`` s."""
    options = context.options
    require_nvml()
    power = context.load_power_w or _calibrate_power(context)
    cap_j = power * options.cap_after
    run_for = 3 * options.cap_after + 5
    with tempfile.TemporaryDirectory(prefix="validate-gpu-cap-") as name:
        directory = Path(name)
        (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        source = CAP_TEST.format(benchmarks=str(BENCHMARKS), size=options.matmul_size, seconds=run_for)
        (directory / "test_runaway.py").write_text(source, encoding="utf-8")
        report_path = directory / "energy.json"
        arguments = [*plugin_options(), "-q", "-p", "no:cacheprovider", "--energy-meter=nvml",
                     f"--energy-cap={cap_j:.3f}J", f"--energy-json={report_path}", "test_runaway.py"]
        completed, wall = run_pytest(arguments, directory, timeout=context.clip(run_for + 60, reserve=2))
        if not report_path.exists():
            raise RuntimeError(f"no energy report (exit {completed.returncode}):\n{_tail(completed)}")
        test = json.loads(report_path.read_text())["tests"][0]
    energy, duration = test["energy_j"], test["duration_s"]
    stopped = test.get("stopped_early") or {}
    crossing_s = cap_j / (energy / duration) if energy and duration else None
    result.figures.update(
        calibrated_power_w=power,
        cap_after_s=options.cap_after,
        cap_j=cap_j,
        energy_j=energy,
        meter=test["meter"],
        duration_s=duration,
        overshoot_pct=100 * (energy - cap_j) / cap_j if energy is not None else None,
        crossing_s=crossing_s,
        seconds_past=duration - crossing_s if crossing_s is not None else None,
        watchdog_crossed_at_s=stopped.get("at_s"),
        stopped_early=bool(stopped),
        outcome=test["outcome"],
        exit_code=completed.returncode,
        wall_s=wall,
        would_run_s=run_for,
    )
    result.checks["stopped early"] = bool(stopped)
    result.checks["test failed on its cap"] = test["outcome"] == "failed"
    result.checks["measured by nvml-counter"] = test["meter"] == "nvml-counter"
    figures = result.figures
    result.summary = (
        f"cap {cap_j:.1f} J (~{options.cap_after:g} s): measured {_fmt(energy, '.1f')} J, overshoot "
        f"{_fmt(figures['overshoot_pct'], '.2f')} %, {_fmt(figures['seconds_past'], '.2f')} s past, "
        f"stopped at {_fmt(figures['watchdog_crossed_at_s'], '.2f')} s"
    )


def _calibrate_power(context: Context) -> float:
    """The load's mean power on the counter, from a short run, when step 2 did not give it."""
    load = context.load()
    meter = nvml_meter(context.options.sampling_hz)
    try:
        window = meter.window()
        load.run(context.clip(2.0))
        measurement = window.stop()
    finally:
        meter.close()
    if not measurement.total_j:
        raise RuntimeError("the nvml meter measured no energy on the load")
    return measurement.total_j / measurement.duration_s


def step_overhead(context: Context, result: StepResult) -> None:
    """Trivial tests, all marked, with the counter meter, against the same count with ``-p no:energy``."""
    options = context.options
    tests = options.overhead_tests
    require_nvml()
    variants = {
        "no_plugin": ("plain", ["-p", "no:energy"], ""),
        "nvml": ("marked", [*plugin_options(), "--energy-meter=nvml"], "nvml-counter"),
    }
    timings: Dict[str, List[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="validate-gpu-overhead-") as name:
        root = Path(name)
        write_suite(root / "plain", tests, marked=False)
        write_suite(root / "marked", tests, marked=True)
        for round_number in range(options.overhead_runs + 1):  # round 0 warms the caches and is not kept
            for variant, (suite, arguments, expect) in variants.items():
                completed, wall = run_pytest(["-q", "-p", "no:cacheprovider", *arguments], root / suite,
                                             timeout=context.clip(120, reserve=2))
                if completed.returncode != 0 or f"{tests} passed" not in completed.stdout or expect not in completed.stdout:
                    raise RuntimeError(f"{variant}: unexpected run (exit {completed.returncode}):\n{_tail(completed)}")
                if round_number:
                    timings[variant].append(wall)
    best = {variant: min(values) for variant, values in timings.items()}
    added_ms = 1000 * (best["nvml"] - best["no_plugin"]) / tests
    result.figures.update(
        tests=tests,
        runs=options.overhead_runs,
        best_no_plugin_s=best["no_plugin"],
        best_nvml_s=best["nvml"],
        all_runs_s=timings,
        ratio=best["nvml"] / best["no_plugin"],
        added_ms_per_test=added_ms,
    )
    result.summary = (
        f"{tests} marked tests: {best['nvml']:.2f} s with nvml vs {best['no_plugin']:.2f} s without the plugin "
        f"(x{result.figures['ratio']:.2f}, {added_ms:+.2f} ms per test, best of {options.overhead_runs})"
    )


def step_macs_on_cuda(context: Context, result: StepResult) -> None:
    """MACs counted with models on CUDA against the CPU count of the same models, models left on CUDA.

    A model without recurrent layers is counted on CUDA itself; the example's CRNN (a GRU, which
    cuDNN runs as one operator without a FLOP formula) on a CPU copy, which its note must say. The
    CRNN's MACs as FlopCounterMode sees them on CUDA directly are recorded too: the gap the CPU copy avoids.
    """
    torch = context.torch
    if not torch.cuda.is_available():
        raise Skip("no CUDA")
    from pytest_energy.account.complexity import MissingExtraError, count_complexity

    sys.path.insert(0, str(Path(context.options.example).resolve()))
    try:
        from sed.data import CLIP_SECONDS, SAMPLE_RATE
        from sed.features import n_frames
        from sed.model import CRNN
        from sed.recipes import SYSTEM
    except ImportError as exc:
        raise Skip(f"the example's model cannot be imported ({exc})") from exc
    shape = (1, SYSTEM.model.n_mels, n_frames(int(CLIP_SECONDS * SAMPLE_RATE)))
    plain = torch.nn.Sequential(torch.nn.Conv1d(SYSTEM.model.n_mels, 64, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv1d(64, 32, 3, padding=1))
    counts: Dict[str, Any] = {}
    try:
        for name, model in (("plain", plain), ("crnn", CRNN(SYSTEM.model))):
            on_cpu = count_complexity(model, torch.zeros(shape))
            model = model.cuda()
            on_cuda = count_complexity(model, torch.zeros(shape, device="cuda"))
            counts[name] = (on_cpu, on_cuda, sorted({str(p.device) for p in model.parameters()}), model)
    except MissingExtraError as exc:
        raise Skip(str(exc)) from exc
    direct = _flop_counter_macs(torch, counts["crnn"][3], torch.zeros(shape, device="cuda"))
    for name, (on_cpu, on_cuda, devices, _) in counts.items():
        result.figures[name] = {"cpu": on_cpu.to_json(), "cuda": on_cuda.to_json(), "cuda_notes": list(on_cuda.notes),
                                "parameter_devices_after": devices}
        result.checks[f"{name}: MACs equal"] = on_cpu.macs == on_cuda.macs > 0
        result.checks[f"{name}: parameters equal"] = on_cpu.params == on_cuda.params
        result.checks[f"{name}: model stays on CUDA"] = all(device.startswith("cuda") for device in devices)
    result.figures.update(input_shape=list(shape), crnn_flop_counter_on_cuda_macs=direct)
    result.checks["plain: counted on CUDA itself"] = not counts["plain"][1].notes
    result.checks["crnn: the note says why it was counted on the CPU"] = any("cuDNN" in n for n in counts["crnn"][1].notes)
    result.summary = (
        f"MACs cpu/cuda: plain {counts['plain'][0].macs:,}/{counts['plain'][1].macs:,}, CRNN "
        f"{counts['crnn'][0].macs:,}/{counts['crnn'][1].macs:,} (FlopCounterMode on CUDA directly: {direct:,})"
    )


def _flop_counter_macs(torch: Any, model: Any, example: Any) -> int:
    """FlopCounterMode's MACs over one forward pass of ``model`` where it is, as a user running it there would see."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(example)
    return counter.get_total_flops() // 2


def step_example(context: Context, result: StepResult) -> None:
    """``pytest <example> --energy-meter=nvml --energy-cap-mode=warn``; then, with the time left, the same
    with a cap scaled to what that run measured, which it must pass."""
    example = Path(context.options.example).resolve()
    missing = [name for name in ("sed_scores_eval", "thop") if (example / "sed").is_dir() and not _importable(name)]
    if missing:
        raise Skip(f"the example needs {', '.join(missing)}: pip install -e '.[macs]' sed_scores_eval")
    require_nvml()
    with tempfile.TemporaryDirectory(prefix="validate-gpu-example-") as name:
        report_path = Path(name) / "energy.json"
        arguments = [*plugin_options(), str(example), "--energy-meter=nvml", "--energy-cap-mode=warn",
                     f"--energy-json={report_path}"]
        completed, wall = run_pytest(arguments, REPO_ROOT, timeout=context.clip(600, reserve=1))
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        result.figures.update(exit_code=completed.returncode, wall_s=wall, output_tail=_tail(completed, 25))
        result.checks["exit code 0 (caps only warn)"] = completed.returncode == 0
        result.checks["JSON report written"] = report is not None
        if report is None:
            result.summary = f"exit {completed.returncode} in {wall:.1f} s, no JSON report"
            return
        tests = [
            {key: test.get(key) for key in ("nodeid", "phase", "outcome", "duration_s", "energy_j", "meter", "verdict",
                                            "cap_j", "macs", "params", "scores")}
            | {"gpu_j": (test.get("components") or {}).get("gpu", {}).get("energy_j")}
            for test in report["tests"]
        ]
        result.figures.update(tests=tests, totals=report.get("totals"), notices=report.get("notices"),
                              normalization=report.get("normalization"))
        measured = [test for test in tests if test["energy_j"] is not None]
        result.checks["every measured test used nvml-counter"] = bool(measured) and all(
            test["meter"] == "nvml-counter" for test in measured)
        scaled = _scaled_cap_run(context, result, example, measured, wall, Path(name))
    result.summary = (
        f"exit {completed.returncode} in {wall:.1f} s; {len(measured)}/{len(tests)} tests measured, "
        + ", ".join(f"{test['nodeid'].split('::')[-1]} {test['energy_j']:.1f} J" for test in measured) + "; " + scaled
    )


def _scaled_cap_run(context: Context, result: StepResult, example: Path, measured: List[Dict[str, Any]], first_wall: float,
                    directory: Path) -> str:
    """Run the example again with one cap at 1.5x the most any test measured (1 J at least): it must pass."""
    if not measured:
        return "no scaled-cap run (nothing measured)"
    if context.seconds_left() < 1.3 * first_wall + 10.0:
        result.figures["scaled_cap_run"] = f"skipped: {context.seconds_left():.0f} s left, the first run took {first_wall:.0f} s"
        return "no scaled-cap run (no time left)"
    cap_j = max(1.5 * max(test["energy_j"] for test in measured), 1.0)
    arguments = [*plugin_options(), str(example), "--energy-meter=nvml", f"--energy-cap={cap_j:.3f}J",
                 f"--energy-json={directory / 'scaled.json'}"]
    completed, wall = run_pytest(arguments, REPO_ROOT, timeout=context.clip(1.5 * first_wall + 30.0, reserve=1))
    result.figures["scaled_cap_run"] = {"cap_j": cap_j, "exit_code": completed.returncode, "wall_s": wall,
                                        "output_tail": _tail(completed, 15)}
    result.checks["passes with a cap scaled to what it measured"] = completed.returncode == 0
    return f"passes at a {cap_j:.1f} J cap: {completed.returncode == 0}"


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


STEPS: Tuple[Tuple[int, str, Callable[[Context, StepResult], None]], ...] = (
    (1, "nvml_facts", step_nvml_facts),
    (2, "three_ways", step_three_ways),
    (3, "sampling_fallback", step_sampling_fallback),
    (4, "live_cap", step_live_cap),
    (5, "overhead", step_overhead),
    (6, "macs_on_cuda", step_macs_on_cuda),
    (7, "example", step_example),
)


# -- running, the table, the JSON ------------------------------------------------------------


def run_step(context: Context, number: int, name: str, step: Callable[[Context, StepResult], None]) -> StepResult:
    """Run one step on its own thread, for at most its timeout; whatever it raises is recorded in its
    result, never propagated. A step past its timeout is recorded as such and left behind (a daemon thread)."""
    result = StepResult(number, name)
    if context.seconds_left() < MIN_STEP_SECONDS:
        result.status, result.reason = "skipped", f"time budget of {context.options.budget:g} s spent"
        return result
    timeout = max(1.0, min(context.options.step_timeouts.get(number, 60.0), context.seconds_left()))
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            step(context, result)
        except BaseException as exc:  # recorded below: one failing step must not stop the others
            outcome["error"] = exc
            outcome["traceback"] = traceback.format_exc(limit=6)

    start = time.perf_counter()
    worker = threading.Thread(target=run, name=f"validate-gpu-step-{number}", daemon=True)
    worker.start()
    worker.join(timeout)
    result.seconds = time.perf_counter() - start
    if worker.is_alive():
        context.hung.append(name)
        result.status, result.reason = "error", f"timed out after {timeout:.0f} s: step {number} {name} still running"
        return result
    error = outcome.get("error")
    if isinstance(error, Skip):
        result.status, result.reason = "skipped", str(error)
    elif isinstance(error, KeyboardInterrupt):
        raise error
    elif error is not None:
        result.status, result.reason = "error", f"{type(error).__name__}: {error}"
        result.figures["traceback"] = outcome["traceback"]
    elif not all(result.checks.values()):
        result.status = "fail"
        result.reason = "check failed: " + "; ".join(name for name, passed in result.checks.items() if not passed)
    return result


def environment_facts() -> Dict[str, Any]:
    facts: Dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    for distribution in ("pytest-energy", "torch", "nvidia-ml-py", "codecarbon", "ultralytics-thop", "pytest"):
        try:
            facts[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            facts[distribution] = None
    facts["pynvml_module"] = getattr(sys.modules.get("pynvml"), "__file__", None)
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch_cuda"] = torch.version.cuda
        facts["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            facts["cuda_device"] = torch.cuda.get_device_name(0)
    return facts


def write_json(path: Path, document: Dict[str, Any]) -> None:
    """Write atomically, so a run killed mid-step leaves the last complete document."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)


def table(results: Sequence[StepResult]) -> str:
    lines = [f"{'step':<4} {'name':<18} {'status':<8} {'time':>7}  figures"]
    for result in results:
        text = result.summary if result.status in ("ok", "fail") else result.reason
        lines.append(f"{result.number:<4} {result.name:<18} {result.status:<8} {result.seconds:6.1f}s  {text}")
        if result.status == "fail":
            lines.append(f"{'':<42}{result.reason}")
    return "\n".join(lines)


def parse_options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="validation.json", help="the JSON to write (default ./validation.json)")
    parser.add_argument("--steps", default="1,2,3,4,5,6,7", help="the steps to run, by number (others: skipped)")
    parser.add_argument("--budget", type=float, default=270.0,
                        help="seconds for the whole run; later steps are shortened or skipped")
    parser.add_argument("--load-seconds", type=float, default=20.0, help="step 2: seconds of steady load")
    parser.add_argument("--fallback-seconds", type=float, default=10.0, help="step 3: seconds of steady load")
    parser.add_argument("--burst-seconds", type=float, default=12.0, help="step 3: seconds of bursty load")
    parser.add_argument("--burst-period", type=float, default=1.0, help="step 3: seconds on, then as many off")
    parser.add_argument("--cap-after", type=float, default=10.0, help="step 4: seconds of load the cap allows")
    parser.add_argument("--overhead-tests", type=int, default=300, help="step 5: trivial tests per run")
    parser.add_argument("--overhead-runs", type=int, default=2, help="step 5: timed runs per variant, best kept")
    parser.add_argument("--probe-seconds", type=float, default=2.0, help="step 1: seconds of tight counter reads")
    parser.add_argument("--sampling-hz", type=float, default=10.0, help="the plugin's power sampling rate (its default: 10)")
    parser.add_argument("--integral-hz", type=float, default=50.0, help="step 2: rate of the instant-power reference")
    parser.add_argument("--step-timeout", action="append", default=[], metavar="N=SECONDS",
                        help="a step's own timeout (defaults: " + ", ".join(f"{n}={t:g}" for n, t in STEP_TIMEOUTS_S.items()) + ")")
    parser.add_argument("--sample-power", type=int, default=None, help=argparse.SUPPRESS)  # the reference's process
    parser.add_argument("--sample-hz", type=float, default=50.0, help=argparse.SUPPRESS)
    parser.add_argument("--sample-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--sample-out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--matmul-size", type=int, default=None,
                        help=f"matmul side (default {CUDA_MATMUL_SIZE} on CUDA, {CPU_MATMUL_SIZE} on the CPU)")
    parser.add_argument("--example", default=str(REPO_ROOT / "examples" / "dcase_sed"), help="steps 6 and 7: the example")
    options = parser.parse_args(argv)
    options.step_timeouts = dict(STEP_TIMEOUTS_S)
    for item in options.step_timeout:
        number, _, seconds = item.partition("=")
        options.step_timeouts[int(number)] = float(seconds)
    return options


def main(argv: Sequence[str]) -> int:
    options = parse_options(argv)
    if options.sample_power is not None:
        return sample_power(options.sample_power, options.sample_hz, options.sample_seconds, Path(options.sample_out))
    selected = {int(part) for part in options.steps.split(",") if part.strip()}
    context = Context(options, deadline=time.perf_counter() + options.budget)
    output = Path(options.output)
    document: Dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": [sys.executable, *sys.argv],
        "options": vars(options),
        "environment": environment_facts(),
        "steps": {},
    }
    results: List[StepResult] = []
    start = time.perf_counter()
    for number, name, step in STEPS:
        if number in selected:
            result = run_step(context, number, name, step)
        else:
            result = StepResult(number, name, "skipped", reason="not selected (--steps)")
        results.append(result)
        print(f"[{time.perf_counter() - start:6.1f}s] step {number} {name}: {result.status}", flush=True)
        document["steps"][name] = result.to_json()
        document["environment"] = environment_facts()
        document["total_s"] = time.perf_counter() - start
        write_json(output, document)
    print()
    print(table(results))
    print(f"\n{len(results)} steps in {time.perf_counter() - start:.1f} s; figures in {output}")
    if context.hung:
        print(f"steps still running past their timeout: {', '.join(context.hung)}", flush=True)
    return 1 if any(result.status in ("error", "fail") for result in results) else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # a step left hanging (a daemon thread, a stuck driver call) must not hold the exit
