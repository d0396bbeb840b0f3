"""Count a torch model's complexity: MACs for one forward pass and its parameters.

Two counters run on a copy of the model, in eval mode, under ``torch.no_grad``; the model
itself is never run, moved or hooked, and the user's hooks never run. The copy is made on
the model's own device (``counting_place``) when it is on one device, that device has the
free memory for it, and no kernel there hides its work from the counter (cuDNN's RNN
operator has no FLOP formula, so a recurrent model on CUDA would count 0); otherwise it is
a float32 CPU copy, and a note says why. ``DataParallel`` and ``DistributedDataParallel``
are counted through the module they wrap. Example inputs, nested in lists, tuples and
dicts, and tensors or devices a module keeps as plain attributes go where the copy is:

- ``torch.utils.flop_counter.FlopCounterMode`` counts every matmul, convolution and attention
  operator the forward pass dispatches, wherever it is called from (modules, functional calls,
  bare parameters). It counts 2 FLOPs per multiply-accumulate, so ``macs = FLOPs / 2``; bias
  additions and element-wise work are not counted. This is the primary figure.
- THOP (``ultralytics-thop``, import name ``thop``) is the figure the DCASE challenge asks for.
  It adds element-wise work (bias, norms, pooling, gates) where it has a rule for a module
  type, and counts 0 for work it has no rule for. When the two figures differ by more than
  2 %, the module types whose own work THOP did not see are listed in ``thop_skipped``.

On the CPU the oneDNN LSTM kernel and the fused attention fast path are opaque to the counter
too, so they are switched off while counting, and the CPU flash-attention kernel is given the
attention formula, so that recurrent and attention layers decompose into counted matmuls.
torch and thop are imported only when counting is asked for.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import itertools
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import torch

MACS_TOOL = "torch.utils.flop_counter (FLOPs/2)"
MACS_EXTRA = 'pip install "pytest-energy[macs]"'
THOP_GAP = 0.02  # relative difference between the two figures above which THOP's gaps are listed
COPY_MEMORY_MARGIN = 1.5  # a copy on the model's device needs its tensors' bytes times this, free

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
    model = _unwrapped(torch, model)
    args, kwargs = _split_inputs(example_inputs)
    parameters = list(model.parameters())
    tensors = list(itertools.chain(parameters, model.buffers()))
    devices = sorted({str(tensor.device) for tensor in tensors})
    needed = sum(tensor.numel() * tensor.element_size() for tensor in tensors)
    place, why = counting_place(devices, _has_rnn(torch, model), needed, _free_bytes(torch, devices))
    if place == "cpu":
        counted = _cpu_copy(torch, model)
    else:
        counted = _hookless_copy(model, {})
    args = tuple(_moved(torch, value, place) for value in args)
    kwargs = {name: _moved(torch, value, place) for name, value in kwargs.items()}
    with _quiet(), torch.no_grad(), _countable_kernels(torch), _without_global_hooks(torch):
        macs, unseen_by_module = _operator_macs(torch, thop_profile, counted, args, kwargs)
        macs_thop = _thop_macs(torch, thop, counted, args, kwargs)

    skipped: Tuple[str, ...] = ()
    notes = [why] if why else []
    if abs(macs - macs_thop) > THOP_GAP * max(macs, 1):
        skipped = _thop_skipped(thop_profile, unseen_by_module)
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


@contextlib.contextmanager
def _countable_kernels(torch: Any) -> Iterator[None]:
    """Route the forward pass to kernels that decompose into counted operators, on one thread.

    oneDNN runs an LSTM as one ``mkldnn_rnn_layer`` operator and the multi-head-attention fast
    path as one fused operator; FlopCounterMode has a formula for neither. One intra-op thread:
    counting dispatches many small operators through Python, which extra threads only slow down
    when cores are shared (pytest-xdist workers, a busy CI runner).
    """
    fastpath = torch.backends.mha.get_fastpath_enabled()
    threads = torch.get_num_threads()
    torch.backends.mha.set_fastpath_enabled(False)
    torch.set_num_threads(1)
    try:
        with torch.backends.mkldnn.flags(enabled=False):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.mha.set_fastpath_enabled(fastpath)


@contextlib.contextmanager
def _without_global_hooks(torch: Any) -> Iterator[None]:
    """Hold back the hooks registered for every module (``register_module_forward_hook``, ...) while counting.

    FlopCounterMode and THOP register their own while they run; those are left alone.
    """
    module_py = sys.modules[torch.nn.Module.__module__]
    tables = [table for name, table in vars(module_py).items() if name.startswith("_global_") and isinstance(table, dict)]
    held_back = [dict(table) for table in tables]
    for table in tables:
        table.clear()
    try:
        yield
    finally:
        for table, hooks in zip(tables, held_back):
            added = dict(table)
            table.clear()
            table.update(hooks)
            table.update(added)


def _split_inputs(example_inputs: Any) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


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


def _unwrapped(torch: Any, model: torch.nn.Module) -> torch.nn.Module:
    """The module ``DataParallel`` or ``DistributedDataParallel`` wraps (they run it on several devices)."""
    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def _has_rnn(torch: Any, model: torch.nn.Module) -> bool:
    return any(isinstance(module, torch.nn.RNNBase) for module in model.modules())


def _free_bytes(torch: Any, devices: Sequence[str]) -> Optional[int]:
    """Free memory of the one CUDA device the model is on; None where a copy needs none or it cannot be told."""
    if len(devices) != 1 or not devices[0].startswith("cuda"):
        return None
    try:
        return int(torch.cuda.mem_get_info(torch.device(devices[0]))[0])
    except Exception:  # cannot be told: do not copy on the device blind
        return 0


def _moved(torch: Any, value: Any, place: str) -> Any:
    """An example input on the counting device, tensors nested in lists, tuples and dicts included."""
    if isinstance(value, torch.Tensor):
        return _to_cpu(torch, value) if place == "cpu" else value.detach().to(place)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_moved(torch, item, place) for item in value)
    if isinstance(value, dict):
        return {key: _moved(torch, item, place) for key, item in value.items()}
    return value


def _flat_tensors(torch: Any, value: Any) -> Iterator[Any]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _flat_tensors(torch, item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flat_tensors(torch, item)


def _to_cpu(torch: Any, value: torch.Tensor) -> torch.Tensor:
    """A float32 (floating) CPU copy; a ``meta`` tensor, which has no values, becomes zeros of its shape."""
    dtype = _counting_dtype(torch, value)
    if value.is_meta:
        return torch.zeros(value.shape, dtype=dtype or value.dtype)
    return value.detach().to("cpu", dtype=dtype, copy=True)


def _cpu_copy(torch: Any, model: torch.nn.Module) -> torch.nn.Module:
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
    return _hookless_copy(model, memo)


def _hookless_copy(model: torch.nn.Module, memo: Dict[int, Any]) -> torch.nn.Module:
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


def _operator_macs(
    torch: Any, thop_profile: Any, model: torch.nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[int, Dict[Any, int]]:
    """Run FlopCounterMode over one forward pass of ``model`` (a copy: it gets hooks).

    Returns the MACs, and per module the FLOPs of its own operators (not its children's) outside
    the functional calls THOP traces; a module with no THOP rule and some of these is one whose
    work THOP counted as 0.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_extra_formulas(torch))
    traced_by_thop = getattr(thop_profile, "functional_hooks", {})  # absent in older THOP releases
    unseen: Dict[Any, int] = {}
    running = [model]  # innermost module last
    settled = [0]  # FLOPs already attributed

    def settle(attribute: bool = True) -> None:
        total = counter.get_total_flops()
        if attribute:
            unseen[running[-1]] = unseen.get(running[-1], 0) + total - settled[0]
        settled[0] = total

    def enter(module: Any, _inputs: Any) -> None:
        settle()
        running.append(module)

    def leave(module: Any, _inputs: Any, _output: Any) -> None:
        settle()
        running.pop()

    class ThopTracedCalls(torch.overrides.TorchFunctionMode):
        """Leave the FLOPs of calls THOP counts functionally (``@``, ``F.linear``, ...) unattributed."""

        def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func not in traced_by_thop:
                return func(*args, **(kwargs or {}))
            settle()
            result = func(*args, **(kwargs or {}))
            settle(attribute=False)
            return result

    handles = [module.register_forward_pre_hook(enter) for module in model.modules()]
    handles += [module.register_forward_hook(leave) for module in model.modules()]
    try:
        with counter, ThopTracedCalls():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return counter.get_total_flops() // 2, unseen


