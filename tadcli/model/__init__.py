"""Model core: the VideoMAE backbone with adapters (and the ActionFormer detector)."""

from tadcli.model.adapters import LadderAdapters, PlainAdapter, TemporalAdapter
from tadcli.model.backbone import (
    ADAPTATIONS,
    VideoBackbone,
    build_backbone,
    load_backbone,
    load_backbone_weights,
    normalize_frames,
)
from tadcli.model.vit import ARCHS, VideoViT, ViTArch
