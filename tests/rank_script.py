"""One rank of a distributed launch that combines its tests' figures, run under ``torch.distributed.run``.

Each rank joins a gloo process group (the tests' own collectives), opens a ``RankExchange``
and runs ``--tests`` windows: an all-reduce (the test's work), then every device its node
shows (``--gpus`` GPUs of ``10 * (node + 1) + i`` J, the CPU 5 J, the RAM 1 J, the same on
every rank of the node), of which the exchange counts its rank's share, combined over the ranks.
It writes one JSON line per test (per repeat, with ``--repeats``: repeat ``r`` spends ``r + 1`` times as
much) to ``--out``/rank<RANK>.jsonl; rank ``--slow`` reports its second test only after rank 0 gave up on
it, rank ``--lag`` falls behind within a test's repeats, rank ``--kill`` kills itself there. ``--bench N``
times N combines, each followed by a gloo all-reduce of one value (the reference).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from pytest_energy.decide.figures import lower_bound_reasons
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.measure.cuda_devices import CudaGpus
from pytest_energy.measure.rank_exchange import RankExchange
from pytest_energy.measure.ranks import Launch, detect

NODE_WIDE_J = {"cpu": 5.0, "ram": 1.0}
STARTUP_S = 60.0


def node_measurement(node: int, gpus: int, scale: float = 1.0) -> Measurement:
    readings = [Reading("gpu", f"gpu{i}", scale * (10.0 * (node + 1) + i), "nvml-counter", label="Fake GPU")
                for i in range(gpus)]
    readings += [Reading(component, component, scale * joules, "rapl-counter") for component, joules in NODE_WIDE_J.items()]
    return Measurement(1.0 + node, tuple(readings))


def node_gpus(gpus: int) -> CudaGpus:
    """The node's GPUs by UUID, in CUDA order, as the NVML source names their readings."""
    uuids = [f"GPU-{i}1111111-2222-3333-4444-555555555555" for i in range(gpus)]
    return CudaGpus(tuple(uuids), {uuid: f"gpu{i}" for i, uuid in enumerate(uuids)})


def wait_for_line(path: Path, index: int, limit_s: float = 120.0) -> None:
    """Until ``path`` holds the line of test ``index`` (another rank's progress), at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text(encoding="utf-8").splitlines()) > index:
            return
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tests", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--slow", type=int, default=-1)
    parser.add_argument("--kill", type=int, default=-1)
    parser.add_argument("--bench", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--lag", type=int, default=-1)
    args = parser.parse_args()
    launch = detect()
    assert launch is not None, "not a distributed launch"
    if args.kill >= 0:  # torchrun stops the others once it sees a rank died: they finish their test first,
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as a pytest session writing its report would
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    # opened with room for the ranks to come up at different times (several launches on 2 cores), then
    # given the per-test timeout under test
    exchange = RankExchange(launch, timeout_s=STARTUP_S, gpus=node_gpus(args.gpus))
    exchange.timeout_s = args.timeout
    out = Path(args.out, f"rank{launch.rank}.jsonl")
    if args.bench:  # each combine, and as a reference one gloo all-reduce of one value, interleaved
        costs, references = [], []
        seen = node_measurement(launch.node_rank, args.gpus)
        dist.barrier()
        for index in range(args.bench):
            start = time.perf_counter()
            exchange.combine(f"bench::{index}", seen)
            costs.append(time.perf_counter() - start)
            start = time.perf_counter()
            dist.all_reduce(torch.ones(1))
            references.append(time.perf_counter() - start)
        out.write_text(json.dumps({"median_s": statistics.median(costs), "max_s": max(costs),
                                   "all_reduce_median_s": statistics.median(references)}))
    else:
        run_tests(args, launch, exchange, out)
    if args.kill < 0:  # a gloo group left at exit can abort the process ("terminate called without an active exception")
        dist.destroy_process_group()
    exchange.close()
    sys.stdout.flush()


def run_tests(args: argparse.Namespace, launch: Launch, exchange: RankExchange, out: Path) -> None:
    """``--tests`` tests of ``--repeats`` windows each, one JSON line per window."""
    with out.open("w", encoding="utf-8") as stream:
        for index in range(args.tests):
            if args.kill < 0 or index < 1:  # after a rank died, a collective would wait for it
                total = torch.ones(1)
                dist.all_reduce(total)  # the test's own work, on its own process group
                assert total.item() == launch.world_size
            if index == 1 and launch.rank == args.slow:
                wait_for_line(Path(args.out, "rank0.jsonl"), index)  # reports only once rank 0 gave up on it
            if index == 1 and launch.rank == args.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            for repeat in range(args.repeats):  # a test's repeats (or the baseline's), each its own window
                if repeat and launch.rank == args.lag:
                    time.sleep(0.2 * repeat)  # a rank that falls behind within a test's repeats
                seen = node_measurement(launch.node_rank, args.gpus, scale=repeat + 1.0)
                combined = exchange.combine(f"test_suite.py::test_{index}", seen)
                stream.write(json.dumps({
                    "test": index, "repeat": repeat, "rank": launch.rank, "node": launch.node,
                    "total_j": combined.total_j, "duration_s": combined.duration_s,
                    "devices": {f"{r.component} {r.device}": r.joules for r in combined.readings},
                    "lower_bound": lower_bound_reasons(combined), "notes": list(combined.notes),
                }) + "\n")
                stream.flush()


if __name__ == "__main__":
    main()
