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
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .account.baseline_cache import BaselineCacheError
from .account.ew import account
from .account.normalize import Normalization
from .account.record import Record
from .baseline_plan import BaselinePlan
from .config import ConfigError, EnergyMarker, Settings
from .decide.limits import CapFailure, Figures, Limits, check, complexity_verdict, live_limit, verdict_of
from .fixture import TestState, record_complexity
from .measure.base import Measurement
from .measure.meter import Meter
from .measure.overlap import Activity, ActivityMark, SharedTotal, claim_machine, overlap_warning
from .measure.watchdog import MainThreadStopper, Watchdog
from .report import github
from .report.json_report import Checkpoints, ReportWriter, build_document
from .report.junit import add_accounted_properties
from .report.terminal import accounting_lines, caveats, comparison_table, condensed, summary_table
from .store.files import NotARegularFileError, regular_file_target
from .store.runs import RunStore, RunStoreError, StoredRun, commit_info
from .units import format_energy

Location = Tuple[str, int]  # a test's file and 1-based line


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished test's record and, when a limit fails it now, what it fails with."""

    record: Record
    fail_with: Optional[str] = None


class EnergySession:
    """One session's meter, records, baseline, limits and reports.

    ``worker_id`` is set on an xdist worker, which measures and sends its records to the
    controller; ``session_total`` is then the file where workers count the session's energy.
    """

    def __init__(self, settings: Settings, rootpath: Path, invocation_dir: Path, worker_id: Optional[str] = None,
                 session_total: Optional[str] = None):
        self.settings = settings
        self.rootpath = rootpath
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
        self._baseline_marks: Dict[str, Optional[ActivityMark]] = {}
        self._session_total = SharedTotal(Path(session_total)) if session_total else None
        self._session_total_sent_j = 0.0  # how much of this worker's energy is in the shared total
        self.baseline = BaselinePlan(settings)
        self.normalization: Optional[Normalization] = None
        self._baseline_json: List[Dict[str, Any]] = []  # on the controller: the targets as a worker last saw them
        self._accounted: Tuple[Optional[Normalization], List[Record]] = (None, [])  # see accounted_records
        self._json_failed = False
        self._report: Optional[ReportWriter] = None
        self._checkpoints: Optional[Checkpoints] = None
        self.saved_run: Optional[Path] = None
        if settings.json and worker_id is None:
            path = Path(invocation_dir, settings.json)
            try:
                regular_file_target(path)
            except NotARegularFileError as exc:
                raise ConfigError(f"--energy-json: {exc}") from None
            self._report = ReportWriter(path)
            self._checkpoints = Checkpoints(self.write_json)
        self._stored_run: Optional[StoredRun] = None
        self._compare_note = ""
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
                raise ConfigError(str(exc)) from None

    @property
    def is_worker(self) -> bool:
        return self.worker_id is not None

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
        return Limits(settings.unit, settings.normalized, settings.session_cap_j, settings.macs_cap, settings.params_cap,
                      settings.compare_fail, self.stored_run())

    # -- measuring ---------------------------------------------------------------------------
    def meter(self) -> Meter:
        if self._meter is None:
            from .measure.machine import environment
            from .measure.meter import open_meter

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

    def test_state(self, marker: Optional[EnergyMarker], is_baseline: bool) -> TestState:
        """A measured test's spec: its phase and cap, from its marker (None: unmarked) and the settings."""
        arguments = marker or EnergyMarker()
        phase = "baseline" if is_baseline else arguments.phase
        cap = arguments.cap_j if is_baseline else self.settings.cap_for(phase, arguments.cap_j)
        return TestState(phase, cap, arguments.system)

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
        self.normalization = self.baseline.normalization()
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

    def measure_baseline_repeats(self, nodeid: str, state: TestState, run: Callable[[], None]) -> None:
        """Run a baseline test's body ``baseline-repeats - 1`` extra times, each in its own window."""
        if state.phase != "baseline" or self.baseline.target_for(nodeid) is None:
            return
        self._baseline_marks[nodeid] = self._activity_call(self._activity.mark)
        state.extra["repeats_j"] = [self._measure_once(run) for _ in range(self.settings.baseline_repeats - 1)]

    def _measure_once(self, run: Callable[[], None]) -> Optional[float]:
        activity = self._register_window()
        window = self.meter().window()
        try:
            run()
        finally:
            energy_j = window.stop().total_j
            self._unregister_window(activity)
        return energy_j

    def start_test(self, nodeid: str, location: Location, state: TestState) -> None:
        """Open the test's window and, when it has a limit to enforce live, its watchdog."""
        if self.settings.session_cap_j is not None:
            state.session_left_j = self.settings.session_cap_j - self.session_energy_j()
        state.activity = self._register_window()
        state.window = self.meter().window()
        self._running = (nodeid, location, state)
        state.watchdog = self._watch(nodeid, state)
        state.in_call = True

    def stop_test(self, state: TestState) -> None:
        """Close the test's window: its ``Measurement`` is final."""
        state.in_call = False
        self._stopper.disarm()
        if state.watchdog is not None:
            state.watchdog.stop()
        state.measurement = state.window.stop()  # type: ignore[union-attr]
        self._unregister_window(state.activity)

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
            state.extra["stopped_early"] = {"at_s": elapsed_s, "energy_j": measurement.total_j, "limit": kind,
                                            "limit_j": limit_j}
            failure = next((f for f in check(self._figures(nodeid, state, measurement), limits) if f.limit == kind), None)
            self._stop_message = failure.as_longrepr() if failure else (
                f"energy crossed {format_energy(limit_j, self.settings.unit)} ({kind}); stopped early at {elapsed_s:.2f} s")
            self._stopper.fire(self._stop_message)

        return Watchdog(state.window, limit_j, self.settings.check_interval_s, stop).start()  # type: ignore[arg-type]

    def was_stopped_by(self, message: str) -> bool:
        """Whether the running test failed with the watchdog's stop (and not with a failure of its own)."""
        return self._stop_message is not None and message == self._stop_message

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
            session_left_j=state.session_left_j,
            complexity=state.extra,
            fingerprint=self.environment.get("fingerprint"),
            stopped_early=state.extra.get("stopped_early"),
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
        if state.phase == "baseline":
            self._baseline_done(nodeid, state, passed)
        elif self.normalization is not None and state.measurement and state.measurement.total_j is not None:
            state.extra["energy_normalized_j"] = self.normalization.normalize(state.measurement.total_j)
        count_error = self._count_macs(state, macs_input, model) if macs_input is not None and model else None
        limits = self.limits()
        failures = check(self._figures(nodeid, state, state.measurement), limits)
        regression = next((failure for failure in failures if failure.limit == "regression"), None)
        if regression is not None:
            state.extra["comparison"] = {"run": limits.stored.path.name,  # type: ignore[union-attr]
                                         "verdict": regression.verdict, "message": regression.message}
        if "macs" in state.extra and count_error is None:
            state.extra["complexity_verdict"] = complexity_verdict(failures, limits)
        verdict = verdict_of(failures, state.cap_j)
        failures += [count_error] if count_error else []
        fail_with = None
        if failures and self.settings.cap_mode == "warn":
            for failure in failures:
                self.notice(f"{nodeid}: {failure.as_longrepr()}")
        elif failures and (passed or stopped):  # a stopped test reads the figure of its whole window
            fail_with, outcome = "\n".join(failure.as_longrepr() for failure in failures), "failed"
        record = self._record(nodeid, location, state, outcome, verdict, failures)
        self._own_energy_j += record.energy_j or 0.0
        state.reported = True
        self._running = None
        return Finished(record, fail_with)

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
                                                    state.measurement.meter, cache=not contention)  # type: ignore[union-attr]
                except (BaselineCacheError, OSError) as exc:
                    self.notice(f"cannot cache the baseline: {exc}")
                    spread = None
                if contention:
                    self.notice(f"baseline {nodeid} was measured while {contention}: its "
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

    def _merged_baseline(self, targets: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The baseline targets a worker reports, keeping a target's energy that another worker measured."""
        known = {target.get("nodeid"): target for target in self._baseline_json if target.get("energy_j") is not None}
        return [target if target.get("energy_j") is not None else known.get(target.get("nodeid"), target)
                for target in targets]

    # -- the session's end -------------------------------------------------------------------
    def finish(self) -> None:
        """Record a test interrupted in its call phase; on the controller write the JSON report and store the run."""
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
        self.write_json()
        if self.settings.autosave and self.records:
            try:
                self.saved_run = self.run_store().save(self.document(), commit_info(self.rootpath))
            except OSError as exc:
                self.notice(f"cannot store this run under {self.settings.storage}: {exc}")

    def flush(self) -> None:
        """Write what is pending now (Ctrl-C, an internal error): the session may not get to its end."""
        if self._checkpoints is not None:
            self._checkpoints.flush()

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._stopper.uninstall()
        if self._machine_lock is not None:
            self._machine_lock.release()
        if self._meter is not None:
            self._meter.close()

    # -- accounting and reports (controller) -------------------------------------------------
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
        accounted = accounted + account(records[len(accounted):], normalization, self.settings.reference,
                                        baseline_off=self.settings.baseline_mode == "off")
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

    def add_to_junit(self, path: Path, shown_as: str, prefix: Optional[str]) -> None:
        """Normalised energies and EW scores into the ``--junitxml`` file, from the records the JSON report accounts.

        Under xdist a test's EW can depend on a test another worker ran, or one that ran later:
        only the controller, at the end, has every record.
        """
        if not self.records:
            return
        try:
            add_accounted_properties(path, self.accounted_records(), prefix)
        except (OSError, ValueError) as exc:
            self.notice(f"cannot add normalised energies and EW scores to {shown_as}: {exc}")

    def summary_lines(self, width: int) -> List[str]:
        """The terminal's energy section (without its title): notices, the table, accounting, where reports went."""
        if self.is_worker or not (self.records or self.notices):
            return []
        records = self.accounted_records()
        lines = [f"pytest-energy: {message}" for message in self.notices]
        if github.on_github_actions():
            lines += [github.notice_annotation(message) for message in self.notices]
        if not records:
            return lines
        shown, totals = condensed(records, self.settings.json if not self._json_failed else None, self.settings.unit)
        lines += summary_table(shown, self.settings.unit).render_text(width) + totals
        lines += accounting_lines(records, self.session_normalization(), self._baseline_json, self.settings.unit)
        lines += [f"  note: {line}" for line in caveats(records)]
        if self.settings.json and not self._json_failed:
            lines.append(f"energy report written to {self.settings.json}")
        stored = self.stored_run()
        if stored is None and self._compare_note:
            lines.append(f"energy comparison: {self._compare_note}")
        elif stored is not None:
            lines += comparison_table(records, stored, self.environment.get("fingerprint"), self.settings.unit).render_text(width)
        if self.saved_run is not None:
            lines.append(f"energy run stored as {self.saved_run}")
        if github.on_github_actions():
            lines += github.annotations(records, "warning" if self.settings.cap_mode == "warn" else "error")
            try:
                github.write_summary(github.summary_markdown(records, self.settings.unit))
            except OSError as exc:
                self.notice(f"cannot write the GitHub job summary: {exc}")
        return lines
