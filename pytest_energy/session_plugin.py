"""The session's pytest hooks (registered by ``plugin.py``): each translates pytest into a call on ``EnergySession``.

A test over a limit is turned from passed into failed in ``pytest_runtest_makereport``, so it
fails like any other test (terminal, JUnit, xdist). What a test report carries to the
controller is one JSON payload, so the xdist controller writes one report for all workers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from .config import ConfigError, Settings, parse_energy_marker
from .fixture import TestState
from .measure.interrupts import SigtermInterrupt
from .report.junit import junit_properties
from .session import EnergySession, Location

STATE = pytest.StashKey[TestState]()


def baseline_cache_dir(config: pytest.Config) -> Path:
    """Where baseline energies are cached: ``d/energy-baseline`` in pytest's cache directory (the
    ``cache_dir`` ini key, ``.pytest_cache`` under the rootdir by default), made only when an entry is written."""
    try:
        configured = str(config.getini("cache_dir") or ".pytest_cache")
    except ValueError:  # -p no:cacheprovider: its ini key is not registered
        configured = ".pytest_cache"
    return Path(config.rootpath, os.path.expanduser(os.path.expandvars(configured)), "d", "energy-baseline")


def outcome_of(report: pytest.TestReport, when: str) -> str:
    """The test's outcome as the energy report names it: xfail and xpass are kept apart from skipped and passed."""
    if hasattr(report, "wasxfail") and not report.failed:
        return "xfailed" if report.skipped else "xpassed"
    if when != "call":
        return "error" if report.failed else "skipped"
    return report.outcome


def location_of(item: pytest.Item) -> Location:
    path, line, _ = item.location
    return path, (line or 0) + 1


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


