"""Every shipped preset against the reference recipes (shared/spec/ADATAD.md §1, §2, §4, §8).

Each preset is built on the meta device (no memory, no weights) with the class count of its dataset, and
its parameter count is compared with the count the spec's shapes give, computed here from the spec's
formulas (ViT §1.1-§1.2, adapters §2.1, detector §4.1-§4.3), independently of the model code. Levels,
regression ranges and the training recipe are compared with the spec's tables.
"""

from __future__ import annotations

import pytest

from tadcli.config.loader import load_preset, shipped_preset_names
from tadcli.config.profiles import get_profile
from tadcli.model.build import build_model, postprocess_settings

# spec §1.1: embed C, depth, FFN hidden, patch; rounded ViT parameter counts (millions)
VIT = {
    "S": (384, 12, 1536, 16, 21.9),
    "B": (768, 12, 3072, 16, 86.2),
    "L": (1024, 24, 4096, 16, 303.9),
    "H": (1280, 32, 5120, 16, 631.6),
    "g": (1408, 40, 6144, 14, 1011.6),
}
# spec §2.1: parameters of one TIA adapter at hidden ratio 0.25
ADAPTER_PARAMS = {"S": 83_905, "B": 333_697, "L": 592_385, "H": 924_801, "g": 1_118_657}
# spec §6.1: classes of each dataset (EPIC: the classes that have instances)
DATASET_CLASSES = {"thumos14": 20, "activitynet": 200, "charades": 157, "multithumos": 65}
EPIC_CLASSES = {"noun": 293, "verb": 97}

DEFAULT_RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]
CHARADES_RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 256), (256, 10000)]
EPIC_RANGES = [(0, 4), (2, 8), (4, 16), (8, 32), (16, 64), (32, 10000)]

# spec §8 and §4.1: (D, head width, arch, attention window, abs PE, input dropout, ranges)
DETECTOR = {
    "thumos14": (512, 512, (2, 2, 5), -1, False, 0.0, DEFAULT_RANGES),
    "activitynet": (256, 256, (2, 2, 5), -1, True, 0.0, DEFAULT_RANGES),
    "charades": (512, 512, (2, 2, 7), -1, True, 0.3, CHARADES_RANGES),
    "multithumos": (512, 512, (3, 0, 5), -1, False, 0.0, DEFAULT_RANGES),
    "epic-kitchens": (512, 512, (2, 2, 5), 9, False, 0.2, EPIC_RANGES),
}

# spec §8: (head lr, adapter lr, global batch, warmup / cosine / stop epochs, val start / every),
# (regression weight, label smoothing, normaliser), (frames, scale factor, px, adapter blocks)
RECIPES = {
    "small-768": ((1e-4, 2e-4, 2, 5, 100, 60, 40, 2), (1.0, 0.0, 100), (768, 1, 160, "all")),
    "base-768": ((1e-4, 1e-4, 2, 5, 100, 60, 40, 2), (1.0, 0.0, 100), (768, 1, 160, "all")),
    "large-768": ((1e-4, 1e-4, 2, 5, 100, 60, 40, 2), (1.0, 0.0, 100), (768, 1, 160, "all")),
    "huge-768": ((1e-4, 1e-4, 2, 5, 100, 60, 40, 2), (1.0, 0.0, 100), (768, 1, 160, "all")),
    "giant-768": ((1e-4, 1e-4, 2, 5, 100, 60, 40, 2), (1.0, 0.0, 100), (768, 1, 160, "all")),
    "giant-1536": ((1e-4, 2e-4, 2, 5, 100, 50, 37, 2), (1.0, 0.0, 100), (1536, 2, 224, "20-39")),
    "giant-1536-side": ((1e-4, 2e-4, 2, 5, 100, 50, 37, 2), (1.0, 0.0, 100), (1536, 2, 224, "20-39")),
    "small-768-frozen": ((1e-4, None, 2, 5, 100, 60, 39, 5), (1.0, 0.0, 100), (768, 1, 160, None)),
    "small-768-full": ((1e-4, None, 2, 5, 100, 60, 39, 5), (1.0, 0.0, 100), (768, 1, 160, None)),
    **{
        f"anet-{name}-192x4-160": ((1e-3, 1e-4, 16, 5, 15, 15, 8, 1), (2.0, 0.1, 200), (768, 4, 160, "all"))
        for name in ("small", "base", "large", "huge", "giant")
    },
    "anet-giant-192x4-224": ((1e-3, 1e-4, 16, 5, 15, 15, 8, 1), (2.0, 0.1, 200), (768, 4, 224, "20-39")),
    "anet-large-192x4-224-cls": ((1e-3, 8e-5, 16, 5, 20, 15, 10, 1), (1.0, 0.1, 200), (768, 4, 224, "all")),
    "anet-small-192x4-160-frozen": ((1e-3, None, 16, 5, 15, 15, 8, 1), (2.0, 0.1, 200), (768, 4, 160, None)),
    "anet-small-192x4-160-full": ((1e-3, None, 16, 5, 15, 15, 8, 1), (2.0, 0.1, 200), (768, 4, 160, None)),
    **{
        f"charades-{name}-512x1-160": ((1e-4, lr, 16, 5, 20, 20, 7, 1), (1.0, 0.0, 100), (512, 1, 160, "all"))
        for name, lr in (("small", 4e-4), ("base", 4e-4), ("large", 2e-4), ("huge", 1e-4), ("giant", 8e-5))
    },
    **{
        f"multithumos-{name}-768x1-160": ((1e-4, lr, 2, 5, 100, 80, 49, 2), (1.0, 0.0, 100), (768, 1, 160, "all"))
        for name, lr in (("small", 4e-4), ("base", 4e-4), ("large", 4e-4), ("huge", 1e-4), ("giant", 1e-4))
    },
    "multithumos-giant-768x2-224": ((1e-4, 1e-4, 2, 5, 100, 80, 49, 2), (1.0, 0.0, 100), (1536, 2, 224, "20-39")),
    "epic-large-768x8-noun": ((1e-4, 8e-5, 2, 5, 250, 35, 19, 2), (0.5, 0.1, 250), (6144, 8, 160, "all")),
    "epic-large-768x8-verb": ((1e-4, 8e-5, 2, 5, 250, 35, 19, 2), (0.5, 0.0, 250), (6144, 8, 160, "all")),
}
SIZE_OF_NAME = {"small": "S", "base": "B", "large": "L", "huge": "H", "giant": "g"}
RECIPE_PRESETS = sorted(RECIPES)


