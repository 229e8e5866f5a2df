"""The synthetic dataset: deterministic for a seed, different for another, readable, and its actions are
visible where the annotation says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tadcli.data.annotations import read_annotations
from tadcli.data.synthetic import ACTION_CLASSES, VIDEO_DIRNAME, write_synthetic_videos
from tadcli.data.video import open_video
from tadcli.errors import DatasetError

SMALL = dict(
    num_videos=4,
    num_classes=3,
    height=48,
    width=64,
    fps=8,
    video_seconds=(5.0, 7.0),
    action_seconds=(1.0, 2.0),
    max_actions_per_video=2,
)


def _decoded(annotation_file) -> dict[str, torch.Tensor]:
    video_dir = annotation_file.parent / VIDEO_DIRNAME
    frames = {}
    for path in sorted(video_dir.glob("*.mp4")):
        reader = open_video(path)
        frames[path.stem] = reader.get_frames(range(reader.num_frames))
    return frames


@pytest.fixture(scope="module")
def seed_7(tmp_path_factory):
    return write_synthetic_videos(tmp_path_factory.mktemp("seed7"), seed=7, **SMALL)


def test_same_seed_gives_the_same_annotations_and_frames(seed_7, tmp_path):
    again = write_synthetic_videos(tmp_path, seed=7, **SMALL)
    assert again.read_bytes() == seed_7.read_bytes()
    first, second = _decoded(seed_7), _decoded(again)
    assert first.keys() == second.keys() and len(first) == 4
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_another_seed_gives_another_dataset(seed_7, tmp_path):
    other = write_synthetic_videos(tmp_path, seed=8, **SMALL)
    assert other.read_bytes() != seed_7.read_bytes()
    first, second = _decoded(seed_7), _decoded(other)
    assert not any(first[name].shape == second[name].shape and torch.equal(first[name], second[name]) for name in first)


def test_annotations_follow_the_custom_schema_with_three_subsets(seed_7):
    annotations = read_annotations(seed_7)
    assert annotations.format == "custom-json"
    assert annotations.classes == [spec.name for spec in ACTION_CLASSES[:3]]
    assert sorted(annotations.subsets()) == ["test", "train", "val"]
    for video in annotations.videos.values():
        reader = open_video(seed_7.parent / VIDEO_DIRNAME / f"{video.video_id}.mp4")
        assert reader.fps == video.fps == 8
        assert reader.duration == pytest.approx(video.duration)
        assert 5.0 <= video.duration <= 7.0 and 1 <= len(video.instances) <= 2
        ends = [0.0]
        for instance in sorted(video.instances, key=lambda i: i.start):
            assert 1.0 <= instance.end - instance.start <= 2.0 + 1 / 8
            assert instance.start >= ends[-1] + 0.5 - 1e-9  # non-overlapping, half a second apart
            ends.append(instance.end)
        assert ends[-1] <= video.duration


def test_actions_are_visible_exactly_during_their_segments(seed_7):
    content = json.loads(seed_7.read_text())
    frames = _decoded(seed_7)
    for video in content["videos"]:
        images = frames[video["video"]].int()  # [T, H, W, 3]
        saturated = ((images.max(dim=-1).values - images.min(dim=-1).values) > 150).flatten(1).sum(dim=1)
        expected = torch.zeros(len(images), dtype=torch.bool)
        for action in video["annotations"]:
            expected[round(action["start"] * 8) : round(action["end"] * 8)] = True
        assert torch.equal(saturated > 5, expected), video["video"]


def test_every_class_has_its_own_shape_colour_and_motion():
    assert len({spec.shape for spec in ACTION_CLASSES}) == len(ACTION_CLASSES)
    assert len({spec.motion for spec in ACTION_CLASSES}) == len(ACTION_CLASSES)
    colours = np.array([spec.colour for spec in ACTION_CLASSES], dtype=float)
    distances = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    assert distances[~np.eye(len(colours), dtype=bool)].min() > 90
    # the four default classes are far apart in colour
    assert distances[:4, :4][~np.eye(4, dtype=bool)].min() > 200


def test_arguments_out_of_range_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="num_classes"):
        write_synthetic_videos(tmp_path, num_classes=len(ACTION_CLASSES) + 1)
    with pytest.raises(DatasetError, match="num_videos"):
        write_synthetic_videos(tmp_path, num_videos=2)
    with pytest.raises(DatasetError, match="action_seconds"):
        write_synthetic_videos(tmp_path, video_seconds=(3.0, 4.0), action_seconds=(1.0, 6.0))
