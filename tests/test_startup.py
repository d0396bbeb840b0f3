"""What an installed but unconfigured plugin loads: options and markers at start, the session on first use.

``plugin.py`` registers the session's ``EnergyPlugin`` (``session_plugin.py``) at configure
time when any energy setting is given or xdist runs; otherwise when the first test that is
measured anyway (marked, a baseline, or using the ``energy`` fixture) is collected. These
runs give no energy setting at all, so they take the second path.
"""

from __future__ import annotations

import pytest
from suites import BURN

# Written by the probe conftest at the end of the session: was the session's module imported,
# and was its plugin registered at configure time (before collection) or at all?
PROBE_CONFTEST = """
import sys

import pytest

STARTED_AT_CONFIGURE = []


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    STARTED_AT_CONFIGURE.append(config.pluginmanager.get_plugin("energy-session") is not None)


def pytest_unconfigure(config):
    with open("probe.txt", "w") as handle:
        handle.write(" ".join([
            f"imported={'pytest_energy.session_plugin' in sys.modules}",
            f"registered={config.pluginmanager.get_plugin('energy-session') is not None}",
            f"at_configure={STARTED_AT_CONFIGURE[0]}",
        ]))
"""


def probe(pytester: pytest.Pytester) -> str:
    return (pytester.path / "probe.txt").read_text(encoding="utf-8")


def test_unmarked_tests_without_settings_load_no_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PROBE_CONFTEST)
    pytester.makepyfile("def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert probe(pytester) == "imported=False registered=False at_configure=False"
    result.stdout.no_fnmatch_line("*= energy =*")


@pytest.mark.parametrize(
    "test",
    [
        '@pytest.mark.energy(phase="train")\ndef test_measured():\n    burn(0.2)\n',
        "def test_measured(energy):\n    burn(0.2)\n    assert energy.elapsed().duration_s > 0\n",
    ],
    ids=["marker", "fixture"],
)
def test_a_measured_test_starts_the_session_at_collection(pytester: pytest.Pytester, test: str) -> None:
    pytester.makeconftest(PROBE_CONFTEST)
    pytester.makepyfile(test_measured=BURN + "\n\n" + test + "\n\ndef test_unmarked():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert probe(pytester) == "imported=True registered=True at_configure=False"
    result.stdout.fnmatch_lines(["*= energy =*", "*::test_measured *"])
    result.stdout.no_fnmatch_line("*::test_unmarked *")


def test_any_setting_starts_the_session_at_configure(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PROBE_CONFTEST)
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-unit=kWh")
    result.assert_outcomes(passed=1)
    assert probe(pytester) == "imported=True registered=True at_configure=True"


def test_a_bad_marker_is_still_a_usage_error_without_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('import pytest\n\n\n@pytest.mark.energy(phase="sleep")\ndef test_bad():\n    pass\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*energy marker phase must be 'train' or 'test'*"])


def test_under_xdist_without_settings_the_controller_reports_the_measured_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_measured=BURN + '\n\n@pytest.mark.energy\ndef test_measured():\n    burn(0.2)\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= energy =*", "*::test_measured *"])
