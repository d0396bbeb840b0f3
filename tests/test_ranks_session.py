"""A pytest session inside a distributed launch: what the session's peers (its ranks) change.

Every repeat's window is combined over the ranks, not only the last: on two "nodes"
(``test_ranks.two_nodes``: node 0's fake GPU idles, node 1's draws 500 W) each repeat of the
test runs 0.3 s, so each repeat's figure holds node 1's GPU; a repeat counted on one rank
alone would read node 0's idle GPU only. xdist inside a launch is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_ranks import two_nodes

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
