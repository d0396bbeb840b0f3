"""MACs of models that are not plain CPU models: on another device (``meta`` stands in for CUDA on a
CPU-only machine), wrapped in DataParallel, keeping state outside parameters and buffers."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("thop")

from pytest_energy.account import complexity  # noqa: E402
from pytest_energy.account.complexity import count_complexity  # noqa: E402
from pytest_energy.account.model_copy import counting_place  # noqa: E402


class Stateful(torch.nn.Module):
    """Keeps a plain tensor attribute and a device attribute, and takes a list of tensors."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.first = torch.nn.Linear(16, 32)
        self.second = torch.nn.Linear(32, 8)
        self.device = torch.device(device)
        self.to(device)
        self.scale = torch.ones(32, device=device)  # not a buffer

    def forward(self, inputs: list) -> Any:
        hidden = self.first(inputs[0] + inputs[1]) * self.scale
        return self.second(hidden + torch.zeros(32, device=self.device))


class Recurrent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(16, 24, batch_first=True)
        self.head = torch.nn.Linear(24, 4)

    def forward(self, x: Any) -> Any:
        return self.head(self.gru(x)[0])


def stateful_inputs(device: str) -> list:
    return [[torch.zeros(2, 16, device=device), torch.zeros(2, 16, device=device)]]


def test_a_model_on_another_device_counts_as_on_the_cpu() -> None:
    on_cpu = count_complexity(Stateful("cpu"), stateful_inputs("cpu"))
    on_meta = count_complexity(Stateful("meta"), stateful_inputs("meta"))
    assert on_cpu.macs == 2 * (16 * 32 + 32 * 8) > 0
    assert (on_meta.macs, on_meta.params) == (on_cpu.macs, on_cpu.params)


def test_the_cpu_copy_takes_plain_tensor_and_device_attributes_along(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(complexity, "counting_place", lambda *_: ("cpu", "counted on a CPU copy (forced by the test)"))
    counted = count_complexity(Stateful("meta"), stateful_inputs("meta"))
    assert counted.macs == 2 * (16 * 32 + 32 * 8)
    assert counted.notes[0] == "counted on a CPU copy (forced by the test)"


def test_a_recurrent_model_off_the_cpu_is_not_counted_as_zero() -> None:
    on_cpu = count_complexity(Recurrent(), torch.zeros(1, 5, 16))
    on_meta = count_complexity(Recurrent().to("meta"), torch.zeros(1, 5, 16, device="meta"))
    assert on_cpu.macs > 24 * 4 * 5 and on_meta.macs == on_cpu.macs


def test_data_parallel_is_counted_through_the_module_it_wraps() -> None:
    model = Stateful("cpu")
    wrapped = torch.nn.DataParallel(model)
    wrapped.device_ids, wrapped.src_device_obj = [0], torch.device("cuda", 0)  # as built on a GPU machine
    assert count_complexity(wrapped, stateful_inputs("cpu")).macs == count_complexity(model, stateful_inputs("cpu")).macs


@pytest.mark.parametrize(
    "devices, has_rnn, needed, free, place, note",
    [
        (["cpu"], True, 10, None, "cpu", ""),
        (["meta"], True, 10**12, None, "meta", ""),
        (["cuda:0"], False, 2**30, 8 * 2**30, "cuda:0", ""),
        (["cuda:0"], True, 2**30, 8 * 2**30, "cpu", "cuDNN's RNN operator has no FLOP formula"),
        (["cuda:0"], False, 6 * 2**30, 8 * 2**30, "cpu", "needs about 9.00 GiB and 8.00 GiB is free"),
        (["cuda:0"], False, 1, 0, "cpu", "0.00 GiB is free"),  # free memory unknown: no copy there
        (["cuda:0", "cuda:1"], False, 1, None, "cpu", "spread over cuda:0, cuda:1"),
    ],
)
def test_where_a_model_is_counted(devices, has_rnn, needed, free, place, note) -> None:
    chosen, why = counting_place(devices, has_rnn, needed, free)
    assert chosen == place and note in why and (why == "") == (note == "")
