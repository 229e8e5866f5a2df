"""Model core: the VideoMAE backbone with adapters (and the ActionFormer detector)."""

from tadcli.model.adapters import LadderAdapters, PlainAdapter, TemporalAdapter
from tadcli.model.backbone import (
    ADAPTATIONS,
    BackboneOptions,
    VideoBackbone,
    build_backbone,
    load_backbone,
    load_backbone_weights,
    normalize_frames,
)
from tadcli.model.vit import ARCHS, VideoViT, ViTArch
from tadcli.model.adatad import AdaTAD, optimizer_param_groups
from tadcli.model.build import build_model, load_released_adatad, postprocess_settings
from tadcli.model.detector.actionformer import ActionFormer, DetectorOutput, build_actionformer
from tadcli.model.detector.losses import DetectorLosses
from tadcli.model.postprocess import (
    Detection,
    Detections,
    PostprocessSettings,
    batched_soft_nms,
    detections_to_seconds,
    fuse_video_classifier,
    merge_windows,
    round_for_output,
)
