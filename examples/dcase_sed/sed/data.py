"""Synthetic 10 s soundscapes: four event classes over coloured background noise.

Every clip is drawn from a seeded ``numpy`` generator, so a data set is the same
on every machine and needs no download. Events of different classes may overlap
(the task is polyphonic); events of one class never do, so labels stay exact.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

SAMPLE_RATE = 16_000
CLIP_SECONDS = 10.0
CLASSES = ("tone", "chirp", "noise_burst", "clicks")
MAX_EVENTS_PER_CLIP = 4
MIN_GAP_SECONDS = 0.3  # between two events of the same class
SNR_RANGE_DB = (0.0, 12.0)


@dataclasses.dataclass(frozen=True)
class Event:
    """One labelled sound event, times in seconds from the start of its clip."""

    label: str
    onset: float
    offset: float


@dataclasses.dataclass(frozen=True)
class Clip:
    """A mono waveform at ``SAMPLE_RATE`` and the events it contains."""

    waveform: np.ndarray
    events: Tuple[Event, ...]


def _envelope(n_samples: int, ramp_samples: int = 160) -> np.ndarray:
    """Unit envelope with 10 ms linear fades, so onsets are sharp but click-free."""
    ramp = min(ramp_samples, n_samples // 2)
    envelope = np.ones(n_samples)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[n_samples - ramp :] = np.linspace(1.0, 0.0, ramp)
    return envelope


def _tone(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n_samples) / SAMPLE_RATE
    frequency = rng.uniform(400.0, 3000.0)
    return np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(4 * np.pi * frequency * t)


def _chirp(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n_samples) / SAMPLE_RATE
    start, stop = rng.uniform(300.0, 1200.0), rng.uniform(2500.0, 6000.0)
    if rng.random() < 0.5:
        start, stop = stop, start
    duration = n_samples / SAMPLE_RATE
    return np.sin(2 * np.pi * (start * t + (stop - start) * t**2 / (2 * duration)))


def _noise_burst(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.fft.rfftfreq(n_samples, 1.0 / SAMPLE_RATE)
    low = rng.uniform(1000.0, 4000.0)
    spectrum[(frequencies < low) | (frequencies > min(2.5 * low, 7800.0))] = 0.0
    return np.fft.irfft(spectrum, n_samples)


def _clicks(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    signal = np.zeros(n_samples)
    period = int(SAMPLE_RATE / rng.uniform(8.0, 20.0))
    click_length = int(0.004 * SAMPLE_RATE)
    click = rng.standard_normal(click_length) * np.exp(-np.arange(click_length) / (0.001 * SAMPLE_RATE))
    for start in range(0, n_samples - click_length, period):
        signal[start : start + click_length] += click
    return signal


SYNTHESISERS: Dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "tone": _tone,
    "chirp": _chirp,
    "noise_burst": _noise_burst,
    "clicks": _clicks,
}
DURATION_RANGES_S = {"tone": (0.3, 2.0), "chirp": (0.5, 2.0), "noise_burst": (0.3, 1.5), "clicks": (0.5, 2.5)}


def _background(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish noise (1/f power) with unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.fft.rfftfreq(n_samples, 1.0 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(frequencies, 20.0))
    noise = np.fft.irfft(spectrum, n_samples)
    return noise / np.sqrt(np.mean(noise**2))


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal**2)))


def _place(label: str, taken: List[Event], rng: np.random.Generator) -> Event:
    """Draw an event of ``label`` that keeps ``MIN_GAP_SECONDS`` from its own class."""
    low, high = DURATION_RANGES_S[label]
    while True:
        duration = rng.uniform(low, high)
        onset = rng.uniform(0.0, CLIP_SECONDS - duration)
        event = Event(label, round(onset, 3), round(onset + duration, 3))
        if all(
            other.label != label
            or event.offset + MIN_GAP_SECONDS <= other.onset
            or other.offset + MIN_GAP_SECONDS <= event.onset
            for other in taken
        ):
            return event


def make_clip(rng: np.random.Generator) -> Clip:
    """One soundscape: 1 to ``MAX_EVENTS_PER_CLIP`` events at random SNRs over background noise."""
    n_samples = int(CLIP_SECONDS * SAMPLE_RATE)
    waveform = 0.05 * _background(n_samples, rng)
    background_rms = _rms(waveform)
    events: List[Event] = []
    for _ in range(rng.integers(1, MAX_EVENTS_PER_CLIP + 1)):
        event = _place(CLASSES[rng.integers(len(CLASSES))], events, rng)
        start, stop = int(event.onset * SAMPLE_RATE), int(event.offset * SAMPLE_RATE)
        sound = SYNTHESISERS[event.label](stop - start, rng) * _envelope(stop - start)
        gain = background_rms * 10 ** (rng.uniform(*SNR_RANGE_DB) / 20) / _rms(sound)
        waveform[start:stop] += gain * sound
        events.append(event)
    events.sort(key=lambda event: (event.onset, event.label))
    return Clip(waveform.astype(np.float32), tuple(events))


def make_dataset(n_clips: int, seed: int) -> List[Clip]:
    """``n_clips`` soundscapes; the same ``seed`` always gives the same clips."""
    rng = np.random.default_rng(seed)
    return [make_clip(rng) for _ in range(n_clips)]


def frame_targets(events: Sequence[Event], n_frames: int, frame_seconds: float) -> np.ndarray:
    """Strong labels, shape (n_frames, len(CLASSES)): 1 where a frame's centre lies inside an event."""
    targets = np.zeros((n_frames, len(CLASSES)), dtype=np.float32)
    centres = (np.arange(n_frames) + 0.5) * frame_seconds
    for event in events:
        targets[(centres >= event.onset) & (centres < event.offset), CLASSES.index(event.label)] = 1.0
    return targets
