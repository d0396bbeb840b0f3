"""A pytest session inside a distributed launch: what the session's peers (its ranks) change.

Every repeat's window is combined over the ranks, not only the last: on two "nodes"
(``test_ranks.two_nodes``: node 0's fake GPU idles, node 1's draws 500 W) each repeat of the
test runs 0.3 s, so each repeat's figure holds node 1's GPU; a repeat counted on one rank
alone would read node 0's idle GPU only. Two nodes with their own GPU and RAPL tree add up, each
device named with its node. When a rank dies mid-test, torchrun sends SIGTERM to
the others and kills them 30 s later: rank 0 waits for the dead rank only briefly, so its
report is complete, the test in it a lower bound naming the rank. xdist inside a launch is refused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest

from pytest_energy.decide.figures import lower_bound_reasons
from pytest_energy.measure.base import Measurement
from pytest_energy.measure.overlap import STATE_DIR_ENV
from pytest_energy.measure.ranks import Launch
from test_ranks import FAKE_GPUS_CONFTEST, LAUNCH_TIMEOUT_S, ROOT, free_port_pair, node_gpus, node_seen, two_nodes

REPEATED_SUITE = """
import time
import pytest

@pytest.mark.energy(repeats=3)
def test_train():
    time.sleep(0.3)
"""


def test_every_repeat_of_a_test_is_combined_over_the_nodes(tmp_path: Path) -> None:
    outputs = two_nodes(tmp_path, REPEATED_SUITE)
    [test] = json.loads((tmp_path / "energy.json").read_text())["tests"]
    repeats = test["repeats"]["energy_j"]
    assert len(repeats) == 3, outputs
    assert all(energy > 100.0 for energy in repeats), repeats  # 500 W x 0.3 s on node 1 in each; node 0 idles
    assert {device["device"] for device in test["devices"] if device["component"] == "gpu"} == {"node0:gpu0", "node1:gpu0"}


def test_xdist_workers_under_a_launch_are_refused(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [line for line in result.stderr.lines if "xdist" in line]
    assert "pytest-xdist cannot run inside a torchrun launch" in line and "-p no:xdist" in line


DYING_RANK_SUITE = """
import os
import signal
import time
import pytest

@pytest.mark.energy(cap="1kJ")
def test_train():
    if os.environ["RANK"] == "1":
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)  # a rank lost mid-test (out of memory, a node gone)
    time.sleep(20)
"""


def test_a_rank_killed_mid_test_leaves_a_complete_report_naming_it(tmp_path: Path) -> None:
    """Before: rank 0 waited 60 s for the dead rank's figure, torchrun killed it after 30 s, and the report
    was the last checkpoint ("complete": false) without the test."""
    (tmp_path / "conftest.py").write_text(FAKE_GPUS_CONFTEST.format(tests=str(Path(__file__).resolve().parent)))
    (tmp_path / "test_dying.py").write_text(DYING_RANK_SUITE)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port_pair()}", "--log-dir=logs", "--redirects=3", "-m", "pytest",
               "-p", "no:xdist", "-p", "no:cacheprovider", "--energy-meter=nvml", "--energy-json=energy.json",
               "test_dying.py"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
           "TMPDIR": str(tmp_path), STATE_DIR_ENV: str(tmp_path)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    report = json.loads((tmp_path / "energy.json").read_text())
    assert report["complete"], done.stdout[-2000:] + done.stderr[-2000:]
    [test] = report["tests"]
    assert (test["outcome"], test["verdict"]) == ("interrupted", "lower-bound")  # never a pass under its cap
    assert "node0:rank1 was not waited for: the session was interrupted" in test["verdict_message"]


def test_an_interruption_cuts_every_rank_s_wait_for_the_others_short() -> None:
    """Rank 0 waits for a rank that never reports, rank 1 for a figure rank 0 never publishes, each with a
    60 s timeout; the session is interrupted 0.3 s in (a signal held meanwhile): both stop waiting within
    the grace and name whom they did not wait for."""
    from pytest_energy.measure.rank_exchange import RankExchange

    port = free_port_pair()
    launches = [Launch(rank, rank, 2, 2, 0, "127.0.0.1", port, "torchrun") for rank in (0, 1)]
    rank_0 = RankExchange(launches[0], timeout_s=60.0, gpus=node_gpus(2))
    rank_1 = RankExchange(launches[1], timeout_s=60.0, gpus=node_gpus(2))
    started = time.monotonic()
    interrupted = lambda: time.monotonic() - started > 0.3  # noqa: E731
    alone_0 = rank_0.combine("t::only_rank_0_ran_it", node_seen(2), interrupted)
    alone_1 = rank_1.combine("t::only_rank_1_ran_it", node_seen(2), interrupted)
    assert time.monotonic() - started < 30.0  # a hang guard: 60 s each without the interruption
    assert lower_bound_reasons(alone_0) == ["node0:rank1 was not waited for: the session was interrupted"]
    assert lower_bound_reasons(alone_1) == ["node0:rank0 was not waited for: the session was interrupted"]
    rank_1.close()
    rank_0.close()


NODES_CONFTEST = """
import functools
import json
import os
import sys
sys.path.insert(0, {tests!r})
from fakes import fake_pynvml
from fakes.powercap import FakePowercap
from pytest_energy.measure import rapl

