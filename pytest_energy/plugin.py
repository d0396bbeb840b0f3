"""pytest-energy: measure the energy of marked tests, cap it, and report it.

How: a test marked ``@pytest.mark.energy`` (or using the ``energy`` fixture, or every
test with ``--energy-all``) is measured from the start to the end of its call phase
by a window on the best available meter (NVML energy counter, RAPL, CodeCarbon).
A test over its cap is turned from passed into failed in ``pytest_runtest_makereport``,
so it fails like any other test (terminal, JUnit, xdist). Figures travel on the
test report as JSON, so the xdist controller writes one report for all workers.
Nothing heavy is imported until the first measured test starts.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

from .account.normalize import Normalization
from .account.session import account
from .baseline import BaselinePlan
from .baseline_cache import BaselineCacheError
from .concurrency import claim_machine, overlap_warning
from .config import OPTIONS, ConfigError, Settings, add_options, build_settings, find_pyproject, parse_marker_cap, read_pyproject
from .decide import CapFailure, complexity_failures, energy_verdict
from .fixture import EnergyProbe, TestState, record_complexity
from .measure.base import Measurement
from .measure.meter import Meter, Window, open_meter
from .record import Record
from .report import github
from .report.json_report import Checkpoints, NotARegularFileError, ReportWriter, build_document, regular_file_target
from .report.junit import junit_properties
from .report.terminal import accounting_lines, caveats, format_table, summary_table
from .runs import StoredRun
from .runs import RunStore, RunStoreError, check_regression, commit_info
from .units import format_energy
from .watchdog import MainThreadStopper, Watchdog

PLUGIN_NAME = "energy-session"
STATE = pytest.StashKey[TestState]()
PHASE_CHOICES = ("train", "test")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "energy(phase='test', cap=None, system=None, macs_input=None, macs_model=None): measure this test's energy; "
        "phase is 'train' or 'test', cap (e.g. '2kWh') overrides --energy-cap for it; system links a training and an "
        "inference test; macs_input (e.g. (1, 128, 626)) counts the MACs of the test's model fixture (macs_model "
        "names it) on a zero input of that shape",
    )
    config.addinivalue_line(
        "markers",
        "energy_baseline(reference=None): the reference workload (e.g. 10 baseline epochs) whose energy here "
        "normalises every other figure; reference is its energy on the reference machine",
    )
    plugin = EnergyPlugin(config, load_settings(config))
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    if config.pluginmanager.hasplugin("html"):
        from .report.html import HtmlColumns

        config.pluginmanager.register(HtmlColumns(plugin.settings.unit), "energy-html")


def load_settings(config: pytest.Config) -> Settings:
    """Read and validate the settings; a bad one is a usage error (exit code 4)."""
    pyproject = find_pyproject(config.rootpath, config.inipath)
    try:
        table = read_pyproject(pyproject) if pyproject else {}
        return build_settings(
            cli={option.dest: config.getoption(option.dest) for option in OPTIONS},
            pyproject=table,
            ini={option.dest: config.getini(option.dest) for option in OPTIONS},
            source=str(pyproject) if pyproject else "pyproject.toml",
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-energy: {exc}") from None


def baseline_cache_dir(config: pytest.Config) -> Path:
    """Where baseline energies are cached: pytest's cache directory (``.pytest_cache``)."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("energy-baseline"))
    return Path(config.rootpath, ".pytest_cache", "d", "energy-baseline")


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> EnergyProbe:
    """The running energy measurement of this test (using it makes the test measured)."""
    plugin: EnergyPlugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    state = plugin.state(request.node)
    assert state is not None  # a test that uses the fixture is always measured
    return EnergyProbe(state)


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
        self._own_records: List[Record] = []  # measured in this process
        self._stopper = MainThreadStopper()
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
        self._stored_run: Optional[StoredRun] = None
        self.baseline = BaselinePlan(settings)
        self.normalization: Optional[Normalization] = None
        self._baseline_json: List[Dict[str, Any]] = []  # on the controller: the targets as a worker last saw them
        self._compare_note = ""
        self.notices: Dict[str, None] = {}  # ordered and without repeats
        self._unsent_notices: List[str] = []  # on a worker: not yet sent to the controller
        compare = settings.compare or ("latest" if settings.compare_fail is not None else None)
        if compare is not None:
            try:
                path, document = self.run_store().load(None if compare == "latest" else compare)
            except RunStoreError as exc:
                if compare != "latest" or self.run_store().has_runs():
                    raise pytest.UsageError(f"pytest-energy: {exc}") from None
                self._compare_note = f"no stored run yet under {settings.storage}: nothing compared this time"
            else:
                self._stored_run = StoredRun.from_document(path, document)

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

    # -- measuring -------------------------------------------------------------------------
    def meter(self) -> Meter:
        if self._meter is None:
            from .environment import environment

            if not self.is_worker:
                self._machine_lock, overlap = claim_machine()
                if overlap:
                    self.notice(overlap)
            self._meter = open_meter(self.settings.meter, self.settings.sampling_hz)
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
        kwargs = marker.kwargs if marker else {}
        phase = "baseline" if is_baseline else kwargs.get("phase", "test")
        if phase not in PHASE_CHOICES + ("baseline",):
            raise pytest.UsageError(f"{item.nodeid}: energy marker phase must be 'train' or 'test', got {phase!r}")
        try:
            marker_cap = parse_marker_cap(kwargs.get("cap"), item.nodeid)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        cap = marker_cap if is_baseline else self.settings.cap_for(phase, marker_cap)
        state = item.stash[STATE] = TestState(phase, cap, kwargs.get("system"))
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
        if cap is not None and self.session_energy_j() >= cap:
            pytest.skip(
                f"energy session cap {format_energy(cap, self.settings.unit)} reached "
                f"({format_energy(self.session_energy_j(), self.settings.unit)} spent)"
            )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        state = self.state(item)
        if state is None:
            yield
            return
        if state.phase == "baseline" and self.baseline.target_for(item.nodeid) is not None:
            state.extra["repeats_j"] = [self._measure_once(item) for _ in range(self.settings.baseline_repeats - 1)]
        window = state.window = self.meter().window()
        self._running = (item, state)
        watchdog = self._watch(state, window)
        try:
            yield
        finally:
            self._stopper.disarm()
            if watchdog is not None:
                watchdog.stop()
            state.measurement = window.stop()

    def _measure_once(self, item: pytest.Item) -> Optional[float]:
        """One extra run of a baseline test's body, for ``baseline-repeats``."""
        window = self.meter().window()
        item.runtest()
        return window.stop().total_j

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
            state.extra["stopped_early"] = {"at_s": elapsed_s, "energy_j": measurement.total_j, "limit": kind}
            cap = state.cap_j if kind == "cap" else self.settings.session_cap_j
            normalization = self._cap_normalization(state) if kind == "cap" else None
            _, failure = energy_verdict(measurement, cap if normalization else limit_j, self.settings.unit,
                                        normalization.normalize if normalization else None)
            message = failure.as_longrepr() if failure else ""
            if kind == "session cap":
                message = message.replace("exceeds cap", "crosses what is left of the session cap", 1)
                message += f"; session cap {format_energy(cap, self.settings.unit)}"
            self._stopper.fire(f"{message}; stopped early at {elapsed_s:.2f} s")

        return Watchdog(window, limit_j, self.settings.check_interval_s, stop).start()

    def session_energy_j(self) -> float:
        """Energy measured so far in this process (each xdist worker counts its own)."""
        return sum(record.energy_j or 0.0 for record in self._own_records)

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
        if call.when == "call" or (call.when == "setup" and not report.passed):
            outcome_name = report.outcome if call.when == "call" else ("error" if report.failed else "skipped")
            if state.phase == "baseline":
                self._baseline_done(item, state, report.passed and call.when == "call")
            elif self.normalization is not None and state.measurement and state.measurement.total_j is not None:
                state.extra["energy_normalized_j"] = self.normalization.normalize(state.measurement.total_j)
            failures = [failure for failure in (self._cap_failure(state), self._regression(item, state)) if failure]
            if call.when == "call":
                failures.extend(self._complexity_failures(item, state))
            if failures:
                state.extra["verdict_message"] = "; ".join(failure.as_longrepr() for failure in failures)
            if failures and self.settings.cap_mode == "warn":
                for failure in failures:
                    self.notice(f"{item.nodeid}: {failure.as_longrepr()}")
            elif failures and report.passed:
                report.outcome = "failed"
                report.longrepr = "\n".join(failure.as_longrepr() for failure in failures)
                outcome_name = "failed"
            record = self._record(item, state, outcome_name)
            self._own_records.append(record)
            if self.is_worker:
                record = dataclasses.replace(record, extra={**record.extra, "worker": self.config.workerinput["workerid"]})
            report.energy_record = record.to_json()  # type: ignore[attr-defined]
            if record.scores and (self.normalization is not None or not self.settings.reference.normalizes):
                record = account(self._own_records, self.normalization, self.settings.reference)[-1]
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
                try:
                    spread = self.baseline.measured(item.nodeid, energies, self.environment["hardware"], state.measurement.meter)  # type: ignore[union-attr]
                except (BaselineCacheError, OSError) as exc:
                    self.notice(f"cannot cache the baseline: {exc}")
                    spread = None
                if spread:
                    self.notice(spread)
                self.normalization = self.baseline.normalization()
        state.extra["baseline"] = target.to_json()

    def _cap_normalization(self, state: TestState) -> Optional[Normalization]:
        """The normalisation a cap compares with (``--energy-normalized``), if any."""
        return self.normalization if self.settings.normalized and state.phase in PHASE_CHOICES else None

    def _cap_failure(self, state: TestState) -> Optional[CapFailure]:
        normalization = self._cap_normalization(state)
        if self.settings.normalized and normalization is None and state.cap_j is not None and state.phase in PHASE_CHOICES:
            if self.is_worker and any(target.entry is None for target in self.baseline.targets):
                return CapFailure("cannot enforce a normalised cap: the baseline is being measured on another xdist "
                                  "worker; measure it once without -n (later runs reuse the cached baseline)", "unmeasured")
            return CapFailure("cannot enforce a normalised cap: no baseline was measured before this test "
                              "(mark the reference workload with @pytest.mark.energy_baseline)", "unmeasured")
        return energy_verdict(state.measurement, state.cap_j, self.settings.unit,
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
        if self._stored_run is None or self.settings.compare_fail is None or state.measurement is None:
            return None
        failure = check_regression(
            item.nodeid,
            state.measurement.total_j,
            state.extra.get("energy_normalized_j"),
            self.environment.get("fingerprint"),
            self._stored_run,
            self.settings.compare_fail,
            self.settings.unit,
        )
        if failure is not None:
            state.extra["comparison"] = {"run": self._stored_run.path.name, "verdict": failure.verdict, "message": failure.message}
        return failure

    def _record(self, item: pytest.Item, state: TestState, outcome: str) -> Record:
        failure = self._cap_failure(state)
        verdict = failure.verdict if failure else ("no-cap" if state.cap_j is None else "pass")
        if (state.extra.get("stopped_early") or {}).get("limit") == "session cap":
            verdict = "over-cap"
        path, line, _ = item.location
        return Record(
            nodeid=item.nodeid,
            phase=state.phase,
            outcome=outcome,
            measurement=state.measurement,
            cap_j=state.cap_j,
            verdict=verdict,
            scores=dict(state.scores),
            system=state.system,
            location=(path, (line or 0) + 1),
            extra=dict(state.extra),
        )

    # -- collecting and reporting (controller side) ----------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_worker:
            for message in getattr(report, "energy_notices", None) or ():
                self.notice(message)
        data = getattr(report, "energy_record", None)
        if data is None or self.is_worker:
            return
        self.records.append(Record.from_json(data))
        self.environment = self.environment or dict(getattr(report, "energy_environment", {}) or {})
        self._baseline_json = list(getattr(report, "energy_baseline", None) or self._baseline_json)
        if self._checkpoints is not None:
            self._checkpoints.changed()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._running is not None:  # interrupted (Ctrl-C) inside a measured test
            item, state = self._running
            if state.measurement is None and state.window is not None:
                state.measurement = state.window.stop()
            self.records.append(self._record(item, state, "interrupted"))
            self._running = None
        if not self.is_worker:
            overlap = overlap_warning(str(record.extra["worker"]) for record in self.records if "worker" in record.extra)
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
        if self._stored_run is not None:
            session["compared_with"] = str(self._stored_run.path)
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
        for line in format_table(*summary_table(records, self.settings.unit)):
            terminalreporter.write_line(line)
        for line in accounting_lines(records, self.session_normalization(), self._baseline_json, self.settings.unit):
            terminalreporter.write_line(line)
        for line in caveats(records):
            terminalreporter.write_line(f"  note: {line}")
        if self.settings.json and not self._json_failed:
            terminalreporter.write_line(f"energy report written to {self.settings.json}")
        if self._compare_note:
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
