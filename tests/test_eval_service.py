"""``evaluate_predictions``: ground-truth formats, subsets, thresholds, input errors, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tadcli.errors import AnnotationError, DatasetError, PresetError
from tadcli.services.eval import evaluate_predictions


def write_json(path: Path, content) -> Path:
    path.write_text(json.dumps(content))
    return path


def gt_file(tmp_path: Path, database: dict) -> Path:
    return write_json(tmp_path / "gt.json", {"version": "test", "database": database})


def video(subset: str, *instances: tuple[float, float, str]) -> dict:
    return {"subset": subset, "duration": 100.0, "annotations": [{"segment": [s, e], "label": label} for s, e, label in instances]}


def results_file(tmp_path: Path, results: dict) -> Path:
    return write_json(tmp_path / "results.json", {"results": results})


def det(start: float, end: float, label: str, score: float) -> dict:
    return {"segment": [start, end], "label": label, "score": score}


@pytest.fixture()
def small_gt(tmp_path: Path) -> Path:
    return gt_file(
        tmp_path,
        {
            "t1": video("training", (0, 5, "run")),
            "v1": video("validation", (0, 10, "run"), (20, 30, "jump")),
            "v2": video("validation", (5, 15, "run")),
            "x1": video("testing"),
        },
    )


# --------------------------------------------------------------------------- scores and output


def test_scores_and_writes_the_documented_json(tmp_path: Path, small_gt: Path) -> None:
    predictions = results_file(
        tmp_path,
        {
            "v1": [det(0, 10, "run", 0.9), det(20, 26, "jump", 0.8), det(50, 60, "run", 0.95)],
            "v2": [det(5, 15, "run", 0.7)],
        },
    )
    out = tmp_path / "scores" / "eval.json"
    report = evaluate_predictions(predictions, small_gt, tiou=[0.5, 0.7], json_out=out)

    # run: FP (0.95), TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> AP 2/3; jump tIoU 0.6.
    assert report.subset == "validation"
    assert report.per_class == {"run": [2 / 3, 2 / 3], "jump": [1.0, 0.0]}
    assert report.mAP == [(2 / 3 + 1.0) / 2, (2 / 3 + 0.0) / 2]
    assert report.recall == [1.0, 2 / 3]
    assert report.num_ground_truth == 3 and report.num_predictions == 4
    assert report.lowest_classes[0] == ("jump", 0.5)
    assert report.json_path == out
    written = json.loads(out.read_text())
    assert set(written) == {"tiou_thresholds", "mAP", "average_mAP", "per_class", "recall", "num_ground_truth", "num_predictions", "subset"}
    assert written == report.to_json()
    assert written["average_mAP"] == report.average_mAP
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]


def test_progress_is_reported(tmp_path: Path, small_gt: Path) -> None:
    calls = []
    predictions = results_file(tmp_path, {"v1": [det(0, 10, "run", 0.9)]})
    evaluate_predictions(predictions, small_gt, progress=lambda *call: calls.append(call))
    assert calls[0] == ("reading ground truth", 0, 4) and calls[-1] == ("done", 4, 4)


# --------------------------------------------------------------------------- thresholds and subsets


def test_thresholds_from_argument_profile_or_official_default(tmp_path: Path, small_gt: Path) -> None:
    predictions = results_file(tmp_path, {"v1": [det(0, 10, "run", 0.9)]})
    assert evaluate_predictions(predictions, small_gt, tiou=[0.35, 0.45]).tiou_thresholds == [0.35, 0.45]
    assert evaluate_predictions(predictions, small_gt, dataset="thumos14").tiou_thresholds == [0.3, 0.4, 0.5, 0.6, 0.7]
    official = [float(t) for t in np.linspace(0.5, 0.95, 10)]
    assert official[8] == 0.8999999999999999
    assert evaluate_predictions(predictions, small_gt, dataset="activitynet").tiou_thresholds == official
    assert evaluate_predictions(predictions, small_gt).tiou_thresholds == official
    assert evaluate_predictions(predictions, small_gt, dataset="multithumos").tiou_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert evaluate_predictions(predictions, small_gt, dataset="epic-kitchens", subset="validation").tiou_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]
    with pytest.raises(PresetError, match="unknown dataset profile 'thumos'"):
        evaluate_predictions(predictions, small_gt, dataset="thumos")


def test_default_subset_is_validation_else_the_only_subset(tmp_path: Path) -> None:
    gt = gt_file(tmp_path, {"a": video("val", (0, 10, "run"))})
    predictions = results_file(tmp_path, {"a": [det(0, 10, "run", 0.9)]})
    report = evaluate_predictions(predictions, gt)
    assert report.subset == "val" and report.average_mAP == 1.0


def test_subset_without_ground_truth_lists_the_subsets(tmp_path: Path, small_gt: Path) -> None:
    predictions = results_file(tmp_path, {"v1": [det(0, 10, "run", 0.9)]})
    expected = (
        r"subset 'Validation' has no ground-truth instances; subsets in the file: 'training' \(1 videos, 1 instances\), "
        r"'validation' \(2 videos, 3 instances\), 'testing' \(1 videos, 0 instances\)"
    )
    with pytest.raises(DatasetError, match=expected):
        evaluate_predictions(predictions, small_gt, subset="Validation")  # exact, case-sensitive
    with pytest.raises(DatasetError, match="subset 'testing' has no ground-truth instances"):
        evaluate_predictions(predictions, small_gt, subset="testing")
    with pytest.raises(DatasetError, match="subset 'testing' has no"):
        evaluate_predictions(predictions, small_gt, dataset="charades")  # Charades scores 'testing'


def test_predictions_outside_the_subset_are_false_positives_and_noted(tmp_path: Path, small_gt: Path) -> None:
    predictions = results_file(tmp_path, {"t1": [det(0, 5, "run", 0.99)], "v1": [det(0, 10, "run", 0.9), det(20, 30, "swim", 0.9)]})
    report = evaluate_predictions(predictions, small_gt, tiou=[0.5])
    assert report.per_class["run"] == [0.5 * 0.5]  # FP (training video) then TP, one of two GT found
    assert report.num_predictions_without_ground_truth == 1
    assert report.num_ignored_predictions == 1
    assert any("1 of the 2 results videos are not in subset 'validation'" in note for note in report.notes)
    assert any("'swim'" in note and "ignored" in note for note in report.notes)


# --------------------------------------------------------------------------- input errors


def test_results_matching_no_video_of_the_subset(tmp_path: Path, small_gt: Path) -> None:
    elsewhere = results_file(tmp_path, {"t1": [det(0, 5, "run", 0.9)], "zz": [det(0, 5, "run", 0.9)]})
    with pytest.raises(AnnotationError, match=r"none of its 2 videos \(e.g. 't1'\) is in subset 'validation'.*they are in subset 'training' \(1 videos\)"):
        evaluate_predictions(elsewhere, small_gt)
    prefixed = results_file(tmp_path, {"v_v1": [det(0, 5, "run", 0.9)]})
    with pytest.raises(AnnotationError, match="differ by the 'v_' prefix"):
        evaluate_predictions(prefixed, small_gt)
    empty = results_file(tmp_path, {})
    with pytest.raises(AnnotationError, match="holds no detections"):
        evaluate_predictions(empty, small_gt)


def test_no_predicted_label_is_a_class(tmp_path: Path, small_gt: Path) -> None:
    predictions = results_file(tmp_path, {"v1": [det(0, 10, "3", 0.9)]})
    with pytest.raises(AnnotationError, match=r"none of the predicted labels is a ground-truth class.*predicted e.g. '3'; classes e.g. 'jump'"):
        evaluate_predictions(predictions, small_gt)


def test_inverted_ground_truth_is_scored_as_the_official_evaluator_does_and_strict_names_it(tmp_path: Path) -> None:
    # the official evaluator reads such an instance (it overlaps nothing: a miss); DETAD's diagnosis drops it
    gt = gt_file(tmp_path, {"a": video("validation", (0, 10, "run"), (8, 7, "run"))})
    predictions = results_file(tmp_path, {"a": [det(0, 10, "run", 0.9), det(6, 9, "run", 0.8)]})
    report = evaluate_predictions(predictions, gt, tiou=[0.5], diagnose_dir=tmp_path / "diagnosis")
    assert report.average_mAP == pytest.approx(0.5)  # one of two instances found, at precision 1
    assert any("1 ground-truth instances end before they start (e.g. video 'a': annotation 1 (run)" in note
               for note in report.notes)
    diagnosis = json.loads((tmp_path / "diagnosis" / "diagnosis.json").read_text())
    assert sum(b["count"] for b in diagnosis["sensitivity"]["coverage"].values()) == 1
    assert diagnosis["average_num_instance_per_class"] == 1.0
    with pytest.raises(AnnotationError, match=r"gt.json: video 'a': annotation 1 \(run\): segment \[8.0, 7.0\] ends before it starts"):
        evaluate_predictions(predictions, gt, strict=True)


def test_malformed_results_name_the_entry(tmp_path: Path, small_gt: Path) -> None:
    predictions = results_file(tmp_path, {"v1": [det(0, 10, "run", 0.9), {"segment": [0, 1], "score": 0.5}]})
    with pytest.raises(AnnotationError, match=r"results.json: video 'v1': results\[1\]: missing label"):
        evaluate_predictions(predictions, small_gt)


# --------------------------------------------------------------------------- real annotation files


def perfect_results_from_database(path: Path, subset: str) -> dict:
    database = json.loads(path.read_text())["database"]
    return {
        video_id: [det(*a["segment"], a["label"], 1.0) for a in entry["annotations"]]
        for video_id, entry in database.items()
        if entry["subset"] == subset
    }


def test_thumos14_opentad_json_perfect_predictions(tmp_path: Path, annotations_dir: Path) -> None:
    gt = annotations_dir / "thumos14" / "thumos_14_anno.json"
    predictions = results_file(tmp_path, perfect_results_from_database(gt, "validation"))
    report = evaluate_predictions(predictions, gt, dataset="thumos14")
    assert report.subset == "validation"  # OpenTAD's name for the THUMOS14 test videos
    assert report.num_ground_truth == 3325
    assert len(report.per_class) == 20
    assert report.mAP == [1.0] * 5 and report.average_mAP == 1.0 and report.recall == [1.0] * 5


def test_thumos14_actionformer_json_scores_test_as_prepare_renames_it(tmp_path: Path, annotations_dir: Path) -> None:
    gt = annotations_dir / "thumos14" / "thumos14.json"
    predictions = results_file(tmp_path, perfect_results_from_database(gt, "Test"))
    # the profile evaluates 'validation', which tad prepare makes of ActionFormer's 'Test'
    report = evaluate_predictions(predictions, gt, dataset="thumos14")
    assert report.subset == "Test" and report.num_ground_truth == 3358 and report.average_mAP == 1.0
    assert any("'Test'" in note and "'validation'" in note for note in report.notes)
    assert evaluate_predictions(predictions, gt, dataset="thumos14", subset="Test").num_ground_truth == 3358
    with pytest.raises(DatasetError, match=r"'Test' \(212 videos, 3358 instances\), 'Validation' \(200 videos, 3007 instances\)"):
        evaluate_predictions(predictions, gt, dataset="thumos14", subset="validation")  # an explicit name is exact


def test_thumos14_official_txt_files_leave_ambiguous_out(tmp_path: Path, annotations_dir: Path) -> None:
    folder = annotations_dir / "thumos14" / "annotations_test"
    results: dict[str, list] = {}
    for file in sorted(folder.glob("*_test.txt")):
        label = file.name[: -len("_test.txt")]
        for line in file.read_text().splitlines():
            if line.strip():
                video_id, start, end = line.split()
                results.setdefault(video_id, []).append(det(float(start), float(end), label, 1.0))
    report = evaluate_predictions(results_file(tmp_path, results), folder)
    assert report.subset == "test"  # the THUMOS14 split results are reported on
    assert report.tiou_thresholds == [0.3, 0.4, 0.5, 0.6, 0.7]  # the format implies the thumos14 profile
    assert report.num_ground_truth == 3358 and "Ambiguous" not in report.per_class
    assert report.num_ignored_predictions == 99  # the Ambiguous rows, predicted as a label
    assert report.average_mAP == 1.0
    assert any("99 'Ambiguous' instances" in note for note in report.notes)


def test_official_sample_activitynet_submission(tmp_path: Path, annotations_dir: Path) -> None:
    """The sample submission is the v1.3 validation ground truth with score 1.0 on 4,926 videos;
    BSN's copy has 4,728 of them. Every instance is found (recall 1 at every threshold); the 361
    detections of the 198 missing videos are false positives that, all scores being equal, rank in
    file order; without them the score is perfect."""
    sample = annotations_dir / "activitynet" / "sample_detection_prediction.json"
    bsn = annotations_dir / "activitynet"
    report = evaluate_predictions(sample, bsn, dataset="activitynet")

    assert report.subset == "validation" and report.num_ground_truth == 7293 and report.num_predictions == 7654
    assert report.recall == [1.0] * 10
    assert report.num_predictions_without_ground_truth == 361
    # Expected per class from the definition: sum over true positives, in file order, of
    # 1/npos times the best precision at or after it.
    known = {video.removeprefix("v_") for video in json.loads((bsn / "anet_anno_action.json").read_text())}
    flags: dict[str, list[bool]] = {}
    for video_id, entries in json.loads(sample.read_text())["results"].items():
        for entry in entries:
            flags.setdefault(entry["label"], []).append(video_id in known)
    for label, is_tp in flags.items():
        tp = np.cumsum(is_tp)
        precision = tp / np.arange(1, len(is_tp) + 1)
        best_after = np.maximum.accumulate(precision[::-1])[::-1]
        expected = float(np.sum(best_after[np.array(is_tp)]) / tp[-1])
        assert report.per_class[label] == pytest.approx([expected] * 10, rel=1e-12), label
    assert 0.97 < report.average_mAP < 0.98

    prefixed = {f"v_{video}": entries for video, entries in list(json.loads(sample.read_text())["results"].items())[:3]}
    with pytest.raises(AnnotationError, match="differ by the 'v_' prefix"):  # BSN's own keys have the prefix
        evaluate_predictions(results_file(tmp_path, prefixed), bsn, dataset="activitynet")

    kept = {v: e for v, e in json.loads(sample.read_text())["results"].items() if v in known}
    perfect = evaluate_predictions(results_file(tmp_path, kept), bsn, dataset="activitynet")
    assert perfect.mAP == [1.0] * 10 and perfect.average_mAP == 1.0
    assert any("zero length" in note for note in perfect.notes)  # 3 instances, matched at the same instant


def test_epic_kitchens_csv_with_the_task_named(tmp_path: Path, annotations_dir: Path) -> None:
    from tadcli.data.annotations import read_annotations

    folder = annotations_dir / "epic_kitchens_100"
    with pytest.raises(AnnotationError, match="epic-kitchens-verb or epic-kitchens-noun"):
        evaluate_predictions(results_file(tmp_path, {"P01_11": [det(0, 1, "take", 1.0)]}), folder)
    videos = read_annotations(folder, format="epic-kitchens-verb").videos
    perfect = {v.video_id: [det(i.start, i.end, i.label, 1.0) for i in v.instances] for v in videos.values()}
    report = evaluate_predictions(results_file(tmp_path, perfect), folder, dataset="epic-kitchens", annotation_format="epic-kitchens-verb")
    assert report.subset == "val" and report.tiou_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert report.num_ground_truth == 9668 and len(report.per_class) == 78
    assert report.average_mAP == 1.0
