"""Frame probabilities to events: median filter, threshold, then runs of active frames.

The median filter comes first, on the probabilities themselves: a median commutes
with a threshold, so this gives the same events as filtering the thresholded 0/1
frames (as the baseline does), and the filtered probabilities are the scores whose
every threshold PSDS evaluates (``scores``, for ``metrics.psds1``).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .data import CLASSES, Event

MEDIAN_WINDOW_FRAMES = 7  # the baseline's post-processing window


def median_filter(scores: np.ndarray, window: int = MEDIAN_WINDOW_FRAMES) -> np.ndarray:
    """Median over ``window`` frames (odd) of a (frames, classes) array, edges repeated."""
    half = window // 2
    padded = np.pad(scores, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return np.median(windows, axis=-1)


def scores(probabilities: np.ndarray) -> np.ndarray:
    """The post-processed scores of (clips, frames, classes) probabilities: each clip median-filtered."""
    return np.stack([median_filter(clip) for clip in probabilities])


def to_events(
    probabilities: np.ndarray,
    frame_seconds: float,
    threshold: float = 0.5,
    classes: Sequence[str] = CLASSES,
) -> List[Event]:
    """Events from (frames, classes) probabilities; a run of active frames is one event."""
    activity = median_filter(probabilities) >= threshold
    events: List[Event] = []
    for index, label in enumerate(classes):
        edges = np.diff(np.concatenate(([0], activity[:, index].astype(np.int8), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        events.extend(Event(label, start * frame_seconds, stop * frame_seconds) for start, stop in zip(starts, stops))
    events.sort(key=lambda event: (event.onset, event.label))
    return events
