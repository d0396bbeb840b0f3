"""The pure parts without pytest runs: caps, the watchdog's timing, EW accounting, overlap notices, tables.

Each test pins a boundary a plausible slip would move (``>`` for ``>=`` at a cap, a
watchdog that checks on a fixed beat, EW from the wrong phase's energy).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from types import SimpleNamespace
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.measure import watchdog
from pytest_energy.account.presets import ReferenceValues
from pytest_energy.account.ew import account
from pytest_energy.measure.overlap import overlap_warning
from pytest_energy.account.normalize import Normalization
from pytest_energy.decide.figures import CapFailure, Figures, Limits
from pytest_energy.decide.limits import check, complexity_verdict, live_limit, verdict_of
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.account.record import Record
from pytest_energy.report.table import Column, Table
from pytest_energy.report.terminal import summary_table
from pytest_energy.units import common_energy_unit


def measured(joules: Optional[float]) -> Measurement:
    return Measurement(1.0, (Reading("cpu", "package-0", joules, "rapl-counter"),))


DOUBLING = Normalization.one_point(2.0, 1.0)  # one joule here is two on the reference machine


def energy_verdict(measurement: Optional[Measurement], cap_j: Optional[float],
                   normalization: Optional[Normalization] = None) -> Tuple[str, List[CapFailure]]:
    """Every limit on a test with ``measurement`` and ``cap_j``, and its energy verdict."""
    figures = Figures("t.py::test_x", measurement, cap_j=cap_j, normalization=normalization)
    failures = check(figures, Limits(normalized_caps=normalization is not None))
    return verdict_of(failures, cap_j), failures


# -- caps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("joules", "verdict"),
    [(99.999, "pass"), (100.0, "pass"), (100.001, "over-cap")],
    ids=["under", "exactly-at-cap", "over"],
)
def test_an_energy_exactly_at_its_cap_passes_and_only_one_above_fails(joules: float, verdict: str) -> None:
    found, failures = energy_verdict(measured(joules), 100.0)
    assert found == verdict
    assert (failures == []) == (verdict == "pass")


def test_a_normalised_cap_compares_the_normalised_energy_at_its_boundary() -> None:
    assert energy_verdict(measured(50.0), 100.0, DOUBLING)[0] == "pass"
    verdict, [failure] = energy_verdict(measured(50.001), 100.0, DOUBLING)
    assert verdict == "over-cap"
    assert failure.message.startswith("normalised energy ")


def test_no_cap_is_no_verdict_and_an_unmeasured_test_cannot_pass_a_cap() -> None:
    assert energy_verdict(measured(1e9), None) == ("no-cap", [])
    assert energy_verdict(None, 1.0)[0] == "unmeasured"
    assert energy_verdict(measured(None), 1.0)[0] == "unmeasured"


def test_a_normalised_cap_without_a_baseline_cannot_be_enforced() -> None:
    figures = Figures("t.py::test_x", measured(1.0), cap_j=100.0)
    [failure] = check(figures, Limits(normalized_caps=True))
    assert (failure.verdict, failure.limit) == ("unmeasured", "cap")
    assert failure.message.startswith("cannot enforce a normalised cap: no baseline was measured")


@pytest.mark.parametrize(("figure", "cap_name"), [("macs", "macs_cap"), ("params", "params_cap")])
def test_a_complexity_exactly_at_its_cap_passes_and_one_more_fails(figure: str, cap_name: str) -> None:
    limits = Limits(**{cap_name: 1000})
    assert check(Figures("t.py::test_x", None, complexity={figure: 1000}), limits) == []
    [failure] = check(Figures("t.py::test_x", None, complexity={figure: 1001}), limits)
    assert failure.verdict == "over-cap" and "1,001" in failure.message
    assert complexity_verdict([failure], limits) == "over-cap" and complexity_verdict([], limits) == "pass"
    assert check(Figures("t.py::test_x", None, complexity={figure: None}), limits) == []


def test_the_watchdog_watches_the_lowest_limit_in_energy_measured_here() -> None:
    """A normalised cap of 100 J is 50 J here when one joule here is two there; the session's rest may be lower."""
    figures = Figures("t.py::test_x", None, cap_j=100.0, normalization=DOUBLING)
    assert live_limit(figures, Limits(normalized_caps=True)) == (50.0, "cap")
    assert live_limit(figures, Limits()) == (100.0, "cap")
    left = dataclasses.replace(figures, session_left_j=40.0)
    assert live_limit(left, Limits(normalized_caps=True, session_cap_j=1000.0)) == (40.0, "session cap")
    assert live_limit(Figures("t.py::test_x", None), Limits()) is None


