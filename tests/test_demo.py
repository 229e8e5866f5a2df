"""tad demo: the README's first command, as a one-epoch smoke run on real synthetic videos."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.io.rundir import read_run_config

from conftest import error_line

runner = CliRunner()


@pytest.mark.slow
def test_demo_smoke_run_writes_every_output_and_reports_the_test_map(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--videos", "5", "--epochs", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Detection mAP on 'test'" in result.output and "average" in result.output
    config = read_run_config(out / "run")
    assert config.preset.name == "tiny" and config.preset.train.epochs == 1 and config.profile == "synthetic"
    events = json.loads((out / "events.json").read_text())
    assert events["model"]["run"] == str(out / "run")
    (video,) = events["videos"]
    assert video["video"].endswith(".mp4") and all(event["score"] >= 0.2 for event in video["events"])
    assert (out / "events.srt").is_file()
    with Image.open(out / "timeline.png") as image:
        assert image.format == "PNG" and image.width == 1200
    for name in ("events.json", "events.srt", "timeline.png"):
        assert f"wrote    {out / name}" in result.output


def test_demo_refuses_a_run_folder_that_is_not_a_tad_run_before_any_work(tmp_path):
    notes = tmp_path / "demo" / "run" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine\n")
    line = error_line(runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--device", "cpu"]))
    assert line == f"error: {notes.parent}: exists and is not a tad run; choose another --out for the demo"
    assert notes.read_text() == "mine\n" and not (tmp_path / "demo" / "data").exists()
