"""Live caps and faults through real pytest runs: stopping early, the session cap, warn mode,
tests that raise, error, skip or are interrupted, NVML and RAPL through the plugin, xdist.

NVML runs in process with the fake ``pynvml`` installed in ``sys.modules``; RAPL runs in
process with ``RaplSource`` bound to a fake powercap tree, whose counters the inner tests
advance themselves, so their energies are exact. Everything else measures with CodeCarbon.
"""

from __future__ import annotations

import functools
import json
import signal
from pathlib import Path
from typing import Any, Callable, Dict, List

import jsonschema
import pytest

from fakes.fake_pynvml import gpus, install, install_no_driver
from fakes.powercap import FakePowercap
from junit_read import junit_properties_by_test
from meters import leave_out_codecarbon
from pytest_energy.measure import codecarbon, rapl
from pytest_energy.units import format_energy
from suites import BURN, LOSES_THE_GPU

Schema = Dict[str, Any]


RAPL_RANGE_UJ = 100_000_000  # a counter that wraps every 100 J
RAPL_HELPERS = """
import os
import time
from pathlib import Path

import pytest

ROOT = Path({root!r})
RANGE_UJ = {range_uj}
PACKAGE = ROOT / "intel-rapl:0"
DRAM = PACKAGE / "intel-rapl:0:1"


def advance(zone, joules):
    counter = zone / "energy_uj"
    value = (int(counter.read_text()) + round(joules * 1e6)) % RANGE_UJ
    staging = zone / ".energy_uj.new"
    staging.write_text(f"{{value}}\\n")
    os.replace(staging, counter)


def spend_forever(watts):
    end = time.perf_counter() + 30.0
    while time.perf_counter() < end:
        advance(PACKAGE, watts * 0.01)
        time.sleep(0.01)
"""


def valid(report: Dict[str, Any], schema: Dict[str, Any]) -> Dict[str, Any]:
    """``report``, after checking it against the schema."""
    jsonschema.validate(report, schema)
    return report


def warning_lines(lines: List[str], text: str) -> List[str]:
    """The output lines that contain ``text``."""
    return [line for line in lines if text in line]


@pytest.fixture
def powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePowercap:
    """A fake powercap tree (one package and its DRAM, 100 J counters at 90 J) that RAPL reads."""
    tree = FakePowercap(tmp_path / "powercap").add_package(0, max_range_uj=RAPL_RANGE_UJ, energy_uj=90_000_000)
    monkeypatch.setattr(rapl, "RaplSource", functools.partial(rapl.RaplSource, tree.root))
    return tree


def rapl_suite(tree: FakePowercap, body: str) -> str:
    """A test module whose tests can advance the counters of ``tree``."""
    return RAPL_HELPERS.format(root=str(tree.root), range_uj=RAPL_RANGE_UJ) + body


# -- live enforcement ---------------------------------------------------------------------


def test_a_test_far_over_its_cap_is_stopped_early(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema
) -> None:
    pytester.makepyfile(
        BURN
        + """

@pytest.mark.energy
def test_burns_for_30_s():
    burn(30.0)


@pytest.mark.energy(cap="1MWh")
def test_after_it():
    burn(0.2)
"""
    )
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=5J", "--energy-check-interval=0.1")
    run.result.assert_outcomes(failed=1, passed=1)
    [message] = [line for line in run.result.outlines if "stopped early at" in line and not line.startswith("FAILED")]
    assert "exceeds cap 5.00 J" in message, message
    valid(run.report, report_schema)
    entry = run.entry("test_burns_for_30_s")
    assert (entry["outcome"], entry["verdict"]) == ("failed", "over-cap")
    stopped = entry["stopped_early"]
    assert stopped["limit"] == "cap" and stopped["energy_j"] > 5.0 and 0 < stopped["at_s"] < 30.0
    assert entry["energy_j"] >= stopped["energy_j"] and entry["duration_s"] < 30.0  # the burn would take 30 s
    after = run.entry("test_after_it")
    assert (after["outcome"], after["verdict"]) == ("passed", "pass") and "stopped_early" not in after


