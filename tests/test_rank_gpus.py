"""Which GPU a rank of a launch counts: the one CUDA gives it, found by UUID, not by its reading's position.

The NVML source runs on the fake ``pynvml`` (four boards of distinct power); a rank's share is
``own_readings`` of a real window with the meter's ``cuda_gpus()``. ``CUDA_VISIBLE_DEVICES`` is
permuted by UUID and by ordinal (under ``PCI_BUS_ID``); torch's view is a stand-in module with
CUDA "initialised", as ``cuda_devices.torch_uuids`` reads it.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Dict, List, Optional, Sequence

import pytest
from hypothesis import given, strategies as st

from fakes import fake_pynvml
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.measure.cuda_devices import CudaGpus, torch_current_uuid, torch_uuids
from pytest_energy.measure.meter import Meter, open_meter
from pytest_energy.measure.rank_exchange import RankExchange
from pytest_energy.measure.ranks import Launch, RankFigure, combine, own_readings
from test_ranks import free_port_pair

UUIDS = [f"GPU-{i}1111111-2222-3333-4444-555555555555" for i in range(4)]


def launch_of(local_rank: int, local_world_size: int) -> Launch:
    return Launch(local_rank, local_rank, local_world_size, local_world_size, 0, None, 1, "torchrun")


def shares(meter: Meter, local_world_size: int) -> List[List[str]]:
    """Each local rank's GPU devices, from one window on ``meter``."""
    measurement = meter.window().stop()
    gpus = meter.cuda_gpus()
    return [[r.device for r in own_readings(measurement, launch_of(local, local_world_size), gpus,
                                            torch_uuids(), torch_current_uuid()).readings if r.component == "gpu"]
            for local in range(local_world_size)]


@pytest.fixture
def nvml_meter(monkeypatch: pytest.MonkeyPatch):
    opened: List[Meter] = []

    def open_on(devices: Sequence[fake_pynvml.FakeGpu], **environ: str) -> Meter:
        fake_pynvml.install(monkeypatch, devices)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        opened.append(open_meter("nvml"))
        return opened[-1]

    yield open_on
    for meter in opened:
        meter.close()


@pytest.mark.parametrize("environ", [
    {"CUDA_VISIBLE_DEVICES": "GPU-2,GPU-0,GPU-3,GPU-1"},
    {"CUDA_VISIBLE_DEVICES": "2,0,3,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
], ids=["by-uuid", "by-ordinal"])
def test_each_rank_counts_the_gpu_cuda_gives_it_under_a_permuted_cuda_visible_devices(
        nvml_meter, environ: Dict[str, str]) -> None:
    meter = nvml_meter(fake_pynvml.gpus(100.0, 200.0, 300.0, 400.0), **environ)
    assert shares(meter, 4) == [["gpu2"], ["gpu0"], ["gpu3"], ["gpu1"]]  # cuda:LOCAL_RANK is NVML board perm[rank]
    assert shares(meter, 2) == [["gpu2", "gpu3"], ["gpu0", "gpu1"]]  # more GPUs than ranks: ordinal i is i % 2's


def test_a_source_listing_by_nvml_index_still_gives_each_rank_its_cuda_gpu() -> None:
    """Readings in NVML order (as a per-GPU source that ignores CUDA's order lists them) while CUDA's is permuted:
    the old rule (the rank's position among the GPU readings) gave local rank 0 NVML board 0, not its cuda:0."""
    measurement = Measurement(1.0, tuple(Reading("gpu", f"gpu{i}", 10.0 * (i + 1), "nvml-counter") for i in range(4)))
    gpus = CudaGpus((UUIDS[2], UUIDS[0], UUIDS[3], UUIDS[1]), {uuid: f"gpu{i}" for i, uuid in enumerate(UUIDS)})
    mine = [[r.device for r in own_readings(measurement, launch_of(local, 4), gpus).readings] for local in range(4)]
    assert mine == [["gpu2"], ["gpu0"], ["gpu3"], ["gpu1"]]


def test_a_mig_slice_is_the_cuda_device_of_its_rank_and_shifts_no_other_rank(nvml_meter) -> None:
    """Board 1 in MIG mode is CUDA's device 1 (a slice, unmeasured): rank 2 runs on board 2 and counts it.
    By position among the measured GPUs (gpu0, gpu2) rank 2 counted board 0 and no rank counted board 2 as its own."""
    boards = fake_pynvml.gpus(100.0, 200.0, 300.0)
    boards[1].mig_uuids = ("MIG-b1111111-2222-3333-4444-555555555555",)
    meter = nvml_meter(boards, CUDA_DEVICE_ORDER="PCI_BUS_ID")  # (the fake's boards are of different models)
    measurement = meter.window().stop()
    mine = [[(r.device, r.method) for r in own_readings(measurement, launch_of(local, 3), meter.cuda_gpus()).readings
             if r.component == "gpu"] for local in range(3)]
    assert mine == [[("gpu0", "nvml-counter")], [(boards[1].mig_uuids[0], "unmeasured")], [("gpu2", "nvml-counter")]]


def fake_torch(monkeypatch: pytest.MonkeyPatch, order: Sequence[str], current: int) -> None:
    """torch with CUDA initialised, seeing ``order`` (bare UUIDs, as torch gives them) and running on ``current``."""
    cuda = types.SimpleNamespace(is_initialized=lambda: True, device_count=lambda: len(order),
                                 current_device=lambda: current, synchronize=lambda ordinal: None,
                                 get_device_properties=lambda i: types.SimpleNamespace(uuid=order[i][4:]))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))