# -- the watchdog's timing -----------------------------------------------------------------------


class SteadyWindow:
    """A window whose energy grows at ``watts`` on a fake clock."""

    def __init__(self, clock: List[float], watts: float):
        self.clock, self.watts = clock, watts

    def read(self) -> Measurement:
        return measured(self.watts * self.clock[0])


class FakeStop:
    """``threading.Event`` for the watchdog's loop: waiting advances the fake clock, and is logged."""

    def __init__(self, clock: List[float]):
        self.clock, self.waits = clock, []  # type: ignore[var-annotated]

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock[0] += seconds
        return len(self.waits) > 10_000  # a runaway loop ends the test instead of hanging it


def watch(monkeypatch: pytest.MonkeyPatch, watts: float, limit_j: float, interval_s: float):  # type: ignore[no-untyped-def]
    """Run a watchdog's loop on the fake clock; returns the watchdog, its waits and where it fired."""
    clock = [0.0]
    monkeypatch.setattr(watchdog.time, "perf_counter", lambda: clock[0])
    crossings = []
    dog = watchdog.Watchdog(SteadyWindow(clock, watts), limit_j, interval_s,  # type: ignore[arg-type]
                            lambda measurement, elapsed: crossings.append((measurement.total_j, elapsed)))
    stop = FakeStop(clock)
    dog._stop = stop  # type: ignore[assignment]
    dog._t0 = 0.0
    dog._watch()
    return dog, stop.waits, crossings


def test_the_watchdog_checks_more_often_as_the_crossing_nears(monkeypatch: pytest.MonkeyPatch) -> None:
    """10 W against 100 J: the crossing is at 10 s; checks every 1 s until then, closing in on it."""
    dog, waits, crossings = watch(monkeypatch, watts=10.0, limit_j=100.0, interval_s=1.0)
    assert waits[0] == watchdog.FIRST_CHECK_S
    assert max(waits) == 1.0
    closing = waits[waits.index(1.0, 1) :]
    assert all(later <= earlier for earlier, later in zip(closing, closing[1:]))
    assert len(waits) < 40  # not a fixed fine beat
    assert min(waits) == watchdog.MIN_WAIT_S
    checks_s = [sum(waits[: index + 1]) for index in range(len(waits))]
    assert len([at for at in checks_s if 9.0 < at < 10.0]) >= 5  # halving the predicted time to the crossing
    [(energy_j, elapsed_s)] = crossings
    assert 10.0 < elapsed_s <= 10.0 + watchdog.MIN_WAIT_S + 1e-9  # stopped within the finest check of the crossing
    assert energy_j > 100.0 and dog.crossed is not None


def test_the_watchdog_never_waits_longer_than_its_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 0.01 W the crossing is 10 000 s away: still checked every 2 s."""
    _, waits, crossings = watch(monkeypatch, watts=0.01, limit_j=100.0, interval_s=2.0)
    assert max(waits) == 2.0
    [(_, elapsed_s)] = crossings
    assert 10_000.0 < elapsed_s <= 10_000.0 + watchdog.MIN_WAIT_S + 1e-6


def test_the_watchdog_does_not_fire_at_exactly_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Energy that reaches the limit and stays there is not a crossing (as a cap exactly met passes)."""
    clock = [0.0]

    class Plateau(SteadyWindow):
        def read(self) -> Measurement:
            return measured(min(self.watts * self.clock[0], 100.0))

    monkeypatch.setattr(watchdog.time, "perf_counter", lambda: clock[0])
    crossings: list = []
    dog = watchdog.Watchdog(Plateau(clock, 10.0), 100.0, 1.0, lambda m, e: crossings.append(e))  # type: ignore[arg-type]
    stop = FakeStop(clock)
    dog._stop, dog._t0 = stop, 0.0  # type: ignore[assignment]
    dog._watch()
    assert crossings == [] and len(stop.waits) > 10_000


# -- where the watchdog's stop may land ---------------------------------------------------------


def frames(*paths: str) -> SimpleNamespace:
    """A chain of fake frames, innermost first: only the file names and ``f_back`` matter."""
    frame = None
    for path in reversed(paths):
        frame = SimpleNamespace(f_code=SimpleNamespace(co_filename=path), f_back=frame)
    return frame  # type: ignore[return-value]


