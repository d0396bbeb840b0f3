"""The two MAC counters, each run over one forward pass of the copy being counted.

- ``torch.utils.flop_counter.FlopCounterMode`` counts every matmul, convolution and attention
  operator the forward pass dispatches, wherever it is called from (modules, functional calls,
  bare parameters). It counts 2 FLOPs per multiply-accumulate, so ``macs = FLOPs / 2``; bias
  additions and element-wise work are not counted. This is the primary figure.
- THOP (``ultralytics-thop``, import name ``thop``) is the figure the DCASE challenge asks for.
  It adds element-wise work (bias, norms, pooling, gates) where it has a rule for a module
  type, and counts 0 for work it has no rule for; ``thop_skipped`` names those module types.

On the CPU the oneDNN LSTM kernel and the fused attention fast path are opaque to the counter
too, so they are switched off while counting (``countable_kernels``), and the CPU flash-attention
kernel is given the attention formula, so that recurrent and attention layers decompose into
counted matmuls. The hooks registered for every module are held back while counting. torch and
THOP come in as arguments, imported by the caller.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Tuple

if TYPE_CHECKING:
    import torch


@contextlib.contextmanager
def countable_kernels(torch: Any) -> Iterator[None]:
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
def without_global_hooks(torch: Any) -> Iterator[None]:
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


def operator_macs(
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

    def attention_flops(query_shape: Tuple[int, ...], key_shape: Tuple[int, ...], value_shape: Tuple[int, ...],
                        *_args: Any, **_kwargs: Any) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    kernel = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {kernel: attention_flops} if kernel is not None else {}


def thop_macs(
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


def thop_skipped(thop_profile: Any, unseen_by_module: Dict[Any, int]) -> Tuple[str, ...]:
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