def vit_params(size: str, with_fc_norm: bool = False) -> int:
    """Patch embedding + blocks (spec §1.1-§1.2); the spec's counts include fc_norm, which AdaTAD never
    uses and tad's ViT does not build."""
    c, depth, hidden, patch, _ = VIT[size]
    patch_embed = 3 * 2 * patch * patch * c + c
    block = 4 * c + 3 * c * c + 2 * c + c * c + c + c * hidden + hidden + hidden * c + c
    return patch_embed + depth * block + (2 * c if with_fc_norm else 0)


def adapter_params(c: int, hidden: int) -> int:
    """One adapter (spec §2.1): down_proj, dwconv (k 3), 1x1 conv, up_proj, gamma."""
    return c * hidden + hidden + 4 * hidden + hidden * hidden + hidden + hidden * c + c + 1


def detector_params(in_channels: int, num_classes: int, d: int, f: int, arch: tuple[int, int, int]) -> int:
    """Projection (§4.1) + neck (§4.2) + head (§4.3) of ActionFormer."""
    embed = 3 * in_channels * d + 2 * d + (arch[0] - 1) * (3 * d * d + 2 * d)
    transformer_block = 12 * d * d + 30 * d  # q/k/v dw convs, 3 LN, 4 1x1 convs, 2 LN, MLP, 2 scales
    levels = arch[2] + 1
    neck = levels * 2 * d
    tower = 3 * d * f + 2 * f + (2 - 1) * (3 * f * f + 2 * f)
    head = 2 * tower + (3 * f * num_classes + num_classes) + (3 * f * 2 + 2) + levels
    return embed + (arch[1] + arch[2]) * transformer_block + neck + head


def dataset_classes(name: str, dataset: str) -> int:
    if dataset == "epic-kitchens":
        return EPIC_CLASSES[name.rsplit("-", 1)[1]]
    return DATASET_CLASSES[dataset]


def test_the_spec_formulas_give_the_spec_numbers():
    for size, (c, _, _, _, millions) in VIT.items():
        assert round(vit_params(size, with_fc_norm=True) / 1e6, 1) == millions, size
        assert adapter_params(c, int(c * 0.25)) == ADAPTER_PARAMS[size], size


def test_every_shipped_recipe_is_checked_here():
    assert sorted(set(shipped_preset_names()) - {"tiny"}) == RECIPE_PRESETS


