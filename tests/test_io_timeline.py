"""The PNG timeline of ``tad detect --plot``, decoded and measured: size, boxes on the axis, shades, truth rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tadcli.io.events import Event, VideoEvents
from tadcli.io.timeline import AXIS, AXIS_HEIGHT, MARGIN, PANEL_GAP, ROW_HEIGHT, TITLE_HEIGHT, plot_timeline

VIDEO = VideoEvents(
    "clips/match.mp4", 100.0, 25.0, (Event("jump", 20.0, 45.0, 0.9), Event("jump", 60.0, 70.0, 0.3))
)
TRUTH = {"match": [Event("jump", 21.0, 44.0, 1.0)]}


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(int)  # [H, W, 3]


def axis_line(pixels: np.ndarray) -> tuple[int, int, int]:
    """(y, x at 0 s, x at the end) of the longest horizontal run of axis-coloured pixels."""
    is_axis = (pixels == AXIS).all(axis=2)
    y = int(is_axis.sum(axis=1).argmax())
    columns = np.flatnonzero(is_axis[y])
    return y, int(columns[0]), int(columns[-1])


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def test_size_follows_the_number_of_videos_and_rows(tmp_path: Path) -> None:
    other = VideoEvents("b.mp4", 10.0, 30.0, (Event("wave", 1.0, 2.0, 0.5), Event("sit", 3.0, 4.0, 0.5)))
    with Image.open(plot_timeline(tmp_path / "one.png", [VIDEO], width=900)) as image:
        assert image.size == (900, 2 * MARGIN + TITLE_HEIGHT + 1 * ROW_HEIGHT + AXIS_HEIGHT)
    with Image.open(plot_timeline(tmp_path / "two.png", [VIDEO, other], TRUTH)) as image:
        # with truth every class takes two rows; 'match' has 1 class, 'b' 2 classes (and no truth)
        panels = (TITLE_HEIGHT + 2 * ROW_HEIGHT + AXIS_HEIGHT) + (TITLE_HEIGHT + 4 * ROW_HEIGHT + AXIS_HEIGHT)
        assert image.size == (1200, 2 * MARGIN + panels + PANEL_GAP)
    empty = VideoEvents("quiet.mp4", 10.0, 30.0, ())
    with Image.open(plot_timeline(tmp_path / "empty.png", [empty])) as image:
        assert image.size == (1200, 2 * MARGIN + TITLE_HEIGHT + ROW_HEIGHT + AXIS_HEIGHT)


def test_boxes_span_their_start_and_end_on_the_axis_and_shade_shows_the_score(tmp_path: Path) -> None:
    pixels = decode(plot_timeline(tmp_path / "timeline.png", [VIDEO], TRUTH))
    axis_y, x_zero, x_end = axis_line(pixels)

    def x(seconds: float) -> float:
        return x_zero + seconds / 100.0 * (x_end - x_zero)

    blue = (pixels[..., 2] - pixels[..., 0] > 40) & (pixels[..., 2] > pixels[..., 1])
    orange = (pixels[..., 0] - pixels[..., 2] > 100) & (pixels[..., 0] > 200)
    blue[:, : x_zero - 1] = orange[:, : x_zero - 1] = False  # boxes only: not the legend or labels
    blue[: MARGIN + TITLE_HEIGHT] = orange[: MARGIN + TITLE_HEIGHT] = False

    detection_y = int(np.flatnonzero(blue.any(axis=1)).mean())
    truth_y = int(np.flatnonzero(orange.any(axis=1)).mean())
    assert detection_y < truth_y < axis_y  # the ground-truth row right under its class row
    background = pixels[detection_y, round(x(85.0))]  # no event and no tick line there

    (first, second) = runs(blue[detection_y])
    for (left, right), event in zip((first, second), VIDEO.events):
        assert abs(left - x(event.start)) <= 2 and abs(right - x(event.end)) <= 2
        assert (pixels[detection_y, left : right + 1] != background).any(axis=1).all()
    brightness = [pixels[detection_y, left : right + 1].sum(axis=1).mean() for left, right in (first, second)]
    assert brightness[0] < brightness[1] < background.sum()  # score 0.9 darker than 0.3, both darker than nothing
    (truth_run,) = runs(orange[truth_y])
    assert abs(truth_run[0] - x(21.0)) <= 2 and abs(truth_run[1] - x(44.0)) <= 2


def test_the_same_inputs_give_the_same_bytes_and_rewrites_are_atomic(tmp_path: Path) -> None:
    path = plot_timeline(tmp_path / "a.png", [VIDEO], TRUTH)
    first = path.read_bytes()
    assert plot_timeline(path, [VIDEO], TRUTH).read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_no_videos_or_a_narrow_width_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no videos"):
        plot_timeline(tmp_path / "a.png", [])
    with pytest.raises(ValueError, match="below the minimum 390"):
        plot_timeline(tmp_path / "a.png", [VIDEO], width=300)
    assert list(tmp_path.iterdir()) == []
