"""Reading ActivityNet-format results files: content in file order, precise errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tadcli.errors import AnnotationError
from tadcli.evaluation.results import read_detection_results
from tadcli.io.jsonio import write_json_atomic


def write(tmp_path: Path, content, name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_reads_entries_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "version": "VERSION 1.3",
            "results": {
                "v2": [{"segment": [1, 2.5], "label": "run", "score": 0.5, "extra": 1}],
                "v1": [{"segment": [0.0, 0.0], "label": "jump", "score": 1}, {"segment": [3, 4], "label": "run", "score": 0.25}],
                "v3": [],
            },
            "external_data": {},
        },
    )
    detections = read_detection_results(path)
    assert list(detections.video_ids) == ["v2", "v1", "v1"]
    assert detections.starts.tolist() == [1.0, 0.0, 3.0]
    assert detections.ends.tolist() == [2.5, 0.0, 4.0]
    assert list(detections.labels) == ["run", "jump", "run"]
    assert detections.scores.tolist() == [0.5, 1.0, 0.25]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"segment": [5], "label": "run", "score": 0.5}, r"results\[1\]: segment: expected \[start, end\]"),
        ({"segment": [5, "6"], "label": "run", "score": 0.5}, r"results\[1\]: segment"),
        ({"segment": [5, 6], "label": 3, "score": 0.5}, r"results\[1\]: label: expected a class name"),
        ({"segment": [5, 6], "label": "run", "score": True}, r"results\[1\]: score: expected a finite number"),
        ({"segment": [5, 6], "label": "run"}, r"results\[1\]: missing score"),
        ([5, 6, "run", 0.5], r"results\[1\]: expected an object"),
    ],
)
def test_malformed_entry_names_file_video_and_index(tmp_path: Path, entry, message: str) -> None:
    path = write(tmp_path, {"results": {"v0": [], "v1": [{"segment": [0, 1], "label": "run", "score": 0.1}, entry]}})
    with pytest.raises(AnnotationError, match=message) as error:
        read_detection_results(path)
    assert str(error.value).startswith(str(path))


def test_inverted_segments_are_read_as_written_or_rejected_when_strict(tmp_path: Path) -> None:
    entries = [{"segment": [0, 1], "label": "run", "score": 0.1}, {"segment": [5, 4], "label": "run", "score": 0.5}]
    path = write(tmp_path, {"results": {"v1": entries}})
    detections = read_detection_results(path)
    assert detections.starts.tolist() == [0.0, 5.0] and detections.ends.tolist() == [1.0, 4.0]
    with pytest.raises(AnnotationError, match=r"video 'v1': results\[1\]: segment: end 4 < start 5 \(--strict\)"):
        read_detection_results(path, strict=True)


def test_nan_score_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '{"results": {"v1": [{"segment": [0, 1], "label": "run", "score": NaN}]}}')
    with pytest.raises(AnnotationError, match=r"video 'v1': results\[0\]: score: expected a finite number, got nan"):
        read_detection_results(path)


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{"results": {\n  "v1": [}\n}')
    with pytest.raises(AnnotationError, match=r"results.json: invalid JSON at line 2, column 10"):
        read_detection_results(path)


def test_wrong_top_level_is_explained(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="looks like an annotation file"):
        read_detection_results(write(tmp_path, {"database": {}}))
    with pytest.raises(AnnotationError, match=r"expected a results file"):
        read_detection_results(write(tmp_path, [1, 2]))
    with pytest.raises(AnnotationError, match=r"video 'v1': expected a list of detections, got dict"):
        read_detection_results(write(tmp_path, {"results": {"v1": {"segment": [0, 1]}}}))
    with pytest.raises(AnnotationError, match="results file not found"):
        read_detection_results(tmp_path / "missing.json")


def test_atomic_json_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "scores.json"
    write_json_atomic(target, {"x": 0.8999999999999999})
    write_json_atomic(target, {"x": [1, 2]})
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["scores.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not the 0600 of a temporary file
    with pytest.raises(ValueError):
        write_json_atomic(target, {"x": float("nan")})
    assert json.loads(target.read_text()) == {"x": [1, 2]}  # the old content survives a failed write
    assert [p.name for p in target.parent.iterdir()] == ["scores.json"]
