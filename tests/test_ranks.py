"""Ranks of a distributed launch: who counts which device, and one figure per test from all ranks.

The pure parts (``detect``, ``own_cuda_ordinals``, ``own_readings``, ``combine``) are tested
directly; the exchange with real ``python -m torch.distributed.run`` launches (gloo, CPU) of
``tests/rank_script.py``: two ranks with one slower than the timeout, four ranks on one node
with one killed mid-test, two "nodes" of two ranks (two launches with distinct node ranks),
and rank 0 killed. Every launch is bounded by a subprocess timeout (a hang fails, never waits).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
from hypothesis import given, strategies as st

from fakes import fake_pynvml
from fakes.powercap import FakePowercap
from pytest_energy.decide.figures import lower_bound_reasons
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.measure.cuda_devices import CudaGpus
from pytest_energy.measure.overlap import STATE_DIR_ENV
from pytest_energy.measure.ranks import (
    Launch, LaunchError, RankFigure, combine, detect, own_cuda_ordinals, own_readings,
)

SCRIPT = Path(__file__).resolve().parent / "rank_script.py"
ROOT = Path(__file__).resolve().parent.parent
LAUNCH_TIMEOUT_S = 240  # a hang guard, not a speed check
TORCHRUN = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
            "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
SRUN = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_NODEID": "1",
        "SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_STEP_ID": "0"}


# -- the launch, from the environment ------------------------------------------------------------


def test_torchrun_environment_is_a_launch() -> None:
    assert detect(TORCHRUN) == Launch(3, 1, 4, 2, 1, "10.0.0.1", 29500, "torchrun")
    assert detect(TORCHRUN).node == "node1" and detect(TORCHRUN).exchange_port() == 29501  # type: ignore[union-attr]
    assert detect(TORCHRUN).exchange_port(4000) == 4000  # type: ignore[union-attr]


def test_srun_environment_is_a_launch_only_inside_a_job_step() -> None:
    assert detect(SRUN) == Launch(5, 1, 8, 4, 1, None, None, "slurm")
    batch_script = {key: value for key, value in SRUN.items() if key != "SLURM_STEP_ID"}
    assert detect(batch_script) is None  # pytest run once by the batch script: no other rank will come
    assert detect({**SRUN, **TORCHRUN}).launcher == "torchrun"  # type: ignore[union-attr]


@pytest.mark.parametrize("environ", [{}, {"RANK": "0", "WORLD_SIZE": "1"}, {"SLURM_PROCID": "0", "SLURM_NTASKS": "1",
                                                                            "SLURM_STEP_ID": "0"}])
def test_a_single_process_is_no_launch(environ: Dict[str, str]) -> None:
    assert detect(environ) is None


@pytest.mark.parametrize("change, named", [({"RANK": "4"}, "rank 4"), ({"WORLD_SIZE": "four"}, "WORLD_SIZE"),
                                          ({"LOCAL_RANK": "-1"}, "LOCAL_RANK"), ({"LOCAL_RANK": "2"}, "local rank 2")])
def test_an_inconsistent_launch_is_one_line_naming_it(change: Dict[str, str], named: str) -> None:
    with pytest.raises(LaunchError, match=named):
        detect({**TORCHRUN, **change})


def test_torch_is_not_imported_outside_a_launch() -> None:
    code = ("import sys; from pytest_energy.measure import ranks; assert ranks.detect({}) is None; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


# -- which devices a rank counts -----------------------------------------------------------------


@given(visible=st.integers(0, 16), local_world_size=st.integers(1, 16))
def test_every_visible_gpu_is_counted_by_some_rank_and_once_when_each_has_one(visible: int,
                                                                                local_world_size: int) -> None:
    shares = [own_cuda_ordinals(visible, local, local_world_size) for local in range(local_world_size)]
    counted = [position for share in shares for position in share]
    assert set(counted) == set(range(visible))
    if visible >= local_world_size:
        assert sorted(counted) == list(range(visible))  # each exactly once
        assert shares[0][0] == 0 and all(share[0] == local for local, share in enumerate(shares))  # cuda:LOCAL_RANK


def node_seen(gpus: int) -> Measurement:
    readings = [Reading("gpu", f"gpu{i}", 10.0 + i, "nvml-counter") for i in range(gpus)]
    return Measurement(1.0, (*readings, Reading("cpu", "package-0", 5.0, "rapl-counter"),
                             Reading("ram", "dram", 1.0, "rapl-counter")))


def node_gpus(gpus: int) -> CudaGpus:
    """``node_seen``'s GPUs by UUID, in CUDA order (the NVML order here)."""
    uuids = [f"GPU-{i}1111111-2222-3333-4444-555555555555" for i in range(gpus)]
    return CudaGpus(tuple(uuids), {uuid: f"gpu{i}" for i, uuid in enumerate(uuids)})