def spawns_xdist_workers(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller that will start workers (``-n N``, ``--dist``)."""
    option = config.option
    return getattr(option, "dist", "no") != "no" and not getattr(option, "collectonly", False)


def usage_error(exc: ConfigError) -> pytest.UsageError:
    return pytest.UsageError(f"pytest-energy: {exc}")


class EnergyPlugin:
    """pytest's side of an ``EnergySession``: which tests are measured, and what their reports say."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        worker = getattr(config, "workerinput", None)
        try:
            self.session = EnergySession(settings, config.rootpath, config.invocation_params.dir,
                                         worker["workerid"] if worker else None,
                                         worker.get("energy_session_total") if worker else None,
                                         spawns_workers=spawns_xdist_workers(config))
        except ConfigError as exc:
            raise usage_error(exc) from None
        self.sigterm = SigtermInterrupt(lambda message: pytest.exit(message, returncode=pytest.ExitCode.INTERRUPTED))
        if worker is None:
            self.sigterm.install()

    def state(self, item: pytest.Item) -> Optional[TestState]:
        """The measurement state of ``item``, created on first use; None if it is not measured."""
        if STATE in item.stash:
            return item.stash[STATE]
        marker = item.get_closest_marker("energy")
        is_baseline = self.session.baseline.is_baseline(item)
        if marker is None and not is_baseline and "energy" not in getattr(item, "fixturenames", ()) and \
                not self.session.settings.all:
            return None
        arguments = parse_energy_marker(marker.args, marker.kwargs, item.nodeid) if marker else None  # checked at collection
        state = item.stash[STATE] = self.session.test_state(arguments, is_baseline)
        return state

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: List[pytest.Item]) -> None:
        """Reuse the cached baseline (skipping its test) or move the baseline test first."""
        try:
            reused = self.session.plan_baseline(items, baseline_cache_dir(self.config))
        except ConfigError as exc:
            raise usage_error(exc) from None
        for item, reason in reused:
            item.add_marker(pytest.mark.skip(reason=reason))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        reason = self.session.session_cap_reached()
        if reason is not None:  # reported at the test's line, not this hook's
            raise pytest.skip.Exception(reason, _use_item_location=True)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        state = self.state(item)
        if state is None:
            yield
            return
        self.session.measure_repeats(item.nodeid, state, item.runtest)
        item.runtest = self._measured(item, state)  # type: ignore[method-assign]
        try:
            yield
        finally:
            del item.runtest  # the item's own again

    def _measured(self, item: pytest.Item, state: TestState) -> Callable[[], None]:
        """The test body in its window: pytest's own call hooks after it (gc.collect) stay outside, as in the repeats'."""
        runtest = item.runtest

        def run() -> None:
            self.session.start_test(item.nodeid, location_of(item), state)
            ended_by: Optional[BaseException] = None
            try:
                runtest()
            except BaseException as error:
                ended_by = error
                raise
            finally:
                self.session.stop_test(state, interrupted=isinstance(ended_by, (KeyboardInterrupt, pytest.exit.Exception)))

        return run

    def pytest_runtest_logfinish(self) -> None:
        self.session.share_energy()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """On the xdist controller: give every worker the file in which they count the session's energy together."""
        path = self.session.shared_total_for_workers(self.config.add_cleanup)
        if path is not None:
            node.workerinput["energy_session_total"] = path

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        state = self.state(item) if call.when == "setup" and not report.passed else item.stash.get(STATE, None)
        finished = None
        if state is not None and not state.reported:
            if state.in_call:  # a subtest's report (subtests fixture, unittest subTest): the test's own comes later
                self._subtest_reported(state, report, call)
            elif call.when == "call" or (call.when == "setup" and not report.passed):
                finished = self._finish(item, state, report, call)
        payload = self.session.payload(finished)
        if payload is not None:
            report.energy_payload = payload  # type: ignore[attr-defined]

    @staticmethod
    def _subtest_reported(state: TestState, report: pytest.TestReport, call: pytest.CallInfo) -> None:
        """Count a failed subtest; a cap stop caught by the subtest is raised again (``plugin.pytest_runtest_logreport``)."""
        state.failed_subtests += report.failed
        stop = call.excinfo.value if call.excinfo is not None else None
        if state.extra.get("stopped_early") and isinstance(stop, pytest.fail.Exception):
            report.energy_stop = stop  # type: ignore[attr-defined]

    def _finish(self, item: pytest.Item, state: TestState, report: pytest.TestReport, call: pytest.CallInfo) -> Any:
        """The test's record from the session; a limit that fails it turns its report into a failure."""
        outcome_name = outcome_of(report, call.when)
        if state.failed_subtests and outcome_name == "passed":
            outcome_name = "failed"
        marker = item.get_closest_marker("energy")
        macs_input = marker.kwargs.get("macs_input") if marker and call.when == "call" else None
        finished = self.session.finish_test(
            item.nodeid, location_of(item), state, outcome_name, report.passed,
            stopped=report.failed and call.excinfo is not None and self.session.was_stopped_by(str(call.excinfo.value)),
            macs_input=macs_input, model=lambda: marked_model(item, marker.kwargs.get("macs_model")),  # type: ignore[union-attr]
        )
        if finished.fail_with is not None:
            report.outcome, report.longrepr = "failed", finished.fail_with
            report.__dict__.pop("wasxfail", None)  # an xpass over its cap fails plainly (JUnit would say skipped)
        item.user_properties.extend(junit_properties(finished.record))
        return finished

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        message = getattr(report, "energy_usage_error", None)
        if message is not None and not self.session.is_worker:
            raise pytest.UsageError(message)  # an xdist worker found a bad marker

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.receive(getattr(report, "energy_payload", None))
        if report.when == "???" and report.failed:  # xdist's report of a test whose worker crashed
            path, line, _ = report.location
            self.session.worker_crashed(report.nodeid, (path, (line or 0) + 1), str(report.longrepr))

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        """Write the reports after every plugin's own ``pytest_sessionfinish``, before the terminal summary.

        pytest's junitxml writes its file there: the accounted figures are added to it afterwards.
        A JSON report or stored run that was asked for and could not be written makes a green run exit 1.
        """
        yield
        self.session.finish()
        if (self.session.reports.session_cap_fails_run() or self.session.reports.files_not_written()) \
                and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the session cap, or a report asked for and not written
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if xmlpath and not self.session.is_worker:
            path = Path(self.config.invocation_params.dir, os.path.expanduser(os.path.expandvars(xmlpath)))
            self.session.reports.add_to_junit(path, xmlpath, getattr(self.config.option, "junitprefix", None))

    def pytest_keyboard_interrupt(self) -> None:
        self.session.flush()

    def pytest_internalerror(self) -> None:
        self.session.flush()

    def pytest_unconfigure(self) -> None:
        self.sigterm.uninstall()
        self.session.close()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = self.session.reports.summary_lines(terminalreporter._tw.fullwidth)
        if lines:
            terminalreporter.write_sep("=", "energy")
        for line in lines:
            terminalreporter.write_line(line)
