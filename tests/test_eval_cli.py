"""``tad eval --predictions`` through the real Typer app: table, JSON file, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tadcli.cli import app

runner = CliRunner()


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "v1": {"subset": "validation", "duration": 60.0, "annotations": [{"segment": [0, 10], "label": "run"}, {"segment": [20, 30], "label": "jump"}]},
                    "t1": {"subset": "training", "duration": 60.0, "annotations": [{"segment": [0, 10], "label": "run"}]},
                }
            }
        )
    )
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": {"v1": [{"segment": [0, 10], "label": "run", "score": 0.9}, {"segment": [20, 26], "label": "jump", "score": 0.8}]}}))
    return gt, results


def test_prints_the_table_and_writes_json(files: tuple[Path, Path], tmp_path: Path) -> None:
    gt, results = files
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--predictions", str(results), "--annotations", str(gt), "--tiou", "0.5,0.7", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Detection mAP on 'validation'" in result.output
    # jump has tIoU 0.6: mAP 100 at 0.5, (100 + 0) / 2 at 0.7, average 75
    assert "average" in result.output and "75.00" in result.output
    assert "2 ground-truth instances, 2 predictions" in result.output
    assert "lowest AP" in result.output and "jump 50.00" in result.output
    written = json.loads(out.read_text())
    assert written["tiou_thresholds"] == [0.5, 0.7]
    assert written["mAP"] == [1.0, 0.5] and written["average_mAP"] == 0.75
    assert written["per_class"] == {"run": [1.0, 1.0], "jump": [1.0, 0.0]}
    assert written["subset"] == "validation"


def test_dataset_profile_thresholds(files: tuple[Path, Path], tmp_path: Path) -> None:
    gt, results = files
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--predictions", str(results), "--annotations", str(gt), "--dataset", "activitynet", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["tiou_thresholds"][8] == 0.8999999999999999


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--subset", "testing"], "subset 'testing' has no ground-truth instances; subsets in the file: 'validation' (1 videos, 2 instances), 'training' (1 videos, 1 instances)"),
        (["--tiou", "0.5,abc"], "expected comma-separated numbers"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(files: tuple[Path, Path], extra: list[str], message: str) -> None:
    gt, results = files
    result = runner.invoke(app, ["eval", "--predictions", str(results), "--annotations", str(gt), *extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_results_on_other_videos_and_malformed_results(files: tuple[Path, Path], tmp_path: Path) -> None:
    gt, _ = files
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": {"t1": [{"segment": [0, 10], "label": "run", "score": 0.9}]}}))
    result = runner.invoke(app, ["eval", "--predictions", str(other), "--annotations", str(gt)])
    assert result.exit_code == 2
    assert "none of its 1 videos" in " ".join(result.output.split())
    broken = tmp_path / "broken.json"
    entries = [{"segment": [0, 10], "label": "run", "score": 0.9}, {"segment": "x"}]
    broken.write_text(json.dumps({"results": {"v1": entries}}))
    result = runner.invoke(app, ["eval", "--predictions", str(broken), "--annotations", str(gt)])
    assert result.exit_code == 2
    assert "video 'v1': results[1]: missing label, score" in " ".join(result.output.split())


def test_inverted_predictions_are_scored_with_one_warning_or_rejected_with_strict(files, tmp_path: Path) -> None:
    gt, _ = files
    inverted = tmp_path / "inverted.json"
    entries = [
        {"segment": [0, 10], "label": "run", "score": 0.9},
        {"segment": [30, 20], "label": "jump", "score": 0.8},  # an exact reversal of the 'jump' instance
        {"segment": [9, 4], "label": "run", "score": 0.7},
    ]
    inverted.write_text(json.dumps({"results": {"v1": entries}}))
    out = tmp_path / "eval.json"
    args = ["eval", "--predictions", str(inverted), "--annotations", str(gt), "--tiou", "0.5", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 2 predictions end before they start")
    # As officially: [30, 20] vs [20, 30] is 0/0 (NaN), a match; [9, 4] is a false positive of 'run'.
    assert json.loads(out.read_text())["per_class"] == {"run": [1.0], "jump": [1.0]}

    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 2
    assert "video 'v1': results[1]: segment: end 20 < start 30 (--strict)" in " ".join(strict.output.split())


def test_csv_writes_the_per_class_ap_table(files, tmp_path: Path) -> None:
    import pandas

    gt, results = files
    table_file = tmp_path / "per_class.csv"
    args = ["eval", "--predictions", str(results), "--annotations", str(gt), "--tiou", "0.5,0.7", "--csv", str(table_file)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "per-class AP written to" in result.output
    table = pandas.read_csv(table_file)
    assert list(table.columns) == ["class", "instances", "AP@0.5", "AP@0.7", "mean AP"]
    assert table.to_dict("records") == [
        {"class": "run", "instances": 1, "AP@0.5": 1.0, "AP@0.7": 1.0, "mean AP": 1.0},
        {"class": "jump", "instances": 1, "AP@0.5": 1.0, "AP@0.7": 0.0, "mean AP": 0.5},
    ]


def test_installed_command_end_to_end(files: tuple[Path, Path], tmp_path: Path) -> None:
    gt, results = files
    out = tmp_path / "eval.json"
    completed = subprocess.run(
        [sys.executable, "-m", "tadcli", "eval", "--predictions", str(results), "--annotations", str(gt), "--dataset", "thumos14", "--json", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())["tiou_thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7]


def test_epic_verbs_scored_through_the_format_option(annotations_dir: Path, tmp_path: Path) -> None:
    from tadcli.data.annotations import read_annotations

    csv = annotations_dir / "epic_kitchens_100" / "EPIC_100_validation.csv"
    truth = read_annotations(csv, format="epic-kitchens-verb")
    results = {
        video.video_id: [{"segment": [i.start, i.end], "label": i.label, "score": 1.0} for i in video.instances]
        for video in truth.videos.values()
    }
    predictions = tmp_path / "epic_results.json"
    predictions.write_text(json.dumps({"results": results}))
    out = tmp_path / "scores.json"
    args = ["eval", "--predictions", str(predictions), "--annotations", str(csv), "--dataset", "epic-kitchens",
            "--json", str(out)]
    # Without --format the EPIC file defaults to nouns, whose labels match none of these verb predictions.
    assert runner.invoke(app, args).exit_code == 2
    result = runner.invoke(app, [*args, "--format", "epic-kitchens-verb"])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["subset"] == "val" and scores["tiou_thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert scores["num_ground_truth"] == sum(len(v.instances) for v in truth.videos.values())
    assert scores["average_mAP"] == 1.0
