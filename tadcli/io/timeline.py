"""A PNG timeline of detected events (``tad detect --plot``), drawn with Pillow.

Per video, top to bottom, one panel:

- a title line: the video as given, its duration and number of events, and the legend;
- one row per class (sorted by name; the classes detected in the video, and those of its ground
  truth when given), the class name at the left and a box from each event's start to its end, whose
  shade shows the score (pale = 0, full blue = 1; higher scores drawn on top);
- with ground truth, a ground-truth row right under each class row, its instances in orange;
- a time axis in seconds, from 0 to the duration (or the latest event end, if later), with ticks
  at 1, 2 or 5 times a power of ten, at least :data:`MIN_TICK_SPACING` pixels apart.

A video with no class to show gets one empty row. Size: ``width`` by
``2 * MARGIN + sum(TITLE_HEIGHT + rows * ROW_HEIGHT + AXIS_HEIGHT) + (videos - 1) * PANEL_GAP`` pixels,
with ``rows = max(1, classes)`` per video, doubled when ground truth is given. Time ``t`` is at
``x = PLOT_LEFT + t / span * (width - MARGIN - AXIS_RIGHT_PAD - PLOT_LEFT)``. The same inputs give
the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tadcli.io.atomic import atomic_output
from tadcli.io.events import Event, VideoEvents, video_id

MARGIN = 10
LABEL_WIDTH = 150
PLOT_LEFT = MARGIN + LABEL_WIDTH
AXIS_RIGHT_PAD = 20  # room for the last tick label
TITLE_HEIGHT = 20
ROW_HEIGHT = 18
BOX_PADDING = 2  # pixels between a box and its row's edges
AXIS_HEIGHT = 24
PANEL_GAP = 16
TICK_LENGTH = 4
MIN_TICK_SPACING = 80
MIN_PLOT_WIDTH = 200
LEGEND_WIDTH = 60

BACKGROUND = (255, 255, 255)
GRID = (232, 232, 232)
AXIS = (60, 60, 60)
TEXT = (20, 20, 20)
DETECTION = (31, 119, 180)
GROUND_TRUTH = (235, 125, 20)
LOWEST_SHADE = 0.15  # weight of DETECTION in the box of a score-0 event


def plot_timeline(
    path: str | Path,
    videos: Sequence[VideoEvents],
    ground_truth: Mapping[str, Sequence[Event]] | None = None,
    width: int = 1200,
) -> Path:
    """Draw the timeline of ``videos`` and write it to ``path`` as PNG, atomically.

    Args:
        path: the PNG file.
        videos: the videos, one panel each, in this order.
        ground_truth: instances per video id (:func:`tadcli.io.events.video_id`, the file stem, as in
            annotation files); their scores are ignored. ``None``: no ground-truth rows. A video
            missing from it gets empty ground-truth rows.
        width: image width in pixels.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: no videos, or ``width`` below ``PLOT_LEFT + MIN_PLOT_WIDTH + AXIS_RIGHT_PAD + MARGIN``.
    """
    minimum_width = PLOT_LEFT + MIN_PLOT_WIDTH + AXIS_RIGHT_PAD + MARGIN
    if width < minimum_width:
        raise ValueError(f"timeline width {width} is below the minimum {minimum_width}")
    if not videos:
        raise ValueError("no videos to plot")
    panels = [_Panel(video, _video_truth(video, ground_truth), ground_truth is not None) for video in videos]
    height = 2 * MARGIN + sum(panel.height for panel in panels) + (len(panels) - 1) * PANEL_GAP
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    top = MARGIN
    for panel in panels:
        panel.draw(draw, font, top, width - MARGIN - AXIS_RIGHT_PAD)
        top += panel.height + PANEL_GAP
    with atomic_output(path) as handle:
        image.save(handle, format="PNG")
    return Path(path)


def score_shade(score: float) -> tuple[int, int, int]:
    """The fill of a detection box: :data:`DETECTION` blended into the background by the score (clipped to [0, 1])."""
    weight = LOWEST_SHADE + (1 - LOWEST_SHADE) * min(max(score, 0.0), 1.0)
    return tuple(round(b + (d - b) * weight) for b, d in zip(BACKGROUND, DETECTION))


def tick_step(span: float, plot_width: int) -> float:
    """The smallest of 1, 2, 5 x 10^k seconds that keeps ticks at least :data:`MIN_TICK_SPACING` px apart."""
    raw = span * MIN_TICK_SPACING / plot_width
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


class _Panel:
    """The layout and drawing of one video's panel."""

    def __init__(self, video: VideoEvents, truth: Sequence[Event], with_truth: bool) -> None:
        self.video = video
        self.truth = truth
        self.with_truth = with_truth
        self.classes = sorted({e.label for e in video.events} | {e.label for e in truth})
        self.rows = max(1, len(self.classes)) * (2 if with_truth else 1)
        self.height = TITLE_HEIGHT + self.rows * ROW_HEIGHT + AXIS_HEIGHT
        latest = max((e.end for e in (*video.events, *truth)), default=0.0)
        self.span = max(video.duration, latest) or 1.0

    def draw(self, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, top: int, plot_right: int) -> None:
        rows_top = top + TITLE_HEIGHT
        axis_y = rows_top + self.rows * ROW_HEIGHT
        step = tick_step(self.span, plot_right - PLOT_LEFT)
        ticks = [k * step for k in range(int(self.span / step + 1e-9) + 1)]

        def x(seconds: float) -> int:
            return round(PLOT_LEFT + seconds / self.span * (plot_right - PLOT_LEFT))

        self._draw_title(draw, font, top, plot_right)
        for tick in ticks:
            draw.line([(x(tick), rows_top), (x(tick), axis_y - 1)], fill=GRID)
        if not self.classes:
            draw.text((PLOT_LEFT + 4, rows_top + 3), "no detections", fill=TEXT, font=font)
        for index, label in enumerate(self.classes):
            row_top = rows_top + index * ROW_HEIGHT * (2 if self.with_truth else 1)
            draw.text((MARGIN, row_top + 3), _fit(draw, font, label, LABEL_WIDTH - 6), fill=TEXT, font=font)
            events = sorted((e for e in self.video.events if e.label == label), key=lambda e: e.score)
            for event in events:
                _box(draw, x(event.start), x(event.end), row_top, score_shade(event.score))
            if self.with_truth:
                truth_top = row_top + ROW_HEIGHT
                draw.text((MARGIN + 8, truth_top + 3), "ground truth", fill=GROUND_TRUTH, font=font)
                for instance in (e for e in self.truth if e.label == label):
                    _box(draw, x(instance.start), x(instance.end), truth_top, GROUND_TRUTH)
        draw.line([(PLOT_LEFT, axis_y), (plot_right, axis_y)], fill=AXIS)
        draw.text((MARGIN, axis_y + 6), "time (s)", fill=TEXT, font=font)
        for tick in ticks:
            draw.line([(x(tick), axis_y), (x(tick), axis_y + TICK_LENGTH)], fill=AXIS)
            label = f"{tick:g}"
            draw.text((x(tick) - draw.textlength(label, font=font) / 2, axis_y + TICK_LENGTH + 2), label, fill=TEXT, font=font)

    def _draw_title(self, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, top: int, plot_right: int) -> None:
        legend_left = plot_right - LEGEND_WIDTH - (110 if self.with_truth else 0)
        title = f"{self.video.video}  ({self.video.duration:g} s, {len(self.video.events)} events)"
        draw.text((MARGIN, top + 4), _fit(draw, font, title, legend_left - 60 - MARGIN), fill=TEXT, font=font)
        draw.text((legend_left - 52, top + 4), "score 0", fill=TEXT, font=font)
        for offset in range(LEGEND_WIDTH):
            draw.line([(legend_left + offset, top + 4), (legend_left + offset, top + 14)], fill=score_shade(offset / (LEGEND_WIDTH - 1)))
        draw.text((legend_left + LEGEND_WIDTH + 4, top + 4), "1", fill=TEXT, font=font)
        if self.with_truth:
            draw.rectangle([legend_left + LEGEND_WIDTH + 20, top + 4, legend_left + LEGEND_WIDTH + 30, top + 14], fill=GROUND_TRUTH)
            draw.text((legend_left + LEGEND_WIDTH + 34, top + 4), "ground truth", fill=TEXT, font=font)


def _box(draw: ImageDraw.ImageDraw, left: int, right: int, row_top: int, fill: tuple[int, int, int]) -> None:
    """A box over columns ``left..right`` (both included: a zero-length event is one pixel wide)."""
    draw.rectangle([left, row_top + BOX_PADDING, right, row_top + ROW_HEIGHT - 1 - BOX_PADDING], fill=fill)


def _video_truth(video: VideoEvents, ground_truth: Mapping[str, Sequence[Event]] | None) -> Sequence[Event]:
    return () if ground_truth is None else tuple(ground_truth.get(video_id(video.video), ()))


def _fit(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, text: str, max_width: float) -> str:
    """``text``, cut and ended with '...' where it is wider than ``max_width`` pixels."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "...", font=font) > max_width:
        text = text[:-1]
    return text + "..."
