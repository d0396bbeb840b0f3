"""The challenge's scores: PSDS1 through ``sed_scores_eval``, and event-based F1 with collars.

PSDS1 is DCASE task 4's threshold-independent metric: the area under the
polyphonic sound detection ROC, swept over every threshold of the frame scores,
with the task's first scenario (detection and ground-truth intersection criteria
0.7, no cross-trigger cost, instability across classes penalised with weight 1,
up to 100 false positives per hour), computed by the challenge's own package.

The event-based F1 is computed here as ``sed_eval.sound_event.EventBasedMetrics``
does, at one decision threshold. An estimated event is a true positive when its
class matches a reference event, its onset is within 200 ms of the reference
onset, and its offset within max(200 ms, 20 % of the reference event's length) of
the reference offset. Each reference matches at most one estimate (a maximum
bipartite matching per class and clip, as sed_eval does). The score is the
micro-average over classes and clips (sed_eval's "overall" F-score).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
from sed_scores_eval import intersection_based
from sed_scores_eval.base_modules.scores import create_score_dataframe

from .data import CLASSES, CLIP_SECONDS, Event

ONSET_COLLAR_S = 0.2
OFFSET_COLLAR_S = 0.2
OFFSET_COLLAR_RATE = 0.2
PSDS1_SCENARIO = {
    "dtc_threshold": 0.7,
    "gtc_threshold": 0.7,
    "cttc_threshold": None,
    "alpha_ct": 0.0,
    "alpha_st": 1.0,
    "max_efpr": 100.0,
}


@dataclasses.dataclass(frozen=True)
class EventCounts:
    """True positives, false positives and false negatives, and the scores they give."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def __add__(self, other: "EventCounts") -> "EventCounts":
        return EventCounts(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else 0.0

    @property
    def precision(self) -> float:
        estimated = self.true_positives + self.false_positives
        return self.true_positives / estimated if estimated else 0.0

    @property
    def recall(self) -> float:
        referenced = self.true_positives + self.false_negatives
        return self.true_positives / referenced if referenced else 0.0


def matches(reference: Event, estimate: Event) -> bool:
    """Whether ``estimate`` detects ``reference`` within the onset and offset collars."""
    offset_collar = max(OFFSET_COLLAR_S, OFFSET_COLLAR_RATE * (reference.offset - reference.onset))
    return (
        reference.label == estimate.label
        and abs(reference.onset - estimate.onset) <= ONSET_COLLAR_S
        and abs(reference.offset - estimate.offset) <= offset_collar
    )


def _maximum_matching(references: Sequence[Event], estimates: Sequence[Event]) -> int:
    """Size of a maximum matching of references to estimates (augmenting paths)."""
    candidates = [[j for j, estimate in enumerate(estimates) if matches(reference, estimate)] for reference in references]
    owner: List[Optional[int]] = [None] * len(estimates)

    def augment(i: int, seen: set) -> bool:
        for j in candidates[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] is None or augment(owner[j], seen):  # type: ignore[arg-type]
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(references)))


def clip_counts(references: Sequence[Event], estimates: Sequence[Event]) -> EventCounts:
    """Counts for one clip, matching within each class."""
    counts = EventCounts()
    for label in {event.label for event in (*references, *estimates)}:
        class_references = [event for event in references if event.label == label]
        class_estimates = [event for event in estimates if event.label == label]
        hits = _maximum_matching(class_references, class_estimates)
        counts += EventCounts(hits, len(class_estimates) - hits, len(class_references) - hits)
    return counts


def event_based_f1(references: Sequence[Sequence[Event]], estimates: Sequence[Sequence[Event]]) -> EventCounts:
    """Micro-averaged counts over clips; ``.f1`` is the event-based F1 (200 ms collar)."""
    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} reference clips but {len(estimates)} estimated clips")
    total = EventCounts()
    for clip_references, clip_estimates in zip(references, estimates):
        total += clip_counts(clip_references, clip_estimates)
    return total


def per_class_f1(references: Sequence[Sequence[Event]], estimates: Sequence[Sequence[Event]]) -> Dict[str, float]:
    """Event-based F1 of each class present in the references or estimates."""
    labels = sorted({event.label for clip in (*references, *estimates) for event in clip})
    return {
        label: event_based_f1(
            [[e for e in clip if e.label == label] for clip in references],
            [[e for e in clip if e.label == label] for clip in estimates],
        ).f1
        for label in labels
    }


def psds1(
    references: Sequence[Sequence[Event]],
    scores: np.ndarray,
    frame_seconds: float,
    clip_seconds: float = CLIP_SECONDS,
    classes: Sequence[str] = CLASSES,
) -> float:
    """PSDS1 of (clips, frames, classes) frame scores against each clip's reference events."""
    if len(references) != len(scores):
        raise ValueError(f"{len(references)} reference clips but {len(scores)} scored clips")
    clip_ids = [f"clip{index:04d}" for index in range(len(scores))]
    timestamps = np.arange(scores.shape[1] + 1) * frame_seconds
    value, *_ = intersection_based.psds(
        scores={clip: create_score_dataframe(clip_scores, timestamps, list(classes)) for clip, clip_scores in zip(clip_ids, scores)},
        ground_truth={clip: [(e.onset, e.offset, e.label) for e in events] for clip, events in zip(clip_ids, references)},
        audio_durations={clip: clip_seconds for clip in clip_ids},
        **PSDS1_SCENARIO,
    )
    return float(value)
