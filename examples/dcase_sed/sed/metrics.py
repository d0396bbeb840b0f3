"""Event-based F1 with collars, as ``sed_eval.sound_event.EventBasedMetrics`` computes it.

An estimated event is a true positive when its class matches a reference event,
its onset is within 200 ms of the reference onset, and its offset within
max(200 ms, 20 % of the reference event's length) of the reference offset. Each
reference matches at most one estimate (a maximum bipartite matching per class
and clip, as sed_eval does). The score is the micro-average over classes and clips
(sed_eval's "overall" F-score).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

from .data import Event

ONSET_COLLAR_S = 0.2
OFFSET_COLLAR_S = 0.2
OFFSET_COLLAR_RATE = 0.2


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