PYTEST_CODE = watchdog.FRAMEWORK_DIRS[0] + "capture.py"
STDLIB_CODE = watchdog.LIBRARY_DIRS[0] + "tempfile.py"
TEST_CODE = "/home/someone/project/tests/test_train.py"


@pytest.mark.parametrize(
    ("chain", "machinery"),
    [
        ((STDLIB_CODE, PYTEST_CODE, TEST_CODE), True),  # a subtest opening its capture file
        (("<frozen os>", PYTEST_CODE), True),
        ((PYTEST_CODE,), True),
        ((TEST_CODE, PYTEST_CODE), False),  # the test's own loop
        ((STDLIB_CODE, TEST_CODE, PYTEST_CODE), False),  # a library the test called
        ((), False),
    ],
    ids=["stdlib-under-pytest", "frozen-under-pytest", "pytest", "test", "stdlib-under-test", "no-frame"],
)
def test_a_stop_is_raised_in_the_tests_code_and_not_in_pytests(chain: tuple, machinery: bool) -> None:
    assert watchdog.in_pytest_machinery(frames(*chain) if chain else None) is machinery


def test_a_stop_that_lands_in_pytests_code_is_sent_again_until_it_lands_in_the_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first two signals find the main thread in pytest's code; the third raises in the test's."""
    landings = iter([True, True])
    monkeypatch.setattr(watchdog, "in_pytest_machinery", lambda frame: next(landings, False))
    stopper = watchdog.MainThreadStopper()
    assert stopper.arm()
    sender = threading.Thread(target=stopper.fire, args=("energy over cap",))
    try:
        with pytest.raises(pytest.fail.Exception, match="energy over cap"):
            sender.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the test's own work, until the stop lands
                pass
        assert next(landings, "spent") == "spent"
    finally:
        stopper.disarm()
        sender.join(5)
        stopper.uninstall()
    assert not sender.is_alive()


# -- EW accounting -------------------------------------------------------------------------------

REFERENCE = ReferenceValues(baseline_train_energy_j=10.0, baseline_test_energy_j=1.0)


def record(nodeid: str, phase: str, joules: Optional[float], system: Optional[str] = None, **scores: float) -> Record:
    return Record(nodeid=nodeid, phase=phase, outcome="passed", measurement=measured(joules), scores=scores, system=system)


def test_ew_weighs_a_score_by_its_own_phase_and_the_linked_tests_of_the_other_phase() -> None:
    """EW = score × baseline energy / system energy, per phase; the other phase's tests of a system add up."""
    records = [
        record("t::train", "train", 20.0, "sed", f1=0.4),
        record("t::infer_a", "test", 1.5, "sed", f1=0.5),
        record("t::infer_b", "test", 0.5, "sed"),
        record("t::other", "test", 100.0, "other"),
    ]
    train, infer_a, infer_b, _ = account(records, None, REFERENCE)
    assert train.extra["ew_scores"] == {"train": {"f1": pytest.approx(0.4 * 10 / 20)},
                                        "test": {"f1": pytest.approx(0.4 * 1 / 2.0)}}
    assert infer_a.extra["ew_scores"] == {"train": {"f1": pytest.approx(0.5 * 10 / 20)},
                                          "test": {"f1": pytest.approx(0.5 * 1 / 1.5)}}  # its own energy, not the sum
    assert "ew_scores" not in infer_b.extra  # no score recorded
    assert account(records[::-1], None, REFERENCE)[-1].extra["ew_scores"] == train.extra["ew_scores"]  # order-free


def test_ew_of_an_unlinked_phase_is_missing_and_says_how_to_link() -> None:
    [alone] = account([record("t::train", "train", 20.0, None, f1=0.4)], None, REFERENCE)
    assert alone.extra["ew_scores"] == {"train": {"f1": pytest.approx(0.2)}}
    assert "test: no test energy for this system (link tests with energy(system=...))" == alone.extra["ew_scores_missing"]


def test_no_ew_without_baseline_phase_energies_and_none_unnormalised_when_the_reference_normalises() -> None:
    records = [record("t::train", "train", 20.0, "sed", f1=0.4)]
    assert "ew_scores" not in account(records, None, ReferenceValues())[0].extra
    normalising = ReferenceValues(reference_energy_j=10.0, baseline_train_energy_j=10.0, baseline_test_energy_j=1.0)
    [accounted] = account(records, None, normalising)
    assert accounted.extra["ew_scores"] == {}
    assert accounted.extra["ew_scores_missing"].startswith("no baseline measured on this machine")


