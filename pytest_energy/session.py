"""``EnergySession``: a session's measurements and what is decided and reported about them, without pytest.

Each measured test goes one way: its spec (marker and settings, a ``TestState``) ->
``start_test``/``stop_test`` (a ``Measurement`` from a window on the meter, watched
live against its limits) -> ``finish_test`` (accounting, the limits' verdict, a
``Record``). The controller collects the records (``receive`` under xdist), accounts
them once (normalised energies, EW scores) and writes the reports. ``session_plugin.py``
only translates pytest's hooks into these calls, as pytest-benchmark's plugin does for
its ``BenchmarkSession``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .account.baseline_cache import BaselineCacheError
from .account.ew import account
from .account.normalize import Normalization
from .account.record import Record, repeated_energy_j
from .account.repeats import account_work_and_emissions, repeats_entry
from .baseline_plan import BaselinePlan
from .config import ConfigError, EnergyMarker, Settings
from .decide.limits import (CapFailure, Figures, Limits, StoredComparison, check, compare_with_stored, complexity_verdict,
                            live_limit, lower_bound_reasons, verdict_of)
from .decide.noise import NoiseFloor, floors
from .fixture import TestState, record_complexity
from .measure.base import Measurement
from .measure.children import child_pids, still_running, terminate
from .measure.interrupts import signals_deferred
from .measure.meter import OTHER_GPU_PROCESSES, OTHER_GPU_PROCESSES_NOTICE, Meter
from .measure.overlap import Activity, ActivityMark, SharedTotal, claim_machine, overlap_warning
from .measure.rank_exchange import ExchangeUnavailable, RankExchange
from .measure.ranks import LaunchError, detect
from .measure.watchdog import MainThreadStopper, Watchdog
from .report import github
from .report.ci_formats import benchmark_entries, openmetrics_text
from .report.gate import comparison_lines, emissions_lines
from .report.json_report import Checkpoints, ReportWriter, build_document
from .report.junit import add_accounted_properties
from .report.terminal import accounting_lines, caveats, comparison_table, condensed, summary_table
from .store.files import NotARegularFileError, ReportInUseError, claim_report, regular_file_target, write_text_atomically
from .store.runs import RunStore, RunStoreError, StoredRun, commit_info
from .units import format_energy

Location = Tuple[str, int]  # a test's file and 1-based line


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished test's record and, when a limit fails it now, what it fails with."""

    record: Record
    fail_with: Optional[str] = None


def spent_j(state: TestState) -> Optional[float]:
    """What a finished test spent in the session: every measured repeat's figure, or its one window's."""
    repeats = state.extra.get("repeats")
    if repeats:
        return sum(energy or 0.0 for energy in repeats["energy_j"])
    return state.measurement.total_j if state.measurement else None