def _extra_formulas(torch: Any) -> Dict[Any, Callable[..., int]]:
    """FLOP formulas for CPU kernels that FlopCounterMode does not know: CPU flash attention."""
    from torch.utils.flop_counter import sdpa_flop_count

    def attention_flops(query_shape: Shape, key_shape: Shape, value_shape: Shape, *_args: Any, **_kwargs: Any) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    kernel = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {kernel: attention_flops} if kernel is not None else {}


def _thop_macs(
    torch: Any, thop: Any, model: torch.nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> int:
    """THOP's figure for one forward pass; THOP passes positional inputs only, so keywords go through a wrapper."""
    target, inputs = model, args
    if kwargs:

        class KeywordCall(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self) -> Any:
                return self.model(*args, **kwargs)

        target, inputs = KeywordCall(), ()
    macs, _params = thop.profile(target, inputs=inputs, verbose=False)
    return int(round(macs))


def _thop_skipped(thop_profile: Any, unseen_by_module: Dict[Any, int]) -> Tuple[str, ...]:
    """Type names of the modules that did work THOP did not see and that have no THOP rule."""
    return tuple(
        sorted(
            {
                type(module).__name__
                for module, unseen in unseen_by_module.items()
                if unseen > 0 and not any(cls in thop_profile.register_hooks for cls in type(module).__mro__)
            }
        )
    )
