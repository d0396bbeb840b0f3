"""Settings: command line over [tool.pytest-energy] over ini keys, and one-line usage errors.

The runs use ``--energy-meter=none`` (no meter starts, so they are fast); the cap a test
got is read from its JSON entry, which the plugin writes even when nothing was measured.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, List

import pytest

from pytest_energy.config import (OPTIONS, PYPROJECT_ONLY, ConfigError, EnergyMarker, Settings, build_settings, parse_baseline_marker,
                                  parse_energy_marker, parse_marker_cap, shown)

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


def test_a_preset_on_the_command_line_and_a_pyproject_value_it_sets_are_a_usage_error_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"option --energy-preset=dcase2024 and /project/pyproject.toml "
                                          r"\[tool.pytest-energy\] key 'reference-energy' both set"):
        settings({"energy_preset": "dcase2024"}, {"reference-energy": "20 J"})
    # in pyproject, a key beside the preset replaces the preset's value, as documented
    assert settings({}, {"preset": "dcase2024", "reference-energy": "20 J"}).reference.reference_energy_j == 20.0
    # a value the preset leaves unset (dcase2024 has no baseline scores) is no conflict
    chosen = settings({"energy_preset": "dcase2024"}, {"baseline-scores": {"psds1": 0.5}})
    assert chosen.reference.baseline_scores == {"psds1": 0.5}
    assert chosen.reference.reference_energy_j == pytest.approx(0.029 * 3.6e6)


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
    with pytest.raises(ConfigError, match=r"--energy-cap.*'2kW'.*unit of power.*mJ, J, kJ, MJ, mWh, Wh, kWh, MWh"):
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
    assert "mJ, J, kJ, MJ, mWh, Wh, kWh, MWh" in line


def test_malformed_pyproject_is_a_usage_error_naming_the_file(pytester: pytest.Pytester) -> None:
    """pytest 9 parses pyproject.toml itself even beside a pytest.ini; either reader must stop with exit code 4."""
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(".ini", pytest="[pytest]\n")
    pyproject = pytester.makefile(".toml", pyproject='[tool.pytest-energy]\ncap = "2kWh\n')
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [line for line in result.errlines if line.startswith("ERROR:")]
    assert str(pyproject) in line


# -- values of the wrong type --------------------------------------------------------------------

TOML_VALUES = {
    "list": [1],
    "table": {"seconds": 1},
    "date": datetime.date(1979, 5, 27),
    "datetime": datetime.datetime(1979, 5, 27, 7, 32),
    "time": datetime.time(7, 32),
    "bool": True,
    "int": 3,
    "float": 2.5,
}
# The TOML types a key accepts; every other type must be refused.
ACCEPTED_TYPES = {
    "cap": (dict,),  # a table of caps per phase (its values are checked by the tests above)
    "all": (bool,), "autosave": (bool,), "normalized": (bool,),
    "sampling-hz": (int, float), "check-interval": (int, float), "baseline-repeats": (int,),
    "macs-cap": (int, float), "params-cap": (int, float), "repeats": (int,), "warmup": (int,), "rank-port": (int,),
}
WRONG_TYPES = [
    (option.key, kind)
    for option in OPTIONS
    for kind, value in TOML_VALUES.items()
    if not isinstance(value, ACCEPTED_TYPES.get(option.key, ())) or (option.key in ("baseline-repeats", "repeats", "warmup", "rank-port") and value is True)
]


@pytest.mark.parametrize(("key", "kind"), WRONG_TYPES)
def test_every_key_refuses_a_toml_value_of_the_wrong_type_naming_key_and_value(key: str, kind: str) -> None:
    value = TOML_VALUES[kind]
    with pytest.raises(ConfigError) as raised:
        settings(pyproject={key: value})
    message = str(raised.value)
    assert f"key {key!r}" in message and "/project/pyproject.toml" in message
    assert any(form in message for form in (shown(value), repr(value), str(value))), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("sampling-hz", 20, 20.0), ("check-interval", 0.25, 0.25), ("baseline-repeats", 3, 3), ("macs-cap", 2e9, 2_000_000_000),
     ("all", True, True), ("baseline-max-age", "12h", 43200.0)],
)
def test_toml_values_of_the_right_type_still_work(key: str, value: Any, expected: Any) -> None:
    field = {"sampling-hz": "sampling_hz", "check-interval": "check_interval_s", "baseline-repeats": "baseline_repeats",
             "macs-cap": "macs_cap", "all": "all", "baseline-max-age": "baseline_max_age_s"}[key]
    assert getattr(settings(pyproject={key: value}), field) == expected


def test_ini_value_of_the_wrong_type_names_the_ini_key() -> None:
    with pytest.raises(ConfigError, match=r"ini key 'energy_sampling_hz': expected a positive number, got \[1\]"):
        settings(ini={"energy_sampling_hz": [1]})


def test_metadata_dates_and_times_become_iso_strings() -> None:
    metadata = {
        "released": datetime.date(2024, 6, 1),
        "run": {"started": datetime.datetime(2024, 6, 1, 7, 32, tzinfo=datetime.timezone.utc), "at": datetime.time(7, 32)},
        "dates": [datetime.date(2024, 1, 1)],
        "team": "A",
        "seed": 3,
    }
    assert settings(pyproject={"metadata": metadata}).metadata == {
        "released": "2024-06-01",
        "run": {"started": "2024-06-01T07:32:00+00:00", "at": "07:32:00"},
        "dates": ["2024-01-01"],
        "team": "A",
        "seed": 3,
    }


def test_metadata_that_json_cannot_hold_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"key 'metadata': run.loss = nan cannot go into a JSON report"):
        settings(pyproject={"metadata": {"run": {"loss": float("nan")}}})


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ("sampling-hz = [1]", "key 'sampling-hz': expected a positive number, got [1]"),
        ("check-interval = 1979-05-27", "key 'check-interval': expected a positive number, got 1979-05-27 (a TOML date)"),
        ("check-interval = {seconds = 1}", "key 'check-interval': expected a positive number, got {'seconds': 1}"),
        ("check-interval = 07:32:00", "key 'check-interval': expected a positive number, got 07:32:00 (a TOML time)"),
        ("baseline-max-age = 1979-05-27T07:32:00", "key 'baseline-max-age'"),
        ("macs-cap = [1]", "key 'macs-cap'"),
    ],
)
def test_toml_value_of_the_wrong_type_is_a_usage_error(pytester: pytest.Pytester, table: str, named: str) -> None:
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(".toml", pyproject=f"[tool.pytest-energy]\nmeter = \"none\"\n{table}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert named in line
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_ini_list_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """In a subprocess: pytest itself warns (PytestRemovedIn10Warning) about a list for a string ini key."""
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\nenergy_meter = "none"\nenergy_sampling_hz = [1]\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert "ini key 'energy_sampling_hz'" in line


def test_metadata_with_a_toml_date_reaches_the_json_report(pytester: pytest.Pytester, run_energy: Callable) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_measured():\n    pass\n")
    pytester.makefile(".toml", pyproject='[tool.pytest-energy]\nmeter = "none"\n\n'
                                         '[tool.pytest-energy.metadata]\nreleased = 2024-06-01\nstarted = 2024-06-01T07:32:00Z\n')
    run = run_energy()
    run.result.assert_outcomes(passed=1)
    assert run.report is not None
    assert run.report["metadata"] == {"released": "2024-06-01", "started": "2024-06-01T07:32:00+00:00"}


# -- empty options on the command line -----------------------------------------------------------


@pytest.mark.parametrize("option", [option for option in OPTIONS if not option.flag], ids=lambda option: option.cli)
def test_an_empty_option_on_the_command_line_is_refused(option: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^option {option.cli} is empty .*give it a value or remove the option$"):
        settings(cli={option.dest: ""})


@pytest.mark.parametrize("option", ["--energy-cap=", "--macs-cap=", "--energy-json="])
def test_an_empty_option_is_a_usage_error(pytester: pytest.Pytester, option: str) -> None:
    """``--energy-cap=$ENERGY_CAP`` with the variable unset must not silently mean "no cap"."""
    pytester.makepyfile(MARKED_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert f"option {option[:-1]} is empty" in line
    result.stdout.no_fnmatch_line("*passed*")


def test_an_empty_ini_key_still_means_unset() -> None:
    assert settings(ini={"energy_cap": ""}).cap_for("test") is None


# -- marker arguments ----------------------------------------------------------------------------


def test_energy_marker_arguments_are_parsed() -> None:
    marker = parse_energy_marker((), {"phase": "train", "cap": "2 kWh", "system": "crnn", "macs_input": [1, 64],
                                      "macs_model": "model"}, "t.py::test")
    assert marker == EnergyMarker("train", pytest.approx(2 * KWH), "crnn", (1, 64), "model")
    assert parse_energy_marker((), {}, "t.py::test") == EnergyMarker()
    assert parse_baseline_marker((), {"reference": "5 kJ"}, "t.py::test") == pytest.approx(5 * KJ)
    assert parse_baseline_marker((), {}, "t.py::test") is None


BAD_MARKERS = [
    ('energy(phase="bogus")', "energy marker phase must be 'train' or 'test', got 'bogus'"),
    ('energy(cap="2kW")', "energy marker cap: invalid energy '2kW': 'kW' is a unit of power"),
    ("energy(cap=5)", "energy marker cap: expected an energy string such as \"2kWh\""),
    ('energy(phse="train")', "energy marker has no argument 'phse' (its arguments: phase, cap, system"),
    ('energy("train")', "energy marker takes keyword arguments only"),
    ("energy(macs_input=(1, 0))", "energy marker macs_input: invalid input shape (1, 0)"),
    ("energy(system=3)", "energy marker system must be a string, got 3"),
    ('energy_baseline(reference="1 kW")', "energy_baseline marker reference: invalid energy '1 kW'"),
    ('energy_baseline(reference="0 J")', "energy_baseline marker reference: must be more than zero"),
    ('energy_baseline(refrence="1 kJ")', "energy_baseline marker has no argument 'refrence' (its arguments: reference)"),
    ('energy_baseline("1 kJ")', "energy_baseline marker takes keyword arguments only"),
]


@pytest.mark.parametrize(("marker", "message"), BAD_MARKERS)
def test_bad_marker_is_a_usage_error_at_collection_naming_the_test_and_the_value(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_markers=f"""
        import pytest

        def test_before():
            pass

        @pytest.mark.{marker}
        def test_bad():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert line.startswith("ERROR: pytest-energy: test_markers.py::test_bad: ")
    assert message in line
    assert "energy marker cap" not in line or "cap=" in marker
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    result.stdout.no_fnmatch_line("*passed*")


