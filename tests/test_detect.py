"""tad detect and tad extract on real mp4 files with a run trained in the tests; one inference path with eval --run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

import tadcli
from tadcli.cli import app
from tadcli.config.loader import preset_to_yaml
from tadcli.data.annotations import read_class_list
from tadcli.data.prepared import load_prepared_dataset
from tadcli.data.transforms import EvalTransform, frames_from_decoder
from tadcli.data.video import DECODER_ENV, DECODERS, configured_decoder, decord_installed, decoder_version, open_video
from tadcli.inference.detector import events_from_detections
from tadcli.inference.loading import load_run_model
from tadcli.io.events import Event
from tadcli.io.features import read_features
from tadcli.io.rundir import read_run_config
from tadcli.io.timeline import AXIS_HEIGHT, MARGIN, PANEL_GAP, ROW_HEIGHT, TITLE_HEIGHT
from tadcli.model.postprocess import Detections

from checkpoints import opentad_names

runner = CliRunner()


def held_out_videos(dataset_dir: Path) -> list:
    return [video for video in load_prepared_dataset(dataset_dir).videos.values() if video.subset == "test"]


def tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / ((a[1] - a[0]) + (b[1] - b[0]) - inter)


def test_detect_finds_the_planted_events_in_every_format(trained_run, small_synthetic, tmp_path):
    videos = held_out_videos(small_synthetic)
    paths = [str(video.path) for video in videos]
    manifest = small_synthetic / "manifest.json"
    events_file, plot = tmp_path / "events.json", tmp_path / "timeline.png"
    result = runner.invoke(app, ["detect", *paths, "--run", str(trained_run), "--out", str(events_file),
                                 "--plot", str(plot), "--annotations", str(manifest), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    content = json.loads(events_file.read_text())
    assert content["model"]["run"] == str(trained_run) and content["model"]["classes"] == ["red_circle_moving_right", "green_square_growing"]
    assert [video["video"] for video in content["videos"]] == paths

    matched = total = 0
    for video, entry in zip(videos, content["videos"]):
        starts = [event["start"] for event in entry["events"]]
        assert starts == sorted(starts) and entry["duration"] == video.duration and entry["fps"] == video.fps
        # inside the video after rounding, never zero-length, and the readable default threshold (0.2)
        assert all(0 <= e["start"] < e["end"] <= video.duration and e["score"] >= 0.2 for e in entry["events"])
        for instance in video.instances:  # the best-scoring event of the label that overlaps the action
            overlapping = [e for e in entry["events"] if e["label"] == instance.label and e["end"] > instance.start
                           and e["start"] < instance.end]
            best = max(overlapping, key=lambda e: e["score"], default=None)
            matched += best is not None and tiou((best["start"], best["end"]), (instance.start, instance.end)) >= 0.5
            total += 1
    assert matched / total > 0.5  # most planted actions are found at tIoU 0.5

    num_events = sum(len(entry["events"]) for entry in content["videos"])
    for format, reader in (("csv", _csv_rows), ("srt", _srt_cues)):
        out = tmp_path / f"events.{format}"
        assert runner.invoke(app, ["detect", *paths, "--run", str(trained_run), "--out", str(out), "--format", format,
                                   "--device", "cpu"]).exit_code == 0
        written = sorted(tmp_path.glob(f"events*.{format}"))
        assert sum(reader(path) for path in written) == num_events, format

    # the results file of detect is the file tad eval --run writes for the same videos, so it scores the same
    results, scores = tmp_path / "results.json", tmp_path / "scores.json"
    assert runner.invoke(app, ["detect", *paths, "--run", str(trained_run), "--out", str(results), "--format",
                               "activitynet", "--device", "cpu"]).exit_code == 0
    assert runner.invoke(app, ["eval", "--predictions", str(results), "--annotations", str(manifest), "--subset", "test",
                               "--dataset", "synthetic", "--json", str(scores)]).exit_code == 0
    run_scores = tmp_path / "run_scores.json"
    assert runner.invoke(app, ["eval", "--run", str(trained_run), "--subset", "test", "--out", str(tmp_path / "eval"),
                               "--json", str(run_scores), "--device", "cpu"]).exit_code == 0
    assert results.read_bytes() == (tmp_path / "eval" / "test_results.json").read_bytes()
    assert json.loads(scores.read_text())["mAP"] == json.loads(run_scores.read_text())["mAP"]
    written = json.loads(results.read_text())["results"]
    assert sum(map(len, written.values())) > num_events  # a results file keeps every candidate (threshold 0)

    image = Image.open(plot)
    image.load()
    # rows per panel: each class detected or annotated in the video, each with its ground-truth row
    classes = [len({e["label"] for e in entry["events"]} | {i.label for i in video.instances})
               for video, entry in zip(videos, content["videos"])]
    panels = sum(TITLE_HEIGHT + 2 * count * ROW_HEIGHT + AXIS_HEIGHT for count in classes)
    assert image.size == (1200, 2 * MARGIN + panels + (len(paths) - 1) * PANEL_GAP)


def _csv_rows(path: Path) -> int:
    lines = path.read_text().splitlines()
    assert lines[0] == "video,start,end,label,score"
    return len(lines) - 1


def _srt_cues(path: Path) -> int:
    blocks = [block for block in path.read_text().strip().split("\n\n") if block]
    assert all(" --> " in block.splitlines()[1] for block in blocks)
    return len(blocks)


def test_events_stay_inside_the_video_after_rounding_and_are_never_zero_length():
    detections = Detections(
        torch.tensor([[-0.004, 3.0], [27.5, 28.9166], [28.95, 29.0], [5.0, 5.004], [1.0, 1.5]]),
        torch.tensor([0.9, 0.8, 0.7, 0.6, 0.123456]),
        torch.tensor([0, 1, 0, 1, 0]),
    )
    events = events_from_detections(detections, ["a", "b"], duration=28.9167)
    assert events == [Event("a", 0.0, 3.0, 0.9), Event("b", 27.5, 28.91, 0.8), Event("a", 1.0, 1.5, 0.1235)]


def test_the_thumos14_class_list_ships_with_tad(annotations_dir, tmp_path, monkeypatch):
    official = (annotations_dir / "thumos14" / "category_idx.txt").read_text().split()
    assert read_class_list("thumos14") == official  # the order of the released checkpoints
    monkeypatch.chdir(tmp_path)
    Path("thumos14").write_text("mine\nyours\n")  # a file of that name is read as the file it is
    assert read_class_list("thumos14") == ["mine", "yours"]


def test_unreadable_videos_are_named_and_the_others_written(trained_run, small_synthetic, tmp_path):
    good = [str(video.path) for video in held_out_videos(small_synthetic)]
    corrupt = tmp_path / "corrupt.mp4"
    data = Path(good[0]).read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])  # truncated in the middle of the frames
    text = tmp_path / "notes.mp4"
    text.write_text("these are not frames\n")
    out = tmp_path / "events.json"
    result = runner.invoke(app, ["detect", good[0], str(corrupt), str(text), good[1], "--run", str(trained_run),
                                 "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and str(corrupt) in errors[0] and str(text) in errors[1]
    assert "Traceback" not in result.output
    assert [video["video"] for video in json.loads(out.read_text())["videos"]] == [good[0], good[1]]


def test_detection_opens_each_video_once_and_finds_the_same_events_with_either_decoder(
    trained_run, small_synthetic, monkeypatch, container_opens
):
    paths = [video.path for video in held_out_videos(small_synthetic)]
    events = {}
    for decoder in [name for name in DECODERS if name != "decord" or decord_installed()]:
        monkeypatch.setenv(DECODER_ENV, decoder)
        container_opens.clear()
        results = list(tadcli.load_detector(trained_run, device="cpu").detect_many(paths))
        assert all(result.events is not None for result in results)
        events[decoder] = [result.events for result in results]
        # the window stream reads each video's timeline from the reader that decodes it: PyAV reads the header
        # (the PyAV decoder keeps that container), decord opens the file once more, for itself
        decoders_per_video = ["pyav", "decord"] if decoder == "decord" else ["pyav"]
        assert container_opens == [(name, path.name) for path in paths for name in decoders_per_video]
    # 64 x 64 videos read at 64 px: no scaling, the decoders give identical frames, so identical events
    assert len(set(map(repr, events.values()))) == 1


def test_a_run_records_its_decoder_and_older_runs_without_it_load(trained_run, tmp_path):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["decoder"] == decoder_version(configured_decoder())  # "decord 3.4.0" / "pyav 18.1.0"
    assert read_run_config(trained_run).decoder == config["decoder"]
    old = tmp_path / "old_run"
    old.mkdir()
    del config["decoder"]
    (old / "config.json").write_text(json.dumps(config))
    assert read_run_config(old).decoder is None


def test_a_released_checkpoint_and_the_run_give_the_same_events(trained_run, small_synthetic, tmp_path):
    config, model = load_run_model(trained_run)
    checkpoint = tmp_path / "adatad_tiny.pth"
    torch.save({"epoch": 30, "state_dict_ema": opentad_names(model)}, checkpoint)
    preset_file = tmp_path / "tiny-64.yaml"
    preset_file.write_text(preset_to_yaml(config.preset))
    video = held_out_videos(small_synthetic)[0].path

    from_run = tadcli.load_detector(trained_run, device="cpu").detect(video)
    from_checkpoint = tadcli.load_detector(
        checkpoint, preset=str(preset_file), classes=small_synthetic / "classes.txt", profile="synthetic", device="cpu"
    ).detect(video)
    assert from_run.events and from_checkpoint.events == from_run.events


def test_extract_writes_the_models_features_and_their_times(trained_run, small_synthetic, tmp_path):
    config, model = load_run_model(trained_run)
    video = held_out_videos(small_synthetic)[0]
    out = tmp_path / "features"
    result = runner.invoke(app, ["extract", str(video.path), "--run", str(trained_run), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    features, sidecar = read_features(out / f"{video.path.stem}.npy")

    # the same frames by hand: every 2nd frame (snippet stride 2), edge-padded to one 64-frame window
    reader = open_video(video.path, short_side=64)
    indices = np.arange(0, reader.num_frames, 2)
    steps = len(indices)
    assert steps <= 64  # these videos fit one window
    padded = np.concatenate([indices, np.full(64 - steps, indices[-1])])
    transform = EvalTransform(64)
    frames = frames_from_decoder(reader.get_frames(padded))  # [F, 3, H, W]
    frames = transform.apply(frames, transform.sample(reader.height, reader.width, np.random.default_rng(0)))
    with torch.no_grad():
        expected = model.extract_features(frames.permute(1, 0, 2, 3)[None])[0, :, :steps].T.numpy()  # [T, C]
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    assert features.shape == (steps, 128)
    assert sidecar["fps"] == video.fps and sidecar["snippet_stride"] == 2 and sidecar["frame_stride"] == 2
    assert sidecar["feature_seconds"] == [0.0, 2 / video.fps]


def test_extract_covers_a_long_video_window_by_window(trained_run, tmp_path):
    from tadcli.data.synthetic import write_synthetic_videos

    write_synthetic_videos(tmp_path / "long", num_videos=3, num_classes=2, seed=9, height=64, width=64, fps=8,
                           video_seconds=(40.0, 41.0), action_seconds=(2.0, 5.0))
    video = sorted((tmp_path / "long" / "videos").glob("*.mp4"))[0]
    out = tmp_path / "features"
    assert runner.invoke(app, ["extract", str(video), "--run", str(trained_run), "--out", str(out), "--format",
                               "safetensors", "--device", "cpu"]).exit_code == 0
    features, sidecar = read_features(out / f"{video.stem}.safetensors")
    num_frames = open_video(video).num_frames
    assert features.shape == (-(-num_frames // 2), 128) == (sidecar["num_features"], sidecar["feature_dim"])
    assert np.all(np.abs(features).sum(axis=1) > 0)  # every step filled, the tail window included


def test_detection_memory_does_not_grow_with_the_video_length(trained_run, tmp_path):
    """Peak live tensor bytes of detection on a 2-minute video vs a 15-second one (bytes, not time)."""
    from tadcli.data.synthetic import write_synthetic_videos
    from tadcli.profiling.tracker import LiveTensorMemory

    peaks = {}
    detector = tadcli.load_detector(trained_run, device="cpu")
    for seconds in (15.0, 120.0):
        folder = tmp_path / f"{seconds:g}s"
        write_synthetic_videos(folder, num_videos=3, num_classes=2, seed=5, height=64, width=64, fps=8,
                               video_seconds=(seconds, seconds + 0.01), action_seconds=(2.0, 5.0))
        video = sorted((folder / "videos").glob("*.mp4"))[0]
        with LiveTensorMemory() as tracker:
            events = detector.detect(video)
        assert events.duration > 0.9 * seconds
        peaks[seconds] = tracker.peak().total
    assert peaks[120.0] < 1.1 * peaks[15.0], peaks  # 8x longer, 8x more windows, the same memory
