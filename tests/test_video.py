"""The video reader on both decoders (the ``decoder`` fixture sets TAD_DECODER): decord and PyAV agree frame for
frame at the source size; each video is opened once; bad files are VideoErrors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.data.dataset import TrainWindowDataset, VideoRecord
from tadcli.data.probe import probe_video
from tadcli.data.synthetic import write_mp4
from tadcli.data.transforms import EvalTransform
from tadcli.data.video import (
    DECODER_ENV,
    configured_decoder,
    decoder_version,
    decord_installed,
    import_decord,
    open_video,
    scaled_size,
)
from tadcli.errors import TadError, VideoError

from conftest import error_line

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


def test_reader_reports_fps_frames_and_duration(video_path, decoder):
    reader = open_video(video_path)  # the decoder TAD_DECODER names
    assert reader.backend == decoder
    assert reader.fps == pytest.approx(FPS)
    assert reader.num_frames == NUM_FRAMES
    assert reader.duration == pytest.approx(NUM_FRAMES / FPS)
    assert (reader.height, reader.width, reader.rotation, reader.declared_frames) == (48, 64, 0, NUM_FRAMES)


def test_frames_are_the_right_ones_in_any_order(video_path, decoder):
    # unsorted, repeated, crossing key frames, and the last frame
    indices = [44, 3, 3, 17, 0, 21, 30, 44, 9, 10]
    frames = open_video(video_path).get_frames(indices)
    assert frames.dtype == torch.uint8 and frames.shape == (len(indices), 48, 64, 3)
    bright_column = frames.float().mean(dim=(1, 3)).argmax(dim=1)  # the bright column sits at x = index
    assert bright_column.tolist() == indices


def test_decord_and_pyav_return_the_same_frames(video_path):
    pytest.importorskip("decord")
    indices = [44, 3, 3, 17, 0, 21, 30, 44, 9, 10]
    decord_frames = open_video(video_path, backend="decord").get_frames(indices)
    # both wrap FFmpeg's H.264 decoder and its RGB conversion: identical output, not just close
    assert torch.equal(decord_frames, open_video(video_path, backend="pyav").get_frames(indices))
    everything = list(range(NUM_FRAMES))
    assert torch.equal(
        open_video(video_path, backend="pyav").get_frames(everything),
        open_video(video_path, backend="decord").get_frames(everything),
    )


def test_short_side_scaling_in_the_decoder(video_path, decoder):
    assert scaled_size(720, 1280, 182) == (182, 324)
    assert scaled_size(1280, 720, 160) == (284, 160)
    reader = open_video(video_path, short_side=30)
    frames = reader.get_frames([5, 6])
    assert reader.backend == decoder
    assert frames.shape == (2, 30, 40, 3) and (reader.height, reader.width) == (30, 40)
    assert frames.float().mean(dim=(1, 3)).argmax(dim=1).tolist() == [round(5 * 40 / 64), round(6 * 40 / 64)]


def test_scaled_frames_of_decord_and_pyav_differ_by_their_filters_only(video_path):
    # the decoders' scalers filter differently (decord 0.6 bilinear like PyAV, decord2 bicubic); measured on
    # this pixel-noise video (short side 48 -> 30), in grey levels: mean 1.22 / max 11 for decord 0.6.0,
    # mean 3.27 / max 22 for decord2 3.4.0 (at the source size both are identical, above)
    pytest.importorskip("decord")
    indices = list(range(0, NUM_FRAMES, 4))
    difference = (
        open_video(video_path, short_side=30, backend="decord").get_frames(indices).float()
        - open_video(video_path, short_side=30, backend="pyav").get_frames(indices).float()
    ).abs()
    assert difference.mean() < 4 and difference.max() < 32


def test_decord2_widths_it_malforms_are_read_with_pyav(video_path):
    if not decord_installed():
        pytest.skip("decord is not installed")
    decord = import_decord()
    if decord.__version__.startswith("0."):
        pytest.skip("decord 0.6 returns these widths well")
    reader = open_video(video_path, short_side=24, backend="decord")  # 24 x 32: decord2 would give 6 channels
    assert reader.backend == "pyav" and reader.get_frames([5]).shape == (1, 24, 32, 3)
    with pytest.raises(VideoError, match="malformed frames 32 pixels wide"):
        open_video(video_path, short_side=24, backend="decord", pyav_fallback=False)


def test_without_decord_pyav_reads_and_asking_for_decord_is_an_error(video_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    monkeypatch.delenv(DECODER_ENV, raising=False)
    reader = open_video(video_path)
    assert reader.backend == "pyav"
    assert reader.get_frames([7]).shape == (1, 48, 64, 3)
    monkeypatch.setenv(DECODER_ENV, "decord")
    with pytest.raises(TadError, match="TAD_DECODER=decord: decord is not installed"):
        open_video(video_path)


def test_an_unknown_decoder_is_one_line_naming_the_valid_ones(video_path, monkeypatch):
    monkeypatch.setenv(DECODER_ENV, "ffmpeg")
    with pytest.raises(TadError, match="TAD_DECODER='ffmpeg': unknown video decoder; use one of: decord, pyav"):
        configured_decoder()
    result = CliRunner().invoke(app, ["detect", str(video_path), "--checkpoint", "none.pth", "--out", "-"])
    assert "TAD_DECODER='ffmpeg': unknown video decoder" in error_line(result)


def test_a_failed_decord_read_is_retried_with_pyav(video_path, monkeypatch):
    pytest.importorskip("decord")
    reader = open_video(video_path, backend="decord")
    assert reader.backend == "decord"
    expected = reader.get_frames([12, 13])

    def broken_get_frames(indices):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(reader._decoder, "get_frames", broken_get_frames)
    assert torch.equal(reader.get_frames([12, 13]), expected)
    assert reader.backend == "pyav"


def test_probe_and_training_windows_open_each_video_once(video_path, decoder, container_opens):
    # PyAV reads the header (size, rotation); the PyAV decoder keeps that container, decord opens its own
    one_open = [("pyav", "clip.mp4")] + ([("decord", "clip.mp4")] if decoder == "decord" else [])
    probe = probe_video(video_path)
    assert probe.backend == decoder and probe.num_frames == NUM_FRAMES
    assert container_opens == one_open
    container_opens.clear()
    record = VideoRecord(video_id="clip", path=video_path, fps=FPS, num_frames=NUM_FRAMES, duration=NUM_FRAMES / FPS,
                         segments=np.array([[1.0, 2.5]]), labels=np.zeros(1, dtype=np.int64))
    dataset = TrainWindowDataset([record], window_size=8, scale_factor=2, frame_stride=2, sampling="sliding",
                                 trunc_thresh=0.5, crop_ratio=None, transform=EvalTransform(32), short_side=32)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        assert dataset[0].frames.shape == (3, 16, 32, 32)
    assert container_opens == one_open


def test_corrupt_file_is_a_video_error_naming_it(tmp_path, decoder):
    corrupt = tmp_path / "broken_clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(VideoError, match="broken_clip.mp4"):
        open_video(corrupt)


def test_truncated_file_is_a_video_error_naming_it(video_path, tmp_path, decoder):
    truncated = tmp_path / "cut_short.mp4"
    truncated.write_bytes(video_path.read_bytes()[:2000])
    with pytest.raises(VideoError, match="cut_short.mp4"):
        open_video(truncated).get_frames(list(range(NUM_FRAMES)))


def test_missing_file_and_bad_indices_are_video_errors(video_path, tmp_path, decoder):
    with pytest.raises(VideoError, match="nowhere.mp4"):
        open_video(tmp_path / "nowhere.mp4")
    with pytest.raises(VideoError, match=r"clip.mp4: frame indices \[0, 45\] outside \[0, 45\)"):
        open_video(video_path).get_frames([0, 45])


def test_mpeg4_fallback_codec_is_read_alike_by_both_decoders(tmp_path):
    # write_mp4 falls back to MPEG-4 Part 2 when PyAV's FFmpeg lacks libx264
    pytest.importorskip("decord")
    path = write_mp4(tmp_path / "mpeg4.mp4", _frames(20), FPS, codec="mpeg4")
    indices = [19, 0, 7, 7, 12]
    decord_frames = open_video(path, backend="decord").get_frames(indices)
    assert torch.equal(decord_frames, open_video(path, backend="pyav").get_frames(indices))
    assert decord_frames.float().mean(dim=(1, 3)).argmax(dim=1).tolist() == indices


def test_the_decoder_option_chooses_the_decoder_of_a_command(video_path, tmp_path, monkeypatch):
    monkeypatch.setenv(DECODER_ENV, "")  # unset for tad; restored after the test (the option sets it)
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        shutil.copy(video_path, videos / f"{name}.mp4")
    annotations = tmp_path / "labels.csv"
    annotations.write_text("video,start,end,label,subset\na,1.0,2.0,jump,train\nb,1.0,2.0,jump,val\n")
    command = ["prepare", "custom", "--annotations", str(annotations), "--videos", str(videos), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*command, "--decoder", "pyav"])
    assert result.exit_code == 0, result.output
    assert f"decoder: {decoder_version('pyav')} (TAD_DECODER=decord|pyav to change); videos read by pyav 2" in result.output
    assert "--decoder='gpu': unknown video decoder; use one of: decord, pyav" in error_line(
        CliRunner().invoke(app, [*command, "--decoder", "gpu"])
    )


def test_decord_is_imported_without_the_cuda_blas_that_takes_over_cpu_matrix_products():
    # decord2 loads every library of the nvidia pip packages (a CUDA torch installs them, libnvblas among them)
    # into the global namespace on import: a CPU matrix product after that crashed the process
    if not decord_installed():
        pytest.skip("decord is not installed")
    script = (
        "from tadcli.data.video import import_decord\n"
        "import_decord()\n"
        "import torch\n"
        "weight = torch.ones(64, 64)\n"
        "print(float(torch.nn.functional.linear(weight, weight).sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(64.0 ** 3) and "NVBLAS" not in done.stdout + done.stderr
