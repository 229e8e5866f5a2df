"""The review page: one self-contained HTML file showing a video beside its detections (``tad review``,
``tad detect --html``).

The page is :data:`TEMPLATE` (``page.html`` beside this module: inline CSS and JavaScript, no network resource,
works from ``file://``) with the title and the data filled in. The data is one JSON object in a
``<script type="application/json">`` element, its ``<``, ``>`` and ``&`` written as ``\\u`` escapes so that no
text in it (a ``</script>`` in a class name) can end the element::

    {"title": "events.json", "hasTruth": true, "classes": ["jump", "wave"],
     "videos": [{"name": "clips/a.mp4", "src": "../clips/a.mp4", "duration": 12.0,
                 "predictions": [{"label": "jump", "start": 1.5, "end": 4.0, "score": 0.93}],
                 "truth": [{"label": "jump", "start": 1.4, "end": 4.2, "score": 1.0}]}]}

``src`` is the video file as a URL relative to the page's folder (the video is linked, not embedded; moving the
page and the videos together keeps it working), ``null`` when the file is unknown (the page then shows the
timeline alone); ``duration`` may be ``null`` (the page takes the video's, or the latest event end); ``truth`` is
``null`` without ground truth. Classes are in sorted order.

What the page draws: per video (a selector when there are several), one timeline row per class with its
predictions, shaded by score, and a ground-truth row beneath when ground truth was given; a playhead that
follows the video. Each drawn event is an element with ``data-kind`` (``prediction`` or ``truth``),
``data-start``, ``data-end`` (seconds), ``data-label`` and ``data-score`` (1 for ground truth), so scripts can
read the page. A score slider hides the predictions below it, checkboxes hide classes, a click on an event seeks
the video to its start, Space plays and pauses, N / P (or the arrow keys) go to the next / previous shown
prediction.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from tadcli.io.atomic import write_text_atomic
from tadcli.io.events import Event

TEMPLATE = "page.html"
TITLE_MARK = "__TAD_REVIEW_TITLE__"
DATA_MARK = "__TAD_REVIEW_DATA__"
# JSON text that can sit inside a <script> element: no '<' (so no '</script>' or '<!--'), '>' or '&' as written
SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@dataclass(frozen=True)
class ReviewVideo:
    """One video of the page.

    Attributes:
        name: the video as the events file names it (shown in the page).
        file: the video file, linked from the page; None when it is not known.
        duration: seconds, when known.
        predictions: the detected events.
        truth: the ground-truth instances as events; None without ground truth.
    """

    name: str
    file: Path | None
    duration: float | None
    predictions: tuple[Event, ...]
    truth: tuple[Event, ...] | None = None


def review_page(videos: Sequence[ReviewVideo], page: str | Path, title: str) -> str:
    """The HTML text of the review page of ``videos``, to be written at ``page`` (links are relative to its
    folder); ``title`` names what is reviewed (the events file)."""
    folder = Path(page).absolute().parent
    classes = sorted({event.label for video in videos for event in (*video.predictions, *(video.truth or ()))})
    content = {
        "title": title,
        "hasTruth": any(video.truth is not None for video in videos),
        "classes": classes,
        "videos": [
            {
                "name": video.name,
                "src": _relative_url(video.file, folder) if video.file is not None else None,
                "duration": video.duration,
                "predictions": [_event_entry(event) for event in video.predictions],
                "truth": [_event_entry(event) for event in video.truth] if video.truth is not None else None,
            }
            for video in videos
        ],
    }
    data = json.dumps(content, allow_nan=False, ensure_ascii=False).translate(SCRIPT_SAFE)
    template = files("tadcli.review").joinpath(TEMPLATE).read_text(encoding="utf-8")
    filled = {TITLE_MARK: html.escape(title), DATA_MARK: data}
    return re.sub(f"{TITLE_MARK}|{DATA_MARK}", lambda mark: filled[mark.group()], template)  # one pass: no mark in a value is filled


def write_review_page(path: str | Path, videos: Sequence[ReviewVideo], title: str) -> Path:
    """Write the review page of ``videos`` to ``path`` atomically (:func:`review_page`); returns ``path``."""
    return write_text_atomic(path, review_page(videos, path, title))


def _relative_url(file: Path, folder: Path) -> str:
    """The URL of ``file`` relative to ``folder`` (``../clips/a%20b.mp4``)."""
    return quote(Path(os.path.relpath(file.absolute(), folder)).as_posix())


def _event_entry(event: Event) -> dict:
    return {"label": event.label, "start": event.start, "end": event.end, "score": event.score}
