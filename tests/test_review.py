"""tad review without a browser: every events format read back as written, the page's data and links, and the
one-line errors. The page itself, in a real browser: test_review_browser.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.errors import AnnotationError
from tadcli.io.events import EVENT_FORMATS, Event, ModelIdentity, VideoEvents, results_order, video_id, write_events
from tadcli.review import read_events_file, read_ground_truth_events, truth_of
from tadcli.services.review import review

from conftest import error_line
from review_case import HOSTILE_LABEL, write_review_case

runner = CliRunner()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return write_review_case(tmp_path_factory.mktemp("review"))


def page_data(page: Path) -> dict:
    text = page.read_text()
    found = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


@pytest.mark.parametrize("format", EVENT_FORMATS)
def test_every_events_format_reads_back_as_written(case, format):
    events_file = read_events_file(case.events[format])
    written = case.videos[:1] if format == "srt" else case.videos
    assert events_file.format == format
    in_file_order = results_order if format == "activitynet" else list
    assert [list(video.events) for video in events_file.videos] == [in_file_order(video.events) for video in written]
    names = {"json": [v.video for v in written], "csv": [v.video for v in written],
             "activitynet": [video_id(v.video) for v in written], "srt": [case.events["srt"].stem]}
    assert [video.video for video in events_file.videos] == names[format]
    assert [video.duration for video in events_file.videos] == (
        [v.duration for v in written] if format == "json" else [None] * len(written))


def test_the_page_holds_the_events_the_truth_and_relative_links_and_nothing_from_the_network(case, tmp_path):
    page = tmp_path / "site" / "review.html"
    result = runner.invoke(app, ["review", str(case.events["json"]), "--annotations", str(case.annotations),
                                 "--out", str(page)])
    assert result.exit_code == 0, result.output
    assert f"3 video(s), {sum(len(v.events) for v in case.videos)} events (json); wrote {page}" in result.output
    text = page.read_text()
    assert text.count("</script>") == 2 and HOSTILE_LABEL not in text  # the label cannot end the data element
    assert not re.search(r"https?:", text) and "<link rel=\"stylesheet\"" not in text and " src=\"" not in text
    data = page_data(page)
    assert data["hasTruth"] and data["title"] == case.events["json"].name
    for entry, video in zip(data["videos"], case.videos):
        assert not Path(entry["src"]).is_absolute() and (page.parent / entry["src"]).resolve() == Path(video.video)
        assert [Event(**e) for e in entry["predictions"]] == list(video.events)
        assert [Event(**e) for e in entry["truth"]] == case.truth[video_id(video.video)]
    assert HOSTILE_LABEL in data["classes"]


def test_video_paths_are_found_from_the_events_file_folder_and_missing_ones_are_noted(tmp_path, monkeypatch):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a b.mp4").write_bytes(b"not decoded here")
    events = [VideoEvents("clips/a b.mp4", 5.0, 8.0, (Event("jump", 1.0, 2.0, 0.5),)),
              VideoEvents("clips/gone.mp4", 5.0, 8.0, ())]
    write_events(tmp_path / "events.json", ModelIdentity("tiny", "custom", ("jump",), "t"), events, "json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the file's relative paths are not found from here, but from its folder
    report = review(tmp_path / "events.json", "page.html")
    assert [video.file for video in report.videos] == [tmp_path / "clips" / "a b.mp4", None]
    assert report.notes == ["clips/gone.mp4: no video file found (give --video PATH): the page shows its timeline alone"]
    assert [entry["src"] for entry in page_data(elsewhere / "page.html")["videos"]] == ["../clips/a%20b.mp4", None]


def test_ground_truth_drops_thumos_ambiguous_and_meets_bsn_spellings(tmp_path):
    folder = tmp_path / "thumos"
    folder.mkdir()
    (folder / "Jump_test.txt").write_text("video_test_1 1.0 2.0\n")
    (folder / "Ambiguous_test.txt").write_text("video_test_1 3.0 4.0\n")
    truth = read_ground_truth_events(folder)
    assert truth == {"video_test_1": (Event("Jump", 1.0, 2.0, 1.0),)}
    bsn = {"v_abc": (Event("Jump", 1.0, 2.0, 1.0),)}
    assert truth_of(bsn, "videos/abc.mp4") == truth_of(bsn, "v_abc") == bsn["v_abc"] and truth_of(bsn, "x") is None


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"videos": [{"video": "a.mp4", "events": [{"label": "x", "start": 2, "end": 1, "score": 0.5}]}]}',
         "videos[0] (a.mp4): events[0]: end 1 < start 2"),
        ('{"results": {"a": [{"segment": [1, "b"], "label": "x", "score": 1}]}}', "video 'a': results[0]: segment"),
        ('{"database": {}}', "got 'database'"),
        ("video,start,end,label,score\na.mp4,1,2,x\n", "line 2: expected 5 fields"),
        ("1\n00:00:01,000 --> 00:00:02,000\nx (0.50)\n\n2\nnonsense\n", "expected a cue"),
        ("hello", "not an events file of tad detect"),
    ],
)
def test_a_malformed_events_file_is_one_line_naming_it(tmp_path, content, expected):
    events = tmp_path / "events.txt"
    events.write_text(content)
    line = error_line(runner.invoke(app, ["review", str(events), "--out", str(tmp_path / "p.html")]))
    assert str(events) in line and expected in line
    with pytest.raises(AnnotationError):
        read_events_file(events)


def test_video_and_path_errors_are_one_line(case, tmp_path):
    out = ["--out", str(tmp_path / "p.html")]
    other = tmp_path / "other.mp4"
    other.write_bytes(b"")
    line = error_line(runner.invoke(app, ["review", str(case.events["json"]), "--video", str(other), *out]))
    assert "--video" in line and "has no video 'other'" in line
    videos = [arg for video in case.videos[:2] for arg in ("--video", video.video)]
    line = error_line(runner.invoke(app, ["review", str(case.events["srt"]), *videos, *out]))
    assert "an srt file holds the events of one video; got 2 --video" in line
    line = error_line(runner.invoke(app, ["review", str(tmp_path / "missing.json"), *out]))
    assert "missing.json" in line
    line = error_line(runner.invoke(app, ["review", str(case.events["json"]), "--out", "/proc/review.html"]))
    assert "/proc/review.html" in line
    assert not (tmp_path / "p.html").exists()


def test_the_page_template_ships_with_the_package():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "*.html" in pyproject["tool"]["setuptools"]["package-data"]["tadcli.review"]
