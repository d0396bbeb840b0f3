"""Turn clips into tensors, train a CRNN on them, and detect events with it."""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from . import decode
from .data import Clip, Event, frame_targets
from .features import HOP_SECONDS, log_mel, n_frames
from .metrics import event_based_f1
from .model import CRNN, CRNNConfig

FEATURE_BATCH = 32
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclasses.dataclass(frozen=True)
class Split:
    """A data set ready for the model: features, strong frame targets and the reference events."""

    features: torch.Tensor  # (clips, n_mels, frames)
    targets: torch.Tensor  # (clips, output frames, classes)
    events: Tuple[Tuple[Event, ...], ...]
    frame_seconds: float


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A model and how to train it."""

    model: CRNNConfig
    epochs: int
    batch_size: int = 16
    learning_rate: float = 3e-3
    seed: int = 0


def prepare(clips: Sequence[Clip], model: CRNNConfig) -> Split:
    """Log-mel features for ``clips`` and targets at the model's output frame rate."""
    features = torch.cat(
        [
            log_mel(torch.from_numpy(np.stack([clip.waveform for clip in clips[start : start + FEATURE_BATCH]])), model.n_mels)
            for start in range(0, len(clips), FEATURE_BATCH)
        ]
    )
    frame_seconds = HOP_SECONDS * model.time_pooling
    output_frames = n_frames(len(clips[0].waveform)) // model.time_pooling
    targets = torch.from_numpy(np.stack([frame_targets(clip.events, output_frames, frame_seconds) for clip in clips]))
    return Split(features, targets, tuple(clip.events for clip in clips), frame_seconds)


def train(recipe: Recipe, split: Split) -> CRNN:
    """Fit a fresh CRNN with Adam on frame-level binary cross-entropy; deterministic per seed."""
    torch.manual_seed(recipe.seed)
    model = CRNN(recipe.model)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    loss_function = nn.BCELoss()
    generator = torch.Generator().manual_seed(recipe.seed)
    model.train()
    for _ in range(recipe.epochs):
        for batch in torch.randperm(len(split.features), generator=generator).split(recipe.batch_size):
            optimiser.zero_grad()
            loss = loss_function(model(split.features[batch]), split.targets[batch])
            loss.backward()
            optimiser.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model: CRNN, features: torch.Tensor) -> np.ndarray:
    """Frame probabilities, (clips, output frames, classes)."""
    model.eval()
    return model(features).numpy()


def detect(probabilities: np.ndarray, frame_seconds: float, threshold: float) -> List[List[Event]]:
    """Events per clip from frame probabilities."""
    return [decode.to_events(clip, frame_seconds, threshold) for clip in probabilities]


def tune_threshold(model: CRNN, validation: Split) -> float:
    """The decision threshold in ``THRESHOLDS`` with the best event-based F1 on validation clips."""
    probabilities = predict(model, validation.features)
    return max(
        THRESHOLDS,
        key=lambda threshold: event_based_f1(
            validation.events, detect(probabilities, validation.frame_seconds, threshold)
        ).f1,
    )
