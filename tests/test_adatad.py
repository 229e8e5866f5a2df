"""AdaTAD end to end on a tiny ViT (spec §1.4, §3, §8, §9.1): forward, loss and backward on CPU, which
parameters each adaptation mode trains, optimizer groups, presets -> model, and a released-format
checkpoint written with OpenTAD's key names that loads back to identical outputs."""

from __future__ import annotations

import pytest
import torch

from tadcli.config.loader import load_preset
from tadcli.config.profiles import get_profile
from tadcli.errors import WeightFormatError
from tadcli.model import ViTArch, build_backbone, normalize_frames
from tadcli.model.adatad import AdaTAD, optimizer_param_groups
from tadcli.model.build import build_model, load_released_adatad, postprocess_settings
from tadcli.model.detector.actionformer import build_actionformer
from tadcli.model.postprocess import PostprocessSettings

from checkpoints import opentad_names

TINY_VIT = ViTArch(embed_dim=64, depth=2, num_heads=4, mlp_hidden_dim=128, patch_size=16, img_size=32)
FRAMES = torch.randint(0, 256, (2, 3, 32, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
DETECTOR_LENGTH = 32  # 32 frames -> 16 tubelet features -> resized x2 to 32 steps (as THUMOS 768 -> 384 -> 768)
GT_SEGMENTS = [torch.tensor([[4.0, 12.0], [20.0, 30.0]]), torch.tensor([[0.0, 31.0]])]
GT_LABELS = [torch.tensor([0, 2]), torch.tensor([1])]


def tiny_adatad(adaptation: str, seed: int = 0) -> AdaTAD:
    torch.manual_seed(seed)
    backbone = build_backbone(TINY_VIT, adaptation, drop_path_rate=0.1)
    detector = build_actionformer(
        in_channels=64, num_classes=3, max_seq_len=DETECTOR_LENGTH, embed_dim=32, num_heads=4, head_channels=32
    )
    return AdaTAD(backbone, detector, DETECTOR_LENGTH)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random (zero-initialised adapter projections and scales included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)


@pytest.mark.parametrize(
    "adaptation, trains_backbone, trains_adapters",
    [("tia", False, True), ("frozen", False, False), ("full", True, False)],
)
def test_forward_loss_backward_reaches_exactly_the_trained_parameters(adaptation, trains_backbone, trains_adapters):
    model = tiny_adatad(adaptation).train()
    masks = torch.ones(2, DETECTOR_LENGTH, dtype=torch.bool)
    masks[1, 24:] = False
    outputs = model(FRAMES, masks)
    assert outputs.cls_logits.shape == (2, 32 + 16 + 8 + 4 + 2 + 1, 3)
    assert outputs.cls_logits.dtype == torch.float32
    losses = model.compute_loss(outputs, GT_SEGMENTS, GT_LABELS)
    assert torch.isfinite(losses.total) and losses.num_positives > 0
    losses.total.backward()

    adapter_params = {id(p) for m in model.backbone.adapter_modules() for p in m.parameters()}
    for name, param in model.named_parameters():
        if name.startswith("detector."):
            expected = True
        elif id(param) in adapter_params:
            expected = trains_adapters
        else:
            expected = trains_backbone
        assert param.requires_grad == expected, name
        assert (param.grad is not None) == expected, name
    assert any(id(p) in adapter_params for p in model.parameters()) == trains_adapters


def test_uint8_frames_are_normalized_inside_the_model_and_detections_come_per_sample():
    model = tiny_adatad("frozen").eval()
    with torch.no_grad():
        from_uint8 = model(FRAMES)
        from_float = model(normalize_frames(FRAMES))
    assert torch.equal(from_uint8.cls_logits, from_float.cls_logits)
    samples = model.detect(from_uint8, PostprocessSettings(max_segments=5), apply_nms=True)
    assert len(samples) == 2 and all(len(sample) == 5 for sample in samples)
    assert samples[0].scores.tolist() == sorted(samples[0].scores.tolist(), reverse=True)


def test_optimizer_groups_follow_the_decay_rules_and_partition_the_trainable_parameters():
    model = tiny_adatad("tia")
    groups = {g["name"]: g for g in optimizer_param_groups(model, 1e-4, 2e-4, 1e-5, 0.05)}
    assert set(groups) == {"detector_decay", "detector_no_decay", "adapter"}
    decay = {id(p) for p in groups["detector_decay"]["params"]}
    no_decay = {id(p) for p in groups["detector_no_decay"]["params"]}
    detector = model.detector
    assert id(detector.head.cls_head.weight) in decay
    assert id(detector.projection.stem[0].attn.query_conv.conv.weight) in decay  # depthwise Conv1d
    assert id(detector.projection.stem[0].mlp[0].weight) in decay
    for param in (
        detector.head.cls_head.bias,
        detector.projection.stem[0].ln1.weight,
        detector.neck.fpn_norms[0].weight,
        detector.head.scale[0].scale,
        detector.projection.branch[0].drop_path_attn.scale,
    ):
        assert id(param) in no_decay
    assert groups["detector_no_decay"]["weight_decay"] == 0.0 and groups["detector_decay"]["weight_decay"] == 0.05
    assert groups["adapter"]["lr"] == 2e-4 and groups["adapter"]["weight_decay"] == 0.05
    adapter_biases = [
        p for m in model.backbone.adapter_modules() for n, p in m.named_parameters() if n.endswith("bias")
    ]
    assert adapter_biases and all(id(p) in {id(q) for q in groups["adapter"]["params"]} for p in adapter_biases)
    torch.optim.AdamW(list(groups.values())).step()  # accepted by the optimizer as they are

    full = {g["name"]: g for g in optimizer_param_groups(tiny_adatad("full"), 1e-4, 2e-4, 1e-5, 0.05)}
    assert set(full) == {"detector_decay", "detector_no_decay", "backbone"} and full["backbone"]["lr"] == 1e-5
    frozen = optimizer_param_groups(tiny_adatad("frozen"), 1e-4, 2e-4, 1e-5, 0.05)
    assert {g["name"] for g in frozen} == {"detector_decay", "detector_no_decay"}


# ---------------------------------------------------------------- presets


def test_build_model_maps_the_preset_onto_the_modules():
    preset = load_preset("tiny", ["detector.head_channels=48", "loss.normalizer_init=250", "loss.label_smoothing=0.1"])
    model = build_model(preset, num_classes=7)
    detector = model.detector
    assert model.detector_length == 128 == detector.max_seq_len
    assert detector.projection.embed[0].conv.in_channels == 128  # the tiny ViT's width
    assert detector.head.cls_head.out_channels == 7 and detector.head.cls_head.in_channels == 48
    assert len(detector.projection.stem) == 1 and len(detector.projection.branch) == 4  # arch [2, 1, 4]
    assert detector.point_generator.regression_ranges[-1] == (32.0, 10000.0)
    assert detector.loss.normalizer.value.item() == 250 and detector.loss.label_smoothing == 0.1
    assert model.backbone.adaptation == "tia" and len(model.backbone.adapter_modules()) == 4
    frozen = build_model(load_preset("tiny", ["adaptation.mode=frozen"]), num_classes=7)
    assert not any(p.requires_grad for p in frozen.backbone.parameters())


def test_giant_preset_builds_on_the_meta_device_without_memory():
    model = build_model(load_preset("giant-1536"), num_classes=20, device="meta")
    assert all(p.is_meta for p in model.parameters())
    vit_params = sum(p.numel() for n, p in model.backbone.named_parameters() if ".adapter." not in n)
    assert vit_params / 1e6 == pytest.approx(1011.6, abs=0.05)  # spec §1.1 (patch embed + blocks)
    assert model.detector.projection.embed[0].conv.in_channels == 1408


def test_postprocess_settings_take_the_profile_where_the_preset_is_silent():
    preset = load_preset("tiny", ["postprocess.soft_nms_sigma=0.3"])
    thumos = postprocess_settings(preset, get_profile("thumos14"))
    assert thumos == PostprocessSettings(pre_nms_threshold=0.001, pre_nms_topk=2000, sigma=0.3, max_segments=2000)
    anet = postprocess_settings(load_preset("tiny"), get_profile("activitynet"))
    assert (anet.voting_threshold, anet.max_segments, anet.min_score) == (0.9, 100, 0.001)
    # soft-NMS per class for a multi-class detector, one class-agnostic pass (with voting) otherwise
    assert anet.multiclass
    agnostic = postprocess_settings(load_preset("anet-small-192x4-160"), get_profile("activitynet"))
    assert not agnostic.multiclass


# ---------------------------------------------------------------- released checkpoints


def test_released_checkpoint_loads_back_to_identical_outputs(tmp_path):
    source = tiny_adatad("tia", seed=1)
    randomize(source, seed=2)
    source.detector.loss.normalizer.value.fill_(37.5)
    ema = opentad_names(source)
    for key in (  # names listed in spec §9.1
        "module.projection.embed.0.conv.weight",
        "module.projection.embed.1.norm.bias",
        "module.projection.stem.0.attn.query_conv.conv.weight",
        "module.projection.stem.1.attn.value_norm.weight",
        "module.projection.branch.4.attn.proj.bias",
        "module.projection.branch.0.mlp.3.weight",
        "module.projection.branch.2.drop_path_mlp.scale",
        "module.neck.fpn_norms.5.weight",
        "module.rpn_head.cls_convs.1.conv.weight",
        "module.rpn_head.reg_convs.0.norm.weight",
        "module.rpn_head.reg_head.bias",
        "module.rpn_head.scale.5.scale",
        "module.backbone.model.backbone.blocks.1.adapter.gamma",
    ):
        assert key in ema, key
    assert ema["module.rpn_head.scale.0.scale"].shape == ()
    assert ema["module.projection.stem.0.drop_path_attn.scale"].shape == (1, 32, 1)
    raw = {key: value + 1.0 for key, value in ema.items()}
    path = tmp_path / "adatad_tiny.pth"
    torch.save({"epoch": 60, "state_dict": raw, "state_dict_ema": ema}, path)

    target = tiny_adatad("tia", seed=3)
    load_released_adatad(target, path)
    assert target.detector.loss.normalizer.value.item() == 37.5
    source.eval(), target.eval()
    with torch.no_grad():
        expected, loaded = source(FRAMES), target(FRAMES)
    assert torch.equal(expected.cls_logits, loaded.cls_logits)
    assert torch.equal(expected.offsets, loaded.offsets)


def test_released_checkpoint_that_does_not_fit_names_key_and_shapes(tmp_path):
    source = tiny_adatad("tia")
    ema = opentad_names(source)
    ema["module.rpn_head.cls_head.weight"] = torch.zeros(20, 32, 3)  # a THUMOS head, 20 classes
    torch.save({"state_dict_ema": ema}, tmp_path / "wrong_classes.pth")
    with pytest.raises(WeightFormatError, match=r"rpn_head\.cls_head\.weight.*\[20, 32, 3\].*\[3, 32, 3\]"):
        load_released_adatad(tiny_adatad("tia"), tmp_path / "wrong_classes.pth")
    del ema["module.rpn_head.cls_head.weight"]
    torch.save({"state_dict_ema": ema}, tmp_path / "missing.pth")
    with pytest.raises(WeightFormatError, match=r"head\.cls_head\.weight.* is missing"):
        load_released_adatad(tiny_adatad("tia"), tmp_path / "missing.pth")
