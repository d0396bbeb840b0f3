"""What combining a test's figure over the ranks costs, at 2, 4 and 8 ranks.

Each launch is a real ``python -m torch.distributed.run --nproc_per_node=N`` of
``tests/rank_script.py --bench``: every rank joins a gloo group, then calls
``RankExchange.combine`` ``--tests`` times back to back on its node's readings (4 GPUs, CPU,
RAM), as each rank does once at the end of every measured test, each followed by the
reference: a gloo all-reduce of one value on the test's own process group, the smallest
collective a distributed test makes. This prints, per rank count, the median over ranks of
their median cost, its ratio to the reference's, and the slowest single combine of any rank. On a machine with fewer cores than ranks
the ranks share them, so the figures include waiting for a core.

    python benchmarks/bench_rank_combine.py [--ranks 2 4 8] [--tests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "rank_script.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(ranks: int, tests: int) -> str:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
                   "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(SCRIPT), "--out", out,
                   "--gpus", "4", "--bench", str(tests), "--timeout", "60"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TORCH_CPP_LOG_LEVEL": "ERROR"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        figures = [json.loads(path.read_text()) for path in Path(out).glob("rank*.jsonl")]
        if done.returncode or len(figures) != ranks:
            return f"{ranks} ranks: failed ({done.returncode}): {done.stdout[-500:]}{done.stderr[-1500:]}"
    median_ms = statistics.median(figure["median_s"] for figure in figures) * 1e3
    reference_ms = statistics.median(figure["all_reduce_median_s"] for figure in figures) * 1e3
    slowest_ms = max(figure["max_s"] for figure in figures) * 1e3
    return (f"{ranks} ranks: {median_ms:.2f} ms per test (median over ranks), {median_ms / reference_ms:.1f}x a gloo "
            f"all-reduce of one value ({reference_ms:.2f} ms); slowest combine {slowest_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.tests} combines per rank")
    for ranks in args.ranks:
        print(run(ranks, args.tests), flush=True)


if __name__ == "__main__":
    main()
