"""CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER read as CUDA reads them, on NVML's boards."""

from __future__ import annotations

import sys
import types

import pytest

from pytest_energy.measure.cuda_devices import Board, Visible, cuda_visible, torch_uuids

SAME = [Board(i, f"GPU-{i}1111111-2222-3333-4444-555555555555", "NVIDIA A100") for i in range(3)]
MIXED = [Board(0, "GPU-0aaa", "NVIDIA A100"), Board(1, "GPU-1bbb", "NVIDIA T4")]
MIG = [Board(0, "GPU-0aaa", "NVIDIA A100", ("MIG-a1", "MIG-a2")), Board(1, "GPU-1bbb", "NVIDIA A100")]


def devices(*indices: int) -> Visible:
    return Visible(tuple((index, "") for index in indices))


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, devices(0, 1, 2)),
        ("", devices()),
        ("-1", devices()),
        ("2,0", devices(2, 0)),
        (" 1 , 0 ", devices(1, 0)),
        ("0,-1,1", devices(0)),  # -1 ends the list
        ("1,7,0", devices(1)),  # so does an ordinal past the last GPU
        ("0,0,1", devices()),  # a repeated ordinal leaves CUDA no device at all
        ("1,GPU-01111111,0", devices(1)),  # a GPU- entry ends a list of ordinals
        ("GPU-11111111-2222-3333-4444-555555555555", devices(1)),
        ("GPU-2,GPU-0", devices(2, 0)),  # unique UUID prefixes
        ("GPU-2,1", devices(2)),  # an ordinal ends a list of UUIDs
        ("GPU-", devices()),  # ambiguous prefix
        ("GPU-9", devices()),  # unknown UUID
        ("abc,1", devices()),
    ],
)
def test_cuda_visible_devices_rules(spec, expected) -> None:
    assert cuda_visible(spec, SAME) == expected


def test_fastest_first_on_different_models_is_stated_not_guessed() -> None:
    assert "fastest first" in cuda_visible("0", MIXED).unresolved
    assert "fastest first" in cuda_visible("0", MIXED, "FASTEST_FIRST").unresolved
    assert cuda_visible("1", MIXED, "PCI_BUS_ID") == devices(1)
    assert cuda_visible("GPU-1", MIXED) == devices(1), "UUIDs need no order"
    assert cuda_visible(None, MIXED) == Visible(devices(0, 1).devices, ordered=False), "all of them, in an order only CUDA knows"
    assert cuda_visible(None, MIXED, "PCI_BUS_ID").ordered and cuda_visible(None, SAME).ordered


def test_mig_slices_are_cuda_devices_of_their_own() -> None:
    assert cuda_visible(None, MIG) == Visible(((0, "MIG-a1"), (0, "MIG-a2"), (1, "")))
    assert cuda_visible("MIG-a2", MIG) == Visible(((0, "MIG-a2"),))
    assert cuda_visible("MIG-a", MIG) == Visible(), "ambiguous"
    assert cuda_visible("2", MIG, "PCI_BUS_ID") == devices(1), "ordinals count the slices"
    assert cuda_visible("GPU-0", MIG) == Visible(((0, "MIG-a1"),))


def test_torch_uuids_only_when_cuda_is_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert torch_uuids() is None
    state = {"initialised": False}
    cuda = types.SimpleNamespace(is_initialized=lambda: state["initialised"], device_count=lambda: 1,
                                 get_device_properties=lambda i: types.SimpleNamespace(uuid="0aaa"))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert torch_uuids() is None
    state["initialised"] = True
    assert torch_uuids() == ["0aaa"]
