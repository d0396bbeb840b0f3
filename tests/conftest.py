"""Shared fixtures: pytester runs of the plugin that cannot reach the network, and their reports.

Every ``pytester`` run here is offline-safe: in-process runs refuse any INET socket
connection (a test that needs the network fails loudly instead of hanging), and
subprocess runs inherit proxies that point at a closed local port. CodeCarbon is
told to log errors only, a user's pytest settings cannot leak in, and each run gets
its own temporary and state directory, so the machine lock of a pytest-energy session running
elsewhere on the machine does not add an overlap warning to it.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from pytest_energy.measure.overlap import STATE_DIR_ENV
from pytest_energy.report.json_report import load_schema

CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
REPORT_NAME = "energy.json"


@pytest.fixture(autouse=True, scope="session")
def own_machine_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Sessions this suite starts (subprocesses too) keep the machine lock and activity file to themselves:
    another pytest-energy run on the machine must not make their baselines contended."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(STATE_DIR_ENV, str(tmp_path_factory.mktemp("machine-state")))
        yield


@pytest.fixture(autouse=True, scope="session")
def meter_modules_loaded() -> None:
    """Import CodeCarbon once in this process, before any ``pytester`` snapshot of ``sys.modules``.

    In-process runs drop the modules they imported when their test ends; a CodeCarbon
    imported afresh in a later test no longer detects the CPU (its figure goes missing), and
    its NVML module imported while a test's fake ``pynvml`` is installed keeps that fake.
    """
    import importlib

    importlib.import_module("pytest_energy.measure.codecarbon")
    importlib.import_module("codecarbon.external.hardware")
    importlib.import_module("codecarbon.core.gpu_nvidia")  # binds the real pynvml, never a test's fake
    for module in ("numpy", "pandas"):  # a tracker's start imports them; numpy cannot be imported twice
        importlib.import_module(module)


@pytest.fixture
def pytester(
    meter_modules_loaded: None,
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> pytest.Pytester:
    """The stock ``pytester``, isolated from the network, the user's environment and other sessions."""
    monkeypatch.setenv("CODECARBON_LOG_LEVEL", "error")
    own_temp = tmp_path_factory.mktemp("tempdir")
    monkeypatch.setenv("TMPDIR", str(own_temp))
    monkeypatch.setattr(tempfile, "tempdir", str(own_temp))
    monkeypatch.setenv(STATE_DIR_ENV, str(own_temp))  # the machine lock and activity file: this run's own
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, CLOSED_PORT_PROXY)
    for variable in ("NO_PROXY", "no_proxy", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS",
                     "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(variable, raising=False)
    real_connect = socket.socket.connect

    def refuse_network(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access during an offline test: {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse_network)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_network)
    return pytester


@dataclasses.dataclass
class EnergyRun:
    """One pytest run of the plugin: its result and the JSON report it wrote (None if none)."""

    result: pytest.RunResult
    report: Optional[Dict[str, Any]]

    def entry(self, name: str) -> Dict[str, Any]:
        """The report entry of the test whose node id ends with ``::name``."""
        assert self.report is not None, "the run wrote no JSON report"
        found = [test for test in self.report["tests"] if test["nodeid"].endswith("::" + name)]
        assert len(found) == 1, f"expected one entry for {name}, got {[t['nodeid'] for t in self.report['tests']]}"
        return found[0]

    @property
    def nodeids(self) -> List[str]:
        assert self.report is not None, "the run wrote no JSON report"
        return [test["nodeid"].split("::")[-1] for test in self.report["tests"]]


@pytest.fixture
def run_energy(pytester: pytest.Pytester) -> Callable[..., EnergyRun]:
    """Run pytest in ``pytester``'s directory with a JSON report, and read the report back."""

    def run(*args: str, subprocess: bool = False) -> EnergyRun:
        arguments = ("-p", "no:cacheprovider", f"--energy-json={REPORT_NAME}", *args)
        result = pytester.runpytest_subprocess(*arguments) if subprocess else pytester.runpytest(*arguments)
        path = Path(pytester.path, REPORT_NAME)
        report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        return EnergyRun(result, report)

    return run


@pytest.fixture(scope="session")
def report_schema() -> Dict[str, Any]:
    """The JSON Schema shipped in the package."""
    return load_schema()
