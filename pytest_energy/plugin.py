"""pytest-energy: measure the energy of marked tests, cap it, and report it (the pytest11 entry point).

How: a test marked ``@pytest.mark.energy`` (or using the ``energy`` fixture, or every
test with ``--energy-all``) is measured from the start to the end of its call phase
by a window on the best available meter (NVML energy counter, RAPL, CodeCarbon).
A test over its cap is turned from passed into failed in ``pytest_runtest_makereport``,
so it fails like any other test (terminal, JUnit, xdist).

This module is what pytest imports at start: options, markers, the settings (checked
here, a bad one is a usage error), the marker check at collection and the fixture. The
session's ``EnergyPlugin`` (``session_plugin.py``) and everything it imports are loaded
only once something can be measured: at configure time when any energy setting is given
or xdist runs, else when the first measured test is collected.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator, List, Optional

import pytest

from .config import (OPTIONS, ConfigError, Settings, add_options, build_settings, find_pyproject, parse_baseline_marker,
                     parse_energy_marker, read_pyproject)

if TYPE_CHECKING:
    from .fixture import EnergyProbe
    from .session_plugin import EnergyPlugin

PLUGIN_NAME = "energy-session"
SETTINGS = pytest.StashKey[Settings]()


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
    settings = config.stash[SETTINGS] = load_settings(config)
    if config.pluginmanager.hasplugin("html"):
        from .report.html import HtmlColumns

        config.pluginmanager.register(HtmlColumns(settings.unit), "energy-html")
    if needs_session_from_start(config, settings):
        start_session(config)


def needs_session_from_start(config: pytest.Config, settings: Settings) -> bool:
    """Whether the session must be set up now; else it starts when the first measured test is collected.

    Any setting (a report file, caps, a comparison, every test measured...) or xdist starts
    it now, so nothing changes there; an installed but unconfigured plugin pays only for
    its options and markers until a marked test (or one using the fixture) shows up.
    """
    if hasattr(config, "workerinput") or getattr(config.option, "numprocesses", None) or \
            getattr(config.option, "dist", "no") != "no":
        return True
    unconfigured = build_settings(cli={}, pyproject={}, ini={}, source=settings.source)
    return settings != unconfigured


def start_session(config: pytest.Config) -> EnergyPlugin:
    """The session's ``EnergyPlugin``, imported, created and registered on first call."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        from .session_plugin import EnergyPlugin

        plugin = EnergyPlugin(config, config.stash[SETTINGS])
        config.pluginmanager.register(plugin, PLUGIN_NAME)
        rival = rival_plugin(config)
        if rival is not None:
            plugin.session.notice(
                f"pytest-energy-reporter is also active (plugin {rival!r}): it too reads @pytest.mark.energy and runs "
                f"each marked test several times (its --energy-iterations), so these figures include its extra runs; "
                f"disable it for this run with -p no:{rival}"
            )
    return plugin


def rival_plugin(config: pytest.Config) -> Optional[str]:
    """The name under which pytest-energy-reporter (another plugin with an ``energy`` marker) is loaded, if it is."""
    for plugin in config.pluginmanager.get_plugins():
        if str(getattr(plugin, "__name__", "")).split(".")[0] == "pytest_energy_reporter":
            return config.pluginmanager.get_name(plugin)
    return None


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
            environ=os.environ,
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-energy: {exc}") from None


MARKERS = ("energy", "energy_baseline")


def energy_markers(item: pytest.Item) -> List[pytest.Mark]:
    """The item's energy and energy_baseline markers, closest first (one walk up its nodes)."""
    return [marker for marker in item.iter_markers() if marker.name in MARKERS]


def marker_error(item: pytest.Item, markers: List[pytest.Mark]) -> Optional[str]:
    """What is wrong with the energy and energy_baseline ``markers`` of ``item``, in one line; None if nothing."""
    try:
        for marker in markers:
            parse = parse_energy_marker if marker.name == "energy" else parse_baseline_marker
            parse(marker.args, marker.kwargs, item.nodeid)
    except ConfigError as exc:
        return f"pytest-energy: {exc}"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Check the markers of the tests a collector found, before any test runs: a bad one is a usage error.

    An xdist worker cannot stop the session itself: it fails the collection report with the
    message, and the controller raises the usage error when the report reaches it.
    """
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    items = [item for item in report.result if isinstance(item, pytest.Item)] if report.passed else []
    markers = [energy_markers(item) for item in items]
    errors = [marker_error(item, found) for item, found in zip(items, markers) if found]
    message = next((error for error in errors if error), None)
    # a test marked, a baseline, or using the fixture is measured whatever the settings: the session starts now
    if message is None and any(found or "energy" in getattr(item, "fixturenames", ()) for item, found in zip(items, markers)):
        start_session(collector.config)
    if message is not None:
        if not hasattr(collector.config, "workerinput"):
            raise pytest.UsageError(message)
        report.outcome, report.longrepr, report.result = "failed", message, []
        report.energy_usage_error = message  # type: ignore[attr-defined]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Raise the cap's stop again when a subtest caught it (pytest's subtests, unittest's subTest).

    A subtest logs its report from inside the test, so raising here ends the test, not one subtest.
    """
    stop = getattr(report, "energy_stop", None)
    if stop is not None:
        del report.energy_stop  # type: ignore[attr-defined]
        raise stop


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> EnergyProbe:
    """The running energy measurement of this test (using it makes the test measured)."""
    from .fixture import EnergyProbe

    state = start_session(request.config).state(request.node)
    assert state is not None  # a test that uses the fixture is always measured
    return EnergyProbe(state)
