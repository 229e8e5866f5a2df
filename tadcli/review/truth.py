"""Ground truth to draw beside detections: any annotation format ``tad eval`` reads, as events per video.

Instances of every subset are kept (a video is in one subset); those labelled ``Ambiguous`` are left out
where evaluation leaves them out (THUMOS14 txt, :attr:`~tadcli.data.annotations.FormatRules.drops_ambiguous`),
since they are not a class. A video is found under its id as the file spells it, or under the other spelling
of BSN's ``v_`` prefix (:func:`truth_of`), so ``v_abc.mp4`` meets ActivityNet's ``abc`` and BSN's ``v_abc``.
Instances that end before they start cannot be drawn and are an error naming the file, video and instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tadcli.data.annotations import AMBIGUOUS_LABEL, AnnotationFormat, other_bsn_spelling, read_annotations
from tadcli.errors import AnnotationError
from tadcli.io.events import Event, video_id

TRUTH_SCORE = 1.0  # the score a ground-truth instance is given as an event


def read_ground_truth_events(
    annotations: str | Path, annotation_format: AnnotationFormat | str | None = None
) -> dict[str, tuple[Event, ...]]:
    """The instances of an annotation file or folder as events (score :data:`TRUTH_SCORE`) per video id.

    Raises:
        AnnotationError: the file cannot be read, or an instance ends before it starts.
    """
    annotation_set = read_annotations(annotations, format=annotation_format)
    drop_ambiguous = annotation_set.format.rules.drops_ambiguous
    truth = {}
    for name, video in annotation_set.videos.items():
        events = []
        for index, instance in enumerate(video.instances):
            if drop_ambiguous and instance.label == AMBIGUOUS_LABEL:
                continue
            if instance.end < instance.start:
                raise AnnotationError(
                    f"{annotations}: video {name!r}: annotation {index} ({instance.label}): "
                    f"segment [{instance.start}, {instance.end}] ends before it starts"
                )
            events.append(Event(instance.label, instance.start, instance.end, TRUTH_SCORE))
        truth[name] = tuple(events)
    return truth


def truth_of(truth: Mapping[str, Sequence[Event]], video: str) -> tuple[Event, ...] | None:
    """The ground truth of ``video`` (a path or an id; see the module doc), or None when the file has none."""
    name = video_id(video)
    for key in (name, other_bsn_spelling(name)):
        if key in truth:
            return tuple(truth[key])
    return None