def test_overshoot_past_the_cap_is_small_on_a_counter(
    run_energy: Callable, pytester: pytest.Pytester, powercap: FakePowercap
) -> None:
    """20 W on RAPL against a 5 J cap: checks close in on the predicted crossing, so the stop is prompt."""
    pytester.makepyfile(
        rapl_suite(powercap, "\n\n@pytest.mark.energy(cap='5J')\ndef test_spends():\n    spend_forever(20.0)\n")
    )
    run = run_energy("--energy-meter=rapl")
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(
        ["energy * J exceeds cap 5.00 J (gpu unmeasured, cpu * J, ram 0 J; meter rapl-counter); stopped early at *"]
    )
    entry = run.entry("test_spends")
    assert 5.0 < entry["stopped_early"]["energy_j"] <= 5.0 + 0.2 * 3  # within three 10 ms steps of 0.2 J
    assert entry["energy_j"] <= 6.0 and entry["duration_s"] < 0.5
    assert entry["components"]["cpu"]["method"] == "rapl-counter"


def test_session_cap_stops_the_crossing_test_and_skips_the_rest(
    run_energy: Callable, pytester: pytest.Pytester, powercap: FakePowercap, report_schema: Schema
) -> None:
    pytester.makepyfile(
        rapl_suite(
            powercap,
            """

@pytest.mark.energy
def test_first():
    advance(PACKAGE, 10.0)


@pytest.mark.energy
def test_second():
    advance(PACKAGE, 10.0)


@pytest.mark.energy
def test_crosses():
    spend_forever(100.0)


@pytest.mark.energy
def test_left_one():
    advance(PACKAGE, 10.0)


@pytest.mark.energy
def test_left_two():
    advance(PACKAGE, 10.0)
""",
        )
    )
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=25J", "--energy-check-interval=0.1", "-rs")
    run.result.assert_outcomes(passed=2, failed=1, skipped=2)
    run.result.stdout.fnmatch_lines(
        ["energy * J crosses what is left of the session cap 5.00 J (*); session cap 25.0 J; stopped early at *"]
    )
    run.result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_session_cap_*.py:*: energy session cap 25.0 J reached (* J spent)"] * 2)
    run.result.stdout.no_fnmatch_line("*session_plugin.py*")  # the skip points at the test, not the plugin
    valid(run.report, report_schema)
    assert run.nodeids == ["test_first", "test_second", "test_crosses", "test_left_one", "test_left_two"]
    assert [run.entry(name)["energy_j"] for name in ("test_first", "test_second")] == [pytest.approx(10.0)] * 2
    assert run.entry("test_crosses")["stopped_early"]["limit"] == "session cap"
    for name in ("test_left_one", "test_left_two"):
        assert (run.entry(name)["outcome"], run.entry(name)["energy_j"]) == ("skipped", None)


def test_a_test_that_crosses_the_session_cap_too_fast_to_be_stopped_still_fails(
    run_energy: Callable, pytester: pytest.Pytester, powercap: FakePowercap
) -> None:
    """The verdict does not depend on whether the watchdog read the meter in time: the rest of the cap is the limit."""
    pytester.makepyfile(
        rapl_suite(
            powercap,
            "\n\n@pytest.mark.energy\ndef test_first():\n    advance(PACKAGE, 10.0)\n"
            "\n\n@pytest.mark.energy\ndef test_crosses_at_once():\n    advance(PACKAGE, 10.0)\n"
            "\n\n@pytest.mark.energy\ndef test_left():\n    advance(PACKAGE, 10.0)\n",
        )
    )
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=15J", "--energy-check-interval=60")
    run.result.assert_outcomes(passed=1, failed=1, skipped=1)
    entry = run.entry("test_crosses_at_once")
    assert (entry["outcome"], entry["verdict"], entry.get("stopped_early")) == ("failed", "over-cap", None)
    assert entry["verdict_message"].startswith("energy 10.0 J crosses what is left of the session cap 5.00 J (")


