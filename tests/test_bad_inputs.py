"""The front door: every bad input to every command is exit code 2 and one line naming the file or field
and the bad value, never a traceback, and nothing that existed is damaged (the dataset folder is hashed
before and after). Also: re-runs into an existing dataset (failing, unusable, interrupted by a real
SIGINT), broken videos through a real subprocess (the decoders' own stderr), the umask, eval on prepared
and ActionFormer files, and argument errors answered before the heavy imports."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.data.prepared import load_prepared_dataset
from tadcli.data.synthetic import write_mp4
from tadcli.services.prepare import check_dataset, prepare_dataset, prepare_synthetic

runner = CliRunner()
FPS = 10
LABELS_CSV = "video,start,end,label,subset\na,0.5,1.5,jump,train\na,2.0,3.0,wave,train\nb,1.0,2.0,jump,val\n"


def tiny_video(path: Path, seconds: float) -> Path:
    """A real 32x32 mp4 whose frames get brighter over time."""
    frames = (np.full((32, 32, 3), (index * 7) % 256, np.uint8) for index in range(int(seconds * FPS)))
    return write_mp4(path, frames, FPS, codec="mpeg4")


def folder_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """relative path -> (sha256, permission bits) of every file and folder below ``folder``."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        digest[path.relative_to(folder).as_posix()] = (content, stat.S_IMODE(path.stat().st_mode))
    return digest


def staging_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.tad-")]


