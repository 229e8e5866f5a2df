"""Annotation readers against the real files in ../shared/data/annotations (counts from their READMEs)
and hand-written Charades / custom files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tadcli.data.annotations import (
    AMBIGUOUS_LABEL,
    AnnotationSet,
    Instance,
    detect_annotation_format,
    read_annotations,
    read_class_list,
)
from tadcli.errors import AnnotationError

SHARED_ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "annotations"  # see conftest.py
needs_shared = pytest.mark.skipif(
    not SHARED_ANNOTATIONS.is_dir(), reason=f"the shared annotation folder {SHARED_ANNOTATIONS} is absent"
)


def counts_per_subset(annotations: AnnotationSet, exclude_label: str | None = None) -> dict[str, tuple[int, int, int]]:
    """subset -> (videos, distinct labels, instances)."""
    counts = {}
    for subset in annotations.subsets():
        videos = [video for video in annotations.videos.values() if video.subset == subset]
        instances = [i for video in videos for i in video.instances if i.label != exclude_label]
        counts[subset] = (len(videos), len({i.label for i in instances}), len(instances))
    return counts


@needs_shared
def test_actionformer_thumos14_json_counts_and_raw_segments():
    annotations = read_annotations(SHARED_ANNOTATIONS / "thumos14" / "thumos14.json")
    assert annotations.format == "activitynet-json"
    assert counts_per_subset(annotations) == {"Test": (212, 20, 3358), "Validation": (200, 20, 3007)}
    assert len(annotations.classes) == 20 and annotations.classes == sorted(annotations.classes)
    assert annotations.videos["video_test_0000004"].fps == 30.0
    # raw: the 30 instances that end after the video duration are kept unclipped
    past_end = sum(1 for video in annotations.videos.values() for i in video.instances if i.end > video.duration)
    assert past_end == 30


@needs_shared
def test_opentad_thumos_json_takes_classes_from_category_idx():
    annotations = read_annotations(SHARED_ANNOTATIONS / "thumos14" / "thumos_14_anno.json")
    assert counts_per_subset(annotations) == {"training": (200, 20, 3003), "validation": (211, 20, 3325)}
    category_file = SHARED_ANNOTATIONS / "thumos14" / "category_idx.txt"
    assert annotations.classes == category_file.read_text().split()
    assert annotations.videos["video_validation_0000051"].num_frames == 5091


@needs_shared
def test_official_thumos14_txt_keeps_ambiguous_outside_the_class_list():
    annotations = read_annotations(SHARED_ANNOTATIONS / "thumos14")
    assert annotations.format == "thumos14-txt"
    assert counts_per_subset(annotations, exclude_label=AMBIGUOUS_LABEL) == {
        "test": (213, 20, 3358),
        "validation": (200, 20, 3007),
    }
    ambiguous = {
        subset: sum(
            i.label == AMBIGUOUS_LABEL for v in annotations.videos.values() if v.subset == subset for i in v.instances
        )
        for subset in ("validation", "test")
    }
    assert ambiguous == {"validation": 89, "test": 99}
    assert AMBIGUOUS_LABEL not in annotations.classes and len(annotations.classes) == 20
    assert {i.label for i in annotations.videos["video_test_0001292"].instances} == {AMBIGUOUS_LABEL}
    # one folder alone reads as one subset
    test_only = read_annotations(SHARED_ANNOTATIONS / "thumos14" / "annotations_test")
    assert test_only.subsets() == ["test"]


@needs_shared
def test_bsn_activitynet_joins_subsets_from_video_info():
    for path in (SHARED_ANNOTATIONS / "activitynet", SHARED_ANNOTATIONS / "activitynet" / "anet_anno_action.json"):
        annotations = read_annotations(path)
        assert annotations.format == "activitynet-bsn"
        assert counts_per_subset(annotations) == {
            "training": (9649, 200, 14859),
            "validation": (4728, 200, 7293),
            "testing": (4851, 0, 0),
        }
    assert len(annotations.classes) == 200
    video = annotations.videos["v_QOlSCBRmfWY"]
    assert video.duration == pytest.approx(82.73) and video.instances[0] == Instance(
        6.195294851794072, 77.73085420904837, "Ballet"
    )
    assert video.fps is not None and video.num_frames is not None


@needs_shared
def test_multithumos_counts_and_class_names_match_thumos14():
    annotations = read_annotations(SHARED_ANNOTATIONS / "multithumos" / "multithumos.json")
    assert annotations.format == "multithumos-json"
    assert counts_per_subset(annotations) == {"testing": (213, 65, 20208), "training": (200, 65, 18482)}
    assert len(annotations.classes) == 65 and annotations.classes[20] == "class_21"
    # index 1 is BaseballPitch: its segments are those of the official THUMOS14 file
    official = read_annotations(SHARED_ANNOTATIONS / "thumos14")

    def segments(annotation_set):
        return {
            (v.video_id, i.start, i.end)
            for v in annotation_set.videos.values()
            for i in v.instances
            if i.label == "BaseballPitch"
        }

    assert segments(annotations) == segments(official)


def test_multithumos_class_list_file_names_all_65(tmp_path):
    (tmp_path / "multithumos.json").write_text(
        json.dumps({"v1": {"subset": "training", "duration": 9.0, "actions": [[65, 1.0, 2.0]]}})
    )
    names = [f"Action{i}" for i in range(1, 66)]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    annotations = read_annotations(tmp_path / "multithumos.json", class_list=tmp_path / "classes.txt")
    assert annotations.classes == names and annotations.videos["v1"].instances[0].label == "Action65"
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(AnnotationError, match="65 classes"):
        read_annotations(tmp_path / "multithumos.json", class_list=tmp_path / "short.txt")


def test_one_class_list_reader_for_annotations_and_checkpoints(tmp_path, monkeypatch):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("video,start,end,label\nclip01,1.0,2.0,jump\n")
    (tmp_path / "classes.txt").write_text("wave\n\njump\n")  # blank lines are ignored
    assert read_annotations(csv_file, class_list=tmp_path / "classes.txt").classes == ["wave", "jump"]
    (tmp_path / "twice.txt").write_text("jump\nwave\njump\n")
    with pytest.raises(AnnotationError, match="repeats jump"):
        read_annotations(csv_file, class_list=tmp_path / "twice.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(AnnotationError, match="class list is empty"):
        read_annotations(csv_file, class_list=tmp_path / "empty.txt")
    monkeypatch.chdir(tmp_path)  # a dataset whose list ships with tad names it where no such file exists
    assert read_class_list("thumos14")[:2] == ["BaseballPitch", "BasketballDunk"]
    with pytest.raises(AnnotationError, match="class list not found.*thumos14"):
        read_class_list("thumos15")


@needs_shared
def test_epic_kitchens_verb_and_noun_tasks():
    folder = SHARED_ANNOTATIONS / "epic_kitchens_100"
    verbs = read_annotations(folder, "epic-kitchens-verb")
    nouns = read_annotations(folder / "EPIC_100_validation.csv", "epic-kitchens-noun")
    assert counts_per_subset(verbs) == {"val": (138, 78, 9668)}
    assert counts_per_subset(nouns) == {"val": (138, 211, 9668)}
    assert len(verbs.classes) == 97 and len(nouns.classes) == 300
    first = verbs.videos["P01_11"]
    assert first.instances[0] == Instance(0.0, 1.89, "take")  # 00:00:00.00 -> 00:00:01.89, verb_class 0
    assert nouns.videos["P01_11"].instances[0].label == "plate"
    assert first.fps == pytest.approx(59.94005994) and first.duration is not None
    with pytest.raises(AnnotationError, match="epic-kitchens-verb or epic-kitchens-noun"):
        read_annotations(folder / "EPIC_100_validation.csv")


def write_charades(folder: Path, with_class_names: bool) -> None:
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    (folder / "Charades_v1_train.csv").write_text(
        header
        + 'AB12C,P1,Kitchen,6,7,Yes,"A person cooks.",food;pan,"Cooking.",c092 11.90 21.20;c147 0.00 12.60,30.5\n'
        + "XY34Z,P2,Hall,5,7,Yes,walks,,walks,,12.0\n"
    )
    (folder / "Charades_v1_test.csv").write_text(
        header + "QQ99Q,P3,Bedroom,7,7,Yes,sleeps,bed,sleeps,c092 1.0 2.0,8.25\n"
    )
    if with_class_names:
        (folder / "Charades_v1_classes.txt").write_text("c092 Holding some food\nc147 Cooking something\n")


def test_charades_csv_subsets_from_file_names_and_class_names(tmp_path):
    write_charades(tmp_path, with_class_names=True)
    annotations = read_annotations(tmp_path)
    assert annotations.format == "charades-csv"
    assert counts_per_subset(annotations) == {"training": (2, 2, 2), "testing": (1, 1, 1)}
    assert annotations.classes == ["Holding some food", "Cooking something"]
    assert annotations.videos["AB12C"].instances == [
        Instance(11.9, 21.2, "Holding some food"),
        Instance(0.0, 12.6, "Cooking something"),
    ]
    assert annotations.videos["AB12C"].duration == 30.5 and annotations.videos["XY34Z"].instances == []


def test_charades_without_class_file_uses_codes(tmp_path):
    write_charades(tmp_path, with_class_names=False)
    annotations = read_annotations(tmp_path / "Charades_v1_test.csv")
    assert annotations.classes == ["c092"] and annotations.subsets() == ["testing"]


def test_custom_csv_is_raw_and_strict(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "video,start,end,label,subset\n"
        "clip01.mp4,1.5,4.0,jump,train\n"
        "clip01.mp4,1.5,4.0,jump,train\n"  # duplicate: kept raw, prepare drops it
        "clip01.mp4,5.0,3.0,wave,train\n"  # inverted: kept raw
        "clip02,,,,val\n"
    )
    annotations = read_annotations(csv_file)
    assert annotations.format == "custom-csv"
    assert annotations.classes == ["jump", "wave"]
    assert len(annotations.videos["clip01"].instances) == 3
    assert annotations.videos["clip02"].subset == "val" and annotations.videos["clip02"].instances == []

    (tmp_path / "typo.csv").write_text("video,start,end,label,subest\nclip,1,2,a,train\n")
    with pytest.raises(AnnotationError, match=r"typo.csv.*subest"):
        read_annotations(tmp_path / "typo.csv")
    (tmp_path / "partial.csv").write_text("video,start,end,label\nclip,1,,a\n")
    with pytest.raises(AnnotationError, match=r"partial.csv:2.*clip"):
        read_annotations(tmp_path / "partial.csv")
    (tmp_path / "text.csv").write_text("video,start,end,label\nclip,one,2,a\n")
    with pytest.raises(AnnotationError, match=r"text.csv:2.*start.*'one'"):
        read_annotations(tmp_path / "text.csv")


def test_custom_csv_without_label_names_the_missing_column(tmp_path):
    (tmp_path / "nolabel.csv").write_text("video,start,end,subset\nclip,1,2,train\n")
    with pytest.raises(AnnotationError, match=r"nolabel.csv: missing column\(s\) \['label'\]; the custom CSV columns"):
        read_annotations(tmp_path / "nolabel.csv")
    (tmp_path / "renamed.csv").write_text("video,start,end,lable\nclip,1,2,a\n")
    with pytest.raises(AnnotationError, match=r"missing column\(s\) \['label'\]; unknown column\(s\) \['lable'\]"):
        read_annotations(tmp_path / "renamed.csv")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("clip02,1,2\n", r"bad.csv:4: 3 fields where the header has 4 \(video,start,end,label\): 'clip02,1,2'"),
        ("clip02,1,2,run,extra\n", r"bad.csv:4: 5 fields where the header has 4 .*'clip02,1,2,run,extra'"),
    ],
)
def test_csv_rows_with_too_few_or_too_many_fields_name_file_line_and_row(tmp_path, row, message):
    # a quoted label spanning two lines shifts the line numbers: the error names the bad row's own line
    (tmp_path / "bad.csv").write_text('video,start,end,label\nclip01,1.5,4.0,"jump\nhigh"\n' + row)
    with pytest.raises(AnnotationError, match=message):
        read_annotations(tmp_path / "bad.csv")


def test_charades_and_epic_rows_with_wrong_field_counts_are_errors(tmp_path):
    write_charades(tmp_path, with_class_names=True)
    train = tmp_path / "Charades_v1_train.csv"
    train.write_text(train.read_text() + "ZZ00Z,P4,Hall,5,7,Yes,walks,,walks,12.0\n")  # no actions field
    with pytest.raises(AnnotationError, match=r"Charades_v1_train.csv:4: 10 fields where the header has 11"):
        read_annotations(tmp_path)
    epic = tmp_path / "epic"
    epic.mkdir()
    (epic / "EPIC_100_verb_classes.csv").write_text("id,key,instances,category\n0,take,\"['take']\",retrieve\n")
    (epic / "EPIC_100_validation.csv").write_text(
        "narration_id,video_id,start_timestamp,stop_timestamp,verb_class\n"
        "P01_11_0,P01_11,00:00:00.00,00:00:01.89,0\n"
        "P01_11_1,P01_11,00:00:01.56,0\n"
    )
    with pytest.raises(AnnotationError, match=r"EPIC_100_validation.csv:3: 4 fields where the header has 5"):
        read_annotations(epic, "epic-kitchens-verb")
    (epic / "EPIC_100_validation.csv").write_text(
        "narration_id,video_id,start_timestamp,stop_timestamp,verb_class\nP01_11_0,P01_11,00:00:00.00,00:01.89,0\n"
    )
    message = r"validation.csv:2: stop_timestamp: expected hh:mm:ss.ff, got '00:01.89'"
    with pytest.raises(AnnotationError, match=message):
        read_annotations(epic, "epic-kitchens-verb")


def test_custom_json_schema(tmp_path):
    content = {
        "classes": ["wave", "jump"],
        "videos": [
            {"video": "clip01", "subset": "train", "duration": 12.0, "fps": 25.0,
             "annotations": [{"start": 1.5, "end": 4.0, "label": "jump"}]},
            {"video": "clip02", "annotations": []},
        ],
    }  # fmt: skip
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(content))
    annotations = read_annotations(path)
    assert annotations.format == "custom-json" and annotations.classes == ["wave", "jump"]
    assert annotations.videos["clip01"].fps == 25.0 and annotations.videos["clip02"].subset == "train"

    content["videos"].append({"video": "clip01", "annotations": []})
    path.write_text(json.dumps(content))
    with pytest.raises(AnnotationError, match="listed twice"):
        read_annotations(path)
    content["videos"] = [{"video": "clip03", "annotation": []}]
    path.write_text(json.dumps(content))
    with pytest.raises(AnnotationError, match=r"unknown key.*annotation"):
        read_annotations(path)


@needs_shared
def test_the_official_sample_submission_is_recognised_as_results_not_annotations():
    with pytest.raises(AnnotationError, match="sample_detection_prediction.json: this is a detection results file"):
        read_annotations(SHARED_ANNOTATIONS / "activitynet" / "sample_detection_prediction.json")


def test_unknown_formats_name_the_file_and_what_was_expected(tmp_path):
    results = tmp_path / "predictions.json"
    results.write_text(json.dumps({"version": "1.3", "results": {}}))
    with pytest.raises(AnnotationError, match="results file"):
        read_annotations(results)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(AnnotationError, match=r"other.csv.*video,start,end,label"):
        detect_annotation_format(other)
    with pytest.raises(AnnotationError, match=r"empty.*THUMOS14"):
        (tmp_path / "empty").mkdir()
        read_annotations(tmp_path / "empty")
    with pytest.raises(AnnotationError, match="unknown annotation format 'thumos'"):
        read_annotations(other, "thumos")
    with pytest.raises(AnnotationError, match="not found"):
        read_annotations(tmp_path / "missing.json")
