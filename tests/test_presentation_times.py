"""Variable-frame-rate and rotated videos: frames at their real presentation times, upright.

The videos are written here with PyAV. Every frame shows its own presentation time (in tenths of a
second, as 8 black/white blocks), so a decoded frame says which real instant it shows.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.data.dataset import VideoRecord
from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
from tadcli.data.probe import probe_video
from tadcli.data.synthetic import write_mp4
from tadcli.data.timeline import presentation_timeline
from tadcli.data.video import decoder_version, import_decord, open_video
from tadcli.errors import VideoError
from tadcli.inference.evaluate import evaluate_on_records
from tadcli.inference.loading import load_run_model
from tadcli.inference.plan import inference_plan
from tadcli.io.features import feature_times, read_features
from tadcli.services.prepare import prepare_dataset

FPS = 10
BITS = 8


def _time_coded_frame(tenths: int, height: int = 32, width: int = 64) -> np.ndarray:
    """A frame showing ``tenths`` in binary: block ``b`` (8 pixels wide) is white when bit ``b`` is set."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for bit in range(BITS):
        if tenths >> bit & 1:
            image[:, bit * 8 : (bit + 1) * 8] = 255
    return image


def _shown_tenths(frames: torch.Tensor) -> list[int]:
    """The time (tenths of a second) each decoded frame ``[T, H, W, 3]`` shows."""
    blocks = frames.float().mean(dim=(1, 3)).reshape(len(frames), BITS, -1).mean(dim=2)  # [T, 8] brightness
    return ((blocks > 128).long() * (2 ** torch.arange(BITS))).sum(dim=1).tolist()


def _vfr_tenths() -> list[int]:
    """Presentation times (tenths) of a video at 10 fps with a stretch at a third of the rate (4-10 s) and
    a frozen stretch (no frame from 12 s to 14 s), ending at 17.9 s."""
    return [*range(0, 40), *range(40, 100, 3), *range(100, 121), *range(140, 180)]


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    tenths = _vfr_tenths()
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    return write_mp4(path, [_time_coded_frame(t) for t in tenths], FPS, times=[t / 10 for t in tenths])


def _expected_tenths(written: list[int], num_slots: int) -> list[int]:
    """What a player shows at each 0.1 s: the last frame presented by then."""
    written = np.asarray(written)
    return [int(written[written <= slot].max()) for slot in range(num_slots)]


def test_a_variable_frame_rate_video_is_read_at_its_real_presentation_times(vfr_video, decoder):
    reader = open_video(vfr_video)
    assert reader.backend == decoder and reader.variable_frame_rate
    assert reader.fps == pytest.approx(FPS)
    assert reader.duration == pytest.approx(18.0)  # last frame at 17.9 s + one frame; 141 frames / 10 fps would say 14.1
    assert reader.num_frames == 180
    shown = _shown_tenths(reader.get_frames(np.arange(reader.num_frames)))
    # slot k shows the picture of k / 10 s: sparse and frozen stretches repeat the frame shown then
    assert shown == _expected_tenths(_vfr_tenths(), 180)


def test_decord_and_pyav_build_the_same_timeline(vfr_video):
    pytest.importorskip("decord")
    decord_reader = open_video(vfr_video, backend="decord")
    pyav_reader = open_video(vfr_video, backend="pyav")
    assert (decord_reader.fps, decord_reader.num_frames, decord_reader.duration) == (
        pyav_reader.fps,
        pyav_reader.num_frames,
        pyav_reader.duration,
    )
    slots = [179, 0, 45, 46, 47, 130, 125, 99, 99]
    assert torch.equal(decord_reader.get_frames(slots), pyav_reader.get_frames(slots))


def test_a_detection_record_of_a_vfr_video_has_its_real_duration(vfr_video, decoder):
    record = VideoRecord.from_video(vfr_video)
    assert (record.fps, record.num_frames) == (pytest.approx(FPS), 180)
    assert record.duration == pytest.approx(18.0)