def test_a_test_failed_by_the_session_cap_has_an_over_cap_verdict(
    run_energy: Callable, pytester: pytest.Pytester, powercap: FakePowercap
) -> None:
    pytester.makepyfile(
        rapl_suite(powercap, "\n\n@pytest.mark.energy\ndef test_crosses():\n    spend_forever(100.0)\n")
    )
    run = run_energy("--energy-meter=rapl", "--energy-session-cap=5J")
    run.result.assert_outcomes(failed=1)
    entry = run.entry("test_crosses")
    assert entry["stopped_early"]["limit"] == "session cap"
    assert entry["verdict"] == "over-cap"
    figure = format_energy(entry["energy_j"], None)
    assert entry["verdict_message"].startswith(f"energy {figure} crosses what is left of the session cap 5.00 J (")
    assert [line for line in run.result.outlines if line.startswith(f"energy {figure} crosses what is left")]


def test_warn_mode_passes_over_cap_tests_with_a_warning(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema
) -> None:
    pytester.makepyfile(BURN + "\n\n@pytest.mark.energy\ndef test_over_cap():\n    burn(0.5)\n")
    run = run_energy(
        "--energy-meter=codecarbon", "--energy-cap=0.001J", "--energy-cap-mode=warn", "--energy-check-interval=0.1"
    )
    run.result.assert_outcomes(passed=1)
    assert len(warning_lines(run.result.outlines, "exceeds cap 1.00e-03 J")) == 1
    valid(run.report, report_schema)
    entry = run.entry("test_over_cap")
    assert (entry["outcome"], entry["verdict"]) == ("passed", "over-cap")
    assert entry["energy_j"] > 1e-3 and entry["duration_s"] >= 0.5 and "stopped_early" not in entry
    assert run.report["session"]["cap_mode"] == "warn"


def test_warn_mode_without_a_meter_passes_a_capped_test_unmeasured(
    run_energy: Callable, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_capped():\n    pass\n")
    run = run_energy("--energy-meter=none", "--energy-cap=2kWh", "--energy-cap-mode=warn")
    run.result.assert_outcomes(passed=1)
    assert len(warning_lines(run.result.outlines, "cannot enforce cap 2.00 kWh")) == 1
    assert (run.entry("test_capped")["outcome"], run.entry("test_capped")["verdict"]) == ("passed", "unmeasured")


# -- outcomes ------------------------------------------------------------------------------


def test_every_outcome_has_a_complete_entry(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema
) -> None:
    pytester.makepyfile(
        BURN
        + """

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


@pytest.mark.energy
def test_raises():
    burn(0.2)
    raise ValueError("its own error")


@pytest.mark.energy
def test_setup_error(broken):
    pass


@pytest.mark.energy
def test_skips_midway():
    burn(0.2)
    pytest.skip("not today")


@pytest.mark.energy
@pytest.mark.skip(reason="never")
def test_skip_marker():
    pass
"""
    )
    run = run_energy("--energy-meter=codecarbon", "--energy-cap=1MWh")
    run.result.assert_outcomes(failed=1, errors=1, skipped=2)
    valid(run.report, report_schema)
    raised, midway = run.entry("test_raises"), run.entry("test_skips_midway")
    assert (raised["outcome"], raised["verdict"], midway["outcome"]) == ("failed", "pass", "skipped")
    for entry in (raised, midway):
        assert entry["energy_j"] > 0 and entry["duration_s"] >= 0.2 and entry["meter"].startswith("codecarbon")
    for name, outcome in (("test_setup_error", "error"), ("test_skip_marker", "skipped")):
        entry = run.entry(name)
        figures = (entry["outcome"], entry["energy_j"], entry["duration_s"], entry["cap_j"])
        assert figures == (outcome, None, None, pytest.approx(3.6e9))
        assert entry["notes"] == ["not measured: the test did not reach its call phase"]
    run.result.stdout.fnmatch_lines(["E       RuntimeError: fixture broke", "E       ValueError: its own error"])


INTERRUPTED_SUITE = (
    BURN
    + """
import os
import signal


@pytest.mark.energy
def test_before():
    burn(0.1)


@pytest.mark.energy
def test_interrupted():
    burn(0.3)
    {interrupt}


@pytest.mark.energy
def test_never_started():
    pass
"""
)


def check_interrupted_report(result: pytest.RunResult, report_path: Path, schema: Dict[str, Any]) -> None:
    """The run stopped as interrupted, and its report is valid with the interrupted test's energy so far."""
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = valid(json.loads(report_path.read_text(encoding="utf-8")), schema)
    assert [test["nodeid"].split("::")[-1] for test in report["tests"]] == ["test_before", "test_interrupted"]
    before, interrupted = report["tests"]
    assert before["outcome"] == "passed"
    assert interrupted["outcome"] == "interrupted"
    assert interrupted["energy_j"] > 0 and interrupted["duration_s"] >= 0.3


def test_keyboard_interrupt_inside_a_measured_test_keeps_a_valid_report(
    pytester: pytest.Pytester, report_schema: Schema
) -> None:
    pytester.makepyfile(INTERRUPTED_SUITE.format(interrupt="raise KeyboardInterrupt"))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--energy-json=energy.json", "--energy-meter=codecarbon", no_reraise_ctrlc=True
    )
    check_interrupted_report(result, pytester.path / "energy.json", report_schema)