# -- overlap --------------------------------------------------------------------------------------


def test_overlap_is_noticed_only_with_two_distinct_workers() -> None:
    assert overlap_warning([]) is None
    assert overlap_warning(["gw0", "gw0", "gw0"]) is None
    message = overlap_warning(["gw1", "gw0", "gw1"])
    assert message is not None and message.startswith("2 xdist workers measured tests concurrently")


# -- tables ---------------------------------------------------------------------------------------

METER = "codecarbon-cpu_load+codecarbon-ram-model"
WIDE_TABLE = Table(
    [Column("test", shortenable=True, code=True), Column("energy", numeric=True), Column("gpu", optional=2),
     Column("%gpu", optional=1), Column("normalised", short="norm."), Column("meter", legend=True)],
    [["tests/test_models.py::TestTraining::test_train_crnn", "1.20 kWh", "1.10 kWh", "92%", "3.00 kWh", METER],
     ["tests/test_models.py::test_inference", "0.01 kWh", "unmeasured", "-", "-", METER]],
)


def test_a_table_that_fits_is_left_whole() -> None:
    lines = WIDE_TABLE.render_text(None)
    assert WIDE_TABLE.render_text(max(len(line) for line in lines)) == lines  # exactly as wide as the terminal
    assert lines[0].split() == ["test", "energy", "gpu", "%gpu", "normalised", "meter"]
    assert lines[2].endswith(METER) and len(lines) == 4


@pytest.mark.parametrize("width", [100, 80, 60])
def test_a_narrow_table_keys_long_values_shortens_headers_and_ids_then_leaves_out_columns(width: int) -> None:
    lines = WIDE_TABLE.render_text(width)
    table, notes = lines[:4], lines[4:]
    assert all(len(line) <= width for line in table)
    assert table[2].endswith("[1]") and table[3].endswith("[1]")
    assert f"meter [1]: {METER}" in notes
    assert ("norm." in table[0].split()) == (width <= 80)  # headers are shortened only when keys are not enough
    assert table[3].split()[0].endswith("::test_inference") and table[2].split()[0].endswith("::test_train_crnn")
    assert all("energy" in line or "-" in line or "kWh" in line for line in table)


def test_columns_are_left_out_least_needed_first_and_named() -> None:
    lines = WIDE_TABLE.render_text(60)
    assert lines[0].split() == ["test", "energy", "norm.", "meter"]
    assert lines[-1] == "(left out to fit 60 columns: %gpu, gpu)"
    blank_gpu = Table(WIDE_TABLE.columns, [row[:2] + ["-"] + row[3:] for row in WIDE_TABLE.rows])
    assert blank_gpu.render_text(58)[-1] == "(left out to fit 58 columns: gpu)"  # no figure in it: it goes first


def test_numeric_columns_align_right_and_a_short_value_keeps_its_place() -> None:
    table = Table([Column("meter", legend=True), Column("energy", numeric=True)], [["none", "1.2 J"], ["none", "12.0 J"]])
    assert table.render_text(13) == ["meter  energy", "-----  ------", "none    1.2 J", "none   12.0 J"]
    assert not any("[1]" in line for line in table.render_text(12))  # too narrow, but too short to key


def test_a_shortened_test_id_keeps_the_whole_test_name() -> None:
    name = "test_a_model_trained_for_ten_epochs_stays_under_its_cap"
    table = Table([Column("test", shortenable=True), Column("energy")], [[f"tests/deep/test_models.py::{name}", "1 J"]])
    assert table.render_text(60)[0] == f"…::{name}"  # too wide beside its energy: stacked, the whole name kept
    assert table.render_text(60)[1] == "  energy 1 J"


