"""The session's ``EnergyPlugin``: the hooks that measure, decide and report (registered by ``plugin.py``).

A measured test is measured from the start to the end of its call phase by a window on
the best available meter. A test over its cap is turned from passed into failed in
``pytest_runtest_makereport``, so it fails like any other test (terminal, JUnit, xdist).
Figures travel on the test report as JSON, so the xdist controller writes one report for
all workers. Nothing heavy is imported until the first measured test starts.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

from .account.baseline_cache import BaselineCacheError
from .account.ew import account
from .account.normalize import Normalization
from .account.record import Record
from .baseline_plan import BaselinePlan
from .config import ConfigError, EnergyMarker, Settings, parse_energy_marker
from .decide.limits import CapFailure, complexity_failures, energy_verdict, session_cap_failure, verdict_of
from .decide.regression import check_regression
from .fixture import TestState, record_complexity
from .measure.base import Measurement
from .measure.meter import Meter, Window, open_meter
from .measure.overlap import Activity, ActivityMark, SharedTotal, claim_machine, overlap_warning
from .measure.watchdog import MainThreadStopper, Watchdog
from .report import github
from .report.json_report import Checkpoints, ReportWriter, build_document
from .report.junit import add_accounted_properties, junit_properties
from .report.terminal import accounting_lines, caveats, summary_table
from .store.files import NotARegularFileError, regular_file_target
from .store.runs import RunStore, RunStoreError, StoredRun, commit_info
from .units import format_energy

STATE = pytest.StashKey[TestState]()
PHASE_CHOICES = ("train", "test")


def baseline_cache_dir(config: pytest.Config) -> Path:
    """Where baseline energies are cached: pytest's cache directory (``.pytest_cache``)."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("energy-baseline"))
    return Path(config.rootpath, ".pytest_cache", "d", "energy-baseline")


def outcome_of(report: pytest.TestReport, when: str) -> str:
    """The test's outcome as the energy report names it: xfail and xpass are kept apart from skipped and passed."""
    if hasattr(report, "wasxfail") and not report.failed:
        return "xfailed" if report.skipped else "xpassed"
    if when != "call":
        return "error" if report.failed else "skipped"
    return report.outcome


def marked_model(item: pytest.Item, fixture_name: Optional[str]) -> Any:
    """The model a ``macs_input`` marker counts: the fixture it names, or the test's one torch module."""
    arguments: Dict[str, Any] = getattr(item, "funcargs", {})
    if fixture_name is not None:
        if fixture_name not in arguments:
            raise LookupError(f"macs_model={fixture_name!r} is not a fixture of this test (it has: {', '.join(arguments) or 'none'})")
        return arguments[fixture_name]
    torch = sys.modules.get("torch")
    modules = [name for name, value in arguments.items() if torch is not None and isinstance(value, torch.nn.Module)]
    if len(modules) != 1:
        found = f"found {', '.join(modules)}" if modules else "found none"
        raise LookupError(f"the test needs exactly one torch.nn.Module fixture, or macs_model='<fixture>' ({found})")
    return arguments[modules[0]]


