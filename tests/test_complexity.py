"""Complexity counting: MACs against counts written by hand, THOP's figure, and an untouched model.

Every expected figure is written out layer by layer here, from the layer sizes, never computed
by the code under test.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")
thop = pytest.importorskip("thop")

from torch import nn  # noqa: E402

from models import CRNN_INPUT_SHAPE, BaselineCRNN, TinyEncoder  # noqa: E402
from pytest_energy.account.complexity import (  # noqa: E402
    MACS_EXTRA,
    MACS_TOOL,
    Complexity,
    MissingExtraError,
    count_complexity,
    example_from_shape,
)

# The DCASE 2023 baseline CRNN on 128 mels x 626 frames. Feature maps (frames x mels) before each
# block's pooling: 626x128, 313x64, 156x32, 156x16, 156x8, 156x4, 156x2; 156 frames reach the GRU.
CRNN_HAND_MACS = {
    # 3x3 convolution, padding 1: C_out * C_in * 9 per output position
    "conv0": 16 * 1 * 9 * 626 * 128,
    "conv1": 32 * 16 * 9 * 313 * 64,
    "conv2": 64 * 32 * 9 * 156 * 32,
    "conv3": 128 * 64 * 9 * 156 * 16,
    "conv4": 128 * 128 * 9 * 156 * 8,
    "conv5": 128 * 128 * 9 * 156 * 4,
    "conv6": 128 * 128 * 9 * 156 * 2,
    # GLU: a C x C linear map at every position
    "glu0.linear": 16 * 16 * 626 * 128,
    "glu1.linear": 32 * 32 * 313 * 64,
    "glu2.linear": 64 * 64 * 156 * 32,
    "glu3.linear": 128 * 128 * 156 * 16,
    "glu4.linear": 128 * 128 * 156 * 8,
    "glu5.linear": 128 * 128 * 156 * 4,
    "glu6.linear": 128 * 128 * 156 * 2,
    # GRU, per direction and step: 3 gates x hidden x (input + hidden)
    "rnn.layer0": 2 * 156 * 3 * 128 * (128 + 128),
    "rnn.layer1": 2 * 156 * 3 * 128 * (256 + 128),
    # two heads on the 256 GRU outputs of each frame
    "dense": 156 * 256 * 10,
    "dense_softmax": 156 * 256 * 10,
}

# What THOP 2.2 adds on top of the MACs above (it counts no bias for convs and linears):
CRNN_THOP_EXTRA = {
    # batch norm with affine: 4 operations per element of each conv output (C x frames x mels)
    "batchnorm": 4 * (16 * 626 * 128 + 32 * 313 * 64 + 64 * 156 * 32 + 128 * 156 * (16 + 8 + 4 + 2)),
    # average pooling: one add per pooled input and one divide per output, i.e. (window + 1) per output
    "pooling": (4 + 1) * (16 * 313 * 64 + 32 * 156 * 32) + (2 + 1) * 156 * (64 * 16 + 128 * (8 + 4 + 2 + 1)),
    # GRU cell, per direction and step: 3 x hidden biases and gates (3 + 3 + 3 + 1 + 3) x hidden
    "rnn": 2 * 156 * 2 * 13 * 128,
}

# TinyEncoder: 156 frames of 64 features, width 96, 4 heads of 24, MLP 192, 2 blocks, 10 classes.
ENCODER_BLOCK_HAND_MACS = {
    "attention.qkv": 156 * 96 * 3 * 96,
    "query @ key": 4 * 156 * 156 * 24,
    "scores @ value": 4 * 156 * 156 * 24,
    "attention.out": 156 * 96 * 96,
    "fc1 (Projection)": 156 * 96 * 192,
    "fc2 (Projection)": 156 * 192 * 96,
}
ENCODER_HAND_MACS = 156 * 64 * 96 + 2 * sum(ENCODER_BLOCK_HAND_MACS.values()) + 156 * 96 * 10
ENCODER_PROJECTION_MACS = 2 * (156 * 96 * 192 + 156 * 192 * 96)  # addmm on bare parameters: THOP sees none of it
ENCODER_ATTENTION_MATMUL_MACS = 2 * (2 * 4 * 156 * 156 * 24)  # functional @: THOP 2.2 traces it
ENCODER_LAYER_NORM_THOP = 4 * 4 * 156 * 96  # 4 norms, 4 operations per element with affine


def within(value: float, expected: float, tolerance: float = 0.001) -> bool:
    return abs(value - expected) <= tolerance * expected


@pytest.fixture(scope="module")
def crnn_complexity() -> Complexity:
    return count_complexity(BaselineCRNN(), example_from_shape(CRNN_INPUT_SHAPE))


def test_crnn_macs_match_the_hand_count(crnn_complexity: Complexity) -> None:
    hand = sum(CRNN_HAND_MACS.values())
    assert round(hand / 1e5) == 9176  # the 917.6 M of issue 4
    assert within(crnn_complexity.macs, hand)
    assert crnn_complexity.macs_tool == MACS_TOOL


def test_crnn_thop_figure_adds_element_wise_work(crnn_complexity: Complexity) -> None:
    expected = sum(CRNN_HAND_MACS.values()) + sum(CRNN_THOP_EXTRA.values())
    assert crnn_complexity.macs_thop == expected  # 933.7 M with ultralytics-thop 2.2
    assert crnn_complexity.thop_skipped == ()  # the figures are within 2 %


def test_crnn_parameters() -> None:
    conv = 16 * (1 * 9 + 1) + 32 * (16 * 9 + 1) + 64 * (32 * 9 + 1) + 128 * (64 * 9 + 1) + 3 * 128 * (128 * 9 + 1)
    batch_norm = 2 * (16 + 32 + 64 + 4 * 128)  # weight and bias; running statistics are buffers
    glu = sum(c * c + c for c in (16, 32, 64, 128, 128, 128, 128))
    # GRU, per direction: 3 gates x hidden x (input + hidden) weights and two 3 x hidden biases
    gru = 2 * (3 * 128 * (128 + 128) + 6 * 128) + 2 * (3 * 128 * (256 + 128) + 6 * 128)
    heads = 2 * (256 * 10 + 10)
    model = BaselineCRNN()
    for parameter in model.cnn.parameters():  # the baseline's train_cnn=False
        parameter.requires_grad = False

    complexity = count_complexity(model, example_from_shape((1, 128, 8)))

    assert complexity.params == conv + batch_norm + glu + gru + heads == 1_112_420
    assert complexity.params_trainable == gru + heads


def test_tied_parameters_count_once() -> None:
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    assert count_complexity(model, torch.zeros(1, 4)).params == 16


@pytest.mark.parametrize(("layer", "gates"), [(nn.GRU, 3), (nn.LSTM, 4), (nn.RNN, 1)])
def test_recurrent_layers_are_never_counted_as_zero(layer: Any, gates: int) -> None:
    """oneDNN runs a CPU LSTM as one opaque operator; cuDNN does the same for all three on CUDA."""
    model = layer(40, 32, num_layers=2, bidirectional=True, batch_first=True)
    complexity = count_complexity(model, torch.zeros(3, 50, 40))
    # per sequence, direction and step: gates x hidden x (input + hidden)
    hand = 3 * 2 * 50 * (gates * 32 * (40 + 32) + gates * 32 * (64 + 32))
    assert within(complexity.macs, hand)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_cuda_is_counted_on_a_cpu_copy() -> None:
    model = nn.GRU(40, 32, batch_first=True).cuda()
    complexity = count_complexity(model, torch.zeros(1, 50, 40, device="cuda"))
    assert within(complexity.macs, 50 * 3 * 32 * (40 + 32))
    assert all(parameter.is_cuda for parameter in model.parameters())
    assert any("CPU copy" in note for note in complexity.notes)


def test_encoder_macs_match_the_hand_count() -> None:
    complexity = count_complexity(TinyEncoder(), torch.zeros(1, 156, 64))
    assert within(complexity.macs, ENCODER_HAND_MACS)


def test_encoder_lists_what_thop_skipped() -> None:
    complexity = count_complexity(TinyEncoder(), torch.zeros(1, 156, 64))
    assert complexity.macs_thop == ENCODER_HAND_MACS - ENCODER_PROJECTION_MACS + ENCODER_LAYER_NORM_THOP
    assert complexity.thop_skipped == ("Projection",)
    assert any("Projection" in note for note in complexity.notes)


def test_a_thop_without_functional_tracing_skips_the_attention_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Older THOP releases count no functional ``@``; the list then names the attention module as well."""
    monkeypatch.setattr(sys.modules["thop.profile"], "functional_hooks", {})
    complexity = count_complexity(TinyEncoder(), torch.zeros(1, 156, 64))
    assert complexity.macs_thop == (
        ENCODER_HAND_MACS - ENCODER_PROJECTION_MACS - ENCODER_ATTENTION_MATMUL_MACS + ENCODER_LAYER_NORM_THOP
    )
    assert complexity.thop_skipped == ("Projection", "SelfAttention")


