"""Data of the example: seeded synthetic soundscapes, made and prepared once per session.

Clips are made once per session (outside every measurement); each test measures only
its own work: training, or feature extraction plus inference on the held-out clips.
"""

from __future__ import annotations

from typing import Dict, List

import pytest
import torch

from sed.data import Clip, make_dataset
from sed.model import CRNN
from sed.recipes import SYSTEM
from sed.train import Split, prepare, train

N_TRAIN, N_VALIDATION, N_TEST = 96, 24, 32


@pytest.fixture(scope="session")
def train_clips() -> List[Clip]:
    return make_dataset(N_TRAIN, seed=1)


@pytest.fixture(scope="session")
def validation_split() -> Split:
    return prepare(make_dataset(N_VALIDATION, seed=2), SYSTEM.model)


@pytest.fixture(scope="session")
def test_clips() -> List[Clip]:
    """Held-out clips, never seen in training or threshold tuning."""
    return make_dataset(N_TEST, seed=3)


@pytest.fixture(scope="session")
def train_split(train_clips: List[Clip]) -> Split:
    return prepare(train_clips, SYSTEM.model)


@pytest.fixture(scope="session")
def trained_models() -> Dict[str, CRNN]:
    """Models trained by the tests, by name, for the tests that apply them."""
    return {}


@pytest.fixture
def crnn(trained_models: Dict[str, CRNN], train_split: Split) -> CRNN:
    """The system as its training test left it; trained here (unmeasured) if that test did not run."""
    if "system" not in trained_models:
        trained_models["system"] = train(SYSTEM, train_split)
    return trained_models["system"]


@pytest.fixture(autouse=True, scope="session")
def two_threads() -> None:
    """The same thread count on every machine, so runs compare (DCASE asks for the same settings)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