def test_sigint_inside_a_measured_test_keeps_a_valid_report(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema
) -> None:
    pytester.makepyfile(INTERRUPTED_SUITE.format(interrupt="os.kill(os.getpid(), signal.SIGINT)"))
    run = run_energy("--energy-meter=codecarbon", subprocess=True)
    check_interrupted_report(run.result, pytester.path / "energy.json", report_schema)


def test_a_killed_run_leaves_the_report_of_the_tests_before(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema
) -> None:
    pytester.makepyfile(
        "import os\nimport signal\n\nimport pytest\n\n"
        "@pytest.mark.energy\ndef test_before():\n    pass\n\n"
        "@pytest.mark.energy\ndef test_killed():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = run_energy("--energy-meter=none", subprocess=True)
    assert run.result.ret == -signal.SIGKILL
    valid(run.report, report_schema)
    assert run.nodeids == ["test_before"]


# -- NVML through the plugin, with the fake driver -----------------------------------------


def test_nvml_counters_give_the_gpu_energy(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Schema
) -> None:
    install(monkeypatch, gpus(200.0))
    pytester.makepyfile("import time\n\nimport pytest\n\n@pytest.mark.energy\ndef test_on_gpu():\n    time.sleep(0.3)\n")
    run = run_energy("--energy-meter=nvml")
    run.result.assert_outcomes(passed=1)
    valid(run.report, report_schema)
    entry = run.entry("test_on_gpu")
    gpu = entry["components"]["gpu"]
    assert (gpu["method"], gpu["partial"]) == ("nvml-counter", None)
    assert gpu["energy_j"] == pytest.approx(200.0 * entry["duration_s"], abs=2.0) and gpu["energy_j"] >= 55.0
    assert entry["energy_j"] == gpu["energy_j"] and entry["gpu_share"] == 1.0 and entry["meter"] == "nvml-counter"
    assert entry["components"]["cpu"]["method"] == entry["components"]["ram"]["method"] == "unmeasured"
    assert run.report["environment"]["gpu_count"] == 1


def test_a_gpu_lost_mid_test_is_partial_and_the_other_devices_count(
    run_energy: Callable,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    powercap: FakePowercap,
    report_schema: Schema,
) -> None:
    """``auto`` on two fake GPUs and a fake RAPL package (CodeCarbon left out): GPU 0 is lost mid-test.

    Both tests are far under their cap, but their figures are lower bounds (GPU 0 counted part of
    the first and none of the second), so neither may pass it.
    """
    install(monkeypatch, gpus(100.0, 200.0))
    monkeypatch.setattr(codecarbon.CodecarbonSource, "open", leave_out_codecarbon)
    pytester.makepyfile(
        rapl_suite(
            powercap,
            """
import sys


@pytest.mark.energy
def test_loses_gpu0(energy):
    time.sleep(0.2)
    assert energy.elapsed().readings[0].joules > 0
    sys.modules["pynvml"]._driver.fail(0)
    advance(PACKAGE, 3.0)
    time.sleep(0.2)


@pytest.mark.energy
def test_after_the_loss():
    time.sleep(0.2)
""",
        )
    )
    run = run_energy("--energy-meter=auto", "--energy-cap=1MWh", "--junitxml=junit.xml")
    run.result.assert_outcomes(failed=2)
    run.result.stdout.fnmatch_lines([
        "cannot enforce cap 1000 kWh: energy * is only a lower bound because gpu0 stopped reporting mid-run (GPU is lost);"
        " its last total is kept (gpu *, cpu 3.00 J, ram 0 J; meter nvml-counter+rapl-counter)",
        "cannot enforce cap 1000 kWh: energy * is only a lower bound because gpu0 was not reporting when this window "
        "opened, so it is unmeasured here (*)",
    ])
    valid(run.report, report_schema)
    assert run.report["environment"]["meter"]["unavailable"] == {"codecarbon": "left out of this test"}
    for name in ("test_loses_gpu0", "test_after_the_loss"):
        entry = run.entry(name)
        assert (entry["outcome"], entry["verdict"]) == ("failed", "lower-bound")
        assert "is only a lower bound because gpu0 " in entry["verdict_message"]
        properties = junit_properties_by_test(pytester.path / "junit.xml")[name]
        assert (properties["energy_verdict"], properties["energy_verdict_message"]) == ("lower-bound", entry["verdict_message"])
    lost = run.entry("test_loses_gpu0")
    assert lost["meter"] == "nvml-counter+rapl-counter"
    partial = lost["components"]["gpu"]["partial"]
    assert "gpu0 stopped reporting mid-run (GPU is lost); its last total is kept" in partial and "gpu1" not in partial
    gpu0, gpu1 = [device for device in lost["devices"] if device["component"] == "gpu"]
    assert (gpu0["device"], gpu1["device"]) == ("gpu0", "gpu1")
    # figures follow the window's own length, not the sleeps', so a loaded machine cannot break them
    assert 100.0 * 0.2 - 1.0 <= gpu0["joules"] <= 100.0 * lost["duration_s"]  # up to its last reading, before it was lost
    assert gpu1["joules"] == pytest.approx(200.0 * lost["duration_s"], abs=5.0) and gpu1["partial"] == ""
    assert lost["components"]["cpu"]["energy_j"] == pytest.approx(3.0)
    assert lost["energy_j"] == pytest.approx(gpu0["joules"] + gpu1["joules"] + 3.0)
    after_entry = run.entry("test_after_the_loss")
    after = [device for device in after_entry["devices"] if device["component"] == "gpu"]
    assert after[0]["joules"] is None and "GPU is lost" in after[0]["partial"]
    assert after[1]["joules"] == pytest.approx(200.0 * after_entry["duration_s"], abs=5.0)


def test_a_capped_test_after_its_only_gpu_was_lost_is_unmeasured_not_0_j(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Schema
) -> None:
    """The lost GPU's frozen total must not read as 0 J, which would pass any cap."""
    install(monkeypatch, gpus(100.0))
    pytester.makepyfile(LOSES_THE_GPU + """

@pytest.mark.energy(cap="1kWh")
def test_capped_after():
    time.sleep(0.1)
""")
    run = run_energy("--energy-meter=nvml")
    run.result.assert_outcomes(passed=1, failed=1)
    run.result.stdout.fnmatch_lines(
        ["cannot enforce cap 1.00 kWh: no meter measured this test (gpu0 was not reporting when this window opened*)"]
    )
    valid(run.report, report_schema)
    after = run.entry("test_capped_after")
    assert (after["outcome"], after["energy_j"], after["verdict"]) == ("failed", None, "unmeasured")
    assert after["components"]["gpu"]["energy_j"] is None and "GPU is lost" in after["components"]["gpu"]["partial"]


NO_LIBRARY = "nvml: NVML cannot start: NVML Shared Library Not Found"


def test_no_nvml_library_gives_one_clear_warning_and_unmeasured_figures(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, report_schema: Schema
) -> None:
    install_no_driver(monkeypatch)
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.energy\ndef test_uncapped():\n    pass\n\n"
        "@pytest.mark.energy(cap='1kWh')\ndef test_capped():\n    pass\n"
    )
    run = run_energy("--energy-meter=nvml")
    run.result.assert_outcomes(passed=1, failed=1)
    warning = f"no energy meter works here, figures are unmeasured ({NO_LIBRARY})"
    assert len(warning_lines(run.result.outlines, warning)) == 1
    assert not warning_lines(run.result.outlines, "Traceback")
    run.result.stdout.fnmatch_lines([f"cannot enforce cap 1.00 kWh: no meter measured this test (*{NO_LIBRARY}*)"])
    valid(run.report, report_schema)
    uncapped, capped = run.entry("test_uncapped"), run.entry("test_capped")
    assert (uncapped["outcome"], uncapped["energy_j"], uncapped["verdict"]) == ("passed", None, "no-cap")
    assert uncapped["meter"] == "none"
    assert (capped["outcome"], capped["energy_j"], capped["verdict"]) == ("failed", None, "unmeasured")


