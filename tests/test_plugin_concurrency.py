"""Several processes measuring at once, through real pytest runs: one session cap for all xdist workers,
and a baseline measured beside other work that must not be cached.

The session-cap run measures with RAPL on fake powercap trees, one per xdist worker (a
``conftest.py`` binds each worker's ``RaplSource`` to its own tree), so every test's
energy is exactly what it adds to its tree, whatever the other worker does meanwhile.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict

import jsonschema
import pytest

from fakes.powercap import FakePowercap
from pytest_energy.measure.overlap import (ACTIVITY_NAME, LOCK_WAIT_S, MACHINE_DIRS, STATE_DIR_ENV, claim_machine,
                                            state_directory)
from pytest_energy.report.json_report import load_schema

CACHE_DIR = Path(".pytest_cache", "d", "energy-baseline")
TEST_ENERGY_J = 10.0
SESSION_CAP_J = 50.0

PER_WORKER_RAPL = """
import functools
import os
import tempfile
import os

from pytest_energy.measure import rapl
from pytest_energy.report.json_report import load_schema

ROOTS = {roots!r}
ROOT = ROOTS.get(os.environ.get("PYTEST_XDIST_WORKER", ""), ROOTS["gw0"])  # a run inside an outer xdist worker: gw0's
UNBOUND = rapl.RaplSource


def pytest_configure(config):
    rapl.RaplSource = functools.partial(UNBOUND, ROOT)


def pytest_unconfigure(config):  # an in-process run must not leave the binding to the tests after it
    rapl.RaplSource = UNBOUND
"""

SPEND = """
import os
import time
from pathlib import Path

import pytest

from conftest import ROOT


def spend(joules):
    counter = Path(ROOT, "intel-rapl:0", "energy_uj")
    staging = counter.with_name(".energy_uj.new")
    staging.write_text(f"{int(counter.read_text()) + round(joules * 1e6)}\\n")
    os.replace(staging, counter)
    time.sleep(0.05)
"""

TWENTY_SPENDING_TESTS = """


@pytest.mark.parametrize("index", range(20))
@pytest.mark.energy
def test_spends(index):
    spend({joules})
"""


def test_one_session_cap_holds_for_all_xdist_workers(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Two workers, 20 tests of 10 J, a 50 J cap: the session stops near 50 J in all, not 50 J per worker."""
    roots = {worker: str(FakePowercap(tmp_path / worker).add_package(0).root) for worker in ("gw0", "gw1")}
    pytester.makeconftest(PER_WORKER_RAPL.format(roots=roots))
    pytester.makepyfile(SPEND + TWENTY_SPENDING_TESTS.format(joules=TEST_ENERGY_J))
    run = run_energy("--energy-meter=rapl", f"--energy-session-cap={SESSION_CAP_J}J", "-n", "2", "-rs",
                     subprocess=True)
    tests = run.report["tests"]
    spent = [entry for entry in tests if entry["outcome"] != "skipped"]
    assert {entry["worker"] for entry in spent} == {"gw0", "gw1"}
    # a test that started after the other worker spent the rest fails, as any test that crosses the cap does
    for entry in spent:
        crossed = ("crosses what is left of the session cap", "was spent after the session cap was already spent")
        assert entry["outcome"] == "passed" or any(why in entry["verdict_message"] for why in crossed), entry
    assert all(entry["energy_j"] == pytest.approx(TEST_ENERGY_J) for entry in spent)
    total_j = sum(entry["energy_j"] for entry in spent)
    # Each worker may start one test while the other's last one is still running: at most one test per worker over.
    assert SESSION_CAP_J <= total_j <= SESSION_CAP_J + 2 * TEST_ENERGY_J, total_j
    skipped = [entry for entry in tests if entry["outcome"] == "skipped"]
    assert len(spent) + len(skipped) == 20
    run.result.stdout.fnmatch_lines(["*energy session cap 50.0 J reached*"])


BASELINE_BESIDE_ANOTHER_TEST = SPEND + """

def wait_for(name):
    end = time.monotonic() + 30.0
    while not Path(name).exists():
        assert time.monotonic() < end, f"{name} never appeared: the two tests did not run at once"
        time.sleep(0.01)


@pytest.mark.energy_baseline
def test_reference_workload():
    wait_for("other-started")
    spend(5.0)
    Path("baseline-done").touch()


@pytest.mark.energy
def test_beside_it():
    Path("other-started").touch()
    spend(1.0)
    wait_for("baseline-done")
"""


def cached_entries(pytester: pytest.Pytester) -> list:
    return sorted(Path(pytester.path, CACHE_DIR).glob("*.json"))


def assert_contended_and_not_cached(run: Any, pytester: pytest.Pytester, why: str) -> Dict[str, Any]:
    """The run normalised with its baseline, said it was contended, marked it so, and cached nothing."""
    jsonschema.validate(run.report, load_schema())
    [target] = run.report["baseline"]
    assert (target["source"], target["contended"]) == ("contended", True)
    assert target["energy_j"] == pytest.approx(5.0)
    assert run.report["normalization"]["factor"] == pytest.approx(10.0 / 5.0)
    run.result.stdout.fnmatch_lines(
        [f"pytest-energy: baseline *::test_reference_workload was measured while {why}: its 5.00 J normalises this "
         "run only and is not cached; measure it alone (no -n, no other session) to cache it"]
    )
    assert cached_entries(pytester) == []
    return target