def test_a_constant_rate_video_reads_frame_for_frame_as_its_decoder_gives_it(tmp_path, decoder):
    path = write_mp4(tmp_path / "cfr.mp4", [_time_coded_frame(t) for t in range(45)], FPS)
    reader = open_video(path)
    assert reader.backend == decoder and not reader.variable_frame_rate
    indices = list(range(45))
    if decoder == "decord":
        raw = import_decord().VideoReader(str(path))
        assert (reader.fps, reader.num_frames) == (raw.get_avg_fps(), len(raw))
        expected = raw.get_batch(indices).asnumpy()
    else:
        with av.open(str(path)) as container:
            expected = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert reader.duration == reader.num_frames / reader.fps
    assert np.array_equal(reader.get_frames(indices).numpy(), expected)  # bit-identical, frame i is slot i
    assert _shown_tenths(reader.get_frames(indices)) == indices


def test_timestamp_jitter_of_a_constant_rate_video_keeps_its_frames_one_to_one():
    # 30 fps stored in milliseconds: intervals of 33 and 34 ms
    times = np.floor(np.arange(300) * 1000 / 30) / 1000
    timeline = presentation_timeline(times.astype(np.float32), 30.0)
    assert not timeline.variable_frame_rate
    assert (timeline.fps, timeline.num_frames, timeline.duration) == (30.0, 300, 10.0)
    # three frames missing (a stall) is a variable frame rate: their slots repeat the frame before them
    stalled = presentation_timeline(np.delete(np.arange(300) / 30, [150, 151, 152]).astype(np.float32), 297 / 10)
    assert stalled.variable_frame_rate and (stalled.fps, stalled.num_frames) == (30.0, 300)
    assert stalled.frame_of_slot[148:155].tolist() == [148, 149, 149, 149, 149, 150, 151]


