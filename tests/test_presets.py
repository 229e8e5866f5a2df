"""Presets: every shipped preset resolves; inheritance and overrides; readable errors through the real CLI."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tadcli.cli import app
from tadcli.config.loader import load_preset, preset_to_yaml, shipped_preset_names
from tadcli.config.profiles import PROFILES, get_profile
from tadcli.data.prepared import load_prepared_dataset
from tadcli.errors import PresetError

from conftest import error_line

runner = CliRunner()

SHIPPED = [
    "small-768",
    "base-768",
    "large-768",
    "huge-768",
    "giant-768",
    "giant-1536",
    "giant-1536-side",
    "small-768-full",
    "small-768-frozen",
    "tiny",
    *(f"anet-{size}-192x4-160" for size in ("small", "base", "large", "huge", "giant")),
    "anet-giant-192x4-224",
    "anet-large-192x4-224-cls",
    "anet-small-192x4-160-frozen",
    "anet-small-192x4-160-full",
    *(f"charades-{size}-512x1-160" for size in ("small", "base", "large", "huge", "giant")),
    *(f"multithumos-{size}-768x1-160" for size in ("small", "base", "large", "huge", "giant")),
    "multithumos-giant-768x2-224",
    "epic-large-768x8-noun",
    "epic-large-768x8-verb",
]


def test_every_recipe_of_the_spec_is_shipped():
    assert sorted(shipped_preset_names()) == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_resolves_and_round_trips(name, tmp_path):
    preset = load_preset(name)
    assert preset.name == name
    assert preset.description
    # The resolved YAML is itself a valid preset that gives the same run.
    path = tmp_path / f"{name}-resolved.yaml"
    path.write_text(preset_to_yaml(preset))
    again = load_preset(str(path))
    assert again.model_dump(exclude={"name"}) == preset.model_dump(exclude={"name"})


def test_recipes_follow_the_spec():
    small = load_preset("small-768")
    assert (small.backbone.size, small.adaptation.mode, small.input.frames, small.input.image_size) == (
        "S", "tia", 768, 160)
    assert small.adapter_blocks() == list(range(12))
    assert (small.train.head_lr, small.train.adapter_lr, small.train.epochs, small.train.schedule_epochs) == (
        1e-4, 2e-4, 60, 100)
    assert small.detector.arch == (2, 2, 5) and small.detector.attention_window == -1
    assert small.detector.resolved_regression_ranges() == [
        (0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]

    assert load_preset("base-768").train.adapter_lr == 1e-4
    giant = load_preset("giant-768")
    assert (giant.backbone.size, giant.backbone.patch_size, giant.adapter_blocks()) == ("g", 14, list(range(40)))

    g1536 = load_preset("giant-1536")
    assert (g1536.input.frames, g1536.input.scale_factor, g1536.input.image_size) == (1536, 2, 224)
    assert g1536.input.detector_length == 768
    assert g1536.adapter_blocks() == list(range(20, 40))
    assert (g1536.train.adapter_lr, g1536.train.epochs, g1536.train.eval_start_epoch) == (2e-4, 50, 37)

    side = load_preset("giant-1536-side")
    assert (side.adaptation.mode, side.adaptation.hidden_ratio) == ("side", 0.125)
    assert side.adapter_blocks() == list(range(20, 40))
    assert side.backbone.drop_path_rate == 0.0

    frozen = load_preset("small-768-frozen")
    assert (frozen.adaptation.mode, frozen.detector.input_dropout, frozen.postprocess.soft_nms_sigma) == (
        "frozen", 0.2, 0.5)
    assert load_preset("small-768-full").adaptation.mode == "full"


def test_inheritance_changes_only_what_the_child_names(tmp_path):
    child = tmp_path / "mine.yaml"
    child.write_text("base: giant-1536\ndescription: my run\ntrain:\n  epochs: 80\n")
    preset = load_preset(str(child))
    parent = load_preset("giant-1536")
    assert preset.name == "mine" and preset.description == "my run"
    assert preset.train.epochs == 80
    assert preset.model_dump(exclude={"name", "description", "train"}) == parent.model_dump(
        exclude={"name", "description", "train"})
    assert preset.train.model_dump(exclude={"epochs"}) == parent.train.model_dump(exclude={"epochs"})


def test_inheritance_from_a_sibling_file_and_lists_replaced_whole(tmp_path):
    (tmp_path / "parent.yaml").write_text("base: tiny\nadaptation:\n  blocks: [0, 1, 2]\n")
    (tmp_path / "child.yaml").write_text("base: parent\nadaptation:\n  blocks: [3]\n")
    preset = load_preset(str(tmp_path / "child.yaml"))
    assert preset.adapter_blocks() == [3]
    assert preset.input.frames == 128  # from tiny, two levels up


def test_inheritance_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b\n")
    (tmp_path / "b.yaml").write_text("base: a\n")
    with pytest.raises(PresetError, match="cycle"):
        load_preset(str(tmp_path / "a.yaml"))


def test_set_overrides_are_typed_and_validated():
    preset = load_preset("giant-768", ["train.epochs=5", "input.frames=512", "adaptation.blocks=[38, 39]"])
    assert preset.train.epochs == 5
    assert preset.input.frames == 512
    assert preset.adapter_blocks() == [38, 39]
    with pytest.raises(PresetError, match=r"--set input.frames=500: input: frames must be a multiple of 16"):
        load_preset("giant-768", ["input.frames=500"])
    with pytest.raises(PresetError, match=r"epochs 120 is past the end of the cosine schedule \(train.cosine_epochs 100\): "
                       r"add --set train.cosine_epochs=120, or train for at most 100 epochs"):
        load_preset("giant-768", ["train.epochs=120"])


def test_a_schedule_shorter_than_its_warm_up_names_the_value_that_works():
    line = error_line(runner.invoke(app, ["presets", "show", "tiny", "--set", "train.epochs=2"]))
    assert line.endswith("warmup_epochs 2 must be below the schedule length 2 (train.epochs; train.cosine_epochs is "
                         "unset): add --set train.warmup_epochs=1, or lengthen the schedule")
    assert load_preset("tiny", ["train.epochs=2", "train.warmup_epochs=1"]).train.schedule_epochs == 2


def test_presets_of_a_pretrained_vit_refuse_to_start_from_random_weights(small_synthetic, tmp_path):
    """train and extract stop in one line before any work; backbone.weights=none is random init on purpose."""
    video = next(iter(load_prepared_dataset(small_synthetic).videos.values())).path
    for command in (["train", "--preset", "small-768", "--data", str(small_synthetic), "--out", str(tmp_path / "run")],
                    ["extract", str(video), "--preset", "giant-1536", "--out", str(tmp_path / "features")]):
        line = error_line(runner.invoke(app, command))
        assert "needs the pretrained VideoMAE weights the paper starts from: --set backbone.weights=FILE" in line
        assert "--set backbone.weights=none to start from random initialisation on purpose" in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "features").exists()
    on_purpose = load_preset("small-768", ["backbone.weights=none"]).backbone
    on_purpose.require_weights("small-768")
    assert on_purpose.pretrained_weights is None
    load_preset("tiny").backbone.require_weights("tiny")  # an explicit shape has no pretrained model to miss


def test_detector_length_must_suit_the_attention_window():
    with pytest.raises(PresetError, match="not divisible by 18"):
        load_preset("tiny", ["detector.attention_window=19"])
    assert load_preset("tiny", ["detector.attention_window=9", "input.frames=256", "detector.arch=[2,1,3]"])


def test_dataset_profiles_carry_the_official_thresholds():
    assert get_profile("thumos14").tiou_thresholds == (0.3, 0.4, 0.5, 0.6, 0.7)
    anet = get_profile("activitynet").tiou_thresholds
    assert len(anet) == 10 and anet[0] == 0.5 and anet[8] == 0.8999999999999999 and anet[-1] == 0.95
    assert get_profile("charades").tiou_thresholds == get_profile("multithumos").tiou_thresholds == (
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert get_profile("epic-kitchens").tiou_thresholds == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert {"thumos14", "activitynet", "charades", "multithumos", "epic-kitchens", "custom"} <= set(PROFILES)
    with pytest.raises(PresetError, match="known: thumos14"):
        get_profile("thumos15")


# ---------------------------------------------------------------------------- through the real CLI
def test_presets_list_and_show():
    listed = runner.invoke(app, ["presets", "list"])
    assert listed.exit_code == 0
    for name in SHIPPED:
        assert name in listed.output
    shown = runner.invoke(app, ["presets", "show", "giant-1536", "--set", "train.epochs=5"])
    assert shown.exit_code == 0
    assert "epochs: 5\n" in shown.output and "frames: 1536\n" in shown.output and "size: g\n" in shown.output


def test_unknown_preset_lists_the_available_ones():
    line = error_line(runner.invoke(app, ["presets", "show", "giant-786"]))
    assert "unknown preset 'giant-786'" in line and "did you mean 'giant-768'" in line
    for name in SHIPPED:
        assert name in line


def test_unknown_field_suggests_the_closest_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: giant-768\ntrain:\n  epocs: 5\n")
    line = error_line(runner.invoke(app, ["presets", "show", str(bad)]))
    assert line == f"error: {bad}: train.epocs: unknown field (did you mean 'epochs'?)"


def test_bad_value_names_file_field_and_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: tiny\nadaptation:\n  mode: sideways\n")
    line = error_line(runner.invoke(app, ["presets", "show", str(bad)]))
    assert line.startswith(f"error: {bad}: adaptation.mode: Input should be 'tia'")
    inherited = tmp_path / "child.yaml"
    inherited.write_text("base: bad\n")
    # The error is reported where the bad value was written, not in the child.
    assert error_line(runner.invoke(app, ["presets", "show", str(inherited)])).startswith(
        f"error: {bad}: adaptation.mode")


def test_bad_override_names_the_override():
    line = error_line(runner.invoke(app, ["train", "--preset", "tiny", "--set", "train.head_lr=fast"]))
    assert line.startswith("error: --set train.head_lr=fast: train.head_lr: Input should be a valid number")
    line = error_line(runner.invoke(app, ["presets", "show", "tiny", "--set", "trainepochs"]))
    assert "expected KEY.PATH=VALUE" in line


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("train:\n  epochs: [5\n")
    line = error_line(runner.invoke(app, ["presets", "show", str(bad)]))
    assert line.startswith(f"error: {bad}: line") and "not valid YAML" in line


def test_debug_shows_the_traceback():
    result = runner.invoke(app, ["--debug", "presets", "show", "nope"])
    assert result.exit_code != 0
    assert isinstance(result.exception, PresetError)


def test_train_and_eval_run_name_what_is_missing_in_one_line(tmp_path):
    assert "--data DIR is required" in error_line(runner.invoke(app, ["train", "--preset", "tiny"]))
    missing = tmp_path / "no-run"
    line = error_line(runner.invoke(app, ["eval", "--run", str(missing)]))
    assert line.startswith(f"error: {missing}: run folder")


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("prepare", "train", "eval", "detect", "profile-memory", "presets"):
        assert command in result.output
    for command in ("prepare", "train", "eval", "detect", "profile-memory"):
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output, command
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("tad 0.")


def test_python_dash_m_runs_the_same_app():
    result = subprocess.run([sys.executable, "-m", "tadcli", "presets", "show", "nope"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown preset 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def _listed_names(result) -> set[str]:
    assert result.exit_code == 0, result.output
    return set(re.findall(r"^│ (\S+) +│", result.output, flags=re.M))  # the table's first column


def test_presets_without_a_subcommand_lists_and_list_filters_by_dataset():
    assert _listed_names(runner.invoke(app, ["presets"])) == set(SHIPPED)
    anet = _listed_names(runner.invoke(app, ["presets", "list", "--dataset", "activitynet"]))
    assert anet == {name for name in SHIPPED if name.startswith("anet-")}
    epic = _listed_names(runner.invoke(app, ["presets", "list", "--dataset", "epic-kitchens"]))
    assert epic == {"epic-large-768x8-noun", "epic-large-768x8-verb"}
    thumos = _listed_names(runner.invoke(app, ["presets", "list", "--dataset", "thumos14"]))
    assert thumos == {name for name in SHIPPED if name.split("-")[0] in ("small", "base", "large", "huge", "giant")}
    assert runner.invoke(app, ["presets", "list", "--dataset", "kinetics"]).exit_code == 2


def test_dataset_and_video_classifier_fields_are_validated(tmp_path):
    with pytest.raises(PresetError, match=r"--set dataset=anet: dataset: unknown dataset 'anet' \(known: thumos14"):
        load_preset("small-768", ["dataset=anet"])
    with pytest.raises(PresetError, match="class_agnostic needs a video_classifier section"):
        load_preset("small-768", ["detector.class_agnostic=true"])
    with pytest.raises(PresetError, match="video_classifier labels class-agnostic detections only"):
        load_preset("anet-small-192x4-160", ["detector.class_agnostic=false"])
    with pytest.raises(PresetError, match=r"video_classifier.fusoin: unknown field \(did you mean 'fusion'\?\)"):
        load_preset("anet-small-192x4-160", ["video_classifier.fusoin=product"])
    with pytest.raises(PresetError, match="video_classifier.fusion: Input should be 'product' or 'geometric-mean'"):
        load_preset("anet-giant-192x4-224", ["video_classifier.fusion=mean"])
    internvideo = load_preset(
        "anet-giant-192x4-224", ["video_classifier.fusion=geometric-mean", "video_classifier.path=iv2.json"]
    )
    assert (internvideo.video_classifier.fusion, internvideo.video_classifier.path) == ("geometric-mean", "iv2.json")
    assert internvideo.video_classifier.topk == 2
