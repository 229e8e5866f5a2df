"""Events files of ``tad detect``: selection, the four formats, their readers, and scoring what we write."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import av
import pytest

from tadcli.data.annotations import read_annotations
from tadcli.errors import OutputError
from tadcli.evaluation.results import read_detection_results
from tadcli.io.events import (
    Event,
    ModelIdentity,
    VideoEvents,
    format_results,
    format_srt,
    select_events,
    srt_time,
    write_events,
)
from tadcli.services.eval import evaluate_predictions

MODEL = ModelIdentity("tiny", "synthetic", ("jump", "wave, big"), "0.1.0", run="runs/tiny-synthetic", trained_with="0.1.0")


def two_videos() -> list[VideoEvents]:
    return [
        VideoEvents(
            "clips/a.mp4",
            12.0,
            25.0,
            (Event("jump", 1.504, 4.0, 0.93456), Event("wave, big", 2.0, 3.333333, 0.5)),
        ),
        VideoEvents("other/b.mkv", 3725.0, 29.97, (Event("jump", 3723.456, 3724.0, 0.2),)),
    ]


def test_select_events_thresholds_keeps_the_best_and_sorts_by_start() -> None:
    events = [
        Event("a", 5.0, 6.0, 0.9),
        Event("b", 1.0, 2.0, 0.3),
        Event("c", 1.0, 3.0, 0.8),
        Event("d", 0.5, 9.0, 0.05),
        Event("e", 7.0, 8.0, 0.3),
    ]
    assert [e.label for e in select_events(events)] == ["d", "c", "b", "a", "e"]  # equal starts: higher score first
    assert [e.label for e in select_events(events, threshold=0.3)] == ["c", "b", "a", "e"]  # >= threshold
    assert [e.label for e in select_events(events, top_k=3)] == ["c", "b", "a"]  # score tie 0.3: earlier start kept
    assert select_events(events, threshold=0.95) == ()
    assert select_events(events, top_k=0) == ()
    with pytest.raises(ValueError, match="top_k"):
        select_events(events, top_k=-1)


def test_an_event_that_ends_before_it_starts_or_is_not_finite_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Event("a", 2.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        Event("a", 0.0, 1.0, float("nan"))


def test_json_holds_model_videos_and_rounded_events(tmp_path: Path) -> None:
    written = write_events(tmp_path / "out" / "events.json", MODEL, two_videos(), "json")
    assert written == [tmp_path / "out" / "events.json"]
    assert json.loads(written[0].read_text()) == {
        "model": {"run": "runs/tiny-synthetic", "preset": "tiny", "profile": "synthetic", "classes": ["jump", "wave, big"],
                  "trained_with": "0.1.0", "tad_version": "0.1.0"},
        "videos": [
            {
                "video": "clips/a.mp4",
                "duration": 12.0,
                "fps": 25.0,
                "events": [
                    {"label": "jump", "start": 1.5, "end": 4.0, "score": 0.9346},
                    {"label": "wave, big", "start": 2.0, "end": 3.33, "score": 0.5},
                ],
            },
            {
                "video": "other/b.mkv",
                "duration": 3725.0,
                "fps": 29.97,
                "events": [{"label": "jump", "start": 3723.46, "end": 3724.0, "score": 0.2}],
            },
        ],
    }
    assert [p.name for p in written[0].parent.iterdir()] == ["events.json"]  # no temporary file left


def test_csv_has_one_row_per_event_and_quotes_labels(tmp_path: Path) -> None:
    (path,) = write_events(tmp_path / "events.csv", MODEL, two_videos(), "csv")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["video", "start", "end", "label", "score"]
        rows = [(r["video"], float(r["start"]), float(r["end"]), r["label"], float(r["score"])) for r in reader]
    assert rows == [
        ("clips/a.mp4", 1.5, 4.0, "jump", 0.9346),
        ("clips/a.mp4", 2.0, 3.33, "wave, big", 0.5),
        ("other/b.mkv", 3723.46, 3724.0, "jump", 0.2),
    ]


def test_srt_cues_are_what_ffmpeg_reads_as_subtitles(tmp_path: Path) -> None:
    video = two_videos()[0]
    (path,) = write_events(tmp_path / "a.srt", MODEL, [video], "srt")
    assert path == tmp_path / "a.srt"
    assert path.read_text() == (
        "1\n00:00:01,500 --> 00:00:04,000\njump (0.93)\n\n2\n00:00:02,000 --> 00:00:03,330\nwave, big (0.50)\n"
    )
    with av.open(str(path)) as container:  # FFmpeg's SRT demuxer, the one mpv and many players use
        stream = container.streams.subtitles[0]
        cues = [(p.pts, p.duration, bytes(p).decode()) for p in container.demux(stream) if p.size]
    assert cues == [(1500, 2500, "jump (0.93)"), (2000, 1330, "wave, big (0.50)")]  # overlapping cues kept


def test_srt_time_format_past_an_hour() -> None:
    assert srt_time(0.0) == "00:00:00,000"
    assert srt_time(3723.46) == "01:02:03,460"
    assert srt_time(59.9996) == "00:01:00,000"
    assert srt_time(360000.0) == "100:00:00,000"
    assert format_srt(VideoEvents("empty.mp4", 5.0, 25.0, ())) == ""


def test_srt_for_several_videos_writes_one_file_per_video_beside_out(tmp_path: Path) -> None:
    written = write_events(tmp_path / "events.srt", MODEL, two_videos(), "srt")
    assert written == [tmp_path / "events.a.srt", tmp_path / "events.b.srt"]
    assert written[1].read_text() == "1\n01:02:03,460 --> 01:02:04,000\njump (0.20)\n"
    assert not (tmp_path / "events.srt").exists()
    assert write_events(tmp_path / "none.srt", MODEL, [], "srt") == []


def test_videos_with_the_same_stem_are_refused_where_the_format_names_videos_by_stem(tmp_path: Path) -> None:
    clash = [VideoEvents("day1/match.mp4", 5.0, 25.0, ()), VideoEvents("day2/match.mkv", 5.0, 25.0, ())]
    for format in ("activitynet", "srt"):
        with pytest.raises(OutputError, match=r"day1/match.mp4, day2/match.mkv have the same id 'match'"):
            write_events(tmp_path / f"out.{format}", MODEL, clash, format)
    assert list(tmp_path.iterdir()) == []
    assert len(write_events(tmp_path / "out.json", MODEL, clash, "json")) == 1  # json keeps the paths
    with pytest.raises(ValueError, match="unknown events format 'xml'"):
        write_events(tmp_path / "out.xml", MODEL, clash, "xml")


def test_activitynet_output_reads_back_as_results(tmp_path: Path) -> None:
    (path,) = write_events(tmp_path / "results.json", MODEL, two_videos(), "activitynet")
    content = json.loads(path.read_text())
    assert set(content) == {"version", "results", "external_data"}
    detections = read_detection_results(path)
    assert detections.video_ids == ["a", "a", "b"]
    assert detections.starts.tolist() == [1.5, 2.0, 3723.46]
    assert detections.ends.tolist() == [4.0, 3.33, 3724.0]
    assert detections.labels == ["jump", "wave, big", "jump"]
    assert detections.scores.tolist() == [0.9346, 0.5, 0.2]


def test_results_files_order_each_video_by_rounded_score_whatever_the_input_order(tmp_path: Path) -> None:
    """Score ties are broken by file order in the official mAP: one canonical order makes equal events one file."""
    events = [Event("jump", 5.0, 6.0, 0.70001), Event("jump", 1.0, 2.0, 0.7), Event("wave", 3.0, 4.0, 0.9),
              Event("jump", 0.5, 2.5, 0.70002)]
    shuffled = [events[3], events[0], events[2], events[1]]
    text = format_results({"a": events})
    assert format_results({"a": shuffled}) == text
    entries = json.loads(text)["results"]["a"]
    assert [(e["score"], e["segment"][0]) for e in entries] == [(0.9, 3.0), (0.7, 0.5), (0.7, 1.0), (0.7, 5.0)]
    video = VideoEvents("clips/a.mp4", 12.0, 25.0, select_events(shuffled))
    (path,) = write_events(tmp_path / "results.json", MODEL, [video], "activitynet")
    assert path.read_text() == text  # tad detect --format activitynet writes through the same writer


def test_perfect_events_on_real_thumos_ground_truth_score_map_one(tmp_path: Path, annotations_dir: Path) -> None:
    ground_truth = annotations_dir / "thumos14" / "thumos14.json"
    annotation_set = read_annotations(ground_truth)
    rng = random.Random(0)
    videos = [
        VideoEvents(
            f"videos/{video.video_id}.mp4",
            video.duration,
            video.fps,
            select_events(Event(i.label, i.start, i.end, rng.uniform(0.5, 1.0)) for i in video.instances),
        )
        for video in annotation_set.videos.values()
        if video.subset == "Test"
    ]
    (path,) = write_events(tmp_path / "results.json", MODEL, videos, "activitynet")
    report = evaluate_predictions(path, ground_truth, subset="Test", dataset="thumos14")
    assert report.num_ground_truth == report.num_predictions == sum(len(v.events) for v in videos) > 3000
    assert report.mAP == [1.0] * len(report.tiou_thresholds)
    assert report.recall == [1.0] * len(report.tiou_thresholds)