def launch_of(rank: int, world_size: int = 4, local_world_size: int = 4) -> Launch:
    return Launch(rank, rank % local_world_size, world_size, local_world_size, rank // local_world_size, None, 1, "torchrun")


def test_each_rank_counts_its_gpu_and_only_local_rank_0_the_cpu_and_ram() -> None:
    shares = [own_readings(node_seen(4), launch_of(rank), node_gpus(4)) for rank in range(4)]
    assert [[r.device for r in share.readings] for share in shares] == [
        ["gpu0", "package-0", "dram"], ["gpu1"], ["gpu2"], ["gpu3"]]
    combined = combine([RankFigure(rank, "node0", share) for rank, share in enumerate(shares)], {}, launch_of(0))
    assert combined.total_j == node_seen(4).total_j  # four ranks on one node: each device once


def test_a_device_two_ranks_counted_is_counted_once_and_partial_flags_are_kept() -> None:
    one_gpu = Measurement(1.0, (Reading("gpu", "gpu0", 10.0, "nvml-counter"),))
    lost = Measurement(2.5, (Reading("gpu", "gpu0", 9.0, "nvml-counter", partial="gpu0 stopped reporting mid-run"),))
    combined = combine([RankFigure(0, "node0", one_gpu), RankFigure(1, "node0", lost)], {}, launch_of(0, 2, 2))
    [reading] = combined.readings
    assert (reading.device, reading.joules, combined.duration_s) == ("node0:gpu0", 10.0, 2.5)
    assert lower_bound_reasons(combined) == ["node0:gpu0 stopped reporting mid-run"]


def test_a_missing_rank_makes_a_lower_bound_naming_it_for_what_it_would_have_counted() -> None:
    figures = [RankFigure(0, "node0", own_readings(node_seen(2), launch_of(0, 4, 2), node_gpus(2)))]
    combined = combine(figures, {2: "did not report within 3 s"}, launch_of(0, 4, 2), measured=("gpu", "cpu", "ram"))
    missing = sorted((r.component, r.device) for r in combined.readings if r.joules is None)
    assert missing == [("cpu", "node1:rank2"), ("gpu", "node1:rank2"), ("ram", "node1:rank2")]  # node 1's local rank 0
    assert lower_bound_reasons(combined) == ["node1:rank2 did not report within 3 s"]
    cpu_only = combine([RankFigure(0, "node0", Measurement(1.0, (Reading("cpu", "package-0", 5.0, "rapl-counter"),)))],
                       {1: "did not report within 3 s"}, launch_of(0, 2, 2))
    assert lower_bound_reasons(cpu_only) == [] and cpu_only.notes  # it counts nothing here: complete, said so


def test_a_test_one_rank_did_not_run_costs_only_that_test() -> None:
    import threading

    from pytest_energy.measure.rank_exchange import RankExchange

    port = free_port_pair()
    launches = [Launch(rank, rank, 2, 2, 0, "127.0.0.1", port, "torchrun") for rank in (0, 1)]
    exchanges = [RankExchange(launches[0], timeout_s=3.0, gpus=node_gpus(2))]
    exchanges.append(RankExchange(launches[1], timeout_s=3.0, gpus=node_gpus(2)))
    figures: Dict[int, List[Measurement]] = {0: [], 1: []}

    def run(rank: int, tests: Sequence[str]) -> None:
        for nodeid in tests:
            figures[rank].append(exchanges[rank].combine(nodeid, node_seen(2)))

    threads = [threading.Thread(target=run, args=(0, ["t::skipped_on_rank_1", "t::both"])),
               threading.Thread(target=run, args=(1, ["t::both"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    skipped, both = figures[0]
    assert lower_bound_reasons(skipped) == ["node0:rank1 did not report within 3 s"]
    assert lower_bound_reasons(both) == [] and both.total_j == node_seen(2).total_j == figures[1][0].total_j


# -- real launches ----------------------------------------------------------------------------------


def free_port_pair() -> int:
    """A port P with P + 1 (the exchange's) also free."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port pair")


def torchrun(out: Path, nproc: int, *script_args: Any, port: int, nnodes: int = 1,
             node_rank: int = 0) -> "subprocess.Popen[str]":
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--node_rank={node_rank}",
               f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1", f"--master_port={port}",
               "--monitor-interval=0.5", str(SCRIPT), "--out", str(out), *map(str, script_args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR"}
    return subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*launches: "subprocess.Popen[str]") -> List[str]:
    outputs = []
    for launch in launches:
        try:
            outputs.append(launch.communicate(timeout=LAUNCH_TIMEOUT_S)[0])
        finally:
            launch.kill()
    return outputs


def results(out: Path) -> Dict[int, List[Dict[str, Any]]]:
    """rank -> its lines, one per test it finished."""
    return {int(path.stem[4:]): [json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted(out.glob("rank*.jsonl"))}


def expected_total(nodes: Sequence[int], gpus: int) -> float:
    return sum(10.0 * (node + 1) + i for node in nodes for i in range(gpus)) + 6.0 * len(nodes)


def test_two_ranks_combine_and_a_rank_slower_than_the_timeout_makes_a_lower_bound(tmp_path: Path) -> None:
    [output] = finish(torchrun(tmp_path, 2, "--gpus", 2, "--tests", 3, "--timeout", 5, "--slow", 1,
                               port=free_port_pair()))
    by_rank = results(tmp_path)
    assert sorted(by_rank) == [0, 1], output[-3000:]
    for lines in by_rank.values():
        assert [line["total_j"] for line in lines] == [27.0, 16.0, 27.0]
        assert lines[0]["devices"] == {"gpu node0:gpu0": 10.0, "gpu node0:gpu1": 11.0, "cpu node0:cpu": 5.0,
                                       "ram node0:ram": 1.0}
        assert lines[1]["lower_bound"] == ["node0:rank1 did not report within 5 s"]
        assert lines[0]["lower_bound"] == lines[2]["lower_bound"] == []
    assert by_rank[0] == [{**line, "rank": 0} for line in by_rank[1]]  # every rank decides on the same figure


def test_four_ranks_on_one_node_count_each_gpu_and_the_cpu_once_and_a_killed_rank_is_named(tmp_path: Path) -> None:
    [output] = finish(torchrun(tmp_path, 4, "--gpus", 4, "--tests", 4, "--timeout", 8, "--kill", 2,
                               port=free_port_pair()))
    by_rank = results(tmp_path)
    assert sorted(by_rank) == [0, 1, 2, 3], output[-3000:]
    first = by_rank[0][0]
    assert first["total_j"] == expected_total([0], 4) and first["lower_bound"] == []
    assert sorted(first["devices"]) == ["cpu node0:cpu", "gpu node0:gpu0", "gpu node0:gpu1", "gpu node0:gpu2",
                                        "gpu node0:gpu3", "ram node0:ram"]
    assert len(by_rank[2]) == 1  # killed in its second test
    second = by_rank[0][1]
    assert second["total_j"] == expected_total([0], 4) - 12.0 and second["devices"]["gpu node0:rank2"] is None
    assert second["lower_bound"] == ["node0:rank2 did not report within 8 s"]
    for later in by_rank[0][2:]:  # the dead rank is waited for briefly, not the whole timeout, and still named
        assert later["lower_bound"] == ["node0:rank2 has not reported in time since test_suite.py::test_1"]
    assert [line["total_j"] for line in by_rank[1]] == [line["total_j"] for line in by_rank[0]]


def test_two_nodes_of_two_ranks_name_each_device_with_its_node(tmp_path: Path) -> None:
    port = free_port_pair()
    nodes = [torchrun(tmp_path, 2, "--gpus", 2, "--tests", 1, "--timeout", 10, port=port, nnodes=2, node_rank=node)
             for node in (0, 1)]
    outputs = finish(*nodes)
    by_rank = results(tmp_path)
    assert sorted(by_rank) == [0, 1, 2, 3], "\n".join(output[-2000:] for output in outputs)
    for lines in by_rank.values():
        [line] = lines
        assert line["total_j"] == expected_total([0, 1], 2) and line["lower_bound"] == []
        assert line["devices"] == {"gpu node0:gpu0": 10.0, "gpu node0:gpu1": 11.0, "cpu node0:cpu": 5.0,
                                   "ram node0:ram": 1.0, "gpu node1:gpu0": 20.0, "gpu node1:gpu1": 21.0,
                                   "cpu node1:cpu": 5.0, "ram node1:ram": 1.0}
        assert line["duration_s"] == 2.0  # the longest window: node 1's


def test_when_rank_0_dies_the_others_count_alone_and_say_so(tmp_path: Path) -> None:
    [output] = finish(torchrun(tmp_path, 2, "--gpus", 2, "--tests", 2, "--timeout", 8, "--kill", 0,
                               port=free_port_pair()))
    by_rank = results(tmp_path)
    assert len(by_rank.get(1, [])) == 2, output[-3000:]
    second = by_rank[1][1]
    assert second["devices"]["gpu node0:gpu1"] == 11.0 and second["devices"]["cpu node0:rank0"] is None
    assert second["lower_bound"] == ["node0:rank0 could not be reached (DistNetworkError)"]


# -- pytest sessions under torchrun ---------------------------------------------------------------

FAKE_GPUS_CONFTEST = """
import sys
sys.path.insert(0, {tests!r})
from fakes import fake_pynvml

def pytest_configure(config):
    boards = fake_pynvml.gpus(50.0, 500.0)  # each rank's view of the node
    for board in boards:
        board.name = "NVIDIA Fake GPU"  # one model: CUDA's order is the PCI order, so rank 0 counts gpu0 alone
    fake_pynvml._driver = fake_pynvml.FakeNvml(boards)
    sys.modules["pynvml"] = fake_pynvml
"""
RANKED_SUITE = """
import time
import pytest

@pytest.mark.energy_baseline
def test_reference():
    time.sleep(0.3)

@pytest.mark.energy(cap="50J")
def test_train():
    time.sleep(0.3)
"""


def test_a_pytest_session_under_torchrun_reports_once_on_the_ranks_combined_figure(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(FAKE_GPUS_CONFTEST.format(tests=str(Path(__file__).resolve().parent)))
    (tmp_path / "test_ranked.py").write_text(RANKED_SUITE)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port_pair()}", "--log-dir=logs", "--redirects=3", "-m", "pytest",
               "-p", "no:xdist", "--energy-meter=nvml", "--energy-json=energy.json",
               "--energy-cap-mode=warn", "test_ranked.py"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
           "TMPDIR": str(tmp_path), STATE_DIR_ENV: str(tmp_path)}  # this launch's own machine state
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    outputs = {int(path.parent.name): path.read_text() for path in tmp_path.glob("logs/**/stdout.log")}
    assert done.returncode == 0 and sorted(outputs) == [0, 1], done.stdout[-2000:] + done.stderr[-2000:]
    assert "energy report written to energy.json" in outputs[0]
    assert "energy report written" not in outputs[1]  # only global rank 0 writes reports
    report = json.loads((tmp_path / "energy.json").read_text())
    assert (report["session"]["ranks"], report["session"]["nodes"], report["session"]["launcher"]) == (2, 1, "torchrun")
    [baseline] = report["baseline"]  # the launch's own ranks do not contend with its baseline: it is cached
    assert baseline["source"] == "measured" and not baseline["contended"]
    assert not [notice for notice in report["notices"] if "measured while" in notice or "session" in notice]
    assert (tmp_path / ".pytest_cache" / "d" / "energy-baseline").exists()
    [test] = [test for test in report["tests"] if test["phase"] != "baseline"]
    gpus = {device["device"]: device["joules"] for device in test["devices"] if device["component"] == "gpu"}
    assert sorted(gpus) == ["node0:gpu0", "node0:gpu1"]  # each GPU once, from the rank that counts it
    assert gpus["node0:gpu1"] > 50.0 > gpus["node0:gpu0"]  # rank 0 alone counts gpu0: under the cap
    assert test["verdict"] == "over-cap" and test["energy_j"] == pytest.approx(sum(gpus.values()))
    for rank in (0, 1):  # every rank decided on the combined figure
        assert "exceeds cap" in outputs[rank], outputs[rank][-2000:]


def test_an_inconsistent_launch_environment_is_a_usage_error(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"RANK": "5", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy\ndef test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-json=energy.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [line for line in result.stderr.lines if "rank" in line]
    assert "cannot tell this process's rank: inconsistent torchrun launch: rank 5" in line


NODE_GPU_CONFTEST = """
import os
import sys
sys.path.insert(0, {tests!r})
from fakes import fake_pynvml

def pytest_configure(config):  # node 0's GPU idles, node 1's draws 500 W
    watts = 1.0 if os.environ["GROUP_RANK"] == "0" else 500.0
    fake_pynvml._driver = fake_pynvml.FakeNvml(fake_pynvml.gpus(watts))
    sys.modules["pynvml"] = fake_pynvml
"""
LONG_SUITE = """
import time
import pytest

@pytest.mark.energy(cap="50J")
def test_long_training():
    for _ in range(200):  # 10 s unless stopped
        time.sleep(0.05)
"""


def two_nodes(tmp_path: Path, suite: str, *options: str, conftest: str = NODE_GPU_CONFTEST,
              meter: str = "nvml") -> Dict[int, str]:
    """``suite`` run by pytest on two "nodes" of one rank each (two launches, each with its own machine state:
    machine lock, activity file), by default node 0's fake GPU idle and node 1's at 500 W; each node's output."""
    (tmp_path / "conftest.py").write_text(conftest.format(tests=str(Path(__file__).resolve().parent),
                                                          root=str(tmp_path)))
    (tmp_path / "test_suite.py").write_text(suite)
    port = free_port_pair()
    launches = []
    for node in (0, 1):
        temp = tmp_path / f"tmp{node}"
        temp.mkdir()
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}",
                   "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}", f"--log-dir=logs{node}",
                   "--redirects=3", "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", f"--energy-meter={meter}",
                   "--energy-json=energy.json", *options, "test_suite.py"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
               "TMPDIR": str(temp), STATE_DIR_ENV: str(temp)}
        launches.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))
    finish(*launches)
    return {node: "".join(path.read_text() for path in tmp_path.glob(f"logs{node}/**/stdout.log")) for node in (0, 1)}


def test_the_live_cap_stops_every_rank_on_the_energy_of_all_nodes(tmp_path: Path) -> None:
    outputs = two_nodes(tmp_path, LONG_SUITE, "--energy-check-interval=0.2")
    report = json.loads((tmp_path / "energy.json").read_text())
    [test] = report["tests"]
    assert (report["session"]["ranks"], report["session"]["nodes"]) == (2, 2)
    assert test.get("stopped_early") and test["stopped_early"]["at_s"] < 5.0, outputs[0][-2000:]  # node 0 alone: 1 W
    assert test["verdict"] == "over-cap" and test["energy_j"] > 50.0
    for node in (0, 1):
        assert "stopped early" in outputs[node], outputs[node][-2000:]


NODE_CONFTEST = """
import functools
import sys
sys.path.insert(0, {tests!r})
from fakes import fake_pynvml
from pytest_energy.measure import rapl

sys.modules["codecarbon"] = None  # auto: NVML for the GPUs, RAPL for the CPU and RAM, no CodeCarbon to open
UNBOUND = rapl.RaplSource


def pytest_configure(config):  # each rank sees the node: its four GPUs (idle until driven) and its powercap tree
    boards = fake_pynvml.gpus(0.0, 0.0, 0.0, 0.0)
    for board in boards:
        board.name = "NVIDIA Fake GPU"  # one model: CUDA's order is the PCI order
    fake_pynvml._driver = fake_pynvml.FakeNvml(boards)
    sys.modules["pynvml"] = fake_pynvml
    rapl.RaplSource = functools.partial(UNBOUND, {powercap!r})
"""
NODE_SUITE = """
import fcntl
import json
import os
import time
from pathlib import Path

import pytest
from fakes import fake_pynvml

WATTS = {watts!r}  # NVML board index -> what it draws while its rank works on it
NODE = Path({node!r})
RANK, LOCAL_RANK, WORLD_SIZE = (int(os.environ[name]) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def barrier(name):
    (NODE / f"{{name}}.{{RANK}}").touch()
    deadline = time.monotonic() + 120
    while len(list(NODE.glob(f"{{name}}.*"))) < WORLD_SIZE and time.monotonic() < deadline:
        time.sleep(0.01)


def spend_on_cpu(zone, joules):  # the node's counters, shared by the ranks: one writer at a time
    counter = Path({powercap!r}, zone, "energy_uj")
    with open(NODE / "powercap.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staged = counter.with_name(".energy_uj.new")
        staged.write_text(str(int(counter.read_text()) + round(joules * 1e6)) + "\\n")
        os.replace(staged, counter)


@pytest.mark.energy
def test_node_work():
    barrier("started")  # every rank's window is open before any rank spends
    handle = fake_pynvml.nvmlDeviceGetHandleByUUID(os.environ["CUDA_VISIBLE_DEVICES"].split(",")[LOCAL_RANK])
    index = fake_pynvml.nvmlDeviceGetIndex(handle)  # the board CUDA gives this rank as cuda:LOCAL_RANK
    before = fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    fake_pynvml._driver.drive(index, WATTS[index])
    time.sleep(0.3)
    fake_pynvml._driver.drive(index, 0.0)
    spent = (fake_pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - before) / 1000.0
    (NODE / f"gpu{{index}}.json").write_text(json.dumps(spent))
    spend_on_cpu("intel-rapl:0", 2.0 + RANK)
    spend_on_cpu("intel-rapl:0/intel-rapl:0:1", 0.5 * (RANK + 1))
    barrier("spent")  # and no rank's window closes before every rank spent
"""


def test_four_ranks_of_a_pytest_session_report_each_gpu_and_the_cpu_and_ram_once_with_the_node_total(
        tmp_path: Path) -> None:
    """Four ranks on one node, each seeing its four fake GPUs and its fake RAPL tree, ``CUDA_VISIBLE_DEVICES``
    permuted: each rank drives only the board CUDA gives it and spends on the shared CPU and DRAM counters."""
    tree = FakePowercap(tmp_path / "powercap").add_package(0, max_range_uj=100_000_000_000)
    node = tmp_path / "node"
    node.mkdir()
    uuids = [board.uuid for board in fake_pynvml.gpus(0.0, 0.0, 0.0, 0.0)]
    watts = {0: 100.0, 1: 200.0, 2: 300.0, 3: 400.0}
    (tmp_path / "conftest.py").write_text(NODE_CONFTEST.format(tests=str(Path(__file__).resolve().parent),
                                                               powercap=str(tree.root)))
    (tmp_path / "test_node.py").write_text(NODE_SUITE.format(watts=watts, node=str(node), powercap=str(tree.root)))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4", "--master_addr=127.0.0.1",
               f"--master_port={free_port_pair()}", "--log-dir=logs", "--redirects=3", "-m", "pytest",
               "-p", "no:xdist", "-p", "no:cacheprovider", "--energy-meter=auto", "--energy-json=energy.json",
               "test_node.py"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
           "TMPDIR": str(tmp_path), STATE_DIR_ENV: str(tmp_path),
           "CUDA_VISIBLE_DEVICES": ",".join(uuids[i] for i in (2, 0, 3, 1))}
    env.pop("CUDA_DEVICE_ORDER", None)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    outputs = {int(path.parent.name): path.read_text() for path in tmp_path.glob("logs/**/stdout.log")}
    assert done.returncode == 0 and sorted(outputs) == [0, 1, 2, 3], done.stdout[-2000:] + done.stderr[-2000:]
    [test] = json.loads((tmp_path / "energy.json").read_text())["tests"]
    devices: Dict[str, List[Any]] = {}
    for device in test["devices"]:
        devices.setdefault(device["component"], []).append((device["device"], device["joules"]))
    spent_on_gpus = {f"node0:gpu{index}": json.loads((node / f"gpu{index}.json").read_text()) for index in watts}
    assert sorted(devices["gpu"]) == sorted(spent_on_gpus.items())  # each GPU once, counted by the rank that drove it
    assert all(joules > 0.25 * watts[index] for index, joules in enumerate(spent_on_gpus.values()))
    [(_, cpu_j)] = devices["cpu"]  # counted once for the node, by local rank 0
    [(_, ram_j)] = devices["ram"]
    assert cpu_j == pytest.approx(tree.energy_uj("intel-rapl:0") / 1e6, abs=1e-6)
    assert ram_j == pytest.approx(tree.energy_uj("intel-rapl:0:1") / 1e6, abs=1e-6)
    assert test["energy_j"] == pytest.approx(sum(spent_on_gpus.values()) + cpu_j + ram_j, abs=1e-6)