sys.modules["codecarbon"] = None  # auto: NVML for the GPU, RAPL for the CPU and RAM
NODE = int(os.environ["GROUP_RANK"])
TREE = FakePowercap({root!r} + f"/powercap{{NODE}}").add_package(0)  # this node's own RAPL counters


def pytest_configure(config):
    fake_pynvml._driver = fake_pynvml.FakeNvml(fake_pynvml.gpus(100.0 * (NODE + 1)))
    sys.modules["pynvml"] = fake_pynvml
    rapl.RaplSource = functools.partial(rapl.RaplSource, str(TREE.root))


def pytest_sessionfinish(session):  # what this node's devices spent, read back by the test
    board = fake_pynvml.nvmlDeviceGetHandleByIndex(0)
    spent = {{"gpu": fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(board) / 1000.0,
              "cpu": TREE.energy_uj("intel-rapl:0") / 1e6, "ram": TREE.energy_uj("intel-rapl:0:1") / 1e6}}
    with open({root!r} + f"/spent{{NODE}}.json", "w") as out:
        json.dump(spent, out)
"""
NODES_SUITE = """
import time
import pytest
from conftest import NODE, TREE

@pytest.mark.energy
def test_train():
    time.sleep(0.3)
    TREE.advance("intel-rapl:0", 2.0 + NODE)
    TREE.advance("intel-rapl:0:1", 0.5 * (NODE + 1))
"""


def test_two_nodes_each_with_its_gpu_and_rapl_tree_add_up_named_by_node(tmp_path: Path) -> None:
    outputs = two_nodes(tmp_path, NODES_SUITE, conftest=NODES_CONFTEST, meter="auto")
    [test] = json.loads((tmp_path / "energy.json").read_text())["tests"]
    spent = {node: json.loads((tmp_path / f"spent{node}.json").read_text()) for node in (0, 1)}
    devices = {(device["component"], device["device"]): device["joules"] for device in test["devices"]}
    assert sorted(devices) == [("cpu", "node0:package-0"), ("cpu", "node1:package-0"), ("gpu", "node0:gpu0"),
                               ("gpu", "node1:gpu0"), ("ram", "node0:dram-0"), ("ram", "node1:dram-0")], outputs
    for node in (0, 1):
        assert devices[("cpu", f"node{node}:package-0")] == pytest.approx(spent[node]["cpu"], abs=1e-6)
        assert devices[("ram", f"node{node}:dram-0")] == pytest.approx(spent[node]["ram"], abs=1e-6)
        assert devices[("gpu", f"node{node}:gpu0")] <= spent[node]["gpu"]  # the window, within the session
    assert spent[0]["cpu"] == pytest.approx(2.0) and spent[1]["ram"] == pytest.approx(1.0)
    assert test["energy_j"] == pytest.approx(sum(devices.values()), abs=1e-6)


CAPPED_SUITE = """
import time
import pytest

@pytest.mark.energy(cap="50J")
def test_train():
    time.sleep(0.3)
"""


def test_ranks_that_cannot_combine_never_pass_a_cap_on_one_node_s_figure(tmp_path: Path) -> None:
    """The exchange's port is held by a program that never answers: the ranks cannot combine. Before, rank 0
    reported what its node's idle GPU spent (under 1 J) and passed the 50 J cap while node 1 spent 150 J."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        outputs = two_nodes(tmp_path, CAPPED_SUITE, f"--energy-rank-port={taken.getsockname()[1]}",
                            "--energy-rank-timeout=1s", "--energy-cap-mode=warn")
    report = json.loads((tmp_path / "energy.json").read_text())
    [test] = report["tests"]
    assert test["verdict"] == "lower-bound", outputs[0][-2000:]
    assert "node1:rank1 was not combined with (cannot open the ranks' energy exchange" in test["verdict_message"]
    assert any("a lower bound naming the other ranks" in notice for notice in report["notices"])


class Stopped(Exception):
    """What the test's SIGTERM handler raises, as pytest-energy's raises ``pytest.exit``'s (an ``Exception``)."""


def test_a_signal_during_the_wait_cuts_it_short_and_takes_effect_once_the_figure_is_kept() -> None:
    """SIGTERM arrives while rank 0 waits (60 s timeout) for a rank that never reports. Held meanwhile, it cuts
    the wait short; raised inside the wait, the store's error handling would have taken it for a timeout."""
    import signal
    import threading

    from pytest_energy.measure.interrupts import signals_deferred
    from pytest_energy.measure.rank_exchange import RankExchange

    def stop(signum: int, frame: object) -> None:
        raise Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    port = free_port_pair()
    launches = [Launch(rank, rank, 2, 2, 0, "127.0.0.1", port, "torchrun") for rank in (0, 1)]
    rank_0 = RankExchange(launches[0], timeout_s=60.0, gpus=node_gpus(2))
    rank_1 = RankExchange(launches[1], timeout_s=60.0, gpus=node_gpus(2))
    kept: Dict[str, Measurement] = {}
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(Stopped):
            with signals_deferred() as held:  # as EnergySession.stop_test combines
                kept["figure"] = rank_0.combine("t::only_rank_0_ran_it", node_seen(2), lambda: bool(held))
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        rank_1.close()
        rank_0.close()
    assert time.monotonic() - started < 30.0  # a hang guard: 60 s without the signal
    assert lower_bound_reasons(kept["figure"]) == ["node0:rank1 was not waited for: the session was interrupted"]
