"""Log-mel spectrograms with plain torch, at the DCASE task 4 baseline's time resolution.

16 kHz audio, a 2048-point Hann STFT every 256 samples (16 ms) and 64 HTK mel
bands (the baseline has 128): a 10 s clip gives 64 x 626 features. Each clip is then standardised on its
own (zero mean, unit variance), as the baseline's instance scaler does.
"""

from __future__ import annotations

import functools
import math

import torch

from .data import SAMPLE_RATE

N_FFT = 2048
HOP_LENGTH = 256
N_MELS = 64  # the challenge baseline uses 128; 64 keeps CPU training to seconds
F_MIN_HZ = 0.0
F_MAX_HZ = SAMPLE_RATE / 2
HOP_SECONDS = HOP_LENGTH / SAMPLE_RATE


def n_frames(n_samples: int) -> int:
    """Frames of a centred STFT over ``n_samples`` (626 for 10 s at 16 kHz)."""
    return 1 + n_samples // HOP_LENGTH


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@functools.lru_cache(maxsize=None)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Triangular HTK mel filters, shape (n_fft // 2 + 1, n_mels), each peaking at 1."""
    mel_points = torch.linspace(_hz_to_mel(F_MIN_HZ), _hz_to_mel(F_MAX_HZ), n_mels + 2, dtype=torch.float64)
    hz_points = 700.0 * (10.0 ** (mel_points / 2595.0) - 1.0)
    bins_hz = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = hz_points[:-2], hz_points[1:-1], hz_points[2:]
    rising = (bins_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bins_hz[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def log_mel(waveforms: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Standardised log-mel energies (dB) of (batch, samples) audio: (batch, n_mels, frames)."""
    window = torch.hann_window(N_FFT, device=waveforms.device)
    spectrum = torch.stft(waveforms, N_FFT, HOP_LENGTH, window=window, center=True, return_complex=True)
    power = spectrum.real**2 + spectrum.imag**2
    mel = torch.einsum("bft,fm->bmt", power, mel_filterbank(n_mels).to(waveforms.device))
    decibels = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
    mean = decibels.mean(dim=(1, 2), keepdim=True)
    std = decibels.std(dim=(1, 2), keepdim=True)
    return (decibels - mean) / (std + 1e-5)