@pytest.mark.parametrize("width", [80, 60, 40, 24])
def test_no_line_is_wider_than_the_terminal(width: int) -> None:
    """The README example's table, which was 92 columns on an 80-column terminal, and a 14-column trend table."""
    energy = Table(
        [Column("test", shortenable=True, key=True), Column("phase"), Column("energy", numeric=True),
         Column("normalised", short="norm.", numeric=True), Column("MACs", numeric=True), Column("cap", numeric=True),
         Column("verdict"), Column("meter", legend=True)],
        [["examples/dcase_sed/test_sed.py::test_inference_on_held_out_clips", "test", "0.0124 Wh", "5.28e-03 Wh",
          "35.8M", "2.00 kWh", "pass", METER]] * 3,
    )
    trend = Table([Column(h, key=h in ("edition", "metric")) for h in (
        "edition", "metric", "n", "25% Max", "under", "psds1", "system", "median Max", "under", "psds1", "system",
        "All: n", "psds1", "system")],
        [["2023", "training energy, normalised", "37", "1.00 kWh", "10", "0.550", "Xiao_FMSG_task4a_4", "3.35 kWh",
          "20", "0.561", "Chen_CHT_task4_2", "37", "0.590", "Kim_GIST-HanwhaVision_task4a_2"]],
        "Best psds1 under thresholds, single systems (ensemble: no): Max is the P25 / median of the n ranked systems",
    )
    for table in (energy, trend):
        lines = table.render_text(width)
        assert max(len(line) for line in lines) <= width, "\n".join(lines)
        text = "\n".join(lines)
        assert all(cell.replace(" ", "") in text.replace(" ", "").replace("\n", "")
                   for cell in ("Kim_GIST-HanwhaVision_task4a_2", "0.590") if table is trend and width >= 40)


def test_a_wide_table_wraps_into_parts_that_repeat_its_key_columns() -> None:
    trend = Table([Column(h, key=h in ("edition", "metric")) for h in ("edition", "metric", "n", "Max", "system", "All")],
                  [["2023", "MACs", "37", "912M", "Xiao_FMSG_task4a_4", "0.590"]])
    lines = trend.render_text(46)
    assert lines == ["edition  metric  n   Max   system", "-------  ------  --  ----  ------------------",
                     "2023     MACs    37  912M  Xiao_FMSG_task4a_4", "",
                     "edition  metric  All", "-------  ------  -----", "2023     MACs    0.590"]


def test_markdown_escapes_every_cell_and_puts_test_ids_in_code_spans() -> None:
    table = Table([Column("test", code=True), Column("score|name")], [["t.py::test_x[a|b]", "f1 <b>0.5</b>"]])
    assert table.render_markdown() == ["| test | score\\|name |", "|---|---|", "| `t.py::test_x[a\\|b]` | f1 &lt;b&gt;0.5&lt;/b&gt; |"]


def test_one_energy_unit_per_column_from_its_largest_figure() -> None:
    assert common_energy_unit([1.0, 400.0, None]) == "Wh"
    assert common_energy_unit([1.0, 4e6]) == "kWh"
    assert common_energy_unit([None, None]) == "J"
    assert common_energy_unit([4e6], "J") == "J"


def test_the_energy_table_uses_one_unit_per_column(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record("t::big", "train", 7.2e6), record("t::small", "test", 36.0)]
    energies = [row[2] for row in summary_table(records, None).rows]
    assert energies == ["2.00 kWh", "1.00e-05 kWh"]
    assert [row[2] for row in summary_table(records, "J").rows] == ["7200000 J", "36.0 J"]


CELL = st.text(st.characters(codec="ascii", categories=("L", "N", "P", "Zs")), max_size=40)


@settings(max_examples=80, deadline=None)
@given(st.data(), st.integers(min_value=20, max_value=160))
def test_no_table_is_wider_than_its_width(data: st.DataObject, width: int) -> None:
    """Any columns, flags, cells and title: every rendered line fits; without a width, nothing is cut."""
    count = data.draw(st.integers(min_value=1, max_value=8))
    columns = [Column(f"h{index}" + data.draw(st.text("abc ", max_size=12)),
                      optional=data.draw(st.one_of(st.none(), st.integers(0, 5))),
                      legend=data.draw(st.booleans()), shortenable=data.draw(st.booleans()),
                      numeric=data.draw(st.booleans()), key=data.draw(st.booleans())) for index in range(count)]
    rows = data.draw(st.lists(st.lists(CELL, min_size=count, max_size=count), max_size=6))
    table = Table(columns, rows, data.draw(CELL))
    rendered = table.render_text(width)
    assert all(len(line) <= width for line in rendered)
    assert len(rendered) >= len(rows)  # every row is there, in some form
    whole = "\n".join(table.render_text(None))
    assert all(cell.strip() in whole for row in rows for cell in row)  # a line is right-stripped



def test_a_lone_column_wider_than_the_terminal_still_shows_its_rows() -> None:
    nodeid = "tests/test_models.py::test_a_rather_long_test_name"
    assert Table([Column("test", shortenable=True)], [[nodeid]]).render_text(30) == ["…" + nodeid[-29:]]
