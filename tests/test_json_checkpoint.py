"""The JSON report at scale and on odd paths: checkpoints at most once a second, each test
serialized once, a valid report after a crash, Ctrl-C or internal error; symlinks, devices
and fifos as report paths; file modes of cache files; ``pytest --help``."""

from __future__ import annotations

import pytest


# -- pytest --help ------------------------------------------------------------------------------


def test_help_lists_the_energy_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["energy measurement (pytest-energy):", "*--energy-json=VALUE*"])
    help_text = result.stdout.str()
    for option in ("--energy-cap", "--energy-compare-fail", "--energy-session-cap", "--macs-cap"):
        assert option in help_text
    assert "e.g. 10%" in help_text and "10%%" not in help_text
