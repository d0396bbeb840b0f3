"""Ranks of a distributed launch: which devices each rank counts, and how their figures combine.

``detect`` reads the launch from the environment that ``torchrun`` (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or
``srun`` (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``, ``SLURM_NODEID``) sets. Each
rank counts only its share of what it sees (``own_readings``): the GPU(s) CUDA gives its
``LOCAL_RANK``, by UUID (``CudaGpus``), and the node-wide CPU and RAM on local rank 0 only.
``combine`` makes one test's figure from the ranks' (``RankFigure``): energy summed per device
(named with its node; a device two ranks counted, by name or UUID, is counted once), time the
longest window, partial flags kept; a rank that gave
no figure is named as a lost device, so the figure is a lower bound. The ranks exchange their
figures in ``rank_exchange.py``. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import RANK_PORT_ENV
from .base import COMPONENTS, Measurement, Reading
from .cuda_devices import CudaGpus, bare_uuid

PORT_ENV = RANK_PORT_ENV  # the exchange's port, where the one next to MASTER_PORT is taken
NODE_WIDE = ("cpu", "ram")  # counted once per node, by its local rank 0
MISSING_METHOD = "rank-missing"


class LaunchError(ValueError):
    """A distributed launch whose environment is inconsistent; the message says which variable."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """This process's place in a distributed launch (ranks are numbered node by node, as torchrun does)."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int
    master_addr: Optional[str]
    master_port: Optional[int]
    launcher: str  # "torchrun" or "slurm"

    @property
    def node(self) -> str:
        return node_name(self.node_rank)

    @property
    def nodes(self) -> int:
        return -(-self.world_size // self.local_world_size)

    def node_of(self, rank: int) -> int:
        return rank // self.local_world_size

    def counts_node_wide(self, rank: Optional[int] = None) -> bool:
        """Whether ``rank`` (this one by default) counts the node's CPU and RAM: its local rank 0 does."""
        return (self.local_rank if rank is None else rank % self.local_world_size) == 0

    def exchange_port(self, port: Optional[int] = None) -> int:
        """The exchange's port: ``port`` (``--energy-rank-port``), else ``$PYTEST_ENERGY_RANK_PORT``, else the one
        after ``MASTER_PORT``."""
        if port is not None:
            return port
        if os.environ.get(PORT_ENV):
            chosen = _integer(os.environ, PORT_ENV)
            if not 1 <= chosen <= 65535:
                raise LaunchError(f"{PORT_ENV}={chosen} is out of range: allowed 1 to 65535")
            return chosen
        if self.master_port is None:
            raise LaunchError("MASTER_PORT is not set: set it, or --energy-rank-port, to combine the ranks' energy")
        return self.master_port + 1 if self.master_port < 65535 else self.master_port - 1


def node_name(node_rank: int) -> str:
    return f"node{node_rank}"


def _integer(environ: Mapping[str, str], name: str) -> int:
    try:
        value = int(environ[name])
    except ValueError:
        raise LaunchError(f"{name}={environ[name]!r} is not a whole number") from None
    if value < 0:
        raise LaunchError(f"{name}={value} is negative")
    return value


def _slurm_local_world_size(environ: Mapping[str, str], world_size: int) -> int:
    """Tasks per node from ``SLURM_NTASKS_PER_NODE`` or ``SLURM_TASKS_PER_NODE`` (``4`` or ``4(x2)``)."""
    text = environ.get("SLURM_NTASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE", "")
    first = text.split(",")[0].split("(")[0]
    return int(first) if first.isdigit() and int(first) > 0 else world_size


def detect(environ: Optional[Mapping[str, str]] = None) -> Optional[Launch]:
    """The launch this process is part of, or None outside a launch of more than one process.

    torchrun's variables win over SLURM's (torchrun inside an allocation). SLURM's count only
    inside a job step (``srun``), where each task is a rank; a batch script that runs pytest
    once is no launch.
    """
    env = os.environ if environ is None else environ
    master_port = _integer(env, "MASTER_PORT") if env.get("MASTER_PORT") else None
    if env.get("WORLD_SIZE") and env.get("RANK"):
        world_size, rank = _integer(env, "WORLD_SIZE"), _integer(env, "RANK")
        local_world_size = _integer(env, "LOCAL_WORLD_SIZE") if env.get("LOCAL_WORLD_SIZE") else world_size
        local_rank = _integer(env, "LOCAL_RANK") if env.get("LOCAL_RANK") else rank % max(local_world_size, 1)
        node_rank = _integer(env, "GROUP_RANK") if env.get("GROUP_RANK") else rank // max(local_world_size, 1)
        launcher = "torchrun"
    elif env.get("SLURM_NTASKS") and env.get("SLURM_PROCID") and (env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID")):
        world_size, rank = _integer(env, "SLURM_NTASKS"), _integer(env, "SLURM_PROCID")
        local_world_size = _slurm_local_world_size(env, world_size)
        local_rank = _integer(env, "SLURM_LOCALID") if env.get("SLURM_LOCALID") else rank % local_world_size
        node_rank = _integer(env, "SLURM_NODEID") if env.get("SLURM_NODEID") else rank // local_world_size
        launcher = "slurm"
    else:
        return None
    if world_size <= 1:
        return None
    if not 0 < local_world_size <= world_size or rank >= world_size or local_rank >= local_world_size:
        raise LaunchError(f"inconsistent {launcher} launch: rank {rank}, local rank {local_rank}, "
                          f"world size {world_size}, local world size {local_world_size}")
    return Launch(rank, local_rank, world_size, local_world_size, node_rank, env.get("MASTER_ADDR"), master_port,
                  launcher)


def own_cuda_ordinals(visible: int, local_rank: int, local_world_size: int) -> Tuple[int, ...]:
    """Which of the ``visible`` CUDA devices (by CUDA ordinal) a local rank counts.

    With at least one GPU per rank, ordinal ``i`` is local rank ``i % local_world_size``'s (one
    each under ``cuda:LOCAL_RANK``, and no GPU left uncounted when there are more). With
    fewer GPUs than ranks, a rank counts the one it would use (``LOCAL_RANK % visible``): a
    rank that sees only its own GPU (``CUDA_VISIBLE_DEVICES`` set per rank) counts it, and a
    GPU shared by ranks is counted once when the figures are combined.
    """
    if visible == 0:
        return ()
    if visible >= local_world_size:
        return tuple(i for i in range(visible) if i % local_world_size == local_rank)
    return (local_rank % visible,)


def own_gpu_devices(gpus: CudaGpus, launch: Launch, cuda_order: Optional[Sequence[str]] = None,
                    current: Optional[str] = None) -> Tuple[str, ...]:
    """The device names of the GPUs ``launch``'s rank counts: those of its CUDA ordinals
    (``own_cuda_ordinals``) in ``cuda_order`` (torch's, when CUDA is initialised; else
    ``gpus.order``), and the ``current`` device torch runs on."""
    order = [bare_uuid(uuid) for uuid in (cuda_order or gpus.order)]
    mine = {order[i] for i in own_cuda_ordinals(len(order), launch.local_rank, launch.local_world_size)}
    mine |= {bare_uuid(current)} if current else set()
    return tuple(device for uuid, device in gpus.devices.items() if bare_uuid(uuid) in mine)


def placed_gpu_devices(gpus: CudaGpus, cuda_order: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
    """The device names some rank counts as its own: the GPUs in the CUDA order."""
    order = {bare_uuid(uuid) for uuid in (cuda_order or gpus.order)}
    return tuple(device for uuid, device in gpus.devices.items() if bare_uuid(uuid) in order)


def own_readings(measurement: Measurement, launch: Launch, gpus: CudaGpus = CudaGpus(),
                 cuda_order: Optional[Sequence[str]] = None, current: Optional[str] = None) -> Measurement:
    """The part of ``measurement`` (every device this process sees) that this rank counts.

    A GPU reading is this rank's when its device is one of the GPUs CUDA gives this rank, by
    UUID (``own_gpu_devices``). A GPU reading no rank can be given (a source's sum over the
    node's GPUs, as CodeCarbon's; a GPU outside the CUDA order, or no order known) is node-wide:
    counted, as the CPU and RAM are, by local rank 0.
    """
    mine = set(own_gpu_devices(gpus, launch, cuda_order, current))
    placed = set(placed_gpu_devices(gpus, cuda_order))
    node_wide = launch.counts_node_wide()
    kept = tuple(reading for reading in measurement.readings
                 if (reading.device in mine if reading.component == "gpu" and reading.device in placed else node_wide))
    return dataclasses.replace(measurement, readings=kept)


@dataclasses.dataclass(frozen=True)
class RankFigure:
    """What one rank counted in one test's window."""

    rank: int
    node: str
    measurement: Measurement
    uuids: Mapping[str, str] = dataclasses.field(default_factory=dict)  # a GPU reading's device -> the GPU's UUID

    def to_json(self) -> str:
        return json.dumps({"rank": self.rank, "node": self.node, "duration_s": self.measurement.duration_s,
                           "readings": [reading.to_json() for reading in self.measurement.readings],
                           "notes": list(self.measurement.notes), "uuids": dict(self.uuids)})

    @classmethod
    def from_json(cls, text: str) -> "RankFigure":
        data = json.loads(text)
        return cls(data["rank"], data["node"], Measurement(
            data["duration_s"], tuple(Reading(**reading) for reading in data["readings"]), tuple(data["notes"])),
            data.get("uuids", {}))


def measured_components(measurement: Measurement) -> FrozenSet[str]:
    """The components a window measured: what a rank missing from it would have counted of them."""
    return frozenset(r.component for r in measurement.readings if r.method != "unmeasured" and r.joules is not None)


def uncombined(own: RankFigure, launch: Launch, why: str) -> Measurement:
    """``own`` alone, where the ranks cannot combine their figures: every other rank named missing, ``why``."""
    missing = {rank: why for rank in range(launch.world_size) if rank != own.rank}
    return combine([own], missing, launch, measured_components(own.measurement))


def combine(figures: Sequence[RankFigure], missing: Mapping[int, str], launch: Launch,
            measured: Iterable[str] = ()) -> Measurement:
    """One test's figure from every rank's: devices named with their node, each counted once.

    ``missing``: rank -> why it gave no figure. Each component that rank would have counted
    (of those measured here or by the others: its GPU, and its node's CPU and RAM if it is the
    node's local rank 0) becomes an unmeasured device, so the figure is a lower bound naming the rank.

    A device is matched across a node's ranks by its name, or by its UUID where the ranks gave it:
    two GPUs of one name but different UUIDs (ranks each shown only their own GPU, as NVML's
    ``gpu0``, by cgroups under srun) are two devices, the later named with its rank (``gpu0@rank1``).
    """
    devices: Dict[Tuple[str, str], Reading] = {}
    named_as: Dict[Tuple[str, str, str], str] = {}  # (component, node, UUID) -> the GPU's name in the figure
    uuid_of: Dict[Tuple[str, str], str] = {}  # (component, name) -> the UUID of the GPU so named
    for figure in sorted(figures, key=lambda figure: figure.rank):
        for reading in figure.measurement.readings:
            name = f"{figure.node}:{reading.device}"
            uuid = figure.uuids.get(reading.device, "")
            if uuid:
                name = named_as.get((reading.component, figure.node, uuid)) or (
                    name if uuid_of.get((reading.component, name), uuid) == uuid else f"{name}@rank{figure.rank}")
                named_as[(reading.component, figure.node, uuid)] = name
                uuid_of[(reading.component, name)] = uuid
            named = dataclasses.replace(reading, device=name, partial=reading.partial.replace(reading.device, name, 1))
            kept = devices.get((reading.component, name))
            if kept is not None:  # one device two ranks counted: once, its larger figure, lost if either lost it
                larger = named if (named.joules or 0.0) > (kept.joules or 0.0) else kept
                named = dataclasses.replace(larger, partial=kept.partial or named.partial)
            devices[(reading.component, name)] = named
    counted = set(measured) | {reading.component for reading in devices.values() if reading.method != "unmeasured"}
    notes: List[str] = []
    for rank, why in sorted(missing.items()):
        node = node_name(launch.node_of(rank))
        expected = [c for c in COMPONENTS if c in counted and (c == "gpu" or launch.counts_node_wide(rank))]
        note = f"{node}:rank{rank} {why}"
        notes.append(f"{note}: its energy is missing, so this figure is a lower bound" if expected else note)
        for component in expected:
            devices[(component, f"{node}:rank{rank}")] = Reading(component, f"{node}:rank{rank}", None, MISSING_METHOD,
                                                                 note=note)
    durations = [figure.measurement.duration_s for figure in figures]
    own_notes = [note for figure in figures for note in figure.measurement.notes]
    return Measurement(max(durations, default=0.0), tuple(devices.values()), tuple(dict.fromkeys(own_notes + notes)))