@pytest.mark.parametrize("name", RECIPE_PRESETS)
def test_preset_builds_on_meta_with_the_spec_shape(name):
    preset = load_preset(name)
    classes = preset.num_detector_classes(dataset_classes(name, preset.dataset))
    model = build_model(preset, num_classes=classes, device="meta")
    assert all(p.is_meta for p in model.parameters())

    size = preset.backbone.size
    c = VIT[size][0]
    d, f, arch, window, abs_pe, input_dropout, ranges = DETECTOR[preset.dataset]
    if preset.dataset == "activitynet" and not preset.detector.class_agnostic:  # the 200-class head (§8)
        d, f = 512, 512
    adapters = 0 if preset.adaptation.mode in ("frozen", "full") else len(preset.adapter_blocks())
    expected = (
        vit_params(size)
        + adapters * adapter_params(c, int(c * preset.adaptation.hidden_ratio))
        + detector_params(c, classes, d, f, arch)
    )
    assert sum(p.numel() for p in model.parameters()) == expected

    points = model.detector.point_generator
    assert points.num_levels == arch[2] + 1 == preset.detector.num_levels
    assert points.strides == tuple(2**level for level in range(arch[2] + 1))
    assert points.regression_ranges == tuple((float(lo), float(hi)) for lo, hi in ranges)
    baseline_dropout = preset.adaptation.mode == "frozen" or (preset.adaptation.mode, preset.dataset) == (
        "full",
        "activitynet",
    )  # spec §4.1: frozen configs and ANet fullft use input dropout 0.2
    assert (preset.detector.attention_window, preset.detector.use_abs_pe, preset.detector.input_dropout) == (
        window,
        abs_pe,
        0.2 if baseline_dropout else input_dropout,
    )


@pytest.mark.parametrize("name", RECIPE_PRESETS)
def test_preset_trains_with_the_spec_recipe(name):
    preset = load_preset(name)
    (head_lr, adapter_lr, batch, warmup, cosine, stop, val_start, val_every), loss, shape = RECIPES[name]
    train = preset.train
    assert (train.head_lr, train.batch_size, train.warmup_epochs, train.schedule_epochs, train.epochs) == (
        head_lr,
        batch,
        warmup,
        cosine,
        stop,
    )
    assert (train.eval_start_epoch, train.eval_interval) == (val_start, val_every)
    if adapter_lr is not None:
        assert train.adapter_lr == adapter_lr
    assert (preset.loss.regression_weight, preset.loss.label_smoothing, preset.loss.normalizer_init) == loss
    frames, scale, px, blocks = shape
    assert (preset.input.frames, preset.input.scale_factor, preset.input.image_size) == (frames, scale, px)
    depth = VIT[preset.backbone.size][1]
    if blocks is not None:
        assert preset.adapter_blocks() == (list(range(depth)) if blocks == "all" else list(range(20, 40)))
    if name.split("-")[1] in SIZE_OF_NAME:  # dataset-size-input names say the backbone
        assert preset.backbone.size == SIZE_OF_NAME[name.split("-")[1]]
    assert preset.backbone.patch_size == (14 if preset.backbone.size == "g" else 16)


# spec §8 "GPUs (README)": global batch / GPUs of the reference run = the videos each GPU forwards at once
REFERENCE_GPUS = {"activitynet": 4, "charades": 2, "thumos14": 2, "multithumos": 2, "epic-kitchens": 2}
REFERENCE_GPUS_OF = {"anet-giant-192x4-224": 8, "charades-giant-512x1-160": 4}


@pytest.mark.parametrize("name", RECIPE_PRESETS)
def test_preset_forwards_the_reference_per_gpu_batch(name):
    """The default step on any process count is the reference's per-GPU step (accumulation makes up the rest)."""
    preset = load_preset(name)
    gpus = REFERENCE_GPUS_OF.get(name, REFERENCE_GPUS[preset.dataset])
    assert preset.train.micro_batch_size == preset.train.batch_size // gpus
    assert load_preset("tiny").train.micro_batch_size == 1


def test_activitynet_class_agnostic_presets_label_with_the_cuhk_classifier():
    for name in RECIPE_PRESETS:
        preset = load_preset(name)
        if preset.dataset != "activitynet":
            continue
        settings = postprocess_settings(preset, get_profile("activitynet"))
        if name.endswith("-cls"):  # 200 classes, per-class soft-NMS, sigma 0.75 (spec §5.3)
            assert preset.video_classifier is None and preset.num_detector_classes(200) == 200
            assert (settings.multiclass, settings.sigma, settings.max_segments) == (True, 0.75, 100)
        else:
            assert preset.num_detector_classes(200) == 1
            assert (preset.video_classifier.fusion, preset.video_classifier.topk) == ("product", 2)
            assert (settings.multiclass, settings.voting_threshold, settings.sigma) == (False, 0.9, 0.7)
