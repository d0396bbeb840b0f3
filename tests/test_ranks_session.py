"""A pytest session inside a distributed launch: what the session's peers (its ranks) change.

Every repeat's window is combined over the ranks, not only the last. Two "nodes" (two ``torch.distributed.run`` launches of one rank each, with their own machine
state): node 0's fake GPU idles, node 1's draws 500 W. Each repeat of the test runs 0.3 s on
both, so each repeat's figure holds node 1's GPU; a repeat counted on one rank alone would
read node 0's idle GPU only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_energy.measure.overlap import STATE_DIR_ENV
from test_ranks import NODE_GPU_CONFTEST, ROOT, finish, free_port_pair

REPEATED_SUITE = """
import time
import pytest

@pytest.mark.energy(repeats=3)
def test_train():
    time.sleep(0.3)
"""


def test_every_repeat_of_a_test_is_combined_over_the_nodes(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(NODE_GPU_CONFTEST.format(tests=str(Path(__file__).resolve().parent)))
    (tmp_path / "test_repeated.py").write_text(REPEATED_SUITE)
    port = free_port_pair()
    launches = []
    for node in (0, 1):
        temp = tmp_path / f"tmp{node}"
        temp.mkdir()
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}",
                   "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}", f"--log-dir=logs{node}",
                   "--redirects=3", "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "--energy-meter=nvml",
                   "--energy-json=energy.json", "test_repeated.py"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR",
               "TMPDIR": str(temp), STATE_DIR_ENV: str(temp)}
        launches.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))
    outputs = finish(*launches)
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
