"""The systems of the example, as a participant would define them."""

from __future__ import annotations

import dataclasses

from .model import CRNNConfig
from .train import Recipe

BASELINE = Recipe(CRNNConfig(), epochs=10)  # the challenge baseline system
REFERENCE_WORKLOAD = dataclasses.replace(BASELINE, epochs=3)  # the scaled-down analogue of DCASE's "10 baseline epochs"
SYSTEM = Recipe(CRNNConfig(rnn_hidden=48), epochs=10, seed=1)  # "our" submission: a wider GRU