def _upright_picture() -> np.ndarray:
    """A portrait picture (64 high, 32 wide) with a red block at its top left."""
    image = np.full((64, 32, 3), 40, dtype=np.uint8)
    image[:16, :16] = (255, 0, 0)
    return image


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_rotated_phone_video_is_decoded_upright(tmp_path, rotation, decoder):
    upright = _upright_picture()
    stored = np.ascontiguousarray(np.rot90(upright, -rotation // 90))  # how the phone stores it
    path = write_mp4(tmp_path / f"rotated{rotation}.mp4", [stored] * 12, FPS, rotation=rotation)
    reader = open_video(path)
    # decord applies some rotations itself and returns corrupt frames for others: PyAV reads the file
    assert reader.backend == "pyav"
    assert (reader.rotation, reader.height, reader.width) == (rotation, 64, 32)
    frames = reader.get_frames([0, 11])
    assert frames.shape == (2, 64, 32, 3)
    assert (frames[0].float() - torch.from_numpy(upright).float()).abs().mean() < 3
    # the short side is the upright frame's: 16 px wide, 32 px high
    scaled = open_video(path, short_side=16)
    assert scaled.get_frames([3]).shape == (1, 32, 16, 3)
    red = scaled.get_frames([3])[0, :, :, 0].float()
    assert red[:8, :8].mean() > 200 and red[16:, :].mean() < 80
    if decoder == "decord":
        with pytest.raises(VideoError, match=f"rotated by {rotation} degrees"):
            open_video(path, pyav_fallback=False)


def test_probe_reports_variable_frame_rate_rotation_and_real_duration(vfr_video, tmp_path, decoder):
    probe = probe_video(vfr_video)
    assert probe.backend == decoder and probe.variable_frame_rate and probe.rotation == 0
    assert (probe.fps, probe.num_frames, probe.duration) == (pytest.approx(FPS), 180, pytest.approx(18.0))
    rotated = probe_video(write_mp4(tmp_path / "portrait.mp4", [_upright_picture()[:32]] * 4, FPS, rotation=270))
    assert rotated.rotation == 270 and not rotated.variable_frame_rate and rotated.backend == "pyav"


def test_prepare_reports_variable_frame_rate_and_rotated_videos_with_their_real_duration(vfr_video, tmp_path, decoder):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(vfr_video, videos / "phone.mp4")
    write_mp4(videos / "portrait.mp4", [_upright_picture()[:32]] * 20, FPS, rotation=90)
    annotations = tmp_path / "labels.csv"
    # the action at 15-17 s lies past the 14.1 s that counting frames at 10 fps would give
    annotations.write_text("video,start,end,label,subset\nphone,15.0,17.0,jump,train\nportrait,0.5,1.5,jump,val\n")
    out = tmp_path / "prepared"
    report = prepare_dataset("custom", annotations, videos, out)
    assert report.usable and report.issue_counts() == {"video_variable_frame_rate": 1, "video_rotated": 1}
    text = (out / "report.txt").read_text()
    assert "NOTE video_variable_frame_rate x1" in text and "train/phone: " in text
    assert "read at 10 fps, real duration 18.000 s" in text
    assert "NOTE video_rotated x1" in text and "val/portrait: " in text and "turned 90 degrees counter-clockwise" in text
    # the decoder chosen, and who read what: PyAV reads the rotated video whatever the choice
    read = "decord 1, pyav 1" if decoder == "decord" else "pyav 2"
    assert f"decoder: {decoder_version(decoder)} (TAD_DECODER=decord|pyav to change); videos read by {read}" in text
    assert json.loads((out / "report.json").read_text())["decoder"] == decoder_version(decoder)
    issues = json.loads((out / "report.json").read_text())["issues"]
    assert {issue["kind"]: issue["video_id"] for issue in issues} == {"video_variable_frame_rate": "phone", "video_rotated": "portrait"}
    phone = load_prepared_dataset(out).videos["phone"]
    assert (phone.fps, phone.num_frames, phone.duration) == (10.0, 180, 18.0)
    assert [(i.start, i.end) for i in phone.instances] == [(15.0, 17.0)]

    # probes cached by an older tad lack these fields: they are not used
    cache = out / "probe_cache.json"
    content = json.loads(cache.read_text())
    content["version"] = 3
    for probe in content["probes"].values():
        del probe["variable_frame_rate"], probe["rotation"]
    cache.write_text(json.dumps(content))
    again = prepare_dataset("custom", annotations, videos, out)
    assert (again.videos_probed, again.videos_from_cache) == (2, 0)
    assert again.issue_counts() == report.issue_counts()


def _vfr_copy(source, target, slow_from: float, slow_to: float) -> None:
    """``source`` with two of every three frames dropped between ``slow_from`` and ``slow_to`` seconds,
    every kept frame at its original presentation time (8 fps -> 8/3 fps there)."""
    with av.open(str(source)) as container:
        fps = int(container.streams.video[0].average_rate)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    slow = range(round(slow_from * fps), round(slow_to * fps))
    kept = [i for i in range(len(frames)) if i not in slow or (i - slow.start) % 3 == 0]
    write_mp4(target, [frames[i] for i in kept], fps, times=[i / fps for i in kept])


def test_the_tiny_runs_map_on_vfr_copies_stays_within_ten_percent_of_the_originals(trained_run, small_synthetic, tmp_path):
    dataset = load_prepared_dataset(small_synthetic)
    originals = records_from_prepared(dataset, "test")
    copies = []
    for record in originals:
        _vfr_copy(record.path, tmp_path / record.path.name, slow_from=4.0, slow_to=10.0)
        copy = VideoRecord.from_video(tmp_path / record.path.name, record.video_id)
        assert copy.duration == pytest.approx(record.duration, abs=1e-3)
        copies.append(replace(copy, segments=record.segments, labels=record.labels))
    config, model = load_run_model(trained_run, "cpu")
    profile = dataset.dataset_profile
    plan = inference_plan(config.preset, profile, "cpu")
    thresholds = list(profile.tiou_thresholds)

    def average_map(records) -> float:  # the code of `tad eval --run` and `tad detect`
        return evaluate_on_records(model, records, config.classes, config.preset, plan, thresholds).metrics.average_map

    original = average_map(originals)
    assert original > 0.5
    # counting frames at the average rate put every action after the slow stretch seconds early: 0.80 x
    assert average_map(copies) >= 0.9 * original


def test_extract_gives_each_feature_of_a_vfr_video_its_real_time(trained_run, vfr_video, tmp_path):
    out = tmp_path / "features"
    result = CliRunner().invoke(app, ["extract", str(vfr_video), "--run", str(trained_run), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    features, sidecar = read_features(out / "vfr.npy")
    # snippet stride 2 on the 10 fps timeline: a feature every 0.2 s over the real 18 s (not 141 frames' 14.1 s)
    assert (sidecar["fps"], sidecar["duration"], sidecar["snippet_stride"]) == (10.0, 18.0, 2)
    assert features.shape[0] == 90
    np.testing.assert_allclose(feature_times(sidecar)[[0, 1, 89]], [0.0, 0.2, 17.8])