class EnergySession:
    """One session's meter, records, baseline, limits and reports.

    ``worker_id`` is set on an xdist worker, which measures and sends its records to the
    controller; ``session_total`` is then the file where workers count the session's energy.
    """

    def __init__(self, settings: Settings, rootpath: Path, invocation_dir: Path, worker_id: Optional[str] = None,
                 session_total: Optional[str] = None):
        self.settings = settings
        self.rootpath = rootpath
        self._invocation_dir = invocation_dir
        self.worker_id = worker_id
        self.records: List[Record] = []
        self.environment: Dict[str, Any] = {}
        self.notices: Dict[str, None] = {}  # ordered and without repeats
        self._unsent_notices: List[str] = []  # on a worker: not yet sent to the controller
        self._meter: Optional[Meter] = None
        self._running: Optional[Tuple[str, Location, TestState]] = None  # the test in its call phase
        self._own_energy_j = 0.0  # measured in this process so far
        self._stopper = MainThreadStopper()
        self._stop_message: Optional[str] = None  # what the watchdog raised in the running test
        self._machine_lock: Any = None
        self._machine_shared = False  # another session held the machine lock when this one started measuring
        self._activity = Activity()
        self._activity_failed = False  # the activity file was unusable once: not used again
        self._baseline_marks: Dict[str, Optional[ActivityMark]] = {}
        self._session_total = SharedTotal(Path(session_total)) if session_total else None
        self._session_total_sent_j = 0.0  # how much of this worker's energy is in the shared total
        self.baseline = BaselinePlan(settings)
        self.normalization: Optional[Normalization] = None
        self._baseline_json: List[Dict[str, Any]] = []  # on the controller: the targets as a worker last saw them
        self._accounted: Tuple[Optional[Normalization], List[Record]] = (None, [])  # see accounted_records
        self._json_error: Optional[str] = None  # why the last write of the JSON report failed
        self._json_tests: Optional[int] = None  # how many tests the report file holds, once one write succeeded
        self._finished = False  # the final report is being written: it says "complete": true
        self._store_error: Optional[str] = None  # why --energy-autosave could not store this run
        self._report: Optional[ReportWriter] = None
        self._report_lock: Any = None
        self._checkpoints: Optional[Checkpoints] = None
        self.saved_run: Optional[Path] = None
        try:
            self.launch = detect()  # a torchrun or srun launch: the ranks combine each test's figure
        except LaunchError as exc:
            raise ConfigError(f"cannot tell this process's rank: {exc}") from None
        self._ranks: Optional[RankExchange] = None
        if settings.json and worker_id is None and self.writes_reports:
            path = Path(invocation_dir, settings.json)
            try:
                regular_file_target(path)
            except NotARegularFileError as exc:
                raise ConfigError(f"--energy-json: {exc}") from None
            self._report = ReportWriter(path)
            self._checkpoints = Checkpoints(self.write_json)
        self._stored_run: Optional[StoredRun] = None
        self._floors: Optional[Dict[str, NoiseFloor]] = None
        self._compare_note = ""
        self._compare_latest = False  # the latest run of this hardware is loaded once the fingerprint is known
        gated = settings.compare_fail is not None or settings.macs_compare_fail is not None
        compare = settings.compare or ("latest" if gated else None)
        if compare == "latest" and not self.run_store().has_runs():
            self._compare_note = f"no stored run yet under {settings.storage}: nothing compared this time"
        elif compare == "latest":
            self._compare_latest = True
        elif compare is not None:
            try:
                self._stored_run = StoredRun.from_document(*self.run_store().load(compare))
            except RunStoreError as exc:
                raise ConfigError(str(exc)) from None
        if self._report is not None:  # last: a usage error above leaves no lock held
            try:
                self._report_lock = claim_report(self._report.path)
            except ReportInUseError as exc:
                raise ConfigError(f"--energy-json: {exc}; give each session its own report path") from None

    @property
    def is_worker(self) -> bool:
        return self.worker_id is not None

    @property
    def launch_rank(self) -> Optional[int]:
        """This process's global rank in a distributed launch; None outside one."""
        return None if self.launch is None else self.launch.rank

    @property
    def writes_reports(self) -> bool:
        """Whether this process writes the reports: not an xdist worker, and global rank 0 of a launch."""
        return not self.is_worker and (self.launch is None or self.launch.rank == 0)

    def notice(self, message: str) -> None:
        """Something that makes the figures incomplete, shown once in the energy summary.

        Not a Python warning: a project's ``filterwarnings = error`` must not turn the
        plugin's own notices into test failures.
        """
        if message not in self.notices:
            self.notices[message] = None
            if self.is_worker:
                self._unsent_notices.append(message)

    def run_store(self) -> RunStore:
        return RunStore(Path(self.rootpath, self.settings.storage))

    def stored_run(self) -> Optional[StoredRun]:
        """The run compared with; the latest of this hardware is looked up once its fingerprint is known."""
        fingerprint = self.environment.get("fingerprint")
        if self._compare_latest and fingerprint:
            self._compare_latest = False
            try:
                path, document, skipped = self.run_store().latest(fingerprint)
            except RunStoreError as exc:
                self._compare_note = f"{exc}: nothing compared this time"
            else:
                self._stored_run = StoredRun.from_document(path, document)
                for message in skipped:
                    self.notice(message)
        return self._stored_run

    def limits(self) -> Limits:
        settings = self.settings
        auto = settings.compare_fail == "auto"
        return Limits(settings.unit, settings.normalized, settings.session_cap_j, settings.macs_cap, settings.params_cap,
                      None if auto else settings.compare_fail, self.stored_run(), settings.cap_on,  # type: ignore[arg-type]
                      auto, self.noise_floors(), settings.macs_compare_fail)

    def noise_floors(self) -> Dict[str, NoiseFloor]:
        """Each test's noise on this machine, from its stored runs: read once, when a regression limit is set."""
        stored = self._stored_run
        if self._floors is None and stored is not None and stored.fingerprint and self.settings.compare_fail is not None:
            self._floors = floors(self.run_store().recent(stored.fingerprint))
        return self._floors or {}

    # -- measuring ---------------------------------------------------------------------------
    def meter(self) -> Meter:
        if self._meter is None:
            from .measure.machine import environment
            from .measure.meter import open_meter

            self._meter = open_meter(self.settings.meter, self.settings.sampling_hz)
            if self.launch is not None and self._meter.available:
                try:
                    self._ranks = RankExchange(self.launch, self.settings.rank_port, self.settings.rank_timeout_s,
                                               self._meter.cuda_gpus())
                except ExchangeUnavailable as exc:
                    self.notice(f"{exc}: this rank's figures count every device it sees")
            if not self.is_worker and self._meter.available and (self.launch is None or self.launch.counts_node_wide()):
                self._machine_lock, overlap = claim_machine()
                if overlap:
                    self._machine_shared = True
                    self.notice(overlap)
            self.environment = environment(self._meter.describe())
            if not self._meter.available and self.settings.meter != "none":
                reasons = "; ".join(f"{name}: {why}" for name, why in self._meter.unavailable.items())
                self.notice(f"no energy meter works here, figures are unmeasured ({reasons})")
        return self._meter

    def test_state(self, marker: Optional[EnergyMarker], is_baseline: bool) -> TestState:
        """A measured test's spec: its phase and cap, from its marker (None: unmarked) and the settings."""
        arguments = marker or EnergyMarker()
        phase = "baseline" if is_baseline else arguments.phase
        cap = arguments.cap_j if is_baseline else self.settings.cap_for(phase, arguments.cap_j)
        state = TestState(phase, cap, arguments.system)
        if not is_baseline:  # the baseline has its own repeats (baseline-repeats)
            settings = self.settings
            state.repeats = arguments.repeats if arguments.repeats is not None else settings.repeats
            state.warmup = arguments.warmup if arguments.warmup is not None else settings.warmup
            state.cooldown_s = arguments.cooldown_s if arguments.cooldown_s is not None else settings.cooldown_s
            state.cap_per_unit = arguments.cap_per_unit
        return state

    def plan_baseline(self, items: List[Any], cache_dir: Path) -> List[Tuple[Any, str]]:
        """Reuse the cached baseline or put its test first (reorders ``items``); the items to skip, and why."""
        if not self.baseline.active:
            return []
        wanted = self.settings.reference.normalizes or self.settings.normalized
        if not wanted and not any(self.baseline.is_baseline(item) for item in items):
            return []
        self.meter()
        try:
            reused = self.baseline.prepare(items, self.environment["fingerprint"], cache_dir)
        except BaselineCacheError as exc:
            self.notice(f"baseline cache unusable, no normalisation this run: {exc}")
            return []
        for warning in self.baseline.warnings:
            self.notice(warning)
        self._normalize()
        return [(item, self.baseline.reuse_reason(target)) for item, target in reused]

    def session_cap_reached(self) -> Optional[str]:
        """Why the next test is skipped, once the session cap is spent; None while it is not."""
        cap = self.settings.session_cap_j
        if cap is None:
            return None
        spent_j = self.session_energy_j()
        if spent_j < cap:
            return None
        return (f"energy session cap {format_energy(cap, self.settings.unit)} reached "
                f"({format_energy(spent_j, self.settings.unit)} spent)")

    def measure_repeats(self, nodeid: str, state: TestState, run: Callable[[], None]) -> None:
        """Run a test's body ``warmup`` times unmeasured, then ``repeats - 1`` times each in its own window.

        The last repeat is pytest's own call, measured by ``start_test``/``stop_test``. The body
        runs again with the same fixture values; ``cooldown`` pauses after the warm-up and between
        repeats, so a repeat does not inherit the last one's heat. A baseline test runs
        ``baseline-repeats - 1`` extra times instead.
        """
        if state.phase == "baseline":
            self._measure_baseline_repeats(nodeid, state, run)
            return
        for _ in range(state.warmup):
            run()
        if state.warmup:
            self._cool_down(state)
        figures, lost = [], []
        for _ in range(state.repeats - 1):
            measurement = self._measure_window(run)
            figures.append(measurement.total_j)
            lost += lower_bound_reasons(measurement)
            self._cool_down(state)
        if figures:
            state.extra["repeat_j"] = figures
        if lost:
            state.extra["repeat_lost"] = list(dict.fromkeys(lost))

    @staticmethod
    def _cool_down(state: TestState) -> None:
        if state.cooldown_s:
            time.sleep(state.cooldown_s)

    def _measure_baseline_repeats(self, nodeid: str, state: TestState, run: Callable[[], None]) -> None:
        """Run a baseline test's body ``baseline-repeats - 1`` extra times, each in its own window."""
        if self.baseline.target_for(nodeid) is None:
            return
        self._baseline_marks[nodeid] = self._activity_call(self._activity.mark)
        state.extra["repeats_j"] = [self._measure_window(run).total_j for _ in range(self.settings.baseline_repeats - 1)]

    def _measure_window(self, run: Callable[[], None]) -> Measurement:
        """``run()`` in a window of its own."""
        activity = self._register_window()
        window = self.meter().window()
        try:
            run()
        finally:
            measurement = window.stop()
            self._unregister_window(activity)
        return measurement

    def start_test(self, nodeid: str, location: Location, state: TestState) -> None:
        """Open the test's window and, when it has a limit to enforce live, its watchdog."""
        if self.settings.session_cap_j is not None:
            state.session_left_j = self.settings.session_cap_j - self.session_energy_j()
        state.activity = self._register_window()
        state.children_before = child_pids()
        try:
            state.window = self.meter().window()
        except BaseException:  # a CUDA error met synchronising the devices: the test's, raised in its call
            self._unregister_window(state.activity)
            raise
        self._running = (nodeid, location, state)
        state.watchdog = self._watch(nodeid, state)
        state.in_call = True

    def stop_test(self, state: TestState) -> None:
        """Close the test's window: its ``Measurement`` is final."""
        state.in_call = False
        self._stopper.disarm()
        if state.watchdog is not None:
            state.watchdog.stop()
        try:
            state.measurement = state.window.stop()  # type: ignore[union-attr]
        finally:  # a CUDA error at the window's edge is raised after the window closed
            state.measurement = state.window.result  # type: ignore[union-attr]
            self._unregister_window(state.activity)
        if state.measurement is not None and any(note.startswith(OTHER_GPU_PROCESSES) for note in state.measurement.notes):
            self.notice(OTHER_GPU_PROCESSES_NOTICE)
        if self._ranks is not None and self._running is not None:  # every rank decides on the ranks' figure
            state.measurement = self._ranks.combine(self._running[0], state.measurement)
        nodeid = self._running[0] if self._running else "a measured test"
        if state.watchdog is not None and not self._stopper.intact():
            self.notice(f"{nodeid} replaced the SIGUSR1 handler that stops a test over its cap: it is installed again "
                        "before each measured test; a test that replaces it cannot be stopped early")
        self._children_left(nodeid, state)

    def _children_left(self, nodeid: str, state: TestState) -> None:
        """Say in the record that the test left child processes running; end them if it was stopped early."""
        running = still_running(child_pids() - state.children_before)
        if not running:
            return
        stopped = bool(state.extra.get("stopped_early"))
        state.extra["children_left"] = {"count": len(running), "terminated": terminate(running) if stopped else 0}
        if stopped:
            self.notice(f"{nodeid} was stopped early: the {len(running)} processes it started were terminated, so "
                        "they spend nothing in later tests")
        else:
            self.notice(f"{nodeid} left {len(running)} child processes running: what they spend counts in the tests "
                        "after it")

    def _watch(self, nodeid: str, state: TestState) -> Optional[Watchdog]:
        """Start a watchdog that stops the test once an energy limit fails, with that limit's failure."""
        limits = self.limits()
        watched = live_limit(self._figures(nodeid, state, None), limits)
        if watched is None or self.settings.cap_mode != "fail" or not self.meter().available:
            return None
        limit_j, kind = watched
        if not self._stopper.arm():
            state.extra["stopped_early"] = None
            return None

        def stop(measurement: Measurement, elapsed_s: float) -> None:
            total_j = measurement.total_j
            crossed = kind if total_j is not None and total_j > limit_j else "session cap"
            state.extra["stopped_early"] = {"at_s": elapsed_s, "energy_j": total_j, "limit": crossed,
                                            "limit_j": limit_j if crossed == kind else state.session_left_j}
            failure = next((f for f in check(self._figures(nodeid, state, measurement), limits) if f.limit == crossed),
                           None)
            self._stop_message = failure.as_longrepr() if failure else (
                f"energy crossed {format_energy(limit_j, self.settings.unit)} ({kind}); stopped early at {elapsed_s:.2f} s")
            why_not = self._stopper.fire(self._stop_message)
            if why_not is not None:
                del state.extra["stopped_early"]
                state.extra["not_stopped"] = why_not

        window = state.window if self._ranks is None else self._ranks.live(nodeid, state.window)  # type: ignore[arg-type]
        shared = self._session_total is not None and self.settings.session_cap_j is not None
        return Watchdog(window, limit_j, self.settings.check_interval_s, stop,  # type: ignore[arg-type]
                        self._session_crossed(state) if shared else None).start()

    def _session_crossed(self, state: TestState) -> Callable[[Measurement], bool]:
        """For the watchdog under xdist: publish the test's running energy; whether the session's total crossed its cap.

        A crossing seen there (another worker's tests spent the rest) leaves this test what was
        left of the cap before it: its energy so far is over that, so it stops and fails.
        """
        cap_j = self.settings.session_cap_j

        def crossed(measurement: Measurement) -> bool:
            running_j = measurement.total_j or 0.0
            total_j = self._publish(running_j)
            if total_j is None or cap_j is None or total_j < cap_j:
                return False
            state.session_left_j = min(state.session_left_j if state.session_left_j is not None else cap_j,
                                       cap_j - (total_j - running_j))
            return True

        return crossed

    def was_stopped_by(self, message: str) -> bool:
        """Whether the running test failed with the watchdog's stop (and not with a failure of its own)."""
        return self._stop_message is not None and message == self._stop_message

    def _activity_call(self, action: Any, *args: Any) -> Any:
        """``action(*args)`` on the machine's activity file; None when the file is unusable.

        The first failure (a lock held by a stuck process costs ``LOCK_WAIT_S``) gives a notice
        and ends the file's use for the session: no later test waits for it again.
        """
        if self._activity_failed:
            return None
        try:
            return action(*args)
        except OSError as exc:
            self._activity_failed = True
            self.notice(f"cannot tell whether other processes measure on this machine ({self._activity.path}: {exc}); "
                        "not tried again this session, so a baseline measured beside other work may be cached")
            return None

    def _register_window(self) -> Optional[str]:
        """List a measuring window in the machine's activity file, so a baseline measured elsewhere knows of it.

        Of a distributed launch's ranks on one node, only local rank 0 lists its windows (they
        open and close together), so the launch's own ranks do not contend with its baseline.
        """
        if not self.meter().available or (self.launch is not None and not self.launch.counts_node_wide()):
            return None
        return self._activity_call(self._activity.open_window)

    def _unregister_window(self, key: Optional[str]) -> None:
        if key is not None:
            self._activity_call(self._activity.close_window, key)

    def session_energy_j(self) -> float:
        """Energy measured so far in the session: under xdist with a session cap, by all workers together."""
        total_j = self._publish(0.0)
        return self._own_energy_j if total_j is None else total_j

    def _publish(self, running_j: float) -> Optional[float]:
        """Put this process's energy, with ``running_j`` of a test still running, in the shared total; the total.

        None where there is no shared total (no xdist, no session cap) or it became unusable.
        """
        if self._session_total is None:
            return None
        spent_j = self._own_energy_j + running_j
        try:
            total_j = self._session_total.add(spent_j - self._session_total_sent_j)
        except OSError as exc:
            self.notice(f"cannot share the session cap between xdist workers ({self._session_total.path}: {exc}); "
                        "each worker counts its own energy from here on")
            self._session_total = None
            return None
        self._session_total_sent_j = spent_j
        return total_j

    def share_energy(self) -> None:
        """On a worker: add its energy to the session's total as soon as a test ends, for the other workers."""
        if self._session_total is not None and self.is_worker:
            self.session_energy_j()

    def shared_total_for_workers(self, add_cleanup: Callable[[Callable[[], None]], None]) -> Optional[str]:
        """On the xdist controller: the file in which the workers count the session's energy together."""
        if self.settings.session_cap_j is None:
            return None
        if self._session_total is None:
            directory = tempfile.mkdtemp(prefix="pytest-energy-session-")
            add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
            self._session_total = SharedTotal(Path(directory, "session-energy.json"))
        return str(self._session_total.path)

    # -- deciding ----------------------------------------------------------------------------
    def _figures(self, nodeid: str, state: TestState, measurement: Optional[Measurement]) -> Figures:
        return Figures(
            nodeid=nodeid,
            measurement=measurement,
            phase=state.phase,
            cap_j=state.cap_j,
            normalization=self.normalization,
            baseline_on_other_worker=self.is_worker and any(target.entry is None for target in self.baseline.targets),
            normalization_refused=self.baseline.refused,
            session_left_j=state.session_left_j,
            complexity=state.extra,
            fingerprint=self.environment.get("fingerprint"),
            stopped_early=state.extra.get("stopped_early"),
            repeats=state.repeats,
            repeats_j=tuple(state.extra.get("repeats", {}).get("energy_j", ())),
            repeats_lost=tuple(state.extra.get("repeats", {}).get("lower_bound", ())),
            cap_per_unit=state.cap_per_unit,
            work=state.extra.get("work"),
        )

    def finish_test(self, nodeid: str, location: Location, state: TestState, outcome: str, passed: bool,
                    stopped: bool, macs_input: Any = None, model: Optional[Callable[[], Any]] = None) -> Finished:
        """Account for a finished test, check its limits and make its record.

        ``passed``: pytest's verdict before the limits; ``stopped``: it failed with the watchdog's
        stop; ``macs_input``: the input shape on which ``model()`` is counted (a marker's). A limit
        fails the test (``fail_with``) when it passed or was stopped, in ``fail`` mode; in ``warn``
        mode it is a notice.
        """
        self._stop_message = None
        self._gather_repeats(state)
        self._settle_session_share(state)
        energy_j = repeated_energy_j(state.extra, state.measurement)
        account_work_and_emissions(state.extra, energy_j, self.settings.carbon_intensity_g_per_kwh)
        if state.phase == "baseline":
            self._baseline_done(nodeid, state, passed)
        elif self.normalization is not None and energy_j is not None:
            state.extra["energy_normalized_j"] = self.normalization.normalize(energy_j)
        count_error = self._count_macs(state, macs_input, model) if macs_input is not None and model else None
        limits = self.limits()
        figures = self._figures(nodeid, state, state.measurement)
        failures = check(figures, limits) if outcome != "skipped" else []  # a test that skipped itself tested nothing
        if outcome != "skipped":
            self._note_comparison(state, figures, limits, next((f for f in failures if f.limit == "regression"), None))
        if "macs" in state.extra and count_error is None:
            state.extra["complexity_verdict"] = complexity_verdict(failures, limits)
        cap_j = state.cap_j if state.cap_per_unit is None else state.cap_per_unit[0]
        verdict = verdict_of(failures, cap_j) if outcome != "skipped" else "skipped"
        failures += [count_error] if count_error else []
        fail_with = None
        if failures and self.settings.cap_mode == "warn":
            for failure in failures:
                self.notice(f"{nodeid}: {failure.as_longrepr()}")
        elif failures and (passed or stopped):  # a stopped test reads the figure of its whole window
            fail_with, outcome = "\n".join(failure.as_longrepr() for failure in failures), "failed"
        record = self._record(nodeid, location, state, outcome, verdict, failures)
        self._own_energy_j += spent_j(state) or 0.0
        state.reported = True
        self._running = None
        return Finished(record, fail_with)

    def _settle_session_share(self, state: TestState) -> None:
        """Publish the finished test's energy; under xdist, what was left for it is what the others left at its end.

        So the test whose energy took the session's total past the cap fails, whichever
        worker ran it, even when each test alone stayed under what was left when it started.
        """
        energy_j = spent_j(state)
        cap_j = self.settings.session_cap_j
        if cap_j is None or energy_j is None or state.session_left_j is None:
            return
        total_j = self._publish(energy_j)
        if total_j is not None:
            state.session_left_j = min(state.session_left_j, cap_j - (total_j - energy_j))

    def _note_comparison(self, state: TestState, figures: Figures, limits: Limits,
                         regression: Optional[CapFailure]) -> None:
        """The comparison with the stored run into the record; a notice when the limit is under the noise."""
        compared = compare_with_stored(figures, limits)
        if regression is None and not isinstance(compared, StoredComparison):
            return
        entry: Dict[str, Any] = {"run": limits.stored.path.name,  # type: ignore[union-attr]
                                 "verdict": regression.verdict if regression else "pass"}
        if regression is not None:
            entry["message"] = regression.message
        if isinstance(compared, StoredComparison):
            entry.update(compared.to_json())
            floor, limit = compared.floor, compared.limit
            if limit is None:
                self.notice(f"{figures.nodeid}: --energy-compare-fail=auto has no noise floor for it yet (store runs "
                            "with repeats, or two runs of one commit, with --energy-autosave): not gated this time")
            elif floor is not None and not limits.regression_auto and limit < floor.noise:
                self.notice(f"{figures.nodeid}: the limit +{limit * 100:g}% is below this runner's noise of "
                            f"{floor.describe()}: a change under it cannot be told from noise "
                            "(--energy-compare-fail=auto uses the noise)")
        state.extra["comparison"] = entry

    @staticmethod
    def _gather_repeats(state: TestState) -> None:
        """Every measured repeat's figure, their median and spread, into the record (``repeats``)."""
        if state.repeats <= 1 and not state.warmup:
            return
        last = state.measurement.total_j if state.measurement else None
        state.extra["repeats"] = repeats_entry(list(state.extra.pop("repeat_j", [])) + [last],
                                               state.extra.pop("repeat_lost", []), state.warmup, state.cooldown_s)

    @staticmethod
    def _count_macs(state: TestState, shape: Any, model: Callable[[], Any]) -> Optional[CapFailure]:
        """Count ``model()`` on a zero input of ``shape`` (after the window closed); a failure if that fails."""
        if "macs" in state.extra:
            return None
        try:
            from .account.complexity import count_complexity, example_from_shape

            record_complexity(state, count_complexity(model(), example_from_shape(shape)))
        except Exception as exc:  # the user's model, shape or install: say which, fail the test
            state.extra["complexity_verdict"] = "error"
            return CapFailure(f"cannot count MACs for macs_input={shape!r}: {type(exc).__name__}: {exc}", "error",
                              "MACs count")
        return None

    def _record(self, nodeid: str, location: Location, state: TestState, outcome: str, verdict: str,
                failures: Sequence[CapFailure]) -> Record:
        extra = dict(state.extra)
        if self.is_worker:
            extra["worker"] = self.worker_id
        return Record(
            nodeid=nodeid,
            phase=state.phase,
            outcome=outcome,
            measurement=state.measurement,
            cap_j=state.cap_j,
            verdict=verdict,
            verdict_message="; ".join(failure.as_longrepr() for failure in failures) or None,
            scores=dict(state.scores),
            system=state.system,
            location=location,
            extra=extra,
        )

    def _baseline_done(self, nodeid: str, state: TestState, passed: bool) -> None:
        """Cache a freshly measured baseline, or note that it was reused."""
        target = self.baseline.target_for(nodeid)
        if target is None:
            return
        energies = list(state.extra.pop("repeats_j", [])) + [state.measurement.total_j if state.measurement else None]
        if target.entry is None or target.source != "cached":
            if not passed or any(energy is None for energy in energies):
                self.notice(f"baseline {nodeid} did not pass or was not measured: no normalisation this run")
            else:
                contention = self._baseline_contention(nodeid)
                try:
                    spread = self.baseline.measured(nodeid, energies, self.environment["hardware"],
                                                    state.measurement.meter,  # type: ignore[union-attr]
                                                    cache=not contention and self.launch_rank in (None, 0))
                except (BaselineCacheError, OSError, ValueError) as exc:  # ValueError: an implausible energy
                    self.notice(f"cannot cache the baseline: {exc}")
                    spread = None
                if contention:
                    self.notice(f"baseline {nodeid} was measured while {contention}: its "
                                f"{format_energy(target.entry.energy_j if target.entry else None, self.settings.unit)} "
                                "normalises this run only and is not cached; measure it alone (no -n, no other "
                                "session) to cache it")
                if spread:
                    self.notice(spread)
                self._normalize()
        state.extra["baseline"] = target.to_json()

    def _normalize(self) -> None:
        """The session's normalisation from its baseline, once known; a refused fit is said once."""
        refused_before = self.baseline.refused
        self.normalization = self.baseline.normalization()
        if self.baseline.refused and self.baseline.refused != refused_before:
            self.notice(f"{self.baseline.refused}; no normalised figures this run, caps on them do not pass, and "
                        "nothing is cached")

    def _baseline_contention(self, nodeid: str) -> Optional[str]:
        """What else measured on this machine while the baseline ``nodeid`` ran, if anything."""
        if self._machine_shared or (self.is_worker and not self._machine_free()):
            return "another pytest-energy session held this machine"
        mark = self._baseline_marks.pop(nodeid, None)
        if mark is not None and self._activity_call(self._activity.overlapped_since, mark):
            return "another process (an xdist worker or another session) measured on this machine"
        return None

    @staticmethod
    def _machine_free() -> bool:
        """On an xdist worker (whose controller does not hold the machine lock): whether no other session does."""
        lock, _ = claim_machine()
        if lock is None:
            return False
        lock.release()  # type: ignore[attr-defined]
        return True

    # -- between worker and controller -------------------------------------------------------
    def payload(self, finished: Optional[Finished]) -> Optional[Dict[str, Any]]:
        """What a test report carries to the controller: new notices and, for a finished test, its record."""
        payload: Dict[str, Any] = {}
        if self._unsent_notices:
            payload["notices"], self._unsent_notices = self._unsent_notices, []
        if finished is not None:
            payload.update(record=finished.record.to_json(), environment=self.environment,
                           baseline=[target.to_json() for target in self.baseline.targets])
        return payload or None

    def receive(self, payload: Optional[Mapping[str, Any]]) -> None:
        """On the controller: take in a test report's payload (from this process or a worker)."""
        if payload is None or self.is_worker:
            return
        for message in payload.get("notices", ()):
            self.notice(message)
        if "record" not in payload:
            return
        self.records.append(Record.from_json(payload["record"]))
        self.environment = self.environment or dict(payload.get("environment") or {})
        self._baseline_json = self._merged_baseline(payload.get("baseline") or self._baseline_json)
        if self._checkpoints is not None:
            self._checkpoints.changed()

    def worker_crashed(self, nodeid: str, location: Location, message: str) -> None:
        """On the controller: a test whose xdist worker died while running it is in the report, an error."""
        if self.is_worker or any(record.nodeid == nodeid for record in self.records):
            return
        state = self.test_state(None, False)
        self.records.append(self._record(nodeid, location, state, "error", "unmeasured",
                                         [CapFailure(f"{message}: not measured", "unmeasured", "crash")]))
        if self._checkpoints is not None:
            self._checkpoints.changed()

    def _merged_baseline(self, targets: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The baseline targets a worker reports, keeping a target's energy that another worker measured."""
        known = {target.get("nodeid"): target for target in self._baseline_json if target.get("energy_j") is not None}
        return [target if target.get("energy_j") is not None else known.get(target.get("nodeid"), target)
                for target in targets]

    # -- the session's end -------------------------------------------------------------------
    def finish(self) -> None:
        """Record a test interrupted in its call phase; on the controller write the JSON report and store the run.

        Ctrl-C or SIGTERM arriving meanwhile takes effect once the reports are written.
        """
        with signals_deferred():
            self._finish()

    def _finish(self) -> None:
        if self._running is not None:  # interrupted (Ctrl-C) inside a measured test
            nodeid, location, state = self._running
            if state.measurement is None and state.window is not None:
                state.measurement = state.window.stop()
            failures = check(self._figures(nodeid, state, state.measurement), self.limits())
            self.records.append(self._record(nodeid, location, state, "interrupted", verdict_of(failures, state.cap_j),
                                             failures))
            self._running = None
        if self.is_worker:
            return
        overlap = overlap_warning(str(record.extra["worker"]) for record in self.records
                                  if "worker" in record.extra and record.energy_j is not None)
        if overlap:
            self.notice(overlap)
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._finished = True
        self.write_json()
        if self.writes_reports:
            self._write_ci_formats()
        if self.settings.autosave and self.records and self.writes_reports:
            try:
                self.saved_run = self.run_store().save(self.document(), commit_info(self.rootpath))
            except OSError as exc:
                self._store_error = f"cannot store this run under {self.settings.storage}: {exc}"
                self.notice(self._store_error)

    def _write_ci_formats(self) -> None:
        """github-action-benchmark's JSON and the OpenMetrics report, where asked for; a notice if one cannot be written."""
        for option, path, render in (
            ("--energy-benchmark-json", self.settings.benchmark_json,
             lambda records: json.dumps(benchmark_entries(records), indent=2) + "\n"),
            ("--energy-openmetrics", self.settings.openmetrics, openmetrics_text),
        ):
            if path:
                try:
                    write_text_atomically(Path(self._invocation_dir, path), render(self.accounted_records()))
                except OSError as exc:  # a directory or device at the path, an unwritable directory
                    self.notice(f"cannot write {option}={path}: {exc}")

    def flush(self) -> None:
        """Write what is pending now (Ctrl-C, an internal error): the session may not get to its end."""
        if self._checkpoints is not None:
            with signals_deferred():
                self._checkpoints.flush()

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
        if self._report_lock is not None:
            self._report_lock.release()
        self._stopper.uninstall()
        if self._machine_lock is not None:
            self._machine_lock.release()
        if self._meter is not None:
            self._meter.close()
        if self._ranks is not None:
            self._ranks.close()

    # -- accounting and reports (controller) -------------------------------------------------
    def session_normalization(self) -> Optional[Normalization]:
        """The normalisation for the reports, from the targets the tests' reports carried."""
        if self.normalization is not None or not self.baseline.active:
            return self.normalization
        points = [(t["energy_j"], t["reference_j"]) for t in self._baseline_json if t.get("energy_j") and t.get("reference_j")]
        if not points or len(points) != len(self._baseline_json):
            return None
        try:  # points that give no fit were refused where they were measured
            return Normalization.from_points(tuple(points))
        except ValueError:
            return None

    def accounted_records(self) -> List[Record]:
        """The records with the session's accounting (normalised energies, EW scores).

        Without scores, a record's accounting depends only on itself and the normalisation,
        so while that stays the same the records accounted before are kept: a report
        checkpoint accounts only the tests that finished since the last one.
        """
        normalization = self.session_normalization()
        records = list(self.records)  # a snapshot: the report thread reads while tests append
        kept_for, accounted = self._accounted
        if normalization != kept_for or any(record.scores for record in records):
            accounted = []
        accounted = accounted + account(records[len(accounted):], normalization, self.settings.reference,
                                        baseline_off=self.settings.baseline_mode == "off")
        self._accounted = (normalization, accounted)
        return accounted

    def session_cap_outcome(self) -> Optional[Dict[str, Any]]:
        """The session cap's one verdict, from every test's record (on the controller): what was spent, whether
        and by which test the cap was reached (in the order the tests finished), or which test was not measured
        fully, so that what was spent is unknown ("unmeasured")."""
        cap_j = self.settings.session_cap_j
        if cap_j is None or self.is_worker:
            return None
        spent_j, reached_by, unmeasured_by = 0.0, None, None
        for record in self.records:
            if record.measurement is None:  # it never reached its call phase
                continue
            if unmeasured_by is None and (record.energy_j is None or lower_bound_reasons(record.measurement)):
                unmeasured_by = record.nodeid
            spent_j += record.energy_j or 0.0
            if reached_by is None and spent_j >= cap_j:
                reached_by = record.nodeid
        verdict = "over-cap" if reached_by else "unmeasured" if unmeasured_by else "pass"
        return {"cap_j": cap_j, "spent_j": spent_j, "reached": reached_by is not None, "reached_by": reached_by,
                "unmeasured_by": unmeasured_by, "verdict": verdict}

    def session_cap_fails_run(self) -> bool:
        """Whether the session cap makes the run fail: reached, or not enforceable (a test not measured fully)."""
        outcome = self.session_cap_outcome()
        return outcome is not None and outcome["verdict"] != "pass" and self.settings.cap_mode == "fail"

    def _session_cap_line(self) -> Optional[str]:
        outcome = self.session_cap_outcome()
        if outcome is None or outcome["verdict"] == "pass":
            return None
        unit = self.settings.unit
        cap, spent = format_energy(outcome["cap_j"], unit), format_energy(outcome["spent_j"], unit)
        if outcome["verdict"] == "over-cap":
            line = f"energy session cap {cap} reached by {outcome['reached_by']} ({spent} spent)"
        else:
            line = (f"energy session cap {cap} cannot be enforced: {outcome['unmeasured_by']} was not measured fully, "
                    f"so the session spent more than the {spent} counted")
        return line + (": the run fails" if self.settings.cap_mode == "fail" else " (warn mode: the run does not fail)")

    def document(self) -> Dict[str, Any]:
        return build_document(*self._document_parts())

    def _document_parts(self) -> Tuple[List[Record], Dict[str, Any], Mapping[str, Any], Dict[str, Any], Dict[str, Any]]:
        """What ``build_document`` takes: the accounted records, environment, metadata, session and the rest."""
        session: Dict[str, Any] = {"meter": self.settings.meter, "caps_j": dict(self.settings.caps),
                                   "cap_mode": self.settings.cap_mode, "normalized_caps": self.settings.normalized}
        stored = self.stored_run()
        if stored is not None:
            session["compared_with"] = str(stored.path)
        session_cap = self.session_cap_outcome()
        if session_cap is not None:
            session["session_cap"] = session_cap  # pytest-energy merge checks its cap over all shards
        if self.launch is not None:
            session.update(ranks=self.launch.world_size, nodes=self.launch.nodes, launcher=self.launch.launcher)
        normalization = self.session_normalization()
        extra = {
            "normalization": normalization.to_json() if normalization else None,
            "baseline": self._baseline_json or [target.to_json() for target in self.baseline.targets],
            "reference": self.settings.reference.to_json(),
            "notices": list(self.notices),
            "complete": self._finished,
        }
        return self.accounted_records(), self.environment or self._unmeasured_environment(), self.settings.metadata, \
            session, extra

    def _unmeasured_environment(self) -> Dict[str, Any]:
        """The environment of a report whose tests never opened the meter (all skipped at setup, or crashed)."""
        from .measure.machine import environment

        return environment({"sources": {}})

    def write_json(self) -> None:
        """Write the JSON report now: a checkpoint (from ``Checkpoints``) or the final report.

        A write that fails (a full disk, a read-only file system, a value JSON cannot hold) is
        tried again by the next checkpoint; ``report_failure`` says whether the last one failed.
        """
        if self._report is None:
            return
        parts = self._document_parts()
        try:
            with signals_deferred():  # Ctrl-C or SIGTERM now takes effect once the file is complete
                self._report.write(*parts)
        except (OSError, TypeError, ValueError) as exc:
            self._json_error = str(exc)
        else:
            self._json_error, self._json_tests = None, len(parts[0])

    def files_not_written(self) -> bool:
        """Whether a file the user asked for (the JSON report, the stored run) is not complete on disk."""
        return self.report_failure() is not None or self._store_error is not None

    def report_failure(self) -> Optional[str]:
        """Why the JSON report the user asked for is not complete on disk; None when it is (or none was asked for)."""
        if self._report is None or self._json_error is None:
            return None
        held = ("nothing of this session was written there" if self._json_tests is None else
                f"it holds the last checkpoint, {self._json_tests} of {len(self.records)} tests, marked \"complete\": false")
        return f"cannot write the energy JSON report to {self.settings.json}: {self._json_error}; {held}"

    def add_to_junit(self, path: Path, shown_as: str, prefix: Optional[str]) -> None:
        """Normalised energies and EW scores into the ``--junitxml`` file, from the records the JSON report accounts.

        Under xdist a test's EW can depend on a test another worker ran, or one that ran later:
        only the controller, at the end, has every record.
        """
        if not self.records or not self.writes_reports:
            return
        try:
            add_accounted_properties(path, self.accounted_records(), prefix)
        except (OSError, ValueError) as exc:
            self.notice(f"cannot add normalised energies and EW scores to {shown_as}: {exc}")

    def summary_lines(self, width: int) -> List[str]:
        """The terminal's energy section (without its title): notices, the table, accounting, where reports went."""
        report_failure = self.report_failure()
        if self.is_worker or not (self.records or self.notices or report_failure):
            return []
        records = self.accounted_records()
        lines = [f"pytest-energy: {message}" for message in self.notices]
        if github.on_github_actions() and self.writes_reports:
            lines += [github.notice_annotation(message) for message in self.notices]
        session_cap = self._session_cap_line()
        if session_cap:
            lines.append(session_cap)
        if not records:
            return lines + ([f"pytest-energy: {report_failure}"] if report_failure else [])
        shown, totals = condensed(records, self.settings.json if self._json_error is None else None, self.settings.unit)
        lines += summary_table(shown, self.settings.unit).render_text(width) + totals
        lines += accounting_lines(records, self.session_normalization(), self._baseline_json, self.settings.unit)
        lines += [f"  note: {line}" for line in caveats(records)]
        if self._report is not None and self._json_error is None:
            lines.append(f"energy report written to {self.settings.json}")
        stored = self.stored_run()
        if stored is None and self._compare_note:
            lines.append(f"energy comparison: {self._compare_note}")
        elif stored is not None:
            lines += comparison_table(records, stored, self.environment.get("fingerprint"), self.settings.unit).render_text(width)
        lines += comparison_lines(records)  # the regression gate's interval, limit and verdict per gated test
        lines += emissions_lines(records)
        if self.saved_run is not None:
            lines.append(f"energy run stored as {self.saved_run}")
        if github.on_github_actions() and self.writes_reports:
            lines += github.annotations(records, "warning" if self.settings.cap_mode == "warn" else "error")
            try:
                github.write_summary(github.summary_markdown(records, self.settings.unit))
            except OSError as exc:  # said here: a notice now would come after the lines that show notices
                lines.append(f"pytest-energy: cannot write the GitHub job summary: {exc}")
        if report_failure:
            lines.append(f"pytest-energy: {report_failure}")
        return lines
