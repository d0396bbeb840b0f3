"""RaplSource against a fake powercap tree: zones, wrap-around, permissions, faults."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from fakes.powercap import INTEL_MAX_RANGE_UJ, FakePowercap
from pytest_energy.measure.base import SourceUnavailable
from pytest_energy.measure.rapl import MAX_POLL_S, RaplSource, wrapped_delta


@pytest.fixture
def tree(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "powercap")


@pytest.fixture
def opened(tree: FakePowercap) -> Iterator[Callable[..., RaplSource]]:
    """Open RaplSources on the fake tree and close them after the test."""
    sources = []

    def open_source(poll_s: float = 30.0) -> RaplSource:
        source = RaplSource(tree.root, poll_s=poll_s)
        source.open()
        sources.append(source)
        return source

    yield open_source
    for source in sources:
        source.close()


def joules(source: RaplSource) -> dict:
    return {key: total.joules for key, total in source.totals().items()}


def poller_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "pytest-energy-rapl-poller"]


def test_package_is_cpu_and_its_dram_is_ram(tree: FakePowercap, opened) -> None:
    tree.add_package(0, energy_uj=5_000_000)
    source = opened()
    assert source.components == frozenset({"cpu", "ram"})
    assert joules(source) == {"package-0": 0.0, "dram-0": 0.0}
    tree.advance("intel-rapl:0", 12.5)
    tree.advance("intel-rapl:0:1", 3.25)
    totals = source.totals()
    assert totals["package-0"].joules == pytest.approx(12.5) and totals["dram-0"].joules == pytest.approx(3.25)
    package = totals["package-0"]
    assert (package.component, package.method, package.label) == ("cpu", "rapl-counter", "package-0")
    assert (totals["dram-0"].component, totals["dram-0"].label) == ("ram", "package-0/dram")
    assert source.describe() == {"rapl_zones": ["package-0", "package-0/dram"]}
    assert source.update_period_s == pytest.approx(0.001)


def test_core_uncore_psys_and_mmio_are_not_counted_twice(tree: FakePowercap, opened) -> None:
    tree.add_package(0, uncore=True).add_package(1).add_psys(2)
    source = opened()
    for zone in ("intel-rapl:0:0", "intel-rapl:0:1", "intel-rapl:1:0", "intel-rapl:2", "intel-rapl-mmio:0"):
        tree.advance(zone, 40.0)  # core, uncore, psys and the MMIO copy all move with the package
    tree.advance("intel-rapl:0", 50.0)
    tree.advance("intel-rapl:1", 20.0)
    assert joules(source) == pytest.approx({"package-0": 50.0, "dram-0": 0.0, "package-1": 20.0, "dram-1": 0.0})
    # intel-rapl:0:2 is the dram sub-zone once uncore is there
    tree.advance("intel-rapl:0:2", 7.0)
    assert joules(source)["dram-0"] == pytest.approx(7.0)
    assert source.describe()["rapl_zones"] == ["package-0", "package-0/dram", "package-1", "package-1/dram"]


def test_zones_are_ordered_by_number_not_by_text(tree: FakePowercap, opened) -> None:
    for number in (0, 2, 10):
        tree.add_package(number, dram=False, core=False)
    assert opened().describe()["rapl_zones"] == ["package-0", "package-2", "package-10"]


@pytest.mark.parametrize("prefix", ["intel-rapl", "amd-rapl"])
def test_amd_packages_without_dram(tmp_path: Path, prefix: str) -> None:
    tree = FakePowercap(tmp_path, prefix=prefix).add_package(0, dram=False)
    source = RaplSource(tmp_path, poll_s=30.0)
    source.open()
    try:
        assert source.components == frozenset({"cpu"})
        tree.advance(f"{prefix}:0", 2.0)
        assert joules(source) == pytest.approx({"package-0": 2.0})
    finally:
        source.close()


def test_wrapped_delta_rule() -> None:
    assert wrapped_delta(100, 250, 1000) == 150
    assert wrapped_delta(900, 200, 1000) == 300
    assert wrapped_delta(500, 500, 1000) == 0


def test_a_counter_that_wraps_between_reads(tree: FakePowercap, opened) -> None:
    tree.add_package(0, max_range_uj=1_000_000, energy_uj=900_000)  # a 1 J range
    source = opened()
    tree.advance("intel-rapl:0", 0.3)
    assert tree.energy_uj("intel-rapl:0") == 200_000
    assert joules(source)["package-0"] == pytest.approx(0.3)
    tree.advance("intel-rapl:0", 0.9)
    assert joules(source)["package-0"] == pytest.approx(1.2)


def test_the_poll_thread_catches_wraps_nobody_reads(tree: FakePowercap, opened) -> None:
    tree.add_package(0, dram=False, max_range_uj=1_000_000)
    source = opened(poll_s=0.01)
    for _ in range(3):  # 1.8 J on a 1 J counter: it wraps twice, and totals() is read only at the end
        tree.advance("intel-rapl:0", 0.6)
        time.sleep(0.1)
    assert joules(source)["package-0"] == pytest.approx(1.8)


def test_default_poll_period_is_safe_for_a_500_watt_package(tree: FakePowercap, tmp_path: Path) -> None:
    tree.add_package(0, max_range_uj=100_000_000)  # 100 J wraps in 0.2 s at 500 W
    small = RaplSource(tree.root)
    small.open()
    small.close()
    assert small.poll_s == pytest.approx(0.1)
    big = FakePowercap(tmp_path / "big").add_package(0, max_range_uj=INTEL_MAX_RANGE_UJ)
    intel = RaplSource(big.root)
    intel.open()
    intel.close()
    assert intel.poll_s == MAX_POLL_S


def test_unreadable_counter_says_how_to_fix_it(tree: FakePowercap, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.add_package(0)
    tree.deny("intel-rapl:0", monkeypatch)
    with pytest.raises(SourceUnavailable) as raised:
        RaplSource(tree.root).open()
    message = str(raised.value)
    assert "permission denied" in message and "intel-rapl:0/energy_uj" in message
    assert "run as root" in message and "chmod o+r" in message
    assert not poller_threads()


def test_unreadable_dram_counter(tree: FakePowercap, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.add_package(0)
    tree.deny("intel-rapl:0:1", monkeypatch)
    with pytest.raises(SourceUnavailable, match="intel-rapl:0:1/energy_uj: permission denied"):
        RaplSource(tree.root).open()


def test_no_powercap_tree(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no RAPL powercap interface at .*missing"):
        RaplSource(tmp_path / "missing").open()


def test_a_tree_with_only_psys(tree: FakePowercap) -> None:
    tree.add_psys(0)
    with pytest.raises(SourceUnavailable, match="no RAPL package zone"):
        RaplSource(tree.root).open()


def test_a_zone_failing_mid_run_keeps_its_total(tree: FakePowercap, opened) -> None:
    tree.add_package(0)
    source = opened()
    tree.advance("intel-rapl:0:1", 4.0)
    assert joules(source)["dram-0"] == pytest.approx(4.0)
    (tree.zones["intel-rapl:0:1"] / "energy_uj").unlink()
    tree.advance("intel-rapl:0", 6.0)
    totals = source.totals()
    assert totals["dram-0"].joules == pytest.approx(4.0) and "package-0/dram stopped reporting" in totals["dram-0"].partial
    assert totals["package-0"].joules == pytest.approx(6.0) and totals["package-0"].partial == ""


def test_close_stops_the_poller_promptly(tree: FakePowercap) -> None:
    tree.add_package(0)
    source = RaplSource(tree.root, poll_s=30.0)
    source.open()
    assert len(poller_threads()) == 1
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 0.5
    assert not poller_threads()
    source.close()