def test_on_gpus_of_different_models_fastest_first_torchs_order_decides_and_without_it_local_rank_0_counts_all(
        nvml_meter, monkeypatch: pytest.MonkeyPatch) -> None:
    boards = fake_pynvml.gpus(100.0, 200.0)
    boards[1].name = "NVIDIA T4"  # two models, no CUDA_DEVICE_ORDER: CUDA numbers them fastest first
    meter = nvml_meter(boards)
    assert meter.cuda_gpus().order == ()  # the set is known, its CUDA order is not: no rank is guessed a GPU
    assert shares(meter, 2) == [["gpu0", "gpu1"], []]  # each counted once, by local rank 0
    fake_torch(monkeypatch, [UUIDS[1], UUIDS[0]], current=0)  # CUDA made the T4 its device 0
    assert shares(meter, 2) == [["gpu1"], ["gpu0", "gpu1"]]  # rank 1 never set its device: it runs on cuda:0 too


def test_the_device_torch_runs_on_is_counted_as_well_as_the_ranks_ordinal(nvml_meter,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    meter = nvml_meter(fake_pynvml.gpus(100.0, 200.0, 300.0, 400.0))
    fake_torch(monkeypatch, UUIDS, current=3)  # every rank called torch.cuda.set_device(3)
    per_rank = shares(meter, 4)
    assert per_rank == [["gpu0", "gpu3"], ["gpu1", "gpu3"], ["gpu2", "gpu3"], ["gpu3"]]
    measurement = meter.window().stop()
    figures = [RankFigure(local, "node0", own_readings(measurement, launch_of(local, 4), meter.cuda_gpus(),
                                                       torch_uuids(), torch_current_uuid())) for local in range(4)]
    combined = combine(figures, {}, launch_of(0, 4))
    assert sorted(r.device for r in combined.readings if r.component == "gpu") == [f"node0:gpu{i}" for i in range(4)]


def test_a_gpu_figure_no_rank_can_be_given_counts_once_on_local_rank_0() -> None:
    """A source's sum over the node's GPUs (CodeCarbon's ``gpu``) names no CUDA device: it is node-wide."""
    summed = Measurement(1.0, (Reading("gpu", "gpu", 40.0, "codecarbon-nvml-counter"),
                               Reading("cpu", "cpu", 5.0, "codecarbon-tdp")))
    kept: List[Optional[float]] = [own_readings(summed, launch_of(local, 4), CudaGpus()).total_j for local in range(4)]
    assert kept == [45.0, None, None, None]


def test_ranks_each_shown_only_their_own_gpu_as_gpu0_count_every_gpu() -> None:
    """Under srun with cgroups, each rank's NVML sees one board, its own, as ``gpu0``: matched by name alone,
    the node's two GPUs were counted as one (the larger). By UUID they are two; a GPU two ranks share, once."""
    port = free_port_pair()
    own_gpu = [CudaGpus((uuid,), {uuid: "gpu0"}) for uuid in (UUIDS[0], UUIDS[1], UUIDS[1])]  # ranks 1, 2 share one
    exchanges = [RankExchange(Launch(rank, rank, 3, 3, 0, "127.0.0.1", port, "torchrun"), timeout_s=10.0,
                              gpus=own_gpu[rank]) for rank in range(3)]
    seen = [Measurement(1.0, (Reading("gpu", "gpu0", joules, "nvml-counter"),)) for joules in (100.0, 30.0, 31.0)]
    figures: Dict[int, Measurement] = {}
    threads = [threading.Thread(target=lambda rank=rank: figures.__setitem__(rank, exchanges[rank].combine(
        "t::test", seen[rank]))) for rank in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for exchange in exchanges:
        exchange.close()
    assert {r.device: r.joules for r in figures[0].readings} == {"node0:gpu0": 100.0, "node0:gpu0@rank1": 31.0}
    assert figures[1] == figures[2] == figures[0]


@given(order=st.permutations(range(6)).flatmap(lambda p: st.integers(0, 6).map(lambda n: p[:n])),
       local_world_size=st.integers(1, 8), summed=st.booleans())
def test_every_gpu_cuda_uses_is_counted_by_one_rank_whatever_the_order(order: Sequence[int], local_world_size: int,
                                                                       summed: bool) -> None:
    """Any CUDA order of any subset of six boards (readings in NVML order), any number of ranks: each measured
    GPU is some rank's, exactly one's when there are at least as many GPUs as ranks; no order known (``summed``
    stands for a source that cannot tell the GPUs apart): local rank 0 counts them all."""
    uuids = [f"GPU-{i}aaaaaaa" for i in range(6)]
    gpus = CudaGpus(() if summed else tuple(uuids[i] for i in order), {uuids[i]: f"gpu{i}" for i in sorted(order)})
    seen = Measurement(1.0, tuple(Reading("gpu", f"gpu{i}", 1.0, "nvml-counter") for i in sorted(order)))
    counted = [[r.device for r in own_readings(seen, launch_of(local, local_world_size), gpus).readings]
               for local in range(local_world_size)]
    every = sorted(device for share in counted for device in share)
    assert set(every) == {f"gpu{i}" for i in order}
    if summed or len(order) >= local_world_size:
        assert len(every) == len(order)  # each exactly once
    if summed:
        assert len(counted[0]) == len(order)
    elif len(order) >= local_world_size:
        assert all(f"gpu{order[local]}" in counted[local] for local in range(local_world_size))  # cuda:LOCAL_RANK
