"""The example's energy tests: the baseline workload, training, and inference on 10 s clips.

Run from the repository root:  pytest examples/dcase_sed --energy-cap=2kWh --energy-json=energy.json
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pytest
import torch

from pytest_energy.account.complexity import count_complexity
from sed import decode
from sed.data import CLIP_SECONDS, SAMPLE_RATE, Clip
from sed.features import n_frames
from sed.metrics import event_based_f1, psds1
from sed.model import CRNN, CRNNConfig
from sed.recipes import REFERENCE_WORKLOAD, SYSTEM
from sed.train import Split, detect, predict, prepare, train, tune_threshold

TEN_SECONDS = (1, SYSTEM.model.n_mels, n_frames(int(CLIP_SECONDS * SAMPLE_RATE)))  # one 10 s clip of log-mels: (1, 64, 626)


def hand_count_macs(config: CRNNConfig, frames: int) -> int:
    """Multiply-accumulates of one forward pass, layer by layer (batch norm, pooling, gates not counted)."""
    time, frequency, channels_in, macs = frames, config.n_mels, 1, 0
    for channels, (time_pool, frequency_pool) in zip(config.channels, config.pooling):
        macs += channels_in * channels * 3 * 3 * time * frequency  # 3x3 convolution
        macs += channels * channels * time * frequency  # the GLU's linear map over channels
        time, frequency, channels_in = time // time_pool, frequency // frequency_pool, channels
    hidden = config.rnn_hidden
    macs += 2 * time * 3 * hidden * (config.rnn_input + hidden)  # BiGRU: 3 gates, input and hidden matmuls
    macs += time * 2 * hidden * config.n_classes  # frame-level dense layer
    return macs


@pytest.mark.energy_baseline
def test_baseline_reference_workload(train_split: Split) -> None:
    """The workload whose energy here normalises every other figure (DCASE: 10 baseline epochs)."""
    model = train(REFERENCE_WORKLOAD, train_split)
    assert not model.training


@pytest.mark.energy(phase="train", system="crnn")
def test_train_system(train_split: Split, trained_models: Dict[str, CRNN]) -> None:
    trained_models["system"] = train(SYSTEM, train_split)


@pytest.mark.energy(phase="test", system="crnn", macs_input=TEN_SECONDS)
def test_inference_on_held_out_clips(
    energy, crnn: CRNN, validation_split: Split, test_clips: List[Clip]
) -> None:
    """Features and detection for the held-out clips, scored as the challenge scores them: PSDS1 over every
    threshold, and event-based F1 (200 ms collars) at the threshold tuned on validation clips; both well above chance."""
    threshold = tune_threshold(crnn, validation_split)
    split = prepare(test_clips, SYSTEM.model)
    probabilities = predict(crnn, split.features)
    psds = psds1(split.events, decode.scores(probabilities), split.frame_seconds)
    f1 = event_based_f1(split.events, detect(probabilities, split.frame_seconds, threshold)).f1
    energy.record_score("psds1", psds)
    energy.record_score("event_f1", f1)

    shuffled = probabilities[np.random.default_rng(0).permutation(len(test_clips))]  # each clip scored with another's output
    chance_psds = psds1(split.events, decode.scores(shuffled), split.frame_seconds)
    chance_f1 = event_based_f1(split.events, detect(shuffled, split.frame_seconds, threshold)).f1
    assert psds > chance_psds + 0.25, f"PSDS1 {psds:.3f} is not clearly above chance ({chance_psds:.3f})"
    assert f1 > chance_f1 + 0.25, f"event F1 {f1:.3f} is not clearly above chance ({chance_f1:.3f})"


def test_macs_match_the_hand_count(crnn: CRNN) -> None:
    """The plugin's count for 10 s of audio equals the layer-by-layer count above (unmeasured)."""
    complexity = count_complexity(crnn, torch.zeros(TEN_SECONDS))
    assert complexity.macs == hand_count_macs(SYSTEM.model, TEN_SECONDS[2])
    assert complexity.params == sum(parameter.numel() for parameter in crnn.parameters())