def test_cannot_enforce_cap_names_the_reason_once(run_energy: Callable, pytester: pytest.Pytester, monkeypatch) -> None:
    install_no_driver(monkeypatch)
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy(cap='1kWh')\ndef test_capped():\n    pass\n")
    run = run_energy("--energy-meter=nvml")
    run.result.assert_outcomes(failed=1)
    [message] = [line for line in run.result.outlines if line.startswith("cannot enforce cap")]
    assert message.count(NO_LIBRARY) == 1, message


# -- RAPL through the plugin, with a fake powercap tree ------------------------------------


def test_rapl_counters_through_the_plugin_survive_a_wrap(
    run_energy: Callable, pytester: pytest.Pytester, powercap: FakePowercap, report_schema: Schema
) -> None:
    """The package counter starts at 90 J of 100 J: 30 J more wraps it to 20 J and still reads 30 J."""
    pytester.makepyfile(
        rapl_suite(
            powercap, "\n\n@pytest.mark.energy\ndef test_spends():\n    advance(PACKAGE, 30.0)\n    advance(DRAM, 4.0)\n"
        )
    )
    run = run_energy("--energy-meter=rapl")
    run.result.assert_outcomes(passed=1)
    assert powercap.energy_uj("intel-rapl:0") == 20_000_000
    valid(run.report, report_schema)
    entry = run.entry("test_spends")
    components = entry["components"]
    assert (components["cpu"]["energy_j"], components["ram"]["energy_j"]) == (pytest.approx(30.0), pytest.approx(4.0))
    assert components["cpu"]["method"] == components["ram"]["method"] == "rapl-counter"
    assert components["gpu"]["method"] == "unmeasured" and entry["energy_j"] == pytest.approx(34.0)


