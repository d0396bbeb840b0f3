"""Which NVIDIA devices this process's CUDA uses, named by UUID so NVML can find them.

NVML numbers GPUs in PCI bus order; CUDA numbers them fastest first unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``, and only after ``CUDA_VISIBLE_DEVICES`` chose them.
When torch is imported and CUDA initialised, CUDA itself says which UUIDs it uses
(``torch_uuids``). Otherwise ``cuda_visible`` follows CUDA's own reading of
``CUDA_VISIBLE_DEVICES``: entries are ordinals, or (prefixes of) ``GPU-``/``MIG-``
UUIDs; the first entry that names no single device, or is of another kind than the
first entry, ends the list; a device named twice leaves CUDA with no device at all.
Where the answer depends on an order only CUDA knows (ordinals under FASTEST_FIRST on
GPUs of different models) it is not guessed: ``Visible.unresolved`` says why.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any, List, Mapping, Optional, Sequence, Tuple

_ORDINAL = re.compile(r"^\d+$")


@dataclasses.dataclass(frozen=True)
class Board:
    """One GPU NVML can open: its NVML index, UUID, model, and its MIG slices' UUIDs."""

    index: int
    uuid: str
    name: str
    mig_uuids: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Visible:
    """The devices CUDA uses, in CUDA order: ``(board index, MIG UUID or "")`` each."""

    devices: Tuple[Tuple[int, str], ...] = ()
    unresolved: str = ""  # non-empty: which devices CUDA uses cannot be told without CUDA, and why
    ordered: bool = True  # False: the set is known but not its CUDA order (all GPUs, fastest first, mixed models)


@dataclasses.dataclass(frozen=True)
class CudaGpus:
    """The GPUs this process's CUDA uses, as a GPU source measures them.

    ``order``: their UUIDs in CUDA order (empty where only CUDA could tell the order);
    ``devices``: UUID -> the device name of the reading that measures it (NVML's ``gpu3`` for
    board 3, a MIG slice's UUID for the slice).
    """

    order: Tuple[str, ...] = ()
    devices: Mapping[str, str] = dataclasses.field(default_factory=dict)


def bare_uuid(uuid: str) -> str:
    """A UUID without NVML's ``GPU-``/``MIG-`` prefix, as torch gives it."""
    return uuid[4:] if uuid[:4] in ("GPU-", "MIG-") else uuid


def _initialised_cuda() -> Any:
    """``torch.cuda`` when torch is already imported and CUDA initialised; else None (nothing is imported)."""
    torch = sys.modules.get("torch")
    try:
        return torch.cuda if torch is not None and torch.cuda.is_initialized() else None
    except Exception:  # a torch without CUDA, or a broken context
        return None


def torch_current_uuid() -> Optional[str]:
    """The UUID of ``torch.cuda.current_device()``, when torch is already imported and CUDA initialised."""
    cuda = _initialised_cuda()
    try:
        return None if cuda is None else str(cuda.get_device_properties(cuda.current_device()).uuid)
    except Exception:  # a broken context: the CUDA order alone decides
        return None


def torch_uuids() -> Optional[List[str]]:
    """The UUIDs of the devices CUDA uses, when torch is already imported and CUDA initialised."""
    cuda = _initialised_cuda()
    try:
        return None if cuda is None else [str(cuda.get_device_properties(i).uuid) for i in range(cuda.device_count())]
    except Exception:  # a broken context: read the environment instead
        return None


def _entire(board: Board) -> List[Tuple[int, str]]:
    """What CUDA sees of a board: its MIG slices when MIG is on, else the whole GPU."""
    return [(board.index, mig) for mig in board.mig_uuids] if board.mig_uuids else [(board.index, "")]


def cuda_visible(spec: Optional[str], boards: Sequence[Board], order: Optional[str] = None) -> Visible:
    """The devices CUDA uses under ``CUDA_VISIBLE_DEVICES=spec`` and ``CUDA_DEVICE_ORDER=order``.

    ``boards`` are the GPUs NVML can open, in NVML (PCI) order; one this process cannot
    open is not enumerated by CUDA either.
    """
    if spec is None:
        ordered = (order or "").strip() == "PCI_BUS_ID" or len({board.name for board in boards}) <= 1
        return Visible(tuple(device for board in boards for device in _entire(board)), ordered=ordered)
    entries = [part.strip() for part in spec.split(",")]
    kind = "ordinal" if entries and _ORDINAL.match(entries[0]) else "uuid"
    chosen: List[Tuple[int, str]] = []
    for entry in entries:
        device = _ordinal(entry, boards, order) if kind == "ordinal" else _by_uuid(entry, boards)
        if isinstance(device, str):  # an order that cannot be told
            return Visible(unresolved=device)
        if device is None:
            break
        if device in chosen:
            return Visible()  # CUDA: a device listed twice makes no device visible
        chosen.append(device)
    return Visible(tuple(chosen))


def _ordinal(entry: str, boards: Sequence[Board], order: Optional[str]) -> "Optional[Tuple[int, str] | str]":
    if not _ORDINAL.match(entry):
        return None  # a ``GPU-`` entry (or anything else) ends a list of ordinals
    devices = [device for board in boards for device in _entire(board)]
    if int(entry) >= len(devices):
        return None
    if (order or "FASTEST_FIRST").strip() != "PCI_BUS_ID" and len({board.name for board in boards}) > 1:
        names = ", ".join(sorted({board.name for board in boards}))
        return (
            f"CUDA_VISIBLE_DEVICES={entry!r} counts GPUs fastest first, an order only CUDA knows on a machine of "
            f"different GPUs ({names}): set CUDA_DEVICE_ORDER=PCI_BUS_ID or name GPUs by UUID"
        )
    return devices[int(entry)]  # GPUs of one model (or PCI_BUS_ID): CUDA's order is the PCI order


def _by_uuid(entry: str, boards: Sequence[Board]) -> Optional[Tuple[int, str]]:
    """The one device whose UUID starts with ``entry``; a board in MIG mode stands for its first slice."""
    if entry.startswith("MIG-"):
        matches = [(board.index, mig) for board in boards for mig in board.mig_uuids if mig.startswith(entry)]
    elif entry.startswith("GPU-"):
        matches = [_entire(board)[0] for board in boards if board.uuid.startswith(entry)]
    else:
        return None
    return matches[0] if len(matches) == 1 else None