def test_a_baseline_measured_beside_another_workers_test_is_used_once_and_not_cached(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path
) -> None:
    roots = {worker: str(FakePowercap(tmp_path / worker).add_package(0).root) for worker in ("gw0", "gw1")}
    pytester.makeconftest(PER_WORKER_RAPL.format(roots=roots))
    pytester.makepyfile(BASELINE_BESIDE_ANOTHER_TEST)
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "10 J"\n')
    run = run_energy("--energy-meter=rapl", "-n", "2", subprocess=True)
    run.result.assert_outcomes(passed=2)
    assert {entry["worker"] for entry in run.report["tests"]} == {"gw0", "gw1"}
    assert_contended_and_not_cached(run, pytester, "another process (an xdist worker or another session) measured on this machine")

    alone = run_energy("--energy-meter=rapl", "-p", "no:xdist", "-k", "reference", subprocess=True)
    [target] = alone.report["baseline"]
    assert (target["source"], target["contended"]) == ("measured", False)
    assert len(cached_entries(pytester)) == 1


def baseline_suite(pytester: pytest.Pytester, roots: Dict[str, str]) -> None:
    """A baseline test that spends 5 J on the fake RAPL tree each xdist worker's ``RaplSource`` reads (``roots``)."""
    pytester.makeconftest(PER_WORKER_RAPL.format(roots=roots))
    pytester.makepyfile(
        "import os\nfrom pathlib import Path\n\nimport pytest\n\nfrom conftest import ROOT\n\n\n"
        "@pytest.mark.energy_baseline\ndef test_reference_workload():\n"
        "    counter = Path(ROOT, 'intel-rapl:0', 'energy_uj')\n"
        "    counter.write_text(str(int(counter.read_text()) + 5_000_000))\n"
    )
    pytester.makepyprojecttoml('[tool.pytest-energy]\nreference-energy = "10 J"\n')


@pytest.mark.parametrize("xdist", [False, True], ids=["alone", "xdist"])
def test_a_baseline_measured_while_another_session_holds_the_machine_is_not_cached(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path,
    xdist: bool
) -> None:
    tree = FakePowercap(tmp_path / "gw0").add_package(0)  # the conftest points RaplSource at it
    baseline_suite(pytester, {"gw0": str(tree.root), "gw1": str(tree.root)})
    other_session, warning = claim_machine()
    assert warning is None
    try:
        run = run_energy("--energy-meter=rapl", "-n", "2", subprocess=True) if xdist else run_energy("--energy-meter=rapl")
    finally:
        other_session.release()  # type: ignore[union-attr]
    run.result.assert_outcomes(passed=1)
    assert_contended_and_not_cached(run, pytester, "another pytest-energy session held this machine")


# -- the machine's state: found whatever TMPDIR says, never waited for long ---------------------


def test_a_session_with_another_tmpdir_still_sees_the_machine_held(
    run_energy: Callable[..., Any], pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CI jobs or users with their own TMPDIR: the baseline measured while the other measures is not cached."""
    tree = FakePowercap(tmp_path / "gw0").add_package(0)
    baseline_suite(pytester, {"gw0": str(tree.root)})
    other_session, warning = claim_machine()  # in this test's state directory (tests/conftest.py)
    assert warning is None
    own_tmpdir = tmp_path / "another-tmpdir"
    own_tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(own_tmpdir))
    try:
        run = run_energy("--energy-meter=rapl", subprocess=True)
    finally:
        other_session.release()  # type: ignore[union-attr]
    run.result.assert_outcomes(passed=1)
    assert_contended_and_not_cached(run, pytester, "another pytest-energy session held this machine")


def test_the_state_directory_is_the_same_whatever_tmpdir_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    found = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv("TMPDIR", str(tmp_path / name))
        monkeypatch.setattr(tempfile, "tempdir", None)
        found.append(state_directory())
    assert found[0] == found[1]
    if any(os.access(directory, os.W_OK) for directory in MACHINE_DIRS):
        assert str(found[0]) in MACHINE_DIRS
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    assert state_directory() == tmp_path


def test_a_held_activity_lock_costs_a_fraction_of_a_second_once_and_is_said(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A process that holds the activity file's lock for good: three measured tests, one short wait, one notice."""
    fcntl = pytest.importorskip("fcntl")
    tree = FakePowercap(tmp_path / "gw0").add_package(0)
    pytester.makeconftest(PER_WORKER_RAPL.format(roots={"gw0": str(tree.root)}))
    pytester.makepyfile("import pytest\n\npytestmark = pytest.mark.energy\n\n"
                        + "".join(f"\ndef test_{index}():\n    pass\n" for index in range(3)))
    with open(Path(state_directory(), ACTIVITY_NAME), "a+b") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        # timeout: a hang guard; the three tests waited 30 s each (twice) before
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=rapl", timeout=60)
    result.assert_outcomes(passed=3)
    notices = [line for line in result.outlines if "cannot tell whether other processes measure" in line]
    assert len(notices) == 1, result.outlines
    assert f"stayed locked for {LOCK_WAIT_S:g} s); not tried again this session" in notices[0]
