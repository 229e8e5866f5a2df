"""Presets -> models: every preset field becomes a constructor argument here, by hand.

``build_model(preset, num_classes)`` is the one place where a validated
:class:`~tadcli.config.schema.Preset` turns into an :class:`~tadcli.model.adatad.AdaTAD`;
``postprocess_settings(preset, profile)`` resolves the post-processing values a preset leaves to the
dataset profile; ``load_released_adatad`` reads an OpenTAD-released AdaTAD checkpoint into a model.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import BackboneConfig, Preset
from tadcli.errors import WeightFormatError
from tadcli.io.weights import (
    BackboneWeights,
    LoadReport,
    WeightFormat,
    convert_adatad,
    convert_adatad_detector,
    detect_weight_format,
    load_state_strict,
    read_checkpoint_file,
)
from tadcli.model.adatad import AdaTAD
from tadcli.model.backbone import BackboneOptions, VideoBackbone, load_backbone_weights
from tadcli.model.detector.actionformer import ActionFormer, build_actionformer
from tadcli.model.detector.checkpoint import load_opentad_detector
from tadcli.model.postprocess import PostprocessSettings
from tadcli.model.vit import ARCHS, ViTArch

DEFAULT_MLP_RATIO = 4.0


def vit_arch(config: BackboneConfig) -> ViTArch:
    """The ViT shape of a backbone section: the named size, with any explicit dimension overriding it."""
    base = ARCHS[config.size] if config.size is not None else None
    embed_dim = config.embed_dim if config.embed_dim is not None else base.embed_dim
    depth = config.depth if config.depth is not None else base.depth
    num_heads = config.num_heads if config.num_heads is not None else base.num_heads
    if config.mlp_ratio is not None:
        mlp_hidden_dim = int(embed_dim * config.mlp_ratio)
    elif base is not None and embed_dim == base.embed_dim:
        mlp_hidden_dim = base.mlp_hidden_dim  # exact for the giant's 48/11 ratio
    else:
        mlp_hidden_dim = int(embed_dim * DEFAULT_MLP_RATIO)
    return ViTArch(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_hidden_dim=mlp_hidden_dim,
        patch_size=config.patch_size,
        tubelet_size=config.tubelet_size,
        img_size=config.pos_embed_size,
    )


def build_backbone_from_preset(preset: Preset, device: torch.device | str | None = None) -> VideoBackbone:
    """The preset's ViT with its adaptation mode; pretrained weights loaded when ``backbone.weights`` names them
    (not on the ``meta`` device, which holds no values)."""
    adaptation = preset.adaptation
    options = BackboneOptions(
        adaptation=adaptation.mode,  # the preset's modes are the backbone's: tia, plain, side, full, frozen
        adapter_blocks=preset.adapter_blocks(),
        adapter_ratio=adaptation.hidden_ratio,
        temporal_kernel=adaptation.temporal_kernel,
        drop_path_rate=preset.backbone.drop_path_rate,
        checkpointing=adaptation.checkpointing,
        chunk_group=adaptation.chunk_group,
        compact_checkpoints=adaptation.compact_checkpoints,
        offload_checkpoints=adaptation.offload_checkpoints,
    )
    backbone = VideoBackbone(vit_arch(preset.backbone), options, device=torch.device(device) if device is not None else None)
    weights = preset.backbone.pretrained_weights
    if weights is not None and torch.device(device or "cpu").type != "meta":
        load_backbone_weights(backbone, weights)
    return backbone


def build_detector_from_preset(preset: Preset, in_channels: int, num_classes: int) -> ActionFormer:
    """The preset's ActionFormer over ``in_channels``-wide features, for ``num_classes`` classes."""
    detector, loss = preset.detector, preset.loss
    return build_actionformer(
        in_channels=in_channels,
        num_classes=num_classes,
        max_seq_len=preset.input.detector_length,
        embed_dim=detector.channels,
        arch=tuple(detector.arch),
        num_heads=detector.num_heads,
        attention_window=detector.attention_window,
        use_abs_pe=detector.use_abs_pe,
        input_dropout=detector.input_dropout,
        path_dropout=detector.path_dropout,
        head_channels=detector.head_channels,
        head_convs=detector.head_convs,
        regression_ranges=detector.resolved_regression_ranges(),
        center_sample_radius=detector.center_sample_radius,
        cls_prior_prob=detector.cls_prior_prob,
        regression_weight=loss.regression_weight,
        label_smoothing=loss.label_smoothing,
        focal_alpha=loss.focal_alpha,
        focal_gamma=loss.focal_gamma,
        normalizer_init=loss.normalizer_init,
        normalizer_momentum=loss.normalizer_momentum,
    )


def build_model(preset: Preset, num_classes: int, device: torch.device | str | None = None) -> AdaTAD:
    """The AdaTAD model of ``preset`` for a dataset with ``num_classes`` classes (1 = class-agnostic).

    Trainability is fixed here (by the backbone's adaptation mode; the detector always trains).
    ``device``: where parameters are allocated; ``"meta"`` allocates nothing (parameter counts and
    memory planning for any size) and loads no weights.
    """
    backbone = build_backbone_from_preset(preset, device)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        detector = build_detector_from_preset(preset, backbone.arch.embed_dim, num_classes)
    return AdaTAD(backbone, detector, preset.input.detector_length)


def postprocess_settings(preset: Preset, profile: DatasetProfile) -> PostprocessSettings:
    """Post-processing values: the preset's where set, the dataset profile's otherwise (spec §5.3).

    Soft-NMS is per class unless the detector is class-agnostic (ActivityNet's class-agnostic presets:
    one pass over all segments, then the profile's boundary voting), as in every OpenTAD config.
    """
    post = preset.postprocess
    return PostprocessSettings(
        pre_nms_threshold=post.pre_nms_threshold,
        pre_nms_topk=post.pre_nms_topk if post.pre_nms_topk is not None else profile.pre_nms_topk,
        sigma=post.soft_nms_sigma if post.soft_nms_sigma is not None else profile.soft_nms_sigma,
        min_score=post.min_score if post.min_score is not None else profile.min_score,
        max_segments=post.max_segments if post.max_segments is not None else profile.max_segments,
        multiclass=not preset.detector.class_agnostic,
        voting_threshold=profile.voting_threshold,
    )


def load_released_adatad(model: AdaTAD, path: str | Path) -> LoadReport:
    """Load a released OpenTAD AdaTAD checkpoint (EMA weights preferred) into ``model``, strictly.

    The file is read once; the backbone half goes through :mod:`tadcli.io.weights` (only adapter keys may be missing), the
    detector half through :func:`~tadcli.model.detector.checkpoint.load_opentad_detector`.

    Raises:
        WeightFormatError: wrong format, or any key or shape that does not fit the model.
    """
    state = read_checkpoint_file(path)
    weight_format = detect_weight_format(state)
    if weight_format != WeightFormat.ADATAD:
        raise WeightFormatError(f"{path}: a {weight_format.value} checkpoint, not a released AdaTAD detector")
    backbone_weights = BackboneWeights(Path(path), weight_format, convert_adatad(state))
    report = load_state_strict(model.backbone, backbone_weights, allowed_missing=model.backbone.adapter_state_keys())
    load_opentad_detector(model.detector, convert_adatad_detector(state), source=str(path))
    return report
