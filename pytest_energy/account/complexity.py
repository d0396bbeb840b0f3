"""Count a torch model's complexity: MACs for one forward pass and its parameters.

``count_complexity`` runs two counters (``mac_counters.py``) on a copy of the model
(``model_copy.py``: on the model's own device, or a float32 CPU copy and a note why), in eval
mode, under ``torch.no_grad``; the model itself is never run, moved or hooked, and the user's
hooks never run. ``DataParallel`` and ``DistributedDataParallel`` are counted through the
module they wrap. The operator count is the primary figure; when THOP's differs from it by
more than 2 %, the module types whose own work THOP did not see are listed in
``thop_skipped``. torch and thop are imported only when counting is asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterator, Sequence, Tuple

from .mac_counters import countable_kernels, operator_macs, thop_macs, thop_skipped, without_global_hooks
from .model_copy import counting_place, cpu_copy, device_free_bytes, hookless_copy, holds_rnn, moved, unwrapped

if TYPE_CHECKING:
    import torch

MACS_TOOL = "torch.utils.flop_counter (FLOPs/2)"
MACS_EXTRA = 'pip install "pytest-energy[macs]"'
THOP_GAP = 0.02  # relative difference between the two figures above which THOP's gaps are listed

Shape = Tuple[int, ...]


class MissingExtraError(ImportError):
    """Counting MACs was asked for, but torch or thop is not installed."""


@dataclass(frozen=True)
class Complexity:
    """MACs of one forward pass on the example inputs, and the model's parameter counts."""

    macs: int
    macs_thop: int
    params: int
    params_trainable: int
    macs_tool: str
    input_shapes: Tuple[Shape, ...]
    thop_skipped: Tuple[str, ...] = ()
    notes: Tuple[str, ...] = ()

    def to_json(self) -> Dict[str, Any]:
        """The report fields; shapes as lists."""
        return {
            "macs": self.macs,
            "macs_thop": self.macs_thop,
            "params": self.params,
            "params_trainable": self.params_trainable,
            "macs_tool": self.macs_tool,
            "macs_input_shapes": [list(shape) for shape in self.input_shapes],
            "thop_skipped": list(self.thop_skipped),
        }


def count_complexity(model: Any, example_inputs: Any) -> Complexity:
    """Count the MACs of ``model`` on ``example_inputs`` and its parameters, leaving ``model`` as it was.

    ``example_inputs`` is a tensor, a tuple or list of positional arguments, or a dict of keyword
    arguments; tensors may live on any device.
    """
    torch = _require("torch")
    thop = _require("thop")
    thop_profile = importlib.import_module("thop.profile")  # holds THOP's rules; thop.profile is the function
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"count_complexity needs a torch.nn.Module, got {type(model).__name__}")
    model = unwrapped(torch, model)
    args, kwargs = _split_inputs(example_inputs)
    parameters = list(model.parameters())
    tensors = list(itertools.chain(parameters, model.buffers()))
    devices = sorted({str(tensor.device) for tensor in tensors})
    needed = sum(tensor.numel() * tensor.element_size() for tensor in tensors)
    place, why = counting_place(devices, holds_rnn(torch, model), needed, device_free_bytes(torch, devices))
    if place == "cpu":
        counted = cpu_copy(torch, model)
    else:
        counted = hookless_copy(model, {})
    args = tuple(moved(torch, value, place) for value in args)
    kwargs = {name: moved(torch, value, place) for name, value in kwargs.items()}
    with _quiet(), torch.no_grad(), countable_kernels(torch), without_global_hooks(torch):
        macs, unseen_by_module = operator_macs(torch, thop_profile, counted, args, kwargs)
        macs_thop = thop_macs(torch, thop, counted, args, kwargs)

    skipped: Tuple[str, ...] = ()
    notes = [why] if why else []
    if abs(macs - macs_thop) > THOP_GAP * max(macs, 1):
        skipped = thop_skipped(thop_profile, unseen_by_module)
        notes.append(
            f"THOP's figure is {100 * (macs_thop - macs) / max(macs, 1):+.1f} % off the operator count; "
            f"module types whose own multiply-accumulates THOP counted as 0: {', '.join(skipped) or 'none'}"
        )
    return Complexity(
        macs=macs,
        macs_thop=macs_thop,
        params=sum(parameter.numel() for parameter in parameters),
        params_trainable=sum(parameter.numel() for parameter in parameters if parameter.requires_grad),
        macs_tool=MACS_TOOL,
        input_shapes=tuple(tuple(value.shape) for value in _flat_tensors(torch, (args, kwargs))),
        thop_skipped=skipped,
        notes=tuple(notes),
    )


def example_from_shape(shape: Sequence[int], dtype: str = "float32") -> torch.Tensor:
    """A zero tensor of ``shape``: the example input for a marker such as ``macs_input=(1, 128, 626)``."""
    torch = _require("torch")
    checked = input_shape(shape)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"invalid dtype {dtype!r}: write a torch dtype name such as 'float32'")
    return torch.zeros(checked, dtype=torch_dtype)


def input_shape(shape: Any) -> Shape:
    """``shape`` as a tuple of positive integers, or a ValueError saying how to write it (no torch needed)."""
    if not isinstance(shape, (tuple, list)) or not shape or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape
    ):
        raise ValueError(f"invalid input shape {shape!r}: write a tuple of positive integers, e.g. (1, 128, 626)")
    return tuple(shape)


def _require(name: str) -> Any:
    """Import torch or thop, or say which extra to install."""
    try:
        with _quiet():
            return importlib.import_module(name)
    except ImportError as error:
        raise MissingExtraError(
            f"counting MACs needs torch and ultralytics-thop, and {name!r} cannot be imported ({error}); "
            f"install them with: {MACS_EXTRA}"
        ) from error


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence THOP's prints and the warnings of imports and of the counting passes."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _split_inputs(example_inputs: Any) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


def _flat_tensors(torch: Any, value: Any) -> Iterator[Any]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _flat_tensors(torch, item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flat_tensors(torch, item)