def test_bad_marker_on_a_class_is_found_for_its_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_markers="""
        import pytest

        @pytest.mark.energy(cap=5)
        class TestTraining:
            def test_one(self):
                pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert "test_markers.py::TestTraining::test_one: energy marker cap" in line


def test_bad_marker_under_xdist_is_a_usage_error_too(pytester: pytest.Pytester) -> None:
    """Workers collect; the controller stops with the same one line and exit code 4."""
    pytester.makepyfile(test_markers="import pytest\n\n@pytest.mark.energy(phase='bogus')\ndef test_bad():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-meter=none", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: pytest-energy: test_markers.py::test_bad: energy marker phase must be 'train' or 'test', got 'bogus'" in (
        result.errlines + result.outlines)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


# -- every key: empty, blank and absurd values are usage errors (issue 19, guarantee 10) -------------

PYPROJECT_KEYS = sorted({option.key for option in OPTIONS} | PYPROJECT_ONLY - {"metadata", "baseline-scores"})


@pytest.mark.parametrize("blank", ["", " ", "\t"], ids=["empty", "space", "tab"])
@pytest.mark.parametrize("key", PYPROJECT_KEYS)
def test_an_empty_or_blank_pyproject_key_is_refused_naming_it(key: str, blank: str) -> None:
    """Before, ``session-cap = ""`` silently meant "no session cap" (and ``json = " "`` wrote a file named " ")."""
    with pytest.raises(ConfigError) as raised:
        settings(pyproject={key: blank})
    message = str(raised.value)
    assert (f"key {key!r}" in message or f"{key}: " in message) and "\n" not in message, message


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.dest)
def test_a_blank_ini_key_is_refused_naming_it(option: Any) -> None:
    """An empty one stays unset (``test_an_empty_ini_key_still_means_unset``): pytest < 8 gives "" for an absent key."""
    with pytest.raises(ConfigError, match=rf"^ini key '{option.dest}' is empty: give it a value or remove the key$"):
        settings(ini={option.dest: "  "})


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [("baseline-repeats", 10**20, "allowed 1 to 100"), ("baseline-repeats", 101, "allowed 1 to 100"),
     ("sampling-hz", 1e20, "allowed 0.01 to 1000 Hz"), ("sampling-hz", 0.001, "allowed 0.01 to 1000 Hz"),
     ("check-interval", 1e20, "allowed 0.001 to 3600 s"), ("check-interval", 1e-9, "allowed 0.001 to 3600 s")],
)
def test_an_absurd_number_is_refused_naming_the_key_and_the_range(key: str, value: Any, allowed: str) -> None:
    """Before, ``baseline-repeats = 10^20`` was accepted (the baseline would run forever)."""
    for layers in ({"pyproject": {key: value}}, {"cli": {OPTION_BY_KEY[key].dest: str(value)}}):
        with pytest.raises(ConfigError) as raised:
            settings(**layers)
        message = str(raised.value)
        assert key in message and allowed in message and "out of range" in message, message


OPTION_BY_KEY = {option.key: option for option in OPTIONS}


@pytest.mark.parametrize(("key", "value"), [("baseline-repeats", 100), ("sampling-hz", 1000), ("check-interval", 0.001)])
def test_the_ends_of_each_range_are_accepted(key: str, value: Any) -> None:
    settings(pyproject={key: value})


def test_an_empty_pyproject_key_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MARKED_TESTS)
    pytester.makefile(".toml", pyproject='[tool.pytest-energy]\nmeter = "none"\nsession-cap = ""\n')
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert "key 'session-cap' is empty: give it a value or remove the key" in line


# -- the ranks' exchange (torchrun, srun) ---------------------------------------------------------


def test_the_rank_port_comes_from_the_option_then_the_environment_then_pyproject_then_ini() -> None:
    environ = {"PYTEST_ENERGY_RANK_PORT": "29600"}
    layers = {"pyproject": {"rank-port": 29700}, "ini": {"energy_rank_port": "29800"}}
    assert build_settings(cli={"energy_rank_port": "29500"}, environ=environ, **layers).rank_port == 29500
    assert build_settings(cli={}, environ=environ, **layers).rank_port == 29600
    assert build_settings(cli={}, environ={"PYTEST_ENERGY_RANK_PORT": ""}, **layers).rank_port == 29700
    assert settings(ini={"energy_rank_port": "29800"}).rank_port == 29800
    assert settings().rank_port is None and settings().rank_timeout_s == 60.0
    assert settings(pyproject={"rank-timeout": "2min"}).rank_timeout_s == 120.0


@pytest.mark.parametrize(("layers", "named"), [
    ({"cli": {"energy_rank_port": "70000"}}, "option --energy-rank-port: '70000' is out of range: allowed 1 to 65535"),
    ({"cli": {"energy_rank_port": "0"}}, "option --energy-rank-port: '0' is out of range"),
    ({"pyproject": {"rank-port": "http"}}, "key 'rank-port': expected a TCP port"),
    ({"environ": {"PYTEST_ENERGY_RANK_PORT": "-1"}}, "environment variable PYTEST_ENERGY_RANK_PORT: expected a TCP port"),
    ({"cli": {"energy_rank_timeout": "0.01s"}}, "option --energy-rank-timeout: '0.01s' is out of range: allowed 0.1 to 3600 s"),
    ({"cli": {"energy_rank_timeout": "2h"}}, "option --energy-rank-timeout: '2h' is out of range"),
    ({"pyproject": {"rank-timeout": 60}}, "key 'rank-timeout': expected a duration"),
])
def test_a_bad_rank_port_or_timeout_is_refused_naming_where_and_the_range(layers: Dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_settings(**{"cli": {}, "pyproject": {}, "ini": {}, "source": "/project/pyproject.toml", **layers})
    assert named in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


@pytest.mark.parametrize(("argument", "environ", "named"), [
    ("--energy-rank-port=65536", {}, "option --energy-rank-port: '65536' is out of range: allowed 1 to 65535"),
    ("--energy-rank-timeout=forever", {}, "option --energy-rank-timeout: invalid duration 'forever'"),
    ("--energy-meter=none", {"PYTEST_ENERGY_RANK_PORT": "port"}, "environment variable PYTEST_ENERGY_RANK_PORT: "),
])
def test_a_bad_rank_port_or_timeout_is_a_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                     argument: str, environ: Dict[str, str], named: str) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(MARKED_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", argument)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = usage_error_lines(result)
    assert named in line, line
