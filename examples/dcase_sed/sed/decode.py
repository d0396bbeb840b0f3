"""Frame probabilities to events: threshold, median filter, then runs of active frames."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .data import CLASSES, Event

MEDIAN_WINDOW_FRAMES = 7  # the baseline's post-processing window


def median_filter(activity: np.ndarray, window: int = MEDIAN_WINDOW_FRAMES) -> np.ndarray:
    """Median over ``window`` frames (odd) of a (frames, classes) 0/1 array, edges repeated."""
    half = window // 2
    padded = np.pad(activity, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return np.median(windows, axis=-1)


def to_events(
    probabilities: np.ndarray,
    frame_seconds: float,
    threshold: float = 0.5,
    classes: Sequence[str] = CLASSES,
) -> List[Event]:
    """Events from (frames, classes) probabilities; a run of active frames is one event."""
    activity = median_filter((probabilities >= threshold).astype(np.float32)) > 0.5
    events: List[Event] = []
    for index, label in enumerate(classes):
        edges = np.diff(np.concatenate(([0], activity[:, index].astype(np.int8), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        events.extend(Event(label, start * frame_seconds, stop * frame_seconds) for start, stop in zip(starts, stops))
    events.sort(key=lambda event: (event.onset, event.label))
    return events
