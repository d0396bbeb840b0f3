"""A CRNN in the shape of the DCASE task 4 baseline, scaled down for a CPU.

Like the baseline: convolution blocks (3x3 conv, batch norm, gated linear unit,
dropout, average pooling), a bidirectional GRU over time and a frame-level sigmoid
per class. Unlike it: 64 mel bands instead of 128, three blocks instead of seven, fewer
channels, 8x time pooling, one GRU layer, and no weak (clip-level) head, because the
synthetic data is strongly labelled. Training takes seconds per epoch on two CPU cores.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import torch
from torch import nn

from .data import CLASSES
from .features import N_MELS


@dataclasses.dataclass(frozen=True)
class CRNNConfig:
    """Layer sizes; ``pooling`` is (time, frequency) per convolution block."""

    n_mels: int = N_MELS
    n_classes: int = len(CLASSES)
    channels: Tuple[int, ...] = (16, 32, 32)
    pooling: Tuple[Tuple[int, int], ...] = ((4, 4), (2, 4), (1, 2))
    rnn_hidden: int = 32
    dropout: float = 0.2

    @property
    def time_pooling(self) -> int:
        """Input frames per output frame."""
        factor = 1
        for time, _ in self.pooling:
            factor *= time
        return factor

    @property
    def rnn_input(self) -> int:
        frequency = self.n_mels
        for _, pool in self.pooling:
            frequency //= pool
        return self.channels[-1] * frequency


class GLU(nn.Module):
    """The baseline's gated linear unit: a per-position linear map gated by sigmoid(input)."""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gated = self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return gated * torch.sigmoid(x)


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, pooling: Tuple[int, int]):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            GLU(out_channels),
            nn.AvgPool2d(pooling),
        )


class CRNN(nn.Module):
    """(batch, n_mels, frames) log-mels -> (batch, frames // time_pooling, n_classes) probabilities."""

    def __init__(self, config: CRNNConfig = CRNNConfig()):
        super().__init__()
        self.config = config
        widths = (1,) + config.channels
        self.cnn = nn.Sequential(
            *(
                ConvBlock(widths[i], widths[i + 1], config.pooling[i])
                for i in range(len(config.channels))
            )
        )
        self.rnn = nn.GRU(config.rnn_input, config.rnn_hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(2 * config.rnn_hidden, config.n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.cnn(features.transpose(1, 2).unsqueeze(1))  # (batch, channels, time, frequency)
        x = x.permute(0, 2, 1, 3).flatten(2)  # (batch, time, channels * frequency)
        x, _ = self.rnn(x)
        return torch.sigmoid(self.dense(self.dropout(x)))
