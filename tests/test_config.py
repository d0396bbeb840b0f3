"""Settings: command line over [tool.pytest-energy] over ini keys, and one-line usage errors.

The runs use ``--energy-meter=none`` (no meter starts, so they are fast); the cap a test
got is read from its JSON entry, which the plugin writes even when nothing was measured.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

from pytest_energy.config import ConfigError, Settings, build_settings, parse_marker_cap

KJ = 1e3
WH = 3600.0
KWH = 3.6e6

MARKED_TESTS = """
import pytest

@pytest.mark.energy(phase="train")
def test_train():
    pass

@pytest.mark.energy
def test_test():
    pass

@pytest.mark.energy(phase="train", cap="5J")
def test_train_own_cap():
    pass
"""


def settings(cli: Dict[str, Any] = {}, pyproject: Dict[str, Any] = {}, ini: Dict[str, Any] = {}) -> Settings:
    return build_settings(cli=cli, pyproject=pyproject, ini=ini, source="/project/pyproject.toml")


def usage_error_lines(result: pytest.RunResult) -> List[str]:
    return [line for line in result.errlines + result.outlines if line.startswith("ERROR: pytest-energy:")]


# -- precedence --------------------------------------------------------------------------------


def test_meter_precedence_is_cli_then_pyproject_then_ini_then_default() -> None:
    cli, pyproject, ini = {"energy_meter": "none"}, {"meter": "rapl"}, {"energy_meter": "codecarbon"}
    assert settings(cli, pyproject, ini).meter == "none"
    assert settings({}, pyproject, ini).meter == "rapl"
    assert settings({}, {}, ini).meter == "codecarbon"
    assert settings().meter == "auto"


def test_cap_on_the_command_line_beats_pyproject() -> None:
    assert settings({"energy_cap": "1kJ"}, {"cap": "2kJ"}).cap_for("test") == pytest.approx(1 * KJ)
    assert settings({"energy_cap": "1kJ"}, {"cap": {"train": "2kJ"}}).cap_for("train") == pytest.approx(1 * KJ)


def test_cap_in_pyproject_beats_the_ini_key() -> None:
    """The ini key is the weakest layer: it must not replace the caps read from pyproject."""
    assert settings({}, {"cap": "2kJ"}, {"energy_cap": "3kJ"}).cap_for("test") == pytest.approx(2 * KJ)


def test_ini_cap_applies_when_nothing_else_sets_one() -> None:
    assert settings(ini={"energy_cap": "3 kJ"}).cap_for("train") == pytest.approx(3 * KJ)
    assert settings().cap_for("train") is None


def test_cap_table_gives_each_phase_its_cap_and_a_marker_cap_wins() -> None:
    configured = settings(pyproject={"cap": {"train": "2kWh", "test": "10Wh"}})
    assert configured.cap_for("train") == pytest.approx(2 * KWH)
    assert configured.cap_for("test") == pytest.approx(10 * WH)
    assert configured.cap_for("train", marker_cap=5.0) == 5.0


def test_cap_table_falls_back_to_its_default() -> None:
    configured = settings(pyproject={"cap": {"default": "1kWh", "train": "2kWh"}})
    assert configured.cap_for("train") == pytest.approx(2 * KWH)
    assert configured.cap_for("test") == pytest.approx(1 * KWH)


def test_pyproject_values_are_validated_and_typed() -> None:
    configured = settings(pyproject={"all": True, "json": "out/energy.json", "unit": "kWh", "sampling-hz": 20})
    assert (configured.all, configured.json, configured.unit, configured.sampling_hz) == (True, "out/energy.json", "kWh", 20.0)
    assert settings(ini={"energy_all": "true"}).all is True


# -- bad values, in pure form ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pyproject", "named"),
    [
        ({"capp": "2kWh"}, "unknown key 'capp'"),
        ({"all": "maybe"}, "key 'all'"),
        ({"sampling-hz": -3}, "key 'sampling-hz'"),
        ({"meter": "gpu"}, "key 'meter'"),
        ({"json": 3}, "key 'json'"),
        ({"cap": 2}, "key 'cap'"),
        ({"cap": "2kW"}, "key 'cap'"),
        ({"cap": {"train": "2 furlongs"}}, "key 'cap'.train"),
        ({"cap": {"eval": "2kWh"}}, "unknown phase 'eval'"),
        ({"metadata": "team A"}, "key 'metadata'"),
    ],
)
def test_bad_pyproject_values_name_the_key_and_the_file(pyproject: Dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(pyproject=pyproject)
    message = str(raised.value)
    assert named in message
    assert "/project/pyproject.toml" in message
    assert "\n" not in message


def test_bad_cli_cap_names_the_value_and_the_units() -> None:
    with pytest.raises(ConfigError, match=r"--energy-cap.*'2kW'.*unit of power.*J, kJ, MJ, Wh, kWh, MWh"):
        settings(cli={"energy_cap": "2kW"})


def test_marker_cap_is_parsed_and_a_bad_one_names_the_test() -> None:
    assert parse_marker_cap("2 kWh", "t.py::test") == pytest.approx(2 * KWH)
    assert parse_marker_cap(None, "t.py::test") is None
    with pytest.raises(ConfigError, match=r"t.py::test: energy marker cap: .*'2kW'"):
        parse_marker_cap("2kW", "t.py::test")


# -- through pytest ----------------------------------------------------------------------------


def test_real_run_applies_cli_over_pyproject_and_the_phase_table(pytester: pytest.Pytester, run_energy: Callable) -> None:
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(".toml", pyproject='[tool.pytest-energy]\nmeter = "none"\ncap.train = "2kJ"\ncap.test = "3 kJ"\n')
    from_pyproject = run_energy()
    assert from_pyproject.entry("test_train")["cap_j"] == pytest.approx(2 * KJ)
    assert from_pyproject.entry("test_test")["cap_j"] == pytest.approx(3 * KJ)
    assert from_pyproject.entry("test_train_own_cap")["cap_j"] == pytest.approx(5.0)
    from_cli = run_energy("--energy-cap=1kJ")
    assert from_cli.entry("test_train")["cap_j"] == pytest.approx(1 * KJ)
    assert from_cli.entry("test_test")["cap_j"] == pytest.approx(1 * KJ)
    assert from_cli.entry("test_train_own_cap")["cap_j"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("name", "ini"),
    [("pytest.ini", "[pytest]\nenergy_cap = 4kJ\nenergy_meter = none\n"),
     ("pyproject.toml", '[tool.pytest.ini_options]\nenergy_cap = "4kJ"\nenergy_meter = "none"\n')],
)
def test_real_run_reads_the_ini_keys(pytester: pytest.Pytester, run_energy: Callable, name: str, ini: str) -> None:
    pytester.makepyfile(MARKED_TESTS)
    (pytester.path / name).write_text(ini, encoding="utf-8")
    run = run_energy()
    assert run.entry("test_test")["cap_j"] == pytest.approx(4 * KJ)
    assert run.report is not None and run.report["session"]["meter"] == "none"


def test_real_run_prefers_pyproject_over_ini(pytester: pytest.Pytester, run_energy: Callable) -> None:
    """The same precedence, as a user sees it from a real run."""
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(
        ".toml",
        pyproject='[tool.pytest.ini_options]\nenergy_cap = "4kJ"\n\n[tool.pytest-energy]\nmeter = "none"\ncap = "2kJ"\n',
    )
    assert run_energy().entry("test_test")["cap_j"] == pytest.approx(2 * KJ)


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('capp = "2kWh"', "unknown key 'capp'"),
        ('all = "maybe"', "key 'all'"),
        ("cap = 2", "key 'cap'"),
        ('cap = "2kW"', "key 'cap'"),
        ('cap.train = "2 kWhh"', "key 'cap'.train"),
    ],
)
def test_bad_pyproject_is_a_usage_error(pytester: pytest.Pytester, table: str, named: str) -> None:
    pytester.makepyfile(MARKED_TESTS)
    pyproject = pytester.makefile(".toml", pyproject=f"[tool.pytest-energy]\n{table}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert named in line
    assert str(pyproject) in line
    result.stdout.no_fnmatch_line("*passed*")


def test_bad_cli_cap_is_a_usage_error_naming_the_value_and_units(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MARKED_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-cap=2kW")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert "'2kW'" in line
    assert "J, kJ, MJ, Wh, kWh, MWh" in line


def test_malformed_pyproject_is_a_usage_error_naming_the_file(pytester: pytest.Pytester) -> None:
    """pytest 9 parses pyproject.toml itself even beside a pytest.ini; either reader must stop with exit code 4."""
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(".ini", pytest="[pytest]\n")
    pyproject = pytester.makefile(".toml", pyproject='[tool.pytest-energy]\ncap = "2kWh\n')
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [line for line in result.errlines if line.startswith("ERROR:")]
    assert str(pyproject) in line


def test_bad_marker_cap_fails_that_test_naming_the_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.energy(cap="2kW")
        def test_bad_cap():
            pass

        def test_other():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_bad_cap*energy marker cap*'2kW'*"])
