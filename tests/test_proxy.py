"""Proxy videos (``tad prepare --proxy``) and loader sizing: real mp4 files written here, real prepared datasets.

The sources are 128x96 at 24 fps; the proxies serve the ``tiny`` preset on the custom protocol (snippet stride
4, scale factor 1): 64 px short side, one source frame in 4, so 6 fps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.config.loader import load_preset
from tadcli.config.profiles import get_profile
from tadcli.data.checks import IssueKind
from tadcli.data.loader import training_workers
from tadcli.data.pipeline import train_dataset, window_geometry
from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
from tadcli.data.proxy import build_proxies, proxy_settings, proxy_use
from tadcli.data.synthetic import write_mp4
from tadcli.data.video import open_video
from tadcli.services.prepare import check_dataset, prepare_dataset

from conftest import FAST_TINY, error_line

FPS = 24
SECONDS = 3.0
STEP = 4  # tiny on the custom protocol reads 1 frame in 4
VIDEOS = {"clip_a": ("train", 1), "clip_b": ("train", 2), "clip_c": ("val", 3)}
runner = CliRunner()


def _frame(index: int, seed: int) -> np.ndarray:
    """A frame whose brightness says its index (steps of 3 levels) over seeded noise: the proxy's frame k must
    look like source frame k * STEP."""
    rng = np.random.default_rng([seed, index])
    noise = rng.integers(0, 24, (96, 128, 3), dtype=np.uint8)
    return (noise + np.uint8(3 * index % 200)).astype(np.uint8)


def _write_source(path: Path, seed: int) -> Path:
    return write_mp4(path, (_frame(i, seed) for i in range(round(SECONDS * FPS))), FPS)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    """(annotations CSV, video folder) of a custom dataset: two training videos and one validation video."""
    root = tmp_path_factory.mktemp("proxy_sources")
    videos = root / "videos"
    videos.mkdir()
    rows = ["video,start,end,label,subset"]
    for video_id, (subset, seed) in VIDEOS.items():
        _write_source(videos / f"{video_id}.mp4", seed)
        rows += [f"{video_id},0.5,1.5,jump,{subset}", f"{video_id},1.75,2.6,wave,{subset}"]
    annotations = root / "annotations.csv"
    annotations.write_text("\n".join(rows) + "\n")
    return annotations, videos


@pytest.fixture(scope="module")
def original(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("original") / "data"
    assert prepare_dataset("custom", *sources, out).usable
    return out


@pytest.fixture(scope="module")
def proxied(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proxied") / "data"
    report = prepare_dataset("custom", *sources, out, proxy=True, proxy_presets=["tiny"])
    assert report.usable, report.summary()
    return out


def test_proxies_have_the_presets_short_side_and_frame_rate(proxied: Path, sources) -> None:
    dataset = load_prepared_dataset(proxied)
    assert (dataset.proxy.short_side, dataset.proxy.frame_step, dataset.proxy.presets) == (64, STEP, ["tiny"])
    for video in dataset.videos.values():
        # the original's timeline is kept: times are its seconds
        assert (video.fps, video.num_frames, video.duration, video.short_side) == (FPS, 72, SECONDS, 96)
        proxy = open_video(video.proxy.path)
        assert (proxy.height, proxy.width) == (64, 86)
        assert proxy.fps == pytest.approx(FPS / STEP)
        assert proxy.num_frames == math.ceil(72 / STEP) == video.proxy.num_frames
        source = open_video(video.path)
        for k in (0, 5, 17):  # proxy frame k is the picture of source frame k * STEP
            proxy_level = proxy.get_frames([k]).float().mean()
            source_level = source.get_frames([k * STEP]).float().mean()
            assert abs(proxy_level - source_level) < 2.0, (video.video_id, k)
    assert sorted(p.name for p in (sources[1]).iterdir()) == ["clip_a.mp4", "clip_b.mp4", "clip_c.mp4"]  # untouched
    assert not (proxied.parent / ".data.tad-proxies").exists()  # the work folder is gone once the dataset holds them


def test_a_rerun_keeps_finished_proxies_and_redoes_a_changed_source(sources, tmp_path: Path) -> None:
    annotations, videos = sources
    settings = proxy_settings(["tiny"], get_profile("custom"))
    work = tmp_path / "proxies"
    jobs = {path.stem: (path, 96) for path in sorted(videos.iterdir())}
    first = build_proxies(jobs, work, settings, workers=2)
    assert (first.made, first.reused, first.failed) == (3, 0, {})
    # an interrupted run leaves a temporary file and a proxy whose sidecar was not written yet
    (work / ".clip_b.mp4.abc.tmp").write_bytes(b"partial")
    (work / "clip_b.json").unlink()
    kept = (work / "clip_a.mp4").stat().st_ino
    stat = (videos / "clip_c.mp4").stat()
    os.utime(videos / "clip_c.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the source changed
    progress = []
    second = build_proxies(jobs, work, settings, workers=2, progress=lambda *args: progress.append(args))
    assert (second.made, second.reused) == (2, 1)  # clip_b (no sidecar) and clip_c (changed source)
    assert (work / "clip_a.mp4").stat().st_ino == kept
    assert not (work / ".clip_b.mp4.abc.tmp").exists()
    assert progress[0] == ("transcoding proxies", 1, 3) and progress[-1] == ("transcoding proxies", 3, 3)


def test_prepare_again_reuses_the_datasets_proxies_and_check_finds_a_missing_one(sources, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert prepare_dataset("custom", *sources, out, proxy=True, proxy_presets=["tiny"]).usable
    before = {p.name: p.stat().st_ino for p in (out / "proxies").glob("*.mp4")}
    assert prepare_dataset("custom", *sources, out, proxy=True, proxy_presets=["tiny"]).usable
    after = {p.name: p.stat().st_ino for p in (out / "proxies").glob("*.mp4")}
    assert before == after and len(after) == 3  # linked, not transcoded again
    assert check_dataset(out).usable
    (out / "proxies" / "clip_b.mp4").unlink()
    report = check_dataset(out)
    assert not report.usable
    assert [(i.kind, i.video_id) for i in report.failing_issues()] == [(IssueKind.PROXY_STALE, "clip_b")]


def test_ctrl_c_keeps_finished_proxies_and_a_rerun_resumes(sources, tmp_path: Path) -> None:
    out, work = tmp_path / "data", tmp_path / ".data.tad-proxies"

    def interrupt(description: str, done: int, total: int) -> None:  # Ctrl-C once the first proxy is done
        if description == "transcoding proxies" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("custom", *sources, out, proxy=True, proxy_presets=["tiny"], workers=1, progress=interrupt)
    assert not out.exists()  # the dataset is put in place only when complete
    finished = {p.stem for p in work.glob("*.json")}
    assert finished and finished == {p.stem for p in work.glob("*.mp4")} and not list(work.glob(".*"))
    inodes = {name: (work / f"{name}.mp4").stat().st_ino for name in finished}
    seen = []
    report = prepare_dataset(
        "custom", *sources, out, proxy=True, proxy_presets=["tiny"], progress=lambda *a: seen.append(a)
    )
    assert report.usable
    assert [a for a in seen if a[0] == "transcoding proxies"][0] == ("transcoding proxies", len(finished), 3)
    assert {name: (out / "proxies" / f"{name}.mp4").stat().st_ino for name in finished} == inodes
    assert len(list((out / "proxies").glob("*.mp4"))) == 3 and not work.exists()


def test_an_undecodable_video_is_named_and_left_out(sources, tmp_path: Path) -> None:
    annotations, videos = sources
    broken = tmp_path / "videos"
    broken.mkdir()
    for path in videos.iterdir():
        os.link(path, broken / path.name)
    (broken / "clip_d.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    rows = annotations.read_text() + "clip_d,0.5,1.5,jump,train\n"
    (tmp_path / "annotations.csv").write_text(rows)
    report = prepare_dataset(
        "custom", tmp_path / "annotations.csv", broken, tmp_path / "data", proxy=True, proxy_presets=["tiny"]
    )
    assert report.usable
    assert any(issue.video_id == "clip_d" and "clip_d.mp4" in issue.detail for issue in report.issues)
    dataset = load_prepared_dataset(tmp_path / "data")
    assert "clip_d" not in dataset.videos and not (tmp_path / "data" / "proxies" / "clip_d.mp4").exists()
    # the transcoder names a file it cannot decode
    run = build_proxies({"clip_d": (broken / "clip_d.mp4", None)}, tmp_path / "p", dataset.proxy, workers=1)
    assert run.proxies == {} and "MP4 without its index" in run.failed["clip_d"]


def test_windows_from_proxies_keep_the_originals_seconds(original: Path, proxied: Path) -> None:
    preset = load_preset("tiny", FAST_TINY)
    plain, proxies = load_prepared_dataset(original), load_prepared_dataset(proxied)
    use = proxy_use(proxies, preset)
    assert (use.proxies, use.frame_step, use.note) == (True, STEP, None)
    profile = plain.dataset_profile
    for subset in ("train", "val"):
        for a, b in zip(records_from_prepared(plain, subset), records_from_prepared(proxies, subset, proxies=True)):
            assert b.path.parent.name == "proxies" and b.duration == a.duration
            np.testing.assert_array_equal(a.segments, b.segments)
            windows_a = window_geometry(preset, profile).eval_windows(a.num_frames, a.fps, a.duration)
            windows_b = window_geometry(preset, profile, STEP).eval_windows(b.num_frames, b.fps, b.duration)
            assert len(windows_a) == len(windows_b)
            for wa, wb in zip(windows_a, windows_b):
                np.testing.assert_allclose(wa.frame_indices / wa.fps, wb.frame_indices / wb.fps, atol=1e-9)
                np.testing.assert_array_equal(wa.mask, wb.mask)
                np.testing.assert_allclose(wa.seconds_to_grid(a.segments), wb.seconds_to_grid(b.segments), atol=1e-9)
    # a training window: the same seconds, the same ground truth on its grid, frames of the proxy's size
    train_a = train_dataset(records_from_prepared(plain, "train"), preset, profile, seed=1)
    proxy_records = records_from_prepared(proxies, "train", proxies=True)
    train_b = train_dataset(proxy_records, preset, profile, seed=1, frame_step=STEP)
    sample_a, sample_b = train_a[0], train_b[0]
    np.testing.assert_allclose(sample_a.gt_segments, sample_b.gt_segments, atol=1e-5)
    np.testing.assert_array_equal(sample_a.mask, sample_b.mask)
    assert sample_a.frames.shape == sample_b.frames.shape
    assert sample_a.meta.grid_to_seconds(np.arange(4)) == pytest.approx(sample_b.meta.grid_to_seconds(np.arange(4)))


def test_a_preset_the_proxies_do_not_serve_reads_the_originals(proxied: Path) -> None:
    preset = load_preset("tiny", [*FAST_TINY, "input.frame_stride=2"])  # reads 1 frame in 2
    use = proxy_use(load_prepared_dataset(proxied), preset)
    assert (use.proxies, use.frame_step) == (False, 1)
    assert "reading the original videos" in use.note and "1 frame in 2" in use.note
    larger = proxy_use(load_prepared_dataset(proxied), load_preset("tiny", [*FAST_TINY, "input.image_size=96"]))
    assert not larger.proxies and "reads 96 px" in larger.note  # the sources have 96 px, the proxies 64
    smaller = proxy_use(load_prepared_dataset(proxied), load_preset("tiny", [*FAST_TINY, "input.image_size=48"]))
    assert smaller.proxies


def test_train_hints_at_proxies_once_and_shows_the_data_wait(original: Path, proxied: Path, tmp_path: Path) -> None:
    overrides = [*FAST_TINY, "train.epochs=1", "train.warmup_epochs=0", "train.eval_start_epoch=1000"]
    options = [item for override in overrides for item in ("--set", override)]
    command = ["train", "--device", "cpu", *options]
    result = runner.invoke(app, [*command, "--data", str(original), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    hints = [line for line in result.output.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1 and "--proxy" in hints[0] and "96 px" in hints[0] and "64 px" in hints[0]
    assert "data wait" in result.output
    steps = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [line for line in steps if line["kind"] == "train"]
    assert train_lines and all(0 <= line["data_wait_seconds"] <= line["step_seconds"] for line in train_lines)
    result = runner.invoke(app, [*command, "--data", str(proxied), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "hint:" not in result.output


def test_eval_on_proxies_scores_the_same_ground_truth(original: Path, proxied: Path, tmp_path: Path) -> None:
    """Evaluation reads the proxies; the ground truth it scores and the detections are in the original seconds."""
    import torch

    from tadcli.inference.evaluate import DatasetEvaluator
    from tadcli.model.build import build_model

    preset = load_preset("tiny", FAST_TINY)
    reports = []
    for name, data in (("plain", original), ("proxy", proxied)):
        dataset = load_prepared_dataset(data)
        evaluator = DatasetEvaluator(dataset, dataset.classes, preset, None, tmp_path / name)
        assert evaluator.plan.geometry.frame_stride == (1 if name == "proxy" else STEP)
        torch.manual_seed(0)
        model = build_model(preset, num_classes=len(dataset.classes)).eval()
        reports.append(evaluator.evaluate(model))
        results = json.loads((tmp_path / name / "val_results.json").read_text())["results"]
        ends = [entry["segment"][1] for entries in results.values() for entry in entries]
        assert ends and max(ends) <= SECONDS
    assert reports[0].num_ground_truth == reports[1].num_ground_truth > 0


@pytest.mark.parametrize(
    ("cores", "processes", "current", "wait", "compute", "expected"),
    [
        (2, 1, None, 0, 0, 1),  # first guess: min(2, spare cores)
        (16, 1, None, 0, 0, 2),
        (1, 1, None, 0, 0, 0),  # no spare core: decode in the training process
        (16, 1, 2, 0.01, 1.0, 2),  # not starved: kept
        (16, 1, 2, 3.0, 1.0, 8),  # starved: one worker needs 2 * (3 + 1) s per step -> 8 workers
        (16, 2, 2, 30.0, 1.0, 7),  # never past the spare cores (16 // 2 - 1)
        (16, 1, 0, 2.5, 1.0, 3),  # decoding in process: wait alone
    ],
)
def test_training_workers_rule(cores, processes, current, wait, compute, expected) -> None:
    assert training_workers(cores, processes, current, wait, compute) == expected


def test_proxy_options_are_checked_before_any_work(sources, tmp_path: Path) -> None:
    annotations, videos = sources
    base = ["prepare", "custom", "--annotations", str(annotations), "--out", str(tmp_path / "data")]
    unknown = ["--videos", str(videos), "--proxy", "--proxy-preset", "no-such-preset"]
    line = error_line(runner.invoke(app, [*base, *unknown]))
    assert "no-such-preset" in line
    assert "--videos" in error_line(runner.invoke(app, [*base, "--proxy"]))
    assert "--proxy" in error_line(runner.invoke(app, [*base, "--videos", str(videos), "--proxy-preset", "tiny"]))
    assert not (tmp_path / "data").exists() and not (tmp_path / ".data.tad-proxies").exists()


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_leaves_no_partial_proxy(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C: exit code 130, the transcodes that were running
    leave nothing, the finished proxies stay with their sidecars, the dataset folder is not written."""
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = ["video,start,end,label,subset"]
    for index in range(10):
        _write_source(videos / f"clip{index}.mp4", index)
        rows.append(f"clip{index},0.5,1.5,jump,{'train' if index < 8 else 'val'}")
    (tmp_path / "annotations.csv").write_text("\n".join(rows) + "\n")
    command = ["tad", "prepare", "custom", "--annotations", "annotations.csv", "--videos", "videos", "--out", "data",
               "--proxy", "--proxy-preset", "tiny", "--workers", "2"]
    process = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    work = tmp_path / ".data.tad-proxies"
    deadline = time.monotonic() + 120
    while not list(work.glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    finished = {p.stem for p in work.glob("*.json")}
    assert 1 <= len(finished) < 10 and {p.stem for p in work.glob("*.mp4")} == finished
    assert not [p for p in work.iterdir() if p.name.startswith(".")] and not (tmp_path / "data").exists()
