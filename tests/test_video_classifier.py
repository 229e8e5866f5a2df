"""External video-level classifier files (spec §5.5): read, checked against the dataset, fused as presets say."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tadcli.config.loader import load_preset
from tadcli.data.video_classifier import read_video_classifier, video_class_scores
from tadcli.errors import AnnotationError, PresetError
from tadcli.model.postprocess import Detections, label_with_video_classifier

VIDEOS = ["QOlSCBRmfWY", "--1DO2V4K74", "-0ImYdtaG-Y"]  # ActivityNet ids, as classifier files write them


@pytest.fixture(scope="module")
def anet_classes(annotations_dir: Path) -> list[str]:
    with (annotations_dir / "activitynet" / "action_name.csv").open(newline="") as handle:
        return [row["action"] for row in csv.DictReader(handle)]


def write_classifier(path: Path, classes: list[str], scores: np.ndarray, key: str = "class") -> Path:
    content = {"results": {video: row.tolist() for video, row in zip(VIDEOS, scores)}, key: classes}
    path.write_text(json.dumps(content))
    return path


def test_scores_are_reordered_to_the_dataset_classes(tmp_path: Path, anet_classes: list[str]) -> None:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(anet_classes))  # the file lists the 200 classes in another order
    file_classes = [anet_classes[i] for i in order]
    file_scores = rng.dirichlet(np.ones(len(anet_classes)), size=len(VIDEOS))  # [3, 200] probabilities
    for key in ("class", "classes"):  # CUHK and InternVideo layouts
        scores = read_video_classifier(
            write_classifier(tmp_path / f"{key}.json", file_classes, file_scores, key), anet_classes
        )
        assert list(scores) == VIDEOS
        for row, video in zip(file_scores, VIDEOS):
            expected = np.empty(len(anet_classes))
            expected[order] = row  # dataset class order[i] has the file's column i
            assert scores[video].dtype == torch.float32 and scores[video].shape == (200,)
            assert torch.equal(scores[video], torch.from_numpy(expected).float())
    # Videos are found with or without the 'v_' file prefix.
    assert torch.equal(video_class_scores(scores, "v_QOlSCBRmfWY"), scores["QOlSCBRmfWY"])
    with pytest.raises(AnnotationError, match="no scores for video 'v_unknown'"):
        video_class_scores(scores, "v_unknown")


def test_classes_and_scores_are_checked_against_the_dataset(tmp_path: Path, anet_classes: list[str]) -> None:
    scores = np.full((len(VIDEOS), len(anet_classes)), 0.005)
    renamed = ["Ballet dancing" if name == "Ballet" else name for name in anet_classes]
    path = write_classifier(tmp_path / "renamed.json", renamed, scores)
    with pytest.raises(
        AnnotationError,
        match=r"renamed.json: its 200 classes are not the dataset's 200: 1 dataset classes have no scores "
        r"\(e.g. \['Ballet'\]\); 1 of its classes are not dataset classes \(e.g. \['Ballet dancing'\]\)",
    ):
        read_video_classifier(path, anet_classes)

    short = write_classifier(tmp_path / "short.json", anet_classes, scores)
    content = json.loads(short.read_text())
    content["results"]["--1DO2V4K74"] = content["results"]["--1DO2V4K74"][:199]
    short.write_text(json.dumps(content))
    with pytest.raises(AnnotationError, match=r"video '--1DO2V4K74': expected a list of 200 class scores, got 199"):
        read_video_classifier(short, anet_classes)

    negative = scores.copy()
    negative[2, 7] = -0.5
    with pytest.raises(AnnotationError, match=r"video '-0ImYdtaG-Y': score -0.5 of class index 7 is not a finite"):
        read_video_classifier(write_classifier(tmp_path / "negative.json", anet_classes, negative), anet_classes)

    both = json.loads(short.read_text()) | {"classes": anet_classes[::-1]}
    (tmp_path / "both.json").write_text(json.dumps(both))
    with pytest.raises(AnnotationError, match="'class' and 'classes' are both given and differ"):
        read_video_classifier(tmp_path / "both.json", anet_classes)
    (tmp_path / "none.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(AnnotationError, match="no class list"):
        read_video_classifier(tmp_path / "none.json", anet_classes)
    with pytest.raises(AnnotationError, match="video classifier file not found"):
        read_video_classifier(tmp_path / "absent.json", anet_classes)


def test_every_evaluated_video_needs_scores(tmp_path: Path, anet_classes: list[str]) -> None:
    path = write_classifier(tmp_path / "cuhk.json", anet_classes, np.full((3, 200), 0.005))
    assert len(read_video_classifier(path, anet_classes, video_ids=["v_QOlSCBRmfWY", "--1DO2V4K74"])) == 3
    with pytest.raises(AnnotationError, match=r"no scores for 2 of the evaluated videos \(e.g. 'v_a', 'b'\)"):
        read_video_classifier(path, anet_classes, video_ids=["QOlSCBRmfWY", "v_a", "b"])


def test_presets_fuse_top_classes_by_product_or_geometric_mean() -> None:
    detections = Detections(
        torch.tensor([[1.0, 4.0], [10.0, 12.5]]), torch.tensor([0.8, 0.5]), torch.zeros(2, dtype=torch.long)
    )
    class_scores = torch.tensor([0.1, 0.6, 0.05, 0.25])
    cuhk = load_preset("anet-small-192x4-160").video_classifier  # product, top 2
    fused = label_with_video_classifier(detections, class_scores, cuhk)
    assert fused.labels.tolist() == [1, 1, 3, 3]  # best class first, every segment repeated
    assert fused.segments.tolist() == [[1.0, 4.0], [10.0, 12.5]] * 2
    assert torch.allclose(fused.scores, torch.tensor([0.8 * 0.6, 0.5 * 0.6, 0.8 * 0.25, 0.5 * 0.25]))

    internvideo = load_preset(
        "anet-giant-192x4-224", ["video_classifier.fusion=geometric-mean", "video_classifier.topk=3"]
    )
    fused = label_with_video_classifier(detections, class_scores, internvideo.video_classifier)
    assert fused.labels.tolist() == [1, 1, 3, 3, 0, 0]
    assert fused.scores[4].item() == pytest.approx(math.sqrt(0.8 * 0.1))
    too_many = load_preset("anet-small-192x4-160", ["video_classifier.topk=5"]).video_classifier
    with pytest.raises(PresetError, match="topk 5 exceeds the 4 classes"):
        label_with_video_classifier(detections, class_scores, too_many)
