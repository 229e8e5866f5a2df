"""``tad eval --diagnose DIR`` end to end on the real THUMOS14 and ActivityNet annotation files: the files, the
summary, the defaults, the unchanged mAP and the one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.services.eval import PLOTS_EXTRA_NOTE, evaluate_predictions
from conftest import error_line

runner = CliRunner()
PLOTS = ("false_positive_analysis.png", "sensitivity_analysis.png", "false_negative_analysis.png")


@pytest.fixture(scope="module")
def thumos(annotations_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """ActionFormer's thumos14.json and seeded predictions on its 'Test' videos: jittered copies of every
    instance, some with another label, and pure background."""
    gt = annotations_dir / "thumos14" / "thumos14.json"
    database = json.loads(gt.read_text())["database"]
    rng = np.random.default_rng(0)
    labels = sorted({a["label"] for v in database.values() for a in v["annotations"]})
    results = {}
    for video_id, video in database.items():
        if video["subset"] != "Test":
            continue
        entries = []
        for annotation in video["annotations"]:
            start, end = annotation["segment"]
            for _ in range(3):
                jitter = rng.normal(0, 0.2 * (end - start), 2)
                label = annotation["label"] if rng.random() < 0.85 else str(rng.choice(labels))
                s, e = sorted((start + jitter[0], end + jitter[1]))
                entries.append({"segment": [s, e], "label": label, "score": float(rng.random())})
            background = float(rng.uniform(0, video["duration"]))
            entries.append({"segment": [background, background + 2.0], "label": annotation["label"], "score": float(rng.random())})
        results[video_id] = entries
    predictions = tmp_path_factory.mktemp("thumos") / "results.json"
    predictions.write_text(json.dumps({"results": results}))
    return gt, predictions


def test_thumos14_diagnosis_files_summary_and_unchanged_map(thumos: tuple[Path, Path], tmp_path: Path) -> None:
    gt, predictions = thumos
    base = ["eval", "--predictions", str(predictions), "--annotations", str(gt), "--dataset", "thumos14"]
    plain = runner.invoke(app, [*base, "--json", str(tmp_path / "plain.json")])
    out = tmp_path / "diag"
    diagnosed = runner.invoke(app, [*base, "--json", str(tmp_path / "diagnosed.json"), "--diagnose", str(out)])
    assert plain.exit_code == 0 and diagnosed.exit_code == 0, diagnosed.output
    # the mAP is the same file and the same table
    assert (tmp_path / "plain.json").read_text() == (tmp_path / "diagnosed.json").read_text()
    assert diagnosed.output.startswith(plain.output.split("scores written")[0])
    result = json.loads((out / "diagnosis.json").read_text())
    assert result["tiou_thresholds"] == [0.5]  # DETAD's THUMOS14 threshold, not the profile's 0.3:0.7
    assert result["characteristics"]["coverage"]["edges"] == [0.0, 0.02, 0.04, 0.06, 0.08, 1.0]
    assert result["average_num_instance_per_class"] == pytest.approx(3358 / 20)
    # the bins of the real test annotations (design/DIAGNOSIS.md's THUMOS14 example)
    assert [result["sensitivity"]["coverage"][b]["count"] for b in ("XS", "S", "M", "L", "XL")] == [2384, 657, 166, 61, 90]
    assert result["sensitivity"]["length"]["XS"]["count"] == 1626
    assert result["sensitivity"]["num_instances"]["XS"]["count"] == 15
    assert result["false_positives"]["top"]["1G"]["count"] == 3358
    top = result["false_positives"]["top"]["1G"]
    assert sum(top[name] for name in ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")) == pytest.approx(1.0)
    assert all(gain > 0 for name, gain in result["false_positives"]["map_gain"].items())
    assert "diagnosis (DETAD, thumos14 bins, tIoU 0.5) written to" in diagnosed.output
    assert "largest error in the top-1G predictions:" in diagnosed.output and "weakest bin:" in diagnosed.output
    pytest.importorskip("matplotlib")
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "and 3 plots" in diagnosed.output


def test_tiou_sets_the_diagnosis_thresholds(thumos: tuple[Path, Path], tmp_path: Path) -> None:
    gt, predictions = thumos
    report = evaluate_predictions(predictions, gt, dataset="thumos14", tiou=[0.3, 0.7], diagnose_dir=tmp_path / "d")
    assert report.tiou_thresholds == [0.3, 0.7]
    assert json.loads((tmp_path / "d" / "diagnosis.json").read_text())["tiou_thresholds"] == [0.3, 0.7]
    assert report.diagnosis is not None and report.diagnosis.diagnosis.tiou_thresholds == (0.3, 0.7)


def test_without_matplotlib_the_json_is_written_with_one_note(
    thumos: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gt, predictions = thumos
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ModuleNotFoundError
    report = evaluate_predictions(predictions, gt, dataset="thumos14", diagnose_dir=tmp_path / "d")
    assert (tmp_path / "d" / "diagnosis.json").is_file()
    assert not any((tmp_path / "d" / name).exists() for name in PLOTS)
    assert report.diagnosis is not None and report.diagnosis.plot_paths == []
    assert PLOTS_EXTRA_NOTE in report.diagnosis.notes and "pip install 'tadcli[plots]'" in PLOTS_EXTRA_NOTE


def test_activitynet_bins_thresholds_and_removed_instances(annotations_dir: Path, tmp_path: Path) -> None:
    folder = annotations_dir / "activitynet"
    result = runner.invoke(
        app,
        ["eval", "--predictions", str(folder / "sample_detection_prediction.json"),
         "--annotations", str(folder / "anet_anno_action.json"), "--diagnose", str(tmp_path / "d")],
    )
    assert result.exit_code == 0, result.output
    diagnosis = json.loads((tmp_path / "d" / "diagnosis.json").read_text())
    assert diagnosis["tiou_thresholds"] == [float(t) for t in np.linspace(0.5, 0.95, 10)]
    assert diagnosis["characteristics"]["coverage"]["edges"][3] == 0.6000000000000001
    assert diagnosis["characteristics"]["length"]["edges"][-1] == "inf"
    # whole-video instances ending after the rounded duration and zero-length ones are left out, as DETAD does
    assert "the diagnosis leaves out 21 instances" in result.output
    assert diagnosis["average_num_instance_per_class"] == pytest.approx(36.36)
    # the sample submission is the ground truth itself: every kept instance is found
    assert all(rate == 0.0 for rate in diagnosis["false_negatives"]["coverage"].values())


def test_a_diagnosis_folder_that_is_a_file_is_one_line(thumos: tuple[Path, Path], tmp_path: Path) -> None:
    gt, predictions = thumos
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["eval", "--predictions", str(predictions), "--annotations", str(gt), "--diagnose", str(blocker)])
    assert "diagnosis folder must be a folder" in error_line(result)


def test_annotations_without_durations_are_one_line(annotations_dir: Path, tmp_path: Path) -> None:
    folder = annotations_dir / "thumos14" / "annotations_test"
    predictions = tmp_path / "results.json"
    predictions.write_text(json.dumps({"results": {"video_test_0000004": [{"segment": [0.2, 1.1], "label": "CricketBowling", "score": 1.0}]}}))
    result = runner.invoke(app, ["eval", "--predictions", str(predictions), "--annotations", str(folder), "--diagnose", str(tmp_path / "d")])
    line = error_line(result)
    assert "--diagnose needs each video's duration" in line and "video_test_" in line


def test_run_diagnosis_is_that_of_its_results_file(trained_run: Path, small_synthetic: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--run", str(trained_run), "--subset", "test", "--out", str(tmp_path / "eval"),
                                 "--diagnose", str(tmp_path / "run_diag"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "diagnosis (DETAD," in result.output
    again = runner.invoke(app, ["eval", "--predictions", str(tmp_path / "eval" / "test_results.json"), "--annotations",
                                str(small_synthetic / "manifest.json"), "--subset", "test", "--dataset", "synthetic",
                                "--diagnose", str(tmp_path / "file_diag")])
    assert again.exit_code == 0, again.output
    run_diagnosis = json.loads((tmp_path / "run_diag" / "diagnosis.json").read_text())
    assert run_diagnosis == json.loads((tmp_path / "file_diag" / "diagnosis.json").read_text())
    assert run_diagnosis["sensitivity"]["average_mAP_N"] is not None