# -- pytest-xdist --------------------------------------------------------------------------


def test_xdist_workers_measure_and_the_controller_writes_one_report(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Schema
) -> None:
    """Four short tests and a runaway one, which a worker stops early as the main process would."""
    pytester.makepyfile(
        BURN
        + "".join(f"\n\n@pytest.mark.energy\ndef test_{n}():\n    burn(0.1)\n" for n in range(4))
        + "\n\n@pytest.mark.energy(cap='5J')\ndef test_runaway():\n    burn(30.0)\n"
    )
    run = run_energy("--energy-meter=codecarbon", "-n", "2", subprocess=True)
    run.result.assert_outcomes(passed=4, failed=1)
    valid(run.report, report_schema)
    assert sorted(run.nodeids) == [f"test_{n}" for n in range(4)] + ["test_runaway"]
    runaway = run.entry("test_runaway")
    assert runaway["stopped_early"]["limit"] == "cap" and runaway["duration_s"] < 30.0  # the burn would take 30 s
    assert {entry["worker"] for entry in run.report["tests"]} == {"gw0", "gw1"}
    assert all(entry["energy_j"] > 0 for entry in run.report["tests"])
    assert len(warning_lines(run.result.outlines, "2 xdist workers measured tests concurrently")) == 1
    assert sorted(path.name for path in pytester.path.glob("*.json")) == ["energy.json"]
