"""Reference models for the complexity tests, written here so the tests need no download.

``BaselineCRNN`` has the shape of the DCASE 2023 task 4 baseline (DESED_task recipe
``dcase2023_task4_baseline``): 7 conv blocks (3x3 conv, batch norm, GLU, dropout, average
pooling), a 2-layer bidirectional GRU with 128 cells and two dense heads, fed 128 mel bands
x 626 frames (10 s of 16 kHz audio, hop 256).

``TinyEncoder`` is a small transformer encoder: a projection from the features, then blocks
of self-attention and an MLP. Its projections are written the way GPT-2's ``Conv1D`` is,
``torch.addmm`` on bare parameters, and its attention uses functional ``@``: the two kinds of
work that operator-level counting sees and a module-rule counter such as THOP may not.
"""

from __future__ import annotations

import torch
from torch import nn

CRNN_FILTERS = (16, 32, 64, 128, 128, 128, 128)
CRNN_POOLING = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2))
CRNN_INPUT_SHAPE = (1, 128, 626)  # batch, mel bands, frames


class GatedLinearUnit(nn.Module):
    """The baseline's GLU: a per-position linear map over channels, gated by the sigmoid of the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gated = self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return gated * self.sigmoid(x)


class BaselineCRNN(nn.Module):
    """A CRNN with the layer sizes of the DCASE 2023 task 4 baseline."""

    def __init__(self, n_classes: int = 10, rnn_cells: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.cnn = nn.Sequential()
        in_channels = 1
        for index, (channels, pooling) in enumerate(zip(CRNN_FILTERS, CRNN_POOLING)):
            self.cnn.add_module(f"conv{index}", nn.Conv2d(in_channels, channels, 3, 1, 1))
            self.cnn.add_module(f"batchnorm{index}", nn.BatchNorm2d(channels, eps=0.001, momentum=0.99))
            self.cnn.add_module(f"glu{index}", GatedLinearUnit(channels))
            self.cnn.add_module(f"dropout{index}", nn.Dropout(dropout))
            self.cnn.add_module(f"pooling{index}", nn.AvgPool2d(pooling))
            in_channels = channels
        self.rnn = nn.GRU(in_channels, rnn_cells, num_layers=2, bidirectional=True, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * rnn_cells, n_classes)
        self.dense_softmax = nn.Linear(2 * rnn_cells, n_classes)

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.cnn(mels.transpose(1, 2).unsqueeze(1))  # batch, channels, frames, 1
        x = x.squeeze(-1).permute(0, 2, 1)  # batch, frames, channels
        x, _ = self.rnn(x)
        x = self.dropout(x)
        strong = torch.sigmoid(self.dense(x))
        attention = torch.softmax(self.dense_softmax(x), dim=-1).clamp(min=1e-7, max=1)
        weak = (strong * attention).sum(1) / attention.sum(1)
        return strong.transpose(1, 2), weak


class Projection(nn.Module):
    """An affine map on bare parameters through ``torch.addmm``, as GPT-2's ``Conv1D``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_features, out_features) * in_features**-0.5)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return flat.reshape(*x.shape[:-1], self.weight.shape[1])


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.Linear projections and functional ``@`` products."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = (query @ key.transpose(-2, -1)) * (dim // self.heads) ** -0.5
        mixed = scores.softmax(dim=-1) @ value  # batch, heads, tokens, head_dim
        return self.out(mixed.transpose(1, 2).reshape(batch, tokens, dim))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: attention then an MLP whose layers are ``Projection``s."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = Projection(dim, hidden)
        self.activation = nn.GELU()
        self.fc2 = Projection(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(self.activation(self.fc1(self.norm2(x))))


class TinyEncoder(nn.Module):
    """Features (batch, frames, features) -> linear embedding -> encoder blocks -> class scores per frame."""

    def __init__(
        self, features: int = 64, dim: int = 96, heads: int = 4, hidden: int = 192, depth: int = 2, n_classes: int = 10
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(features, dim)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, hidden) for _ in range(depth))
        self.head = nn.Linear(dim, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.embed(features)
        for block in self.blocks:
            x = block(x)
        return self.head(x)
