"""The video reader: decord and the PyAV fallback agree frame for frame; bad files are VideoErrors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tadcli.data.synthetic import write_mp4
from tadcli.data.video import open_video, scaled_size
from tadcli.errors import VideoError

FPS = 10
NUM_FRAMES = 45


def _frames(num_frames: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames whose content identifies them: a bright column at x = index and noise."""
    rng = np.random.default_rng(0)
    frames = []
    for index in range(num_frames):
        image = rng.integers(0, 120, size=(height, width, 3), dtype=np.uint8)
        image[:, index % width] = 255
        frames.append(image)
    return frames


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    # gop = fps: key frames at 0, 10, 20, ... so reads of later frames seek
    return write_mp4(tmp_path_factory.mktemp("video") / "clip.mp4", _frames(NUM_FRAMES), FPS)


def test_reader_reports_fps_frames_and_duration(video_path):
    for backend in ("decord", "pyav"):
        reader = open_video(video_path, backend=backend)
        assert reader.backend == backend
        assert reader.fps == pytest.approx(FPS)
        assert reader.num_frames == NUM_FRAMES
        assert reader.duration == pytest.approx(NUM_FRAMES / FPS)
        assert (reader.height, reader.width) == (48, 64)


def test_decord_and_pyav_return_the_same_frames(video_path):
    # unsorted, repeated, crossing key frames, and the last frame
    indices = [44, 3, 3, 17, 0, 21, 30, 44, 9, 10]
    decord_frames = open_video(video_path, backend="decord").get_frames(indices)
    pyav_frames = open_video(video_path, backend="pyav").get_frames(indices)
    assert decord_frames.dtype == torch.uint8 and decord_frames.shape == (len(indices), 48, 64, 3)
    # both wrap FFmpeg's H.264 decoder and its RGB conversion: identical output, not just close
    assert torch.equal(decord_frames, pyav_frames)
    # and the frames are the right ones: the bright column sits at x = index
    bright_column = decord_frames.float().mean(dim=(1, 3)).argmax(dim=1)
    assert bright_column.tolist() == indices


def test_pyav_reads_every_frame_in_order_like_decord(video_path):
    everything = list(range(NUM_FRAMES))
    assert torch.equal(
        open_video(video_path, backend="pyav").get_frames(everything),
        open_video(video_path, backend="decord").get_frames(everything),
    )


def test_short_side_scaling_in_the_decoder(video_path):
    assert scaled_size(720, 1280, 182) == (182, 324)
    assert scaled_size(1280, 720, 160) == (284, 160)
    for backend in ("decord", "pyav"):
        reader = open_video(video_path, short_side=24, backend=backend)
        frames = reader.get_frames([5, 6])
        assert frames.shape == (2, 24, 32, 3)
        assert (reader.height, reader.width) == (24, 32)
    # the two scalers may interpolate differently, but the picture is the same
    difference = (
        open_video(video_path, short_side=24, backend="decord").get_frames([5]).float()
        - open_video(video_path, short_side=24, backend="pyav").get_frames([5]).float()
    )
    assert difference.abs().mean() < 8


def test_auto_falls_back_to_pyav_when_decord_is_missing(video_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    reader = open_video(video_path)
    assert reader.backend == "pyav"
    assert reader.get_frames([7]).shape == (1, 48, 64, 3)


def test_auto_retries_a_failed_decord_read_with_pyav(video_path, monkeypatch):
    reader = open_video(video_path)
    assert reader.backend == "decord"
    expected = reader.get_frames([12, 13])

    def broken_get_frames(indices):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(reader._decoder, "get_frames", broken_get_frames)
    assert torch.equal(reader.get_frames([12, 13]), expected)
    assert reader.backend == "pyav"


def test_corrupt_file_is_a_video_error_naming_it(tmp_path):
    corrupt = tmp_path / "broken_clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(VideoError, match="broken_clip.mp4"):
        open_video(corrupt)


def test_truncated_file_is_a_video_error_naming_it(video_path, tmp_path):
    truncated = tmp_path / "cut_short.mp4"
    truncated.write_bytes(video_path.read_bytes()[:2000])
    with pytest.raises(VideoError, match="cut_short.mp4"):
        open_video(truncated).get_frames(list(range(NUM_FRAMES)))


def test_missing_file_and_bad_indices_are_video_errors(video_path, tmp_path):
    with pytest.raises(VideoError, match="nowhere.mp4"):
        open_video(tmp_path / "nowhere.mp4")
    with pytest.raises(VideoError, match=r"clip.mp4: frame indices \[0, 45\] outside \[0, 45\)"):
        open_video(video_path).get_frames([0, 45])


def test_mpeg4_fallback_codec_is_read_alike_by_both_decoders(tmp_path):
    # write_mp4 falls back to MPEG-4 Part 2 when PyAV's FFmpeg lacks libx264
    path = write_mp4(tmp_path / "mpeg4.mp4", _frames(20), FPS, codec="mpeg4")
    indices = [19, 0, 7, 7, 12]
    decord_frames = open_video(path, backend="decord").get_frames(indices)
    assert torch.equal(decord_frames, open_video(path, backend="pyav").get_frames(indices))
    assert decord_frames.float().mean(dim=(1, 3)).argmax(dim=1).tolist() == indices