def test_torch_transformer_layer_is_counted_through_its_fused_paths() -> None:
    """In eval mode torch fuses the layer (fast path) and runs attention as one CPU flash kernel."""
    layer = nn.TransformerEncoderLayer(96, 4, 192, batch_first=True).eval()
    complexity = count_complexity(layer, {"src": torch.zeros(1, 156, 96)})
    hand = 156 * 96 * 3 * 96 + 2 * 4 * 156 * 156 * 24 + 156 * 96 * 96 + 156 * 96 * 192 + 156 * 192 * 96
    assert within(complexity.macs, hand)
    assert torch.backends.mha.get_fastpath_enabled()


def test_multihead_attention_returning_weights() -> None:
    attention = nn.MultiheadAttention(96, 4, batch_first=True)
    tokens = torch.zeros(1, 156, 96)
    complexity = count_complexity(attention, (tokens, tokens, tokens))
    hand = 156 * 96 * 3 * 96 + 2 * 4 * 156 * 156 * 24 + 156 * 96 * 96
    assert within(complexity.macs, hand)
    assert complexity.input_shapes == ((1, 156, 96),) * 3


class TrainingOnlyBranch(nn.Module):
    """Runs an extra linear layer in training mode only, as an auxiliary head would."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Linear(8, 8)
        self.auxiliary = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.auxiliary(x) if self.training else self.main(x)


def test_the_inference_pass_is_counted_for_a_model_in_training_mode() -> None:
    model = TrainingOnlyBranch().train()
    complexity = count_complexity(model, torch.zeros(5, 8))
    assert (complexity.macs, complexity.macs_thop) == (5 * 8 * 8, 5 * 8 * 8)
    assert model.training


def test_keyword_inputs_count_like_positional_ones() -> None:
    model = TinyEncoder()
    positional = count_complexity(model, torch.zeros(1, 20, 64))
    keyword = count_complexity(model, {"features": torch.zeros(1, 20, 64)})
    assert (keyword.macs, keyword.macs_thop, keyword.input_shapes) == (
        positional.macs,
        positional.macs_thop,
        ((1, 20, 64),),
    )


def test_to_json() -> None:
    complexity = Complexity(
        macs=10,
        macs_thop=12,
        params=3,
        params_trainable=2,
        macs_tool=MACS_TOOL,
        input_shapes=((1, 128, 626),),
        thop_skipped=("Projection",),
        notes=("a note",),
    )
    assert complexity.to_json() == {
        "macs": 10,
        "macs_thop": 12,
        "params": 3,
        "params_trainable": 2,
        "macs_tool": "torch.utils.flop_counter (FLOPs/2)",
        "macs_input_shapes": [[1, 128, 626]],
        "thop_skipped": ["Projection"],
    }


def test_example_from_shape() -> None:
    example = example_from_shape((1, 128, 626))
    assert example.shape == (1, 128, 626)
    assert example.dtype == torch.float32
    assert not example.any()
    assert example_from_shape([2, 3], dtype="float16").dtype == torch.float16


@pytest.mark.parametrize("shape", [(1, 0, 3), (1, -2), (1, 2.5), "1,128", (True, 3), 626, ()])
def test_example_from_a_bad_shape_names_it(shape: Any) -> None:
    with pytest.raises(ValueError, match="invalid input shape"):
        example_from_shape(shape)


def test_example_with_a_bad_dtype_names_it() -> None:
    with pytest.raises(ValueError, match="invalid dtype 'float33'"):
        example_from_shape((1, 2), dtype="float33")


def test_count_refuses_what_is_not_a_module() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        count_complexity(lambda x: x, torch.zeros(1))


# --- counting leaves the model as it was -------------------------------------------------------


def small_crnn() -> BaselineCRNN:
    return BaselineCRNN()


SMALL_INPUT = (1, 128, 8)


def hook_counts(model: nn.Module) -> List[int]:
    return [
        len(hooks)
        for module in model.modules()
        for hooks in (
            module._forward_hooks,
            module._forward_pre_hooks,
            module._backward_hooks,
            module._backward_pre_hooks,
            module._state_dict_hooks,
            module._load_state_dict_pre_hooks,
        )
    ]


def test_counting_leaves_no_hooks() -> None:
    model = small_crnn()
    model.dense.register_forward_hook(lambda *_: None)
    before = hook_counts(model)
    count_complexity(model, example_from_shape(SMALL_INPUT))
    assert hook_counts(model) == before
    assert not nn.modules.module._global_forward_hooks
    assert not nn.modules.module._global_forward_pre_hooks


class ActivationStore:
    """What a user keeps from a forward pass; holds a lock, as a real store may, so it cannot be deep-copied."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.activations: Dict[str, torch.Tensor] = {}
        self.calls: List[str] = []

    def keep(self, module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self.calls.append("forward")
        self.activations["dense"] = output.detach().clone()


def test_counting_runs_none_of_the_users_hooks_and_keeps_them_on_the_model() -> None:
    """A hook storing activations keeps the value of the user's own forward pass (issue 12)."""
    model = small_crnn().eval()
    store = ActivationStore()
    calls: List[str] = []
    handles = [
        model.dense.register_forward_hook(store.keep),  # a bound method of an object that cannot be copied
        model.dense.register_forward_pre_hook(lambda *_: calls.append("forward-pre")),
        model.dense.register_forward_hook(lambda *_, **__: calls.append("forward-kwargs"), with_kwargs=True),
        model.dense.register_full_backward_hook(lambda *_: calls.append("backward")),
        model.dense.register_full_backward_pre_hook(lambda *_: calls.append("backward-pre")),
        nn.modules.module.register_module_forward_hook(lambda *_: calls.append("global forward")),
        nn.modules.module.register_module_forward_pre_hook(lambda *_: calls.append("global forward-pre")),
        nn.modules.module.register_module_module_registration_hook(lambda *_: calls.append("global registration")),
        nn.modules.module.register_module_buffer_registration_hook(lambda *_: calls.append("global buffer")),
    ]
    try:
        with torch.no_grad():
            model(example_from_shape(SMALL_INPUT) + 1.0)
        kept = store.activations["dense"]
        store.calls.clear()
        calls.clear()
        before = hook_counts(model)
        count_complexity(model, {"mels": example_from_shape(SMALL_INPUT)})  # keywords: THOP gets a wrapper module

        assert (store.calls, calls) == ([], [])
        assert store.activations["dense"] is kept
        assert hook_counts(model) == before
        with torch.no_grad():
            model(example_from_shape(SMALL_INPUT))
        assert store.calls == ["forward"] and "global forward" in calls  # still hooked after counting
    finally:
        for handle in handles:
            handle.remove()


def test_counting_adds_no_buffers_or_attributes() -> None:
    model = small_crnn()
    keys = list(model.state_dict())
    count_complexity(model, example_from_shape(SMALL_INPUT))
    assert list(model.state_dict()) == keys
    assert not any("total_ops" in key or "total_params" in key for key in model.state_dict())
    assert not any(hasattr(module, "total_ops") or hasattr(module, "total_params") for module in model.modules())


def test_counting_keeps_values_and_batch_norm_statistics() -> None:
    model = small_crnn().train()  # a forward pass in training mode would move the running statistics
    before = {key: value.clone() for key, value in model.state_dict().items()}
    count_complexity(model, example_from_shape(SMALL_INPUT))
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_counting_keeps_each_module_training_mode() -> None:
    model = small_crnn().train()
    model.rnn.eval()
    modes = [module.training for module in model.modules()]
    count_complexity(model, example_from_shape(SMALL_INPUT))
    assert [module.training for module in model.modules()] == modes


def test_counting_keeps_requires_grad() -> None:
    model = small_crnn()
    for parameter in model.cnn.parameters():
        parameter.requires_grad = False
    flags = [parameter.requires_grad for parameter in model.parameters()]
    count_complexity(model, example_from_shape(SMALL_INPUT))
    assert [parameter.requires_grad for parameter in model.parameters()] == flags


def test_counting_leaves_no_gradients() -> None:
    model = small_crnn()
    example = example_from_shape(SMALL_INPUT).requires_grad_()
    count_complexity(model, example)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert example.grad is None


def test_counting_keeps_existing_gradients() -> None:
    model = small_crnn()
    model.dense.weight.grad = torch.ones_like(model.dense.weight)
    count_complexity(model, example_from_shape(SMALL_INPUT))
    assert torch.equal(model.dense.weight.grad, torch.ones_like(model.dense.weight))


def test_counting_keeps_parameters_in_place() -> None:
    model = small_crnn().double()
    before: Dict[str, Any] = {
        name: (parameter, parameter.device, parameter.dtype, parameter.data_ptr())
        for name, parameter in model.named_parameters()
    }
    count_complexity(model, example_from_shape(SMALL_INPUT, dtype="float64"))
    after = {
        name: (parameter, parameter.device, parameter.dtype, parameter.data_ptr())
        for name, parameter in model.named_parameters()
    }
    assert all(after[name][0] is before[name][0] and after[name][1:] == before[name][1:] for name in before)


def test_counting_restores_torch_settings() -> None:
    settings = (
        torch.get_num_threads(),
        torch.backends.mha.get_fastpath_enabled(),
        torch.backends.mkldnn.enabled,
        torch.is_grad_enabled(),
    )
    count_complexity(small_crnn(), example_from_shape(SMALL_INPUT))
    assert (
        torch.get_num_threads(),
        torch.backends.mha.get_fastpath_enabled(),
        torch.backends.mkldnn.enabled,
        torch.is_grad_enabled(),
    ) == settings


# --- without the extra -------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["torch", "thop"])
def test_counting_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    with pytest.raises(MissingExtraError, match=f"'{missing}' cannot be imported") as raised:
        count_complexity(nn.Linear(2, 2), torch.zeros(1, 2))
    assert MACS_EXTRA == 'pip install "pytest-energy[macs]"'
    assert MACS_EXTRA in str(raised.value)


def test_an_example_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match="pytest-energy\\[macs\\]"):
        example_from_shape((1, 2))


def test_importing_the_module_imports_neither_torch_nor_thop() -> None:
    code = (
        "import sys, pytest_energy.account.complexity; "
        "print(sorted({'torch', 'thop'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