class EnergyPlugin:
    """The session's measurements: one meter, the records, and the reports."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        self.records: List[Record] = []
        self.environment: Dict[str, Any] = {}
        self.is_worker = hasattr(config, "workerinput")
        self._meter: Optional[Meter] = None
        self._running: Optional[tuple] = None  # (item, state) of the test in its call phase
        self._own_energy_j = 0.0  # measured in this process so far
        self._stopper = MainThreadStopper()
        self._stop_message: Optional[str] = None  # what the watchdog raised in the running test
        self._json_failed = False
        self._report: Optional[ReportWriter] = None
        self._checkpoints: Optional[Checkpoints] = None
        self._accounted: Tuple[Optional[Normalization], List[Record]] = (None, [])  # see accounted_records
        if settings.json and not self.is_worker:
            path = Path(config.invocation_params.dir, settings.json)
            try:
                regular_file_target(path)
            except NotARegularFileError as exc:
                raise pytest.UsageError(f"pytest-energy: --energy-json: {exc}") from None
            self._report = ReportWriter(path)
            self._checkpoints = Checkpoints(self.write_json)
        self._saved_run: Optional[Path] = None
        self._machine_lock: Any = None
        self._machine_shared = False  # another session held the machine lock when this one started measuring
        self._activity = Activity()
        self._baseline_marks: Dict[str, Optional[ActivityMark]] = {}
        self._session_total: Optional[SharedTotal] = None  # under xdist with a session cap: the whole session's
        self._session_total_sent_j = 0.0  # how much of this worker's energy is in the shared total
        if self.is_worker and config.workerinput.get("energy_session_total"):
            self._session_total = SharedTotal(Path(config.workerinput["energy_session_total"]))
        self._stored_run: Optional[StoredRun] = None
        self.baseline = BaselinePlan(settings)
        self.normalization: Optional[Normalization] = None
        self._baseline_json: List[Dict[str, Any]] = []  # on the controller: the targets as a worker last saw them
        self._compare_note = ""
        self.notices: Dict[str, None] = {}  # ordered and without repeats
        self._unsent_notices: List[str] = []  # on a worker: not yet sent to the controller
        self._compare_latest = False  # the latest run of this hardware is loaded once the fingerprint is known
        compare = settings.compare or ("latest" if settings.compare_fail is not None else None)
        if compare == "latest" and not self.run_store().has_runs():
            self._compare_note = f"no stored run yet under {settings.storage}: nothing compared this time"
        elif compare == "latest":
            self._compare_latest = True
        elif compare is not None:
            try:
                self._stored_run = StoredRun.from_document(*self.run_store().load(compare))
            except RunStoreError as exc:
                raise pytest.UsageError(f"pytest-energy: {exc}") from None

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
        return RunStore(Path(self.config.rootpath, self.settings.storage))

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

    # -- measuring -------------------------------------------------------------------------
    def meter(self) -> Meter:
        if self._meter is None:
            from .measure.machine import environment

            self._meter = open_meter(self.settings.meter, self.settings.sampling_hz)
            if not self.is_worker and self._meter.available:
                self._machine_lock, overlap = claim_machine()
                if overlap:
                    self._machine_shared = True
                    self.notice(overlap)
            self.environment = environment(self._meter.describe())
            if not self._meter.available and self.settings.meter != "none":
                reasons = "; ".join(f"{name}: {why}" for name, why in self._meter.unavailable.items())
                self.notice(f"no energy meter works here, figures are unmeasured ({reasons})")
        return self._meter

    def state(self, item: pytest.Item) -> Optional[TestState]:
        """The measurement state of ``item``, created on first use; None if it is not measured."""
        if STATE in item.stash:
            return item.stash[STATE]
        marker = item.get_closest_marker("energy")
        is_baseline = self.baseline.is_baseline(item)
        if marker is None and not is_baseline and "energy" not in getattr(item, "fixturenames", ()) and not self.settings.all:
            return None
        arguments = parse_energy_marker(marker.args, marker.kwargs, item.nodeid) if marker else EnergyMarker()  # checked at collection
        phase = "baseline" if is_baseline else arguments.phase
        cap = arguments.cap_j if is_baseline else self.settings.cap_for(phase, arguments.cap_j)
        state = item.stash[STATE] = TestState(phase, cap, arguments.system)
        return state

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: List[pytest.Item]) -> None:
        """Reuse the cached baseline (skipping its test) or move the baseline test first."""
        if not self.baseline.active:
            return
        wanted = self.settings.reference.normalizes or self.settings.normalized
        if not wanted and not any(self.baseline.is_baseline(item) for item in items):
            return
        self.meter()
        try:
            reused = self.baseline.prepare(items, self.environment["fingerprint"], baseline_cache_dir(self.config))
        except ConfigError as exc:
            raise pytest.UsageError(f"pytest-energy: {exc}") from None
        except BaselineCacheError as exc:
            self.notice(f"baseline cache unusable, no normalisation this run: {exc}")
            return
        for item, target in reused:
            item.add_marker(pytest.mark.skip(reason=self.baseline.reuse_reason(target)))
        for warning in self.baseline.warnings:
            self.notice(warning)
        self.normalization = self.baseline.normalization()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        cap = self.settings.session_cap_j
        if cap is None:
            return
        spent_j = self.session_energy_j()
        if spent_j >= cap:
            pytest.skip(
                f"energy session cap {format_energy(cap, self.settings.unit)} reached "
                f"({format_energy(spent_j, self.settings.unit)} spent)"
            )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        state = self.state(item)
        if state is None:
            yield
            return
        if state.phase == "baseline" and self.baseline.target_for(item.nodeid) is not None:
            self._baseline_marks[item.nodeid] = self._activity_call(self._activity.mark)
            state.extra["repeats_j"] = [self._measure_once(item) for _ in range(self.settings.baseline_repeats - 1)]
        activity = self._register_window()
        window = state.window = self.meter().window()
        self._running = (item, state)
        watchdog = self._watch(state, window)
        state.in_call = True
        try:
            yield
        finally:
            state.in_call = False
            self._stopper.disarm()
            if watchdog is not None:
                watchdog.stop()
            state.measurement = window.stop()
            self._unregister_window(activity)

    def _measure_once(self, item: pytest.Item) -> Optional[float]:
        """One extra run of a baseline test's body, for ``baseline-repeats``."""
        activity = self._register_window()
        window = self.meter().window()
        try:
            item.runtest()
        finally:
            energy_j = window.stop().total_j
            self._unregister_window(activity)
        return energy_j

    def _activity_call(self, action: Any, *args: Any) -> Any:
        """``action(*args)`` on the machine's activity file; None (and a notice) when the file is unusable."""
        try:
            return action(*args)
        except OSError as exc:
            self.notice(f"cannot tell whether other processes measure on this machine ({self._activity.path}: {exc})")
            return None

    def _register_window(self) -> Optional[str]:
        """List a measuring window in the machine's activity file, so a baseline measured elsewhere knows of it."""
        return self._activity_call(self._activity.open_window) if self.meter().available else None

    def _unregister_window(self, key: Optional[str]) -> None:
        if key is not None:
            self._activity_call(self._activity.close_window, key)

    def _watch(self, state: TestState, window: Window) -> Optional[Watchdog]:
        """Start a watchdog when the test has a limit that can be enforced live."""
        limits = []
        if state.cap_j is not None:
            normalization = self._cap_normalization(state)
            limits.append((normalization.local_energy_for(state.cap_j) if normalization else state.cap_j, "cap"))
        if self.settings.session_cap_j is not None:
            limits.append((self.settings.session_cap_j - self.session_energy_j(), "session cap"))
        if not limits or self.settings.cap_mode != "fail" or not self.meter().available:
            return None
        limit_j, kind = min(limits)
        if not self._stopper.arm():
            state.extra["stopped_early"] = None
            return None

        def stop(measurement: Measurement, elapsed_s: float) -> None:
            state.extra["stopped_early"] = {"at_s": elapsed_s, "energy_j": measurement.total_j, "limit": kind,
                                            "limit_j": limit_j}
            failure = self._energy_failure(state, measurement)
            self._stop_message = failure.as_longrepr() if failure else (
                f"energy crossed {format_energy(limit_j, self.settings.unit)} ({kind}); stopped early at {elapsed_s:.2f} s")
            self._stopper.fire(self._stop_message)

        return Watchdog(window, limit_j, self.settings.check_interval_s, stop).start()

    def session_energy_j(self) -> float:
        """Energy measured so far in the session: under xdist with a session cap, by all workers together."""
        own_j = self._own_energy_j
        if self._session_total is None:
            return own_j
        try:
            total_j = self._session_total.add(own_j - self._session_total_sent_j)
        except OSError as exc:
            self.notice(f"cannot share the session cap between xdist workers ({self._session_total.path}: {exc}); "
                        "each worker counts its own energy from here on")
            self._session_total = None
            return own_j
        self._session_total_sent_j = own_j
        return total_j

    def pytest_runtest_logfinish(self) -> None:
        """Add this worker's energy to the session's total as soon as a test ends, for the other workers."""
        if self._session_total is not None and self.is_worker:
            self.session_energy_j()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """On the xdist controller: give every worker the file in which they count the session's energy together."""
        if self.settings.session_cap_j is None:
            return
        if self._session_total is None:
            directory = tempfile.mkdtemp(prefix="pytest-energy-session-")
            self.config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
            self._session_total = SharedTotal(Path(directory, "session-energy.json"))
        node.workerinput["energy_session_total"] = str(self._session_total.path)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if self._unsent_notices:
            report.energy_notices = self._unsent_notices  # type: ignore[attr-defined]
            self._unsent_notices = []
        state = self.state(item) if call.when == "setup" and not report.passed else item.stash.get(STATE, None)
        if state is None or state.reported:
            return
        if state.in_call:  # a subtest's report (subtests fixture, unittest subTest): the test's own comes later
            state.failed_subtests += report.failed
            stop = call.excinfo.value if call.excinfo is not None else None
            if state.extra.get("stopped_early") and isinstance(stop, pytest.fail.Exception):
                report.energy_stop = stop  # type: ignore[attr-defined]
            return
        if call.when == "call" or (call.when == "setup" and not report.passed):
            outcome_name = outcome_of(report, call.when)
            if state.failed_subtests and outcome_name == "passed":
                outcome_name = "failed"
            if state.phase == "baseline":
                self._baseline_done(item, state, report.passed and call.when == "call")
            elif self.normalization is not None and state.measurement and state.measurement.total_j is not None:
                state.extra["energy_normalized_j"] = self.normalization.normalize(state.measurement.total_j)
            energy_failures = [f for f in (self._energy_failure(state, state.measurement), self._regression(item, state)) if f]
            failures = energy_failures + (self._complexity_failures(item, state) if call.when == "call" else [])
            stopped_here = report.failed and call.excinfo is not None and str(call.excinfo.value) == self._stop_message
            self._stop_message = None
            if failures and self.settings.cap_mode == "warn":
                for failure in failures:
                    self.notice(f"{item.nodeid}: {failure.as_longrepr()}")
            elif failures and (report.passed or stopped_here):  # a stopped test reads the figure of its whole window
                report.outcome = "failed"
                report.longrepr = "\n".join(failure.as_longrepr() for failure in failures)
                report.__dict__.pop("wasxfail", None)  # an xpass over its cap fails plainly (JUnit would say skipped)
                outcome_name = "failed"
            record = self._record(item, state, outcome_name, verdict_of(energy_failures, state.cap_j), failures)
            self._own_energy_j += record.energy_j or 0.0
            if self.is_worker:
                record = dataclasses.replace(record, extra={**record.extra, "worker": self.config.workerinput["workerid"]})
            report.energy_record = record.to_json()  # type: ignore[attr-defined]
            report.energy_environment = self.environment  # type: ignore[attr-defined]
            report.energy_baseline = [target.to_json() for target in self.baseline.targets]  # type: ignore[attr-defined]
            item.user_properties.extend(junit_properties(record))
            state.reported = True
            self._running = None

    def _baseline_done(self, item: pytest.Item, state: TestState, passed: bool) -> None:
        """Cache a freshly measured baseline, or note that it was reused."""
        target = self.baseline.target_for(item.nodeid)
        if target is None:
            return
        energies = list(state.extra.pop("repeats_j", [])) + [state.measurement.total_j if state.measurement else None]
        if target.entry is None or target.source != "cached":
            if not passed or any(energy is None for energy in energies):
                self.notice(f"baseline {item.nodeid} did not pass or was not measured: no normalisation this run")
            else:
                contention = self._baseline_contention(item.nodeid)
                try:
                    spread = self.baseline.measured(item.nodeid, energies, self.environment["hardware"],
                                                    state.measurement.meter, cache=not contention)  # type: ignore[union-attr]
                except (BaselineCacheError, OSError) as exc:
                    self.notice(f"cannot cache the baseline: {exc}")
                    spread = None
                if contention:
                    self.notice(f"baseline {item.nodeid} was measured while {contention}: its "
                                f"{format_energy(target.entry.energy_j if target.entry else None, self.settings.unit)} "
                                "normalises this run only and is not cached; measure it alone (no -n, no other "
                                "session) to cache it")
                if spread:
                    self.notice(spread)
                self.normalization = self.baseline.normalization()
        state.extra["baseline"] = target.to_json()

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

    def _cap_normalization(self, state: TestState) -> Optional[Normalization]:
        """The normalisation a cap compares with (``--energy-normalized``), if any."""
        return self.normalization if self.settings.normalized and state.phase in PHASE_CHOICES else None

    def _energy_failure(self, state: TestState, measurement: Optional[Measurement]) -> Optional[CapFailure]:
        """The test's energy against the limit that applies to it: the session cap if that stopped it, else its cap."""
        stopped = state.extra.get("stopped_early")
        if stopped and stopped["limit"] == "session cap" and measurement is not None:
            failure: Optional[CapFailure] = session_cap_failure(
                measurement, stopped["limit_j"], self.settings.session_cap_j, self.settings.unit  # type: ignore[arg-type]
            )
        else:
            failure = self._cap_failure(state, measurement)
        if failure is None or not stopped:
            return failure
        return CapFailure(f"{failure.message}; stopped early at {stopped['at_s']:.2f} s", failure.verdict)

    def _cap_failure(self, state: TestState, measurement: Optional[Measurement]) -> Optional[CapFailure]:
        normalization = self._cap_normalization(state)
        if self.settings.normalized and normalization is None and state.cap_j is not None and state.phase in PHASE_CHOICES:
            if self.is_worker and any(target.entry is None for target in self.baseline.targets):
                return CapFailure("cannot enforce a normalised cap: the baseline is being measured on another xdist "
                                  "worker; measure it once without -n (later runs reuse the cached baseline)", "unmeasured")
            return CapFailure("cannot enforce a normalised cap: no baseline was measured before this test "
                              "(mark the reference workload with @pytest.mark.energy_baseline)", "unmeasured")
        return energy_verdict(measurement, state.cap_j, self.settings.unit,
                              normalization.normalize if normalization else None)[1]

    def _complexity_failures(self, item: pytest.Item, state: TestState) -> List[CapFailure]:
        """Count the marker's ``macs_input`` (after the measured window) and check the complexity caps."""
        marker = item.get_closest_marker("energy")
        shape = marker.kwargs.get("macs_input") if marker else None
        if shape is not None and "macs" not in state.extra:
            try:
                from .account.complexity import count_complexity, example_from_shape

                model = marked_model(item, marker.kwargs.get("macs_model"))  # type: ignore[union-attr]
                record_complexity(state, count_complexity(model, example_from_shape(shape)))
            except Exception as exc:  # the user's model, shape or install: say which, fail the test
                state.extra["complexity_verdict"] = "error"
                return [CapFailure(f"cannot count MACs for macs_input={shape!r}: {type(exc).__name__}: {exc}", "error")]
        if "macs" not in state.extra:
            return []
        failures = complexity_failures(state.extra, self.settings.macs_cap, self.settings.params_cap)
        capped = self.settings.macs_cap is not None or self.settings.params_cap is not None
        state.extra["complexity_verdict"] = "over-cap" if failures else ("pass" if capped else "no-cap")
        return failures

    def _regression(self, item: pytest.Item, state: TestState) -> Optional[CapFailure]:
        stored = self.stored_run()
        if stored is None or self.settings.compare_fail is None or state.measurement is None:
            return None
        failure = check_regression(
            item.nodeid,
            state.measurement.total_j,
            state.extra.get("energy_normalized_j"),
            self.environment.get("fingerprint"),
            stored,
            self.settings.compare_fail,
            self.settings.unit,
        )
        if failure is not None:
            state.extra["comparison"] = {"run": stored.path.name, "verdict": failure.verdict, "message": failure.message}
        return failure

    def _record(self, item: pytest.Item, state: TestState, outcome: str, verdict: str, failures: List[CapFailure]) -> Record:
        path, line, _ = item.location
        return Record(
            nodeid=item.nodeid,
            phase=state.phase,
            outcome=outcome,
            measurement=state.measurement,
            cap_j=state.cap_j,
            verdict=verdict,
            verdict_message="; ".join(failure.as_longrepr() for failure in failures) or None,
            scores=dict(state.scores),
            system=state.system,
            location=(path, (line or 0) + 1),
            extra=dict(state.extra),
        )

    # -- collecting and reporting (controller side) ----------------------------------------
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        message = getattr(report, "energy_usage_error", None)
        if message is not None and not self.is_worker:
            raise pytest.UsageError(message)  # an xdist worker found a bad marker

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_worker:
            for message in getattr(report, "energy_notices", None) or ():
                self.notice(message)
        data = getattr(report, "energy_record", None)
        if data is None or self.is_worker:
            return
        self.records.append(Record.from_json(data))
        self.environment = self.environment or dict(getattr(report, "energy_environment", {}) or {})
        self._baseline_json = self._merged_baseline(getattr(report, "energy_baseline", None) or self._baseline_json)
        if self._checkpoints is not None:
            self._checkpoints.changed()

    def _merged_baseline(self, targets: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The baseline targets a worker reports, keeping a target's energy that another worker measured."""
        known = {target.get("nodeid"): target for target in self._baseline_json if target.get("energy_j") is not None}
        return [target if target.get("energy_j") is not None else known.get(target.get("nodeid"), target)
                for target in targets]

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        """Write the reports after every plugin's own ``pytest_sessionfinish``, before the terminal summary.

        pytest's junitxml writes its file there: the accounted figures are added to it afterwards.
        """
        yield
        if self._running is not None:  # interrupted (Ctrl-C) inside a measured test
            item, state = self._running
            if state.measurement is None and state.window is not None:
                state.measurement = state.window.stop()
            failure = self._energy_failure(state, state.measurement)
            self.records.append(self._record(item, state, "interrupted", verdict_of([failure] if failure else [], state.cap_j),
                                             [failure] if failure else []))
            self._running = None
        if not self.is_worker:
            overlap = overlap_warning(str(record.extra["worker"]) for record in self.records
                                      if "worker" in record.extra and record.energy_j is not None)
            if overlap:
                self.notice(overlap)
            if self._checkpoints is not None:
                self._checkpoints.close()
            self.write_json()
            if self.settings.autosave and self.records:
                try:
                    self._saved_run = self.run_store().save(self.document(), commit_info(self.config.rootpath))
                except OSError as exc:
                    self.notice(f"cannot store this run under {self.settings.storage}: {exc}")
            self._finish_junit()

    def pytest_keyboard_interrupt(self) -> None:
        """Write what is pending now: the session may not get to its end."""
        if self._checkpoints is not None:
            self._checkpoints.flush()

    def pytest_internalerror(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.flush()

    def pytest_unconfigure(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._stopper.uninstall()
        if self._machine_lock is not None:
            self._machine_lock.release()
        if self._meter is not None:
            self._meter.close()

    def _finish_junit(self) -> None:
        """Normalised energies and EW scores into ``--junitxml``, from the records the JSON report accounts.

        Under xdist a test's EW can depend on a test another worker ran, or one that ran later:
        only the controller, at the end, has every record.
        """
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if not xmlpath or not self.records:
            return
        path = Path(self.config.invocation_params.dir, os.path.expanduser(os.path.expandvars(xmlpath)))
        try:
            add_accounted_properties(path, self.accounted_records(), getattr(self.config.option, "junitprefix", None))
        except (OSError, ValueError) as exc:
            self.notice(f"cannot add normalised energies and EW scores to {xmlpath}: {exc}")

    def session_normalization(self) -> Optional[Normalization]:
        """The normalisation for the reports, from the targets the tests' reports carried."""
        if self.normalization is not None or not self.baseline.active:
            return self.normalization
        points = [(t["energy_j"], t["reference_j"]) for t in self._baseline_json if t.get("energy_j") and t.get("reference_j")]
        if not points or len(points) != len(self._baseline_json):
            return None
        return Normalization.from_points(tuple(points))

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
        accounted = accounted + account(records[len(accounted):], normalization, self.settings.reference)
        self._accounted = (normalization, accounted)
        return accounted

    def document(self) -> Dict[str, Any]:
        return build_document(*self._document_parts())

    def _document_parts(self) -> Tuple[List[Record], Dict[str, Any], Mapping[str, Any], Dict[str, Any], Dict[str, Any]]:
        """What ``build_document`` takes: the accounted records, environment, metadata, session and the rest."""
        session: Dict[str, Any] = {"meter": self.settings.meter, "caps_j": dict(self.settings.caps),
                                   "cap_mode": self.settings.cap_mode, "normalized_caps": self.settings.normalized}
        stored = self.stored_run()
        if stored is not None:
            session["compared_with"] = str(stored.path)
        normalization = self.session_normalization()
        extra = {
            "normalization": normalization.to_json() if normalization else None,
            "baseline": self._baseline_json or [target.to_json() for target in self.baseline.targets],
            "reference": self.settings.reference.to_json(),
            "notices": list(self.notices),
        }
        return self.accounted_records(), self.environment, self.settings.metadata, session, extra

    def write_json(self) -> None:
        """Write the JSON report now: a checkpoint (from ``Checkpoints``) or the final report."""
        if self._report is None or self._json_failed:
            return
        try:
            self._report.write(*self._document_parts())
        except (OSError, TypeError, ValueError) as exc:  # unwritable, or a value JSON cannot hold: say so, go on
            self._json_failed = True
            self.notice(f"cannot write the energy JSON report to {self.settings.json}: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not (self.records or self.notices):
            return
        records = self.accounted_records()
        terminalreporter.write_sep("=", "energy")
        for message in self.notices:
            terminalreporter.write_line(f"pytest-energy: {message}")
        if github.on_github_actions():
            for message in self.notices:
                terminalreporter.write_line(github.notice_annotation(message))
        if not records:
            return
        for line in summary_table(records, self.settings.unit).render_text(terminalreporter._tw.fullwidth):
            terminalreporter.write_line(line)
        for line in accounting_lines(records, self.session_normalization(), self._baseline_json, self.settings.unit):
            terminalreporter.write_line(line)
        for line in caveats(records):
            terminalreporter.write_line(f"  note: {line}")
        if self.settings.json and not self._json_failed:
            terminalreporter.write_line(f"energy report written to {self.settings.json}")
        if self.stored_run() is None and self._compare_note:
            terminalreporter.write_line(f"energy comparison: {self._compare_note}")
        if self._saved_run is not None:
            terminalreporter.write_line(f"energy run stored as {self._saved_run}")
        if github.on_github_actions():
            level = "warning" if self.settings.cap_mode == "warn" else "error"
            for command in github.annotations(records, level):
                terminalreporter.write_line(command)
            try:
                github.write_summary(github.summary_markdown(records, self.settings.unit))
            except OSError as exc:
                self.notice(f"cannot write the GitHub job summary: {exc}")