def run_tad(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``tad ARGS`` in a real process: what reaches the terminal, the decoders' C++ stderr included."""
    return subprocess.run(
        [sys.executable, "-m", "tadcli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A prepared custom dataset and the files around it that the bad inputs below point at."""
    root = tmp_path_factory.mktemp("world")
    videos = root / "videos"
    videos.mkdir()
    tiny_video(videos / "a.mp4", 4)
    tiny_video(videos / "b.mp4", 4)
    (root / "labels.csv").write_text(LABELS_CSV)
    (root / "other.csv").write_text(LABELS_CSV)
    (root / "afile.txt").write_text("not a folder\n")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("someone's notes\n")
    (root / "dir.yaml").mkdir()
    gt = {"database": {"b": {"subset": "val", "duration": 4.0, "annotations": [{"segment": [1.0, 2.0], "label": "jump"}]}}}
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "results.json").write_text(json.dumps({"results": {"b": [{"segment": [1.0, 2.0], "label": "jump", "score": 0.9}]}}))
    # json.dumps writes NaN as the bare token NaN, which Python's reader accepts
    nan_results = {"results": {"b": [{"segment": [float("nan"), 1.0], "label": "jump", "score": 0.9}]}}
    (root / "nan results.json").write_text(json.dumps(nan_results))
    assert prepare_dataset("custom", root / "labels.csv", videos, root / "prepared").usable
    return root


# (arguments, with {w} the world folder; the fragment that the one error line must hold)
BAD_INPUTS = [
    # prepare: output paths
    ("prepare custom --annotations {w}/labels.csv --videos {w}/videos --out {w}/afile.txt",
     "{w}/afile.txt: output folder must be a folder, this is a file"),
    ("prepare custom --annotations {w}/labels.csv --videos {w}/videos --out {w}/afile.txt/sub",
     "{w}/afile.txt/sub: cannot create the output folder: {w}/afile.txt is a file, not a folder"),
    ("prepare synthetic --out {w}/afile.txt", "{w}/afile.txt: output folder must be a folder, this is a file"),
    # prepare: input paths of the wrong kind, missing, with brackets
    ("prepare custom --annotations {w}/missing.csv --videos {w}/videos --out {w}/new",
     "{w}/missing.csv: annotations not found"),
    ("prepare custom --annotations {w}/[draft] labels.csv --videos {w}/videos --out {w}/new",
     "{w}/[draft] labels.csv: annotations not found"),
    ("prepare custom --annotations {w}/labels.csv --videos {w}/labels.csv --out {w}/new",
     "{w}/labels.csv: video folder must be a folder, this is a file"),
    ("prepare custom --annotations {w}/labels.csv --videos {w}/videos --class-list {w}/videos --out {w}/new",
     "{w}/videos: class list must be a file, this is a folder"),
    ("prepare custom --annotations {w}/labels.csv --videos {w}/videos --out {w}",
     "{w}/labels.csv: annotations inside the output folder {w}, which prepare replaces as a whole"),
    ("prepare --check {w}/afile.txt", "{w}/afile.txt: dataset folder must be a folder, this is a file"),
    ("prepare --check {w}/videos", "{w}/videos: not a prepared dataset (manifest.json missing)"),
    # prepare: a folder that holds something else
    ("prepare custom --annotations {w}/other.csv --videos {w}/videos --out {w}/prepared",
     "{w}/prepared: the output folder holds the 'custom' dataset prepared from {w}/labels.csv, not from {w}/other.csv"),
    ("prepare synthetic --out {w}/prepared", "{w}/prepared: the output folder holds the 'custom' dataset"),
    ("prepare custom --annotations {w}/labels.csv --videos {w}/videos --out {w}/foreign",
     "{w}/foreign: the output folder is not empty and holds no tad dataset (notes.txt)"),
    # eval
    ("eval --predictions {w}/results.json --annotations {w}/gt.json --json {w}/videos",
     "{w}/videos: scores file must be a file, this is a folder"),
    ("eval --predictions {w}/results.json --annotations {w}/gt.json --json {w}/afile.txt/scores.json",
     "cannot create the scores file: {w}/afile.txt is a file, not a folder"),
    ("eval --predictions {w}/videos --annotations {w}/gt.json", "{w}/videos: results file must be a file, this is a folder"),
    ("eval --predictions {w}/[draft].json --annotations {w}/gt.json", "{w}/[draft].json: results file not found"),
    ("eval --predictions {w}/results.json --annotations {w}/nowhere", "{w}/nowhere: ground truth not found"),
    ("eval --predictions {w}/nan results.json --annotations {w}/gt.json",
     "segment: expected [start, end] as two finite numbers, got [nan, 1.0]"),
    ("eval --predictions {w}/results.json --annotations {w}/gt.json --subset [x]",
     "subset '[x]' has no ground-truth instances"),
    # presets
    ("presets show tiny --set train.head_lr=inf", "--set train.head_lr=inf: train.head_lr: Input should be a finite number"),
    ("presets show tiny --set adaptation.blocks=abc",
     "--set adaptation.blocks=abc: adaptation.blocks: Input should be 'all' or 'last-half'"),
    ("presets show {w}/[x].yaml", "{w}/[x].yaml: preset file not found"),
    ("presets show {w}/dir.yaml", "{w}/dir.yaml: preset file must be a file, this is a folder"),
]


def _split_args(template: str, world: Path) -> list[str]:
    # paths with spaces ("[draft] labels.csv", "nan results.json") stay one argument
    args = []
    for part in template.replace("{w}/[draft] labels.csv", "{draft}").replace("{w}/nan results.json", "{nan}").split():
        args.append(part.format(w=world, draft=world / "[draft] labels.csv", nan=world / "nan results.json"))
    return args


@pytest.mark.parametrize(("template", "expected"), BAD_INPUTS, ids=[t for t, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_damages_nothing(world: Path, template: str, expected: str) -> None:
    before = folder_digest(world)
    result = runner.invoke(app, _split_args(template, world))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # exactly one line, the error
    assert expected.format(w=world) in lines[0]
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert folder_digest(world) == before  # the prepared dataset and every file around it intact
    assert not staging_leftovers(world / "prepared") and not staging_leftovers(world / "new")
    assert not (world / "new").exists()


def test_failed_and_unusable_reruns_leave_the_dataset_byte_identical(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    shutil.copytree(world / "prepared", out)
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS_CSV)
    assert prepare_dataset("custom", labels, world / "videos", out, force=True).usable  # now prepared from here
    before = folder_digest(out)

    labels.write_text(LABELS_CSV.replace("b,1.0,2.0,jump,val", "b,2.0,1.0,jump,val"))  # val loses its instance
    result = runner.invoke(app, ["prepare", "custom", "--annotations", str(labels), "--videos", str(world / "videos"), "--out", str(out)])
    assert result.exit_code == 2
    assert "NOT usable (subset_empty x1)" in result.stdout and "previous_dataset_kept" in result.stdout
    assert folder_digest(out) == before and not staging_leftovers(out)

    labels.write_text("video,start,end,label,subset\na,abc,1.5,jump,train\n")  # the reader fails half-way
    result = runner.invoke(app, ["prepare", "custom", "--annotations", str(labels), "--videos", str(world / "videos"), "--out", str(out)])
    assert result.exit_code == 2 and "abc" in result.stderr and "Traceback" not in result.output
    assert folder_digest(out) == before and not staging_leftovers(out)

    (world / "videos" / "b.mp4").rename(tmp_path / "b.mp4")  # check fails: says why, changes nothing it checks
    try:
        result = runner.invoke(app, ["prepare", "--check", str(out)])
    finally:
        (tmp_path / "b.mp4").rename(world / "videos" / "b.mp4")
    assert result.exit_code == 2
    verdict = "NOT usable (subset_empty x1, video_missing x1: the folder no longer matches what was prepared"
    assert verdict in result.stdout


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, list[tuple[str, int, int]]]:
    """A prepared synthetic dataset of 3 videos and the progress calls its preparation made."""
    out = tmp_path_factory.mktemp("synthetic") / "data"
    calls: list[tuple[str, int, int]] = []
    assert prepare_synthetic(out, num_videos=3, num_classes=2, progress=lambda *call: calls.append(call)).usable
    return out, calls


def test_synthetic_progress_advances_per_video(synthetic) -> None:
    _, calls = synthetic
    written = [call for call in calls if call[0] == "writing synthetic videos"]
    assert written == [("writing synthetic videos", done, 3) for done in range(4)]


def test_ctrl_c_during_a_synthetic_rerun_leaves_the_dataset_byte_identical(synthetic, tmp_path: Path) -> None:
    out = tmp_path / "data"
    shutil.copytree(synthetic[0], out, copy_function=shutil.copy2)
    before = folder_digest(out)
    process = subprocess.Popen(
        [sys.executable, "-m", "tadcli", "prepare", "synthetic", "--out", str(out), "--videos", "3", "--classes", "2", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    # the second video is being written: the first is complete in the staged folder, nothing swapped yet
    while not list(tmp_path.glob(".data.tad-new-*/videos/synthetic_0001.mp4")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, (stdout, stderr)
    assert stderr.strip() == "interrupted" and "Traceback" not in stderr
    assert folder_digest(out) == before and not staging_leftovers(out)
    # the copied folder still works, its probe cache included (keys are relative to the folder)
    report = check_dataset(out)
    assert report.usable and report.videos_from_cache == 3 and report.videos_probed == 0


def test_eval_on_a_prepared_synthetic_folder_needs_no_dataset_or_subset(synthetic, tmp_path: Path) -> None:
    out, _ = synthetic
    dataset = load_prepared_dataset(out)
    results = {
        video.video_id: [{"segment": [i.start, i.end], "label": i.label, "score": 1.0} for i in video.instances]
        for video in dataset.subset("val")
    }
    predictions = tmp_path / "results.json"
    predictions.write_text(json.dumps({"results": results}))
    result = runner.invoke(app, ["eval", "--predictions", str(predictions), "--annotations", str(out), "--json", "-"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)  # standard output holds the JSON alone; the table went to stderr
    assert scores["subset"] == "val" and scores["average_mAP"] == 1.0 and "Detection mAP on 'val'" in result.stderr
    result = runner.invoke(app, ["eval", "--predictions", str(predictions), "--annotations", str(out / "manifest.json"), "--dataset", "custom"])
    assert result.exit_code == 0 and "Detection mAP on 'val'" in result.stdout


def test_eval_thumos14_actionformer_json_with_the_dataset_option(annotations_dir: Path, tmp_path: Path) -> None:
    gt = annotations_dir / "thumos14" / "thumos14.json"
    database = json.loads(gt.read_text())["database"]
    video_id, entry = next((v, e) for v, e in database.items() if e["subset"] == "Test" and e["annotations"])
    results = {video_id: [{"segment": a["segment"], "label": a["label"], "score": 1.0} for a in entry["annotations"]]}
    predictions = tmp_path / "results.json"
    predictions.write_text(json.dumps({"results": results}))
    result = runner.invoke(app, ["eval", "--predictions", str(predictions), "--annotations", str(gt), "--dataset", "thumos14"])
    assert result.exit_code == 0, result.output
    assert "Detection mAP on 'Test'" in result.stdout and "3358 ground-truth instances" in result.stdout


BROKEN_VIDEOS = {
    "empty": "empty file (0 bytes)",
    "text": "not a video container (FFmpeg: Invalid data found when processing input)",
    "cut": "MP4 without its index (moov atom)",
    "short": "truncated at frame ",  # "N of the 40 its container declares", N from the bytes kept
}


def test_broken_videos_get_one_line_each_and_the_decoders_stay_silent(world: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(world / "videos", videos)
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "text.mp4").write_text("hello, I am not a video\n")
    whole = tiny_video(tmp_path / "whole.mp4", 4).read_bytes()  # index at the end: cut, the index is gone
    (videos / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    with av.open(str(tmp_path / "fast.mp4"), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(0)  # noisy frames: the frame data, not the index, fills the file
        for _ in range(40):
            image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    fast = (tmp_path / "fast.mp4").read_bytes()  # index first: cut, the frames present still decode
    (videos / "short.mp4").write_bytes(fast[: len(fast) // 2])
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS_CSV + "".join(f"{name},0.2,0.5,jump,train\n" for name in BROKEN_VIDEOS))

    result = run_tad("prepare", "custom", "--annotations", str(labels), "--videos", str(videos), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no "moov atom not found", no "video_reader.cc: ERROR opening"
    lines = result.stdout.splitlines()
    for name, problem in BROKEN_VIDEOS.items():
        [line] = [line for line in lines if f"train/{name}: " in line]
        assert line.strip().startswith(f"train/{name}: {videos / name}.mp4: {problem}")
    assert "of the 40 its container declares (an interrupted download?)" in result.stdout


def test_written_files_honour_the_umask(world: Path, tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        out = tmp_path / "prepared"
        assert prepare_dataset("custom", world / "labels.csv", world / "videos", out).usable
        scores = tmp_path / "scores.json"
        result = runner.invoke(app, ["eval", "--predictions", str(world / "results.json"), "--annotations", str(world / "gt.json"), "--json", str(scores)])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(previous)
    modes = {name: mode for name, (_, mode) in folder_digest(out).items()}
    assert modes == dict.fromkeys(["classes.txt", "manifest.json", "probe_cache.json", "report.json", "report.txt"], 0o640)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750 and stat.S_IMODE(scores.stat().st_mode) == 0o640


def test_multithumos_class_list_takes_all_65_names_as_the_help_says(annotations_dir: Path, tmp_path: Path) -> None:
    help_text = " ".join(runner.invoke(app, ["prepare", "--help"]).stdout.split())
    assert "Multi-THUMOS: all 65 names, in index order" in help_text.replace("│ ", "").replace(" │", "")
    names = tmp_path / "classes.txt"
    names.write_text("".join(f"action {index}\n" for index in range(1, 66)))
    report = prepare_dataset(
        "multithumos", annotations_dir / "multithumos" / "multithumos.json", None, tmp_path / "out", class_list=names
    )
    assert report.usable and load_prepared_dataset(tmp_path / "out").classes[20] == "action 21"
    names.write_text("".join(f"action {index}\n" for index in range(21, 66)))  # only the 45 beyond THUMOS14
    result = runner.invoke(
        app,
        ["prepare", "multithumos", "--annotations", str(annotations_dir / "multithumos" / "multithumos.json"),
         "--class-list", str(names), "--out", str(tmp_path / "other")],
    )
    assert result.exit_code == 2 and "Multi-THUMOS has 65 classes, the list has 45" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["prepare"], ["prepare", "custom", "--out", "x"], ["prepare", "synthetic", "--out", "x", "--videos", "many"]],
)
def test_argument_errors_of_prepare_come_before_the_heavy_imports(args: list[str]) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from tadcli.cli import app; "
        f"result = CliRunner().invoke(app, {args!r}); "
        "print(result.exit_code, 'torch' in sys.modules, 'tadcli.services.prepare' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert output.split() == ["2", "False", "False"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["profile-memory", "--frames", "abc"], "Invalid value for '--frames'"),
        (["profile-memory", "--bogus"], "No such option: --bogus"),
        (["detect"], "Missing argument 'videos'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_options_and_values_are_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    # through the console script's own entry point, as a user types them (Typer prints a usage box otherwise)
    tad = Path(sys.executable).with_name("tad")  # the console script installed beside this Python
    done = subprocess.run([str(tad), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert f"(see 'tad {args[0]} --help')" in lines[0] or args[0] == "frobnicate"