def test_the_rank_port_option_wins_over_the_environment_and_the_port_after_master_port(tmp_path: Path) -> None:
    """``MASTER_PORT + 1`` and ``$PYTEST_ENERGY_RANK_PORT`` are both taken; ``--energy-rank-port`` names a free one."""
    (tmp_path / "conftest.py").write_text(FAKE_GPUS_CONFTEST.format(tests=str(Path(__file__).resolve().parent)))
    (tmp_path / "test_ranked.py").write_text("import pytest\n\n@pytest.mark.energy\ndef test_one():\n    pass\n")
    master_port = free_port_pair()
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", master_port + 1))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        rank_port = free.getsockname()[1]
        free.close()
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                   f"--master_port={master_port}", "--log-dir=logs", "--redirects=3", "-m", "pytest",
                   "-p", "no:xdist", "-p", "no:cacheprovider", "--energy-meter=nvml", "--energy-json=energy.json",
                   f"--energy-rank-port={rank_port}", "--energy-rank-timeout=20s", "test_ranked.py"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
               "TMPDIR": str(tmp_path), STATE_DIR_ENV: str(tmp_path), "PYTEST_ENERGY_RANK_PORT": str(master_port + 1)}
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "energy.json").read_text())
    assert not [notice for notice in report["notices"] if "exchange" in notice], report["notices"]
    [test] = report["tests"]
    assert sorted(device["device"] for device in test["devices"] if device["component"] == "gpu") == [
        "node0:gpu0", "node0:gpu1"]


