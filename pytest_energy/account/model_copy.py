"""Where a model's complexity is counted, and the copy it is counted on.

The copy is made on the model's own device (``counting_place``) when it is on one device, that
device has the free memory for it, and no kernel there hides its work from the counter (cuDNN's
RNN operator has no FLOP formula, so a recurrent model on CUDA would count 0); otherwise it is
a float32 CPU copy, and a note says why. The copy is in eval mode and has none of the user's
hooks. Example inputs, nested in lists, tuples and dicts, and tensors or devices a module keeps
as plain attributes go where the copy is. torch comes in as an argument, imported by the caller.
"""

from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import torch

COPY_MEMORY_MARGIN = 1.5  # a copy on the model's device needs its tensors' bytes times this, free


def _counting_dtype(torch: Any, tensor: torch.Tensor) -> Optional[torch.dtype]:
    """float32 for floating tensors (counts do not depend on it; half kernels may be missing on CPU)."""
    return torch.float32 if tensor.is_floating_point() else None


def counting_place(devices: Sequence[str], has_rnn: bool, needed_bytes: int, free_bytes: Optional[int]) -> Tuple[str, str]:
    """Where to count a model whose tensors are on ``devices``: its own device, or ``"cpu"``; and the note why not.

    ``free_bytes`` is the free memory of that device (None where a copy takes none, as on ``meta``).
    """
    if devices in ([], ["cpu"]):
        return "cpu", ""
    where = ", ".join(devices)
    if len(devices) > 1:
        return "cpu", f"counted on a float32 CPU copy of a model spread over {where}"
    if has_rnn and devices[0].startswith("cuda"):
        return "cpu", (f"counted on a float32 CPU copy of a model on {where}: cuDNN's RNN operator has no FLOP "
                       "formula, so its recurrent layers would count 0 there")
    if free_bytes is not None and needed_bytes * COPY_MEMORY_MARGIN > free_bytes:
        return "cpu", (f"counted on a float32 CPU copy of a model on {where}: a copy there needs about "
                       f"{needed_bytes * COPY_MEMORY_MARGIN / 2**30:.2f} GiB and {free_bytes / 2**30:.2f} GiB is free")
    return devices[0], ""


def unwrapped(torch: Any, model: torch.nn.Module) -> torch.nn.Module:
    """The module ``DataParallel`` or ``DistributedDataParallel`` wraps (they run it on several devices)."""
    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def holds_rnn(torch: Any, model: torch.nn.Module) -> bool:
    return any(isinstance(module, torch.nn.RNNBase) for module in model.modules())


def device_free_bytes(torch: Any, devices: Sequence[str]) -> Optional[int]:
    """Free memory of the one CUDA device the model is on; None where a copy needs none or it cannot be told."""
    if len(devices) != 1 or not devices[0].startswith("cuda"):
        return None
    try:
        return int(torch.cuda.mem_get_info(torch.device(devices[0]))[0])
    except Exception:  # cannot be told: do not copy on the device blind
        return 0


def moved(torch: Any, value: Any, place: str) -> Any:
    """An example input on the counting device, tensors nested in lists, tuples and dicts included."""
    if isinstance(value, torch.Tensor):
        return _to_cpu(torch, value) if place == "cpu" else value.detach().to(place)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(moved(torch, item, place) for item in value)
    if isinstance(value, dict):
        return {key: moved(torch, item, place) for key, item in value.items()}
    return value


def _to_cpu(torch: Any, value: torch.Tensor) -> torch.Tensor:
    """A float32 (floating) CPU copy; a ``meta`` tensor, which has no values, becomes zeros of its shape."""
    dtype = _counting_dtype(torch, value)
    if value.is_meta:
        return torch.zeros(value.shape, dtype=dtype or value.dtype)
    return value.detach().to("cpu", dtype=dtype, copy=True)


def cpu_copy(torch: Any, model: torch.nn.Module) -> torch.nn.Module:
    """Deep-copy ``model`` with its tensors copied straight to float32 CPU tensors, and no hooks.

    The tensors are put in the deep-copy memo first, so a model on a GPU is never duplicated there,
    tied weights stay tied and no gradient is copied. Parameters, buffers and the tensors and
    ``torch.device`` values a module keeps as plain attributes all go to the CPU.
    """
    memo: Dict[int, Any] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        copied = _to_cpu(torch, tensor)
        if isinstance(tensor, torch.nn.Parameter):
            copied = torch.nn.Parameter(copied, requires_grad=False)
        memo[id(tensor)] = copied
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and id(value) not in memo:
                memo[id(value)] = _to_cpu(torch, value)
            elif isinstance(value, torch.device):
                memo[id(value)] = torch.device("cpu")
    return hookless_copy(model, memo)


def hookless_copy(model: torch.nn.Module, memo: Dict[int, Any]) -> torch.nn.Module:
    """Deep-copy ``model`` (with ``memo``) in eval mode, each module's hook tables replaced by empty ones:
    the user's hooks never run on the copy (a hook storing activations keeps its value) and are not
    copied (a hook's object may not be copyable)."""
    for module in model.modules():
        for name, hooks in vars(module).items():
            if "hooks" in name and isinstance(hooks, dict):
                memo[id(hooks)] = type(hooks)()
    counted = copy.deepcopy(model, memo)
    counted.eval()
    return counted
