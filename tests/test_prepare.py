"""`tad prepare` on real mp4 files written here with PyAV: every problem reported and decided, the rest
kept; --check; the probe cache; the CLI through the real app."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.data.annotations import Instance, read_annotations
from tadcli.data.prepared import load_prepared_dataset
from tadcli.errors import DatasetError
from tadcli.services.prepare import check_dataset, prepare_dataset

FPS = 10
CLASSES = ["jump", "wave"]


def write_tiny_mp4(path: Path, seconds: float, fps: int = FPS, faststart: bool = False) -> None:
    """A 64x48 video whose frames get brighter over time (``faststart``: index before the frames)."""
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(int(seconds * fps)):
            image = np.full((48, 64, 3), (index * 5) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def video_entry(video: str, subset: str, instances: list[tuple[float, float, str]], **extra) -> dict:
    return {
        "video": video,
        "subset": subset,
        **extra,
        "annotations": [{"start": start, "end": end, "label": label} for start, end, label in instances],
    }


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name, seconds in (("a", 4), ("b", 4), ("c", 3), ("d", 4)):
        write_tiny_mp4(folder / f"{name}.mp4", seconds)
    (folder / "nested").mkdir()
    write_tiny_mp4(folder / "nested" / "e.mp4", 3)  # found in a sub-folder
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    write_tiny_mp4(folder / "f.mp4", 4, faststart=True)  # then truncated: an interrupted download
    content = (folder / "f.mp4").read_bytes()
    (folder / "f.mp4").write_bytes(content[: len(content) // 2])
    return folder


@pytest.fixture()
def annotation_file(tmp_path) -> Path:
    content = {
        "classes": CLASSES,
        "videos": [
            video_entry("a", "train", [(0.5, 1.5, "jump"), (0.5, 1.5, "jump"), (2.0, 5.0, "wave"), (4.5, 6.0, "wave")]),
            video_entry(
                "b",
                "train",
                [
                    (1.0, 1.0, "wave"),
                    (2.0, 1.0, "jump"),
                    (0.2, 0.9, "jump"),
                    (1.0, 2.0, "dance"),
                    (-3.0, -1.0, "jump"),
                    (-0.5, 0.5, "wave"),
                ],
            ),
            video_entry("c", "training", []),
            video_entry("d", "val", [(1.0, 2.0, "jump")]),
            video_entry("e", "val", [(0.5, 2.5, "wave")], duration=10.0, fps=30.0),
            video_entry("f", "train", [(0.5, 1.0, "jump"), (3.5, 3.9, "wave")]),
            video_entry("broken", "train", [(1.0, 2.0, "jump")]),
            video_entry("ghost", "val", [(1.0, 2.0, "wave")]),
        ],
    }
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(content))
    return path


def kinds(report) -> dict[str, int]:
    return report.issue_counts()


def test_prepare_reports_each_problem_and_keeps_the_rest(videos_dir, annotation_file, tmp_path):
    out = tmp_path / "prepared"
    progress_calls = []
    report = prepare_dataset(
        "custom", annotation_file, videos_dir, out, progress=lambda *call: progress_calls.append(call)
    )
    assert report.usable
    assert kinds(report) == {
        "video_missing": 1,
        "video_unreadable": 1,
        "unknown_label": 1,
        "segment_empty": 2,
        "segment_outside_video": 3,
        "duplicate_instance": 1,
        "segment_past_end": 1,
        "segment_before_start": 1,
        "duration_mismatch": 1,
        "fps_mismatch": 1,
        "subset_renamed": 1,
        "video_without_instances": 1,
        "video_truncated": 1,
    }
    by_kind = {issue.kind: issue for issue in report.issues}
    assert by_kind["video_missing"].video_id == "ghost" and by_kind["video_unreadable"].video_id == "broken"
    assert by_kind["unknown_label"].detail.startswith("dance")
    assert report.counts["train"].videos == 4 and report.counts["train"].instances == 5
    assert report.counts["val"].videos == 2 and report.counts["val"].instances == 2
    assert ("probing videos", 7, 7) in progress_calls

    dataset = load_prepared_dataset(out)
    assert dataset.profile == "custom" and dataset.classes == CLASSES
    assert (out / "classes.txt").read_text() == "jump\nwave\n"
    assert set(dataset.videos) == {"a", "b", "c", "d", "e", "f"}
    assert dataset.videos["f"].instances == [Instance(0.5, 1.0, "jump")] and dataset.videos["f"].duration < 3.5
    a = dataset.videos["a"]
    assert a.instances == [Instance(0.5, 1.5, "jump"), Instance(2.0, 4.0, "wave")]  # duplicate dropped, end clipped
    assert (a.fps, a.num_frames, a.duration) == (10.0, 40, 4.0)
    assert dataset.videos["b"].instances == [Instance(0.2, 0.9, "jump"), Instance(0.0, 0.5, "wave")]
    assert dataset.videos["e"].duration == 3.0 and dataset.videos["e"].path == videos_dir / "nested" / "e.mp4"
    assert dataset.videos["c"].subset == "train" and dataset.videos["c"].instances == []
    assert [v.video_id for v in dataset.subset("val")] == ["d", "e"]

    text = (out / "report.txt").read_text()
    assert "usable" in text and "ghost" in text and "broken" in text and "dance" in text
    saved = json.loads((out / "report.json").read_text())
    assert saved["usable"] is True and saved["issue_counts"]["video_missing"] == 1
    # the manifest is ActivityNet-style: the annotation reader reads it back as the cleaned ground truth
    ground_truth = read_annotations(out / "manifest.json")
    assert ground_truth.classes == CLASSES
    assert ground_truth.videos["a"].instances == a.instances and ground_truth.videos["a"].num_frames == 40


def test_subset_without_instances_is_an_error_and_writes_no_manifest(videos_dir, tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("video,start,end,label,subset\na,0.5,1.5,jump,train\nd,2.0,1.0,jump,val\n")  # inverted
    out = tmp_path / "prepared"
    report = prepare_dataset("custom", csv_file, videos_dir, out)
    assert not report.usable
    errors = [issue for issue in report.issues if issue.severity == "error"]
    assert [(issue.kind, issue.subset) for issue in errors] == [("subset_empty", "val")]
    assert not (out / "manifest.json").exists()
    assert "NOT usable (subset_empty x1)" in (out / "report.txt").read_text()  # the report says why
    with pytest.raises(DatasetError, match="run 'tad prepare' first"):
        load_prepared_dataset(out)
    csv_file.write_text("video,start,end,label,subset\na,0.5,1.5,jump,train\nd,1.0,2.0,jump,val\n")  # fixed
    assert prepare_dataset("custom", csv_file, videos_dir, out).usable
    assert (out / "manifest.json").is_file()


def test_probe_cache_only_probes_new_or_changed_files(videos_dir, annotation_file, tmp_path):
    own_videos = tmp_path / "videos"
    shutil.copytree(videos_dir, own_videos)
    out = tmp_path / "prepared"
    first = prepare_dataset("custom", annotation_file, own_videos, out)
    assert (first.videos_probed, first.videos_from_cache) == (7, 0)
    second = prepare_dataset("custom", annotation_file, own_videos, out)
    assert (second.videos_probed, second.videos_from_cache) == (0, 7)
    write_tiny_mp4(own_videos / "d.mp4", 2)  # replaced by a shorter video
    third = prepare_dataset("custom", annotation_file, own_videos, out)
    assert (third.videos_probed, third.videos_from_cache) == (1, 6)
    assert load_prepared_dataset(out).videos["d"].duration == 2.0


def test_check_finds_a_deleted_and_a_replaced_video(videos_dir, annotation_file, tmp_path):
    own_videos = tmp_path / "videos"
    shutil.copytree(videos_dir, own_videos)
    out = tmp_path / "prepared"
    prepare_dataset("custom", annotation_file, own_videos, out)
    clean = check_dataset(out)
    assert clean.usable and clean.videos_from_cache == 6 and clean.videos_probed == 0
    assert set(kinds(clean)) == {"video_without_instances", "video_truncated"}  # notes only

    (own_videos / "d.mp4").unlink()
    write_tiny_mp4(own_videos / "a.mp4", 1)  # now ends before its second instance starts
    report = check_dataset(out)
    assert not report.usable
    missing = [issue for issue in report.issues if issue.kind == "video_missing"]
    assert [issue.video_id for issue in missing] == ["d"]
    assert kinds(report)["duration_mismatch"] == 1 and kinds(report)["segment_outside_video"] == 1
    assert "NOT usable" in report.summary()


def test_prepare_real_thumos14_text_files_maps_subsets_to_the_profile(annotations_dir, tmp_path):
    report = prepare_dataset("thumos14", annotations_dir / "thumos14", None, tmp_path / "thumos")
    assert report.usable
    # THUMOS14 validation videos train, test videos are evaluated (OpenTAD / ActionFormer convention)
    assert {s: (c.videos, c.instances) for s, c in report.counts.items()} == {
        "training": (200, 3007),
        "validation": (213, 3358),
    }
    assert kinds(report)["ambiguous_instance"] == 89 + 99
    dataset = load_prepared_dataset(tmp_path / "thumos")
    assert dataset.videos["video_test_0001292"].instances == []  # only Ambiguous rows: kept, no instance
    assert dataset.videos["video_validation_0000051"].path is None


@pytest.mark.parametrize("file", ["thumos14.json", "thumos_14_anno.json"])
def test_prepare_real_thumos14_json_files_map_their_subsets_to_the_profile(annotations_dir, tmp_path, file):
    """ActionFormer's file says Validation / Test, OpenTAD's already training / validation: the same dataset."""
    report = prepare_dataset("thumos14", annotations_dir / "thumos14" / file, None, tmp_path / "thumos")
    assert report.usable, report.summary()
    counts = {s: c.videos for s, c in report.counts.items()}
    assert counts["training"] == 200 and counts["validation"] in (211, 212)  # OpenTAD drops two test videos


def test_video_lookup_activitynet_prefix_and_ambiguous_files(videos_dir, tmp_path):
    folder = tmp_path / "videos"
    (folder / "other").mkdir(parents=True)
    shutil.copy(videos_dir / "a.mp4", folder / "v_bare1.mp4")  # official ActivityNet id, OpenTAD file name
    shutil.copy(videos_dir / "b.mp4", folder / "pref2.mp4")  # BSN id with v_, bare file name
    shutil.copy(videos_dir / "c.mp4", folder / "twice.mp4")
    shutil.copy(videos_dir / "d.mp4", folder / "other" / "twice.mp4")
    database = {
        "bare1": {"subset": "training", "duration": 4.0, "annotations": [{"segment": [1.0, 2.0], "label": "x"}]},
        "v_pref2": {"subset": "validation", "duration": 4.0, "annotations": [{"segment": [1.0, 2.0], "label": "x"}]},
        "twice": {"subset": "validation", "duration": 3.0, "annotations": [{"segment": [1.0, 2.0], "label": "x"}]},
    }
    annotation_file = tmp_path / "anet.json"
    annotation_file.write_text(json.dumps({"version": "1.3", "database": database}))
    report = prepare_dataset("activitynet", annotation_file, folder, tmp_path / "out")
    assert report.usable and kinds(report) == {"video_file_ambiguous": 1}
    dataset = load_prepared_dataset(tmp_path / "out")
    assert dataset.videos["bare1"].path == folder / "v_bare1.mp4"
    assert dataset.videos["v_pref2"].path == folder / "pref2.mp4"
    assert "twice" not in dataset.videos


def test_custom_videos_with_one_name_in_two_folders_are_named_by_relative_path(videos_dir, tmp_path):
    folder = tmp_path / "cameras"
    for camera, source in (("cam1", "a"), ("cam2", "d")):
        (folder / camera).mkdir(parents=True)
        shutil.copy(videos_dir / f"{source}.mp4", folder / camera / "clip.mp4")
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("video,start,end,label,subset\ncam1/clip.mp4,0.5,1.5,jump,Train\ncam2/clip,1.0,2.0,wave,Validation\n")
    report = prepare_dataset("custom", csv_file, folder, tmp_path / "out")
    assert report.usable, report.summary()
    dataset = load_prepared_dataset(tmp_path / "out")
    assert {video_id: (video.path, video.subset) for video_id, video in dataset.videos.items()} == {
        "cam1/clip": (folder / "cam1" / "clip.mp4", "train"),
        "cam2/clip": (folder / "cam2" / "clip.mp4", "val"),  # subset names match case-insensitively
    }
    csv_file.write_text("video,start,end,label,subset\nclip,0.5,1.5,jump,train\na,1.0,2.0,wave,val\n")
    ambiguous = prepare_dataset("custom", csv_file, folder, tmp_path / "bare")
    (issue,) = [issue for issue in ambiguous.issues if issue.kind == "video_file_ambiguous"]
    assert issue.detail == (f"{folder.absolute() / 'cam1' / 'clip.mp4'} and {folder.absolute() / 'cam2' / 'clip.mp4'}; "
                            f"name one by its path relative to {folder} (e.g. cam1/clip)")


def test_prepare_rejects_annotations_of_another_dataset(annotations_dir, tmp_path):
    with pytest.raises(DatasetError, match="multithumos-json annotations are not a thumos14 format"):
        prepare_dataset("thumos14", annotations_dir / "multithumos" / "multithumos.json", None, tmp_path / "out")


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_prepare_and_check(videos_dir, annotation_file, tmp_path):
    runner = CliRunner()
    own_videos = tmp_path / "videos"
    shutil.copytree(videos_dir, own_videos)
    out = tmp_path / "prepared"
    result = runner.invoke(
        app,
        ["prepare", "custom", "--annotations", str(annotation_file), "--videos", str(own_videos), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "usable" in result.output and "video_missing" in result.output
    result = runner.invoke(app, ["prepare", "--check", str(out)])
    assert result.exit_code == 0, result.output

    (own_videos / "b.mp4").unlink()
    result = runner.invoke(app, ["prepare", "--check", str(out)])
    assert result.exit_code == 2 and "video_missing" in result.output and "b:" in result.output

    result = runner.invoke(app, ["prepare", "--check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere: dataset folder not found" in result.output


def test_cli_prepare_synthetic(tmp_path):
    out = tmp_path / "synthetic"
    result = CliRunner().invoke(
        app, ["prepare", "synthetic", "--out", str(out), "--videos", "3", "--classes", "2", "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    dataset = load_prepared_dataset(out)
    assert dataset.profile == "synthetic" and len(dataset.classes) == 2 and len(dataset.videos) == 3
    assert {video.subset for video in dataset.videos.values()} == {"train", "val", "test"}
    assert all(video.path.is_file() and video.num_frames > 0 for video in dataset.videos.values())
    assert all(video.instances for video in dataset.subset("train"))


def test_cli_prepare_epic_verb_task_without_videos(annotations_dir, tmp_path):
    # EPIC's public validation CSV only: verbs chosen with --format; no train subset, so not usable (exit 2)
    result = CliRunner().invoke(
        app,
        [
            "prepare", "epic-kitchens",
            "--annotations", str(annotations_dir / "epic_kitchens_100" / "EPIC_100_validation.csv"),
            "--format", "epic-kitchens-verb",
            "--out", str(tmp_path / "epic"),
        ],
    )
    assert result.exit_code == 2, result.output
    report = json.loads((tmp_path / "epic" / "report.json").read_text())
    assert "epic-kitchens-verb" in json.dumps(report)
    assert "subset_empty" in result.output and "val: 138 videos, 9668 instances" in result.output
    assert not (tmp_path / "epic" / "manifest.json").exists()


def test_prepare_activitynet_filters_short_training_instances_and_blocked_videos(annotations_dir, tmp_path):
    anet = annotations_dir / "activitynet"
    content = json.loads((anet / "anet_anno_action.json").read_text())
    with (anet / "video_info_new.csv").open(newline="") as handle:
        subset_of = {row["video"]: row["subset"] for row in csv.DictReader(handle)}
    # OpenTAD's filter_gt: (end - start) / duration <= 0.01 (inverted or empty segments dropped anyway)
    short = [
        (video, item["segment"]) for video, entry in content.items() if subset_of[video] == "training"
        for item in entry["annotations"]
        if item["segment"][1] > item["segment"][0]
        and (item["segment"][1] - item["segment"][0]) / entry["duration_second"] <= 0.01
    ]
    validation = [video for video in content if subset_of[video] == "validation"]
    blocked_ids = [validation[0].removeprefix("v_"), validation[1], "v_not_in_activitynet"]  # with and without v_
    blocked = tmp_path / "blocked.json"
    blocked.write_text(json.dumps(blocked_ids))

    report = prepare_dataset("activitynet", anet, None, tmp_path / "out", blocked=blocked)

    assert report.usable
    counts = report.issue_counts()
    assert len(short) > 0 and counts["segment_too_short"] == len(short)
    assert {issue.subset for issue in report.issues if issue.kind == "segment_too_short"} == {"training"}
    assert counts["video_blocked"] == 2 and counts["blocked_video_absent"] == 1
    assert report.counts["validation"].videos == len(validation) - 2
    text = report.summary()
    assert f"DROPPED segment_too_short x{len(short)}" in text and "DROPPED video_blocked x2" in text
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["database"]
    assert validation[0] not in manifest and validation[1] not in manifest and validation[2] in manifest
    # the evaluated subset keeps its short instances, as the official evaluator scores them
    val_short = sum(
        1 for video in validation[2:] for item in content[video]["annotations"]
        if 0 < item["segment"][1] - item["segment"][0] <= 0.01 * content[video]["duration_second"]
    )
    kept = sum(
        1 for video in validation[2:] for a in manifest[video]["annotations"]
        if a["segment"][1] - a["segment"][0] <= 0.01 * manifest[video]["duration"]
    )
    assert val_short > 0 and kept == val_short


def test_cli_prepare_activitynet_blocked_list_as_text(tmp_path):
    database = {
        f"vid{i}": {"subset": subset, "duration": 100.0, "annotations": [{"segment": [10, 20 + i], "label": "Ballet"}]}
        for i, subset in enumerate(["training", "validation", "validation", "validation"])
    }
    annotations = tmp_path / "anet.json"
    annotations.write_text(json.dumps({"database": database}))
    blocked = tmp_path / "missing_files.txt"
    blocked.write_text("v_vid2\n\nvid3\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["prepare", "activitynet", "--annotations", str(annotations), "--out", str(out), "--blocked", str(blocked)]
    )
    assert result.exit_code == 0, result.output
    assert "DROPPED video_blocked x2" in result.output
    assert "validation: 1 videos, 1 instances" in result.output
    assert set(json.loads((out / "manifest.json").read_text())["database"]) == {"vid0", "vid1"}