def test_a_program_on_the_exchange_port_that_never_answers_is_no_hang() -> None:
    """Before, a rank's ``TCPStore`` client waited for ever on a port where something accepted and stayed silent
    (torch's timeout does not bound its handshake): a taken ``MASTER_PORT + 1`` hung every rank but 0."""
    import threading

    from pytest_energy.measure.rank_exchange import ExchangeUnavailable, RankExchange

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        raised: List[BaseException] = []

        def open_exchange() -> None:
            try:
                RankExchange(Launch(1, 1, 2, 2, 0, "127.0.0.1", port - 1, "torchrun"), port, timeout_s=1.0)
            except BaseException as error:
                raised.append(error)

        opening = threading.Thread(target=open_exchange, daemon=True)
        opening.start()
        opening.join(timeout=30)  # a hang guard
        assert not opening.is_alive(), "opening the exchange hangs"
    [error] = raised
    assert isinstance(error, ExchangeUnavailable) and "nothing answered" in str(error) and "--energy-rank-port" in str(error)


def test_each_repeat_of_a_test_is_combined_over_the_ranks_with_its_own_repeat(tmp_path: Path) -> None:
    """A test (or the baseline) measured several times in a row: every window is combined with the same
    window of the other ranks (matched by node id and run count), even with one rank falling behind."""
    [output] = finish(torchrun(tmp_path, 2, "--gpus", 2, "--tests", 2, "--repeats", 3, "--lag", 1, "--timeout", 20,
                               port=free_port_pair()))
    by_rank = results(tmp_path)
    assert sorted(by_rank) == [0, 1], output[-3000:]
    for lines in by_rank.values():
        assert [(line["test"], line["repeat"]) for line in lines] == [(t, r) for t in range(2) for r in range(3)]
        assert [line["total_j"] for line in lines] == [27.0 * (r + 1) for _ in range(2) for r in range(3)]
        assert all(line["lower_bound"] == [] for line in lines)
        assert all(line["devices"]["gpu node0:gpu1"] == 11.0 * (line["repeat"] + 1) for line in lines)  # rank 1's
    assert by_rank[0] == [{**line, "rank": 0} for line in by_rank[1]]
