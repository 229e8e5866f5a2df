"""A review case for the tests of ``tad review``: real mp4 files and the ground truth the synthetic generator
writes, and predictions made from that ground truth (seeded), written by the events writer in every format."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tadcli.data.annotations import read_annotations
from tadcli.data.synthetic import VIDEO_DIRNAME, write_synthetic_videos
from tadcli.io.events import EVENT_FORMATS, Event, ModelIdentity, VideoEvents, write_events

HOSTILE_LABEL = "</script><b>x</b>"  # must reach the page as text, never end its data element


@dataclass(frozen=True)
class ReviewCase:
    videos: list[VideoEvents]  # the predictions, as written (times to 0.01 s, scores to 0.01: every format keeps them)
    truth: dict[str, list[Event]]  # video id -> instances
    annotations: Path
    events: dict[str, Path]  # format -> events file (srt: the first video's)


def write_review_case(folder: Path) -> ReviewCase:
    annotations = write_synthetic_videos(
        folder / "data", num_videos=3, num_classes=3, seed=5, height=96, width=128, fps=8,
        video_seconds=(12.0, 16.0), action_seconds=(1.5, 4.0), max_actions_per_video=3,
    )
    annotation_set = read_annotations(annotations)
    rng = random.Random(5)
    videos, truth = [], {}
    for video_id, video in annotation_set.videos.items():
        truth[video_id] = [Event(i.label, i.start, i.end, 1.0) for i in video.instances]
        events = []
        for instance in video.instances:  # a good detection of each action and a poorer, shifted one
            events.append(_event(instance.label, instance.start + rng.uniform(-0.3, 0.3),
                                 instance.end + rng.uniform(-0.3, 0.3), rng.uniform(0.6, 0.95), video.duration))
            events.append(_event(instance.label, instance.start + 0.8, instance.end + 1.5, rng.uniform(0.05, 0.45),
                                 video.duration))
        events.append(_event(rng.choice(annotation_set.classes), 0.2, 1.0, 0.3, video.duration))  # a false alarm
        if not videos:
            events.append(_event(HOSTILE_LABEL, video.duration - 2.0, video.duration - 0.5, 0.5, video.duration))
        path = folder / "data" / VIDEO_DIRNAME / f"{video_id}.mp4"
        videos.append(VideoEvents(str(path), video.duration, 8.0, tuple(sorted(events, key=lambda e: e.start))))
    model = ModelIdentity("tiny", "synthetic", tuple(annotation_set.classes), "test")
    out = folder / "detections"
    events = {}
    for format in EVENT_FORMATS:
        path = out / f"events-{format}.{'json' if format in ('json', 'activitynet') else format}"
        written = write_events(path, model, videos[:1] if format == "srt" else videos, format)
        events[format] = written[0]
    return ReviewCase(videos, truth, annotations, events)


def _event(label: str, start: float, end: float, score: float, duration: float) -> Event:
    start, end = max(0.0, round(start, 2)), min(round(duration, 2), round(end, 2))
    return Event(label, start, end, round(score, 2))
