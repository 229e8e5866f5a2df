"""The preset schema: everything that defines a run, validated once.

Each section mirrors the constructor of the thing it configures. Every section rejects unknown
fields. ``None`` in a post-processing or evaluation field means "take it from the dataset profile"
(:mod:`tadcli.config.profiles`), so one model preset trains on any dataset. Values and names follow
``shared/spec/ADATAD.md`` §1-§8.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tadcli.config.profiles import PROFILES
from tadcli.errors import PresetError

BackboneSize = Literal["S", "B", "L", "H", "g"]
AdaptationMode = Literal["tia", "plain", "side", "full", "frozen"]

# Depth of each named size (spec §1.1), needed here to check adapter block indices; model/vit.py ARCHS reads it.
DEPTH_OF_SIZE = {"S": 12, "B": 12, "L": 24, "H": 32, "g": 40}


class Section(BaseModel):
    # every float finite: `--set train.head_lr=inf` (YAML .inf, nan) is an error, not a run that diverges
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# backbone.weights value that asks for random initialisation on purpose
RANDOM_WEIGHTS = "none"


class BackboneConfig(Section):
    """The VideoMAE / VideoMAEv2 ViT (spec §1)."""

    size: Optional[BackboneSize] = Field(
        default="S", description="named shape: S, B, L, H or g (giant); explicit dims below override it"
    )
    embed_dim: Optional[int] = Field(default=None, gt=0, description="token width C (explicit shape)")
    depth: Optional[int] = Field(default=None, gt=0, description="number of blocks (explicit shape)")
    num_heads: Optional[int] = Field(default=None, gt=0, description="attention heads (explicit shape)")
    mlp_ratio: Optional[float] = Field(default=None, gt=0, description="FFN hidden / C (explicit shape)")
    patch_size: int = Field(default=16, gt=0, description="spatial patch size in pixels (giant: 14)")
    tubelet_size: int = Field(default=2, gt=0, description="frames per tubelet")
    pos_embed_size: int = Field(default=224, gt=0, description="image size that defines the position table")
    weights: Optional[str] = Field(
        default=None,
        description="pretrained checkpoint file or Hugging Face directory; 'none' = random initialisation on "
        "purpose; unset: required to train or extract with a named size (S, B, L, H, g)",
    )
    drop_path_rate: float = Field(default=0.1, ge=0, lt=1, description="stochastic depth of the last block")

    @model_validator(mode="after")
    def _shape_is_defined(self) -> "BackboneConfig":
        explicit = [self.embed_dim, self.depth, self.num_heads]
        if self.size is None and any(v is None for v in explicit):
            raise ValueError("without a named size, embed_dim, depth and num_heads are all required")
        if self.embed_dim is not None and self.num_heads is not None and self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        return self

    @property
    def pretrained_weights(self) -> Optional[str]:
        """The weights file to load, or None for random initialisation (unset, or :data:`RANDOM_WEIGHTS`)."""
        return None if self.weights in (None, RANDOM_WEIGHTS) else self.weights

    def require_weights(self, preset_name: str) -> None:
        """Refuse to train or extract a named-size ViT (a VideoMAE model exists for it) from random weights
        unless that was asked for with ``backbone.weights=none``.

        Raises:
            PresetError: ``size`` is named and ``weights`` is unset.
        """
        if self.size is not None and self.weights is None:
            raise PresetError(
                f"preset {preset_name}: its ViT-{self.size} needs the pretrained VideoMAE weights the paper starts "
                f"from: --set backbone.weights=FILE (a VideoMAE/VideoMAEv2, mmaction2/OpenTAD or released AdaTAD "
                f".pth/.pt/.bin/.safetensors file, or a Hugging Face folder; README 'Pretrained weights and released models'), or "
                f"--set backbone.weights={RANDOM_WEIGHTS} to start from random initialisation on purpose"
            )

    @property
    def resolved_depth(self) -> int:
        return self.depth if self.depth is not None else DEPTH_OF_SIZE[self.size]  # type: ignore[index]


class AdaptationConfig(Section):
    """How the backbone is adapted (spec §2-§3)."""

    mode: AdaptationMode = Field(
        default="tia",
        description="tia: temporal adapters; plain: adapters without temporal conv; side: adapters outside "
        "the ViT; full: fine-tune everything; frozen: features only",
    )
    hidden_ratio: float = Field(default=0.25, gt=0, le=1, description="adapter width / ViT width")
    temporal_kernel: int = Field(default=3, gt=0, description="kernel of the depthwise temporal conv (odd)")
    blocks: Union[Literal["all", "last-half"], list[int]] = Field(
        default="all", description="blocks that get an adapter: all, last-half or a list of indices"
    )
    checkpointing: bool = Field(default=True, description="activation checkpointing per ViT block")
    chunk_group: int = Field(
        default=1,
        ge=0,
        description="16-frame chunks the ViT blocks' attention and MLP process at a time wherever no graph is "
        "kept and in the checkpointed recompute, which then keeps one activation per block and never a block's "
        "attention/MLP activations for the whole window (same gradients); larger groups: fewer, larger kernels "
        "and more memory; 0 = whole window, torch checkpointing",
    )
    compact_checkpoints: bool = Field(
        default=False,
        description="under mixed precision, keep the checkpointed block activations in the compute dtype "
        "(bf16/fp16): half their bytes, gradients change at that dtype's rounding; needs chunk_group > 0",
    )
    offload_checkpoints: bool = Field(
        default=False,
        description="keep the checkpointed block activations in pinned CPU memory with asynchronous copies "
        "(CUDA runs; does nothing on CPU, where they already are in CPU memory); needs chunk_group > 0",
    )

    @model_validator(mode="after")
    def _kernel_is_odd(self) -> "AdaptationConfig":
        if self.temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd, got {self.temporal_kernel}")
        if self.chunk_group == 0 and (self.compact_checkpoints or self.offload_checkpoints):
            raise ValueError("compact_checkpoints and offload_checkpoints need chunk_group > 0")
        return self


class InputConfig(Section):
    """What one window of video looks like to the model (spec §6.3)."""

    frames: int = Field(default=768, gt=0, description="frames per window fed to the ViT (multiple of 16)")
    scale_factor: int = Field(default=1, gt=0, description="frames per detector step (768x2 giant: 2)")
    frame_stride: Optional[int] = Field(
        default=None, gt=0, description="raw frames between sampled frames; None = snippet stride / scale factor"
    )
    image_size: int = Field(default=160, gt=0, description="square crop size in pixels")
    augmentation: Literal["full", "crop-flip", "none"] = Field(
        default="full",
        description="training augmentation: full = random resized crop, flip, RandAugment and colour jitter "
        "(spec 6.4); crop-flip = the crop and flip alone; none = the evaluation resize and centre crop",
    )

    @model_validator(mode="after")
    def _frames_fit_chunks(self) -> "InputConfig":
        if self.frames % 16:
            raise ValueError(f"frames must be a multiple of 16 (one ViT chunk), got {self.frames}")
        if self.frames % self.scale_factor:
            raise ValueError(f"frames {self.frames} is not divisible by scale_factor {self.scale_factor}")
        return self

    @property
    def detector_length(self) -> int:
        """T: detector steps per window (one step per ``scale_factor`` frames)."""
        return self.frames // self.scale_factor


class DetectorConfig(Section):
    """The ActionFormer detector (spec §4)."""

    channels: int = Field(default=512, gt=0, description="projection width D")
    arch: tuple[int, int, int] = Field(
        default=(2, 2, 5), description="(embedding convs, stem transformers, strided branch transformers)"
    )
    num_heads: int = Field(default=4, gt=0, description="attention heads in the projection")
    attention_window: int = Field(default=-1, description="local attention window; -1 = global attention")
    use_abs_pe: bool = Field(default=False, description="add a sinusoid position table to the projection")
    input_dropout: float = Field(default=0.0, ge=0, lt=1, description="channel dropout on backbone features")
    path_dropout: float = Field(default=0.1, ge=0, lt=1, description="drop path in the projection blocks")
    head_channels: int = Field(default=512, gt=0, description="width of the classification/regression towers")
    head_convs: int = Field(default=2, ge=0, description="convs in each head tower")
    regression_ranges: Optional[list[tuple[float, float]]] = Field(
        default=None, description="per-level (min, max) regression range; None = (0,4),(4,8),... doubling"
    )
    center_sample_radius: float = Field(default=1.5, gt=0, description="center sampling radius in strides")
    cls_prior_prob: float = Field(default=0.01, gt=0, lt=1, description="initial foreground probability")
    class_agnostic: bool = Field(
        default=False,
        description="one foreground class (ActivityNet); the preset's video_classifier names the detections",
    )

    @property
    def num_levels(self) -> int:
        return self.arch[2] + 1

    def resolved_regression_ranges(self) -> list[tuple[float, float]]:
        """The preset's ranges, or ActionFormer's doubling ranges with an open last level."""
        if self.regression_ranges is not None:
            return list(self.regression_ranges)
        bounds = [0] + [4 * 2**level for level in range(self.num_levels - 1)] + [10000]
        return [(float(lo), float(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]

    @model_validator(mode="after")
    def _ranges_match_levels(self) -> "DetectorConfig":
        if self.channels % self.num_heads:
            raise ValueError(f"channels {self.channels} is not divisible by num_heads {self.num_heads}")
        if self.regression_ranges is not None and len(self.regression_ranges) != self.num_levels:
            raise ValueError(
                f"regression_ranges has {len(self.regression_ranges)} entries but arch {tuple(self.arch)} "
                f"gives {self.num_levels} levels"
            )
        return self


class LossConfig(Section):
    """Training losses (spec §4.6)."""

    focal_alpha: float = Field(default=0.25, ge=0, le=1)
    focal_gamma: float = Field(default=2.0, ge=0)
    regression_weight: float = Field(default=1.0, gt=0, description="weight of the DIoU loss")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    normalizer_init: float = Field(default=100.0, gt=0, description="initial positives normaliser")
    normalizer_momentum: float = Field(default=0.9, ge=0, lt=1)


class TrainConfig(Section):
    """Optimisation (spec §3, §8)."""

    optimizer: Literal["adamw"] = "adamw"
    head_lr: float = Field(default=1e-4, gt=0, description="learning rate of the detector")
    adapter_lr: float = Field(default=2e-4, ge=0, description="learning rate of the adapters")
    backbone_lr: float = Field(default=1e-5, ge=0, description="learning rate of the ViT in full mode")
    weight_decay: float = Field(default=0.05, ge=0)
    batch_size: int = Field(default=2, gt=0, description="videos per optimizer step (global batch)")
    micro_batch_size: Optional[int] = Field(
        default=None,
        gt=0,
        description="videos per forward on one device, each forward with its own loss normaliser; the rest of "
        "the global batch is gradient accumulation; every shipped preset sets the reference's per-GPU batch; "
        "None = batch_size / number of processes",
    )
    epochs: int = Field(default=60, gt=0, description="epochs trained (the run stops here)")
    cosine_epochs: Optional[int] = Field(
        default=100, gt=0, description="length of the cosine schedule; longer than epochs truncates it; None = epochs"
    )
    warmup_epochs: int = Field(default=5, ge=0, description="linear warm-up from lr 0")
    clip_grad_norm: Optional[float] = Field(default=1.0, gt=0)
    ema: bool = Field(default=True, description="evaluate an exponential moving average of the weights")
    ema_decay: float = Field(default=0.999, gt=0, lt=1)
    mixed_precision: bool = Field(default=True, description="fp16 autocast on CUDA (CPU always runs fp32)")
    eval_start_epoch: int = Field(default=40, ge=0, description="first epoch (0-based) that is evaluated")
    eval_interval: int = Field(default=2, gt=0)
    num_workers: Optional[int] = Field(
        default=None, ge=0, description="decoding processes per training process; None = chosen from the cores and the "
        "measured decode-to-compute ratio (tadcli.data.loader.training_workers)"
    )
    seed: int = 42

    @property
    def schedule_epochs(self) -> int:
        """Length of the warm-up + cosine schedule in epochs."""
        return self.cosine_epochs if self.cosine_epochs is not None else self.epochs

    @model_validator(mode="after")
    def _schedule_is_consistent(self) -> "TrainConfig":
        length = "train.cosine_epochs" if self.cosine_epochs is not None else "train.epochs; train.cosine_epochs is unset"
        if self.warmup_epochs >= self.schedule_epochs:
            raise ValueError(
                f"warmup_epochs {self.warmup_epochs} must be below the schedule length {self.schedule_epochs} "
                f"({length}): add --set train.warmup_epochs={self.schedule_epochs - 1}, or lengthen the schedule"
            )
        if self.epochs > self.schedule_epochs:
            raise ValueError(
                f"epochs {self.epochs} is past the end of the cosine schedule (train.cosine_epochs "
                f"{self.schedule_epochs}): add --set train.cosine_epochs={self.epochs}, or train for at most "
                f"{self.schedule_epochs} epochs"
            )
        return self


class InferenceConfig(Section):
    """How detection, evaluation and feature extraction compute (``tad detect``, ``tad eval --run``, ``tad extract``)."""

    mixed_precision: Optional[bool] = Field(
        default=None,
        description="bf16 (or fp16) autocast on CUDA (CPU always runs fp32); None = as train.mixed_precision",
    )


class PostprocessConfig(Section):
    """Detections from raw outputs (spec §5). ``None`` = the dataset profile's value.

    Soft-NMS runs per class, except for a class-agnostic detector (one class-agnostic pass, with the
    profile's boundary voting), as in every OpenTAD config.
    """

    soft_nms_sigma: Optional[float] = Field(default=None, gt=0)
    max_segments: Optional[int] = Field(default=None, gt=0)
    pre_nms_topk: Optional[int] = Field(default=None, gt=0)
    pre_nms_threshold: float = Field(default=0.001, ge=0, lt=1)
    min_score: Optional[float] = Field(default=None, ge=0)


class VideoClassifierConfig(Section):
    """The external video-level classifier that labels a class-agnostic detector's segments (spec §5.5).

    The file is ``{"results": {video_id: [one score per class]}, "class" | "classes": [names]}`` with
    video ids without the ``v_`` file prefix (:func:`tadcli.data.video_classifier.read_video_classifier`).
    """

    path: Optional[str] = Field(
        default=None,
        description="the classifier's results JSON (e.g. cuhk_val_simp_7.json); None = name it when evaluating, "
        "--set video_classifier.path=FILE",
    )
    fusion: Literal["product", "geometric-mean"] = Field(
        default="product",
        description="segment score x class score (CUHK classifier), or the square root of it (InternVideo)",
    )
    topk: int = Field(default=2, gt=0, description="best classes of each video; every segment is repeated for each")


class EvaluationConfig(Section):
    """``None`` = the dataset profile's thresholds."""

    tiou_thresholds: Optional[list[float]] = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> "EvaluationConfig":
        for t in self.tiou_thresholds or []:
            if not 0 < t <= 1:
                raise ValueError(f"tIoU threshold {t} is outside (0, 1]")
        return self


class Preset(Section):
    """A complete, validated run definition."""

    name: str = Field(default="custom", description="filled from the file name")
    description: str = ""
    dataset: Optional[str] = Field(
        default=None,
        description="dataset profile whose recipe this is (tad presets list --dataset); None = any dataset",
    )
    backbone: BackboneConfig = BackboneConfig()
    adaptation: AdaptationConfig = AdaptationConfig()
    input: InputConfig = InputConfig()
    detector: DetectorConfig = DetectorConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    inference: InferenceConfig = InferenceConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    video_classifier: Optional[VideoClassifierConfig] = Field(
        default=None, description="labels a class-agnostic detector's segments; required by and only for those"
    )

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_profile(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value not in PROFILES:
            raise ValueError(f"unknown dataset '{value}' (known: {', '.join(PROFILES)})")
        return value

    def num_detector_classes(self, num_dataset_classes: int) -> int:
        """Classes the detector predicts on a dataset of ``num_dataset_classes`` classes (1 if class-agnostic)."""
        return 1 if self.detector.class_agnostic else num_dataset_classes

    def inference_mixed_precision(self) -> bool:
        """Whether inference autocasts on CUDA: ``inference.mixed_precision``, or ``train.mixed_precision`` when unset."""
        mixed = self.inference.mixed_precision
        return self.train.mixed_precision if mixed is None else mixed

    def adapter_blocks(self) -> list[int]:
        """Indices of the ViT blocks that carry an adapter (spec §1.5)."""
        depth = self.backbone.resolved_depth
        blocks = self.adaptation.blocks
        if blocks == "all":
            return list(range(depth))
        if blocks == "last-half":
            return list(range(depth // 2, depth))
        return sorted(blocks)

    @model_validator(mode="after")
    def _cross_section_rules(self) -> "Preset":
        depth = self.backbone.resolved_depth
        if isinstance(self.adaptation.blocks, list):
            bad = [i for i in self.adaptation.blocks if not 0 <= i < depth]
            if bad:
                raise ValueError(f"adaptation.blocks {bad} outside the backbone's {depth} blocks (0..{depth - 1})")
            if len(set(self.adaptation.blocks)) != len(self.adaptation.blocks):
                raise ValueError("adaptation.blocks lists a block twice")
        if self.detector.class_agnostic and self.video_classifier is None:
            raise ValueError(
                "detector.class_agnostic needs a video_classifier section (fusion, topk) to name the detections"
            )
        if self.video_classifier is not None and not self.detector.class_agnostic:
            raise ValueError("video_classifier labels class-agnostic detections only: set detector.class_agnostic")
        if self.adaptation.mode in ("tia", "plain", "side") and not self.adapter_blocks():
            raise ValueError(f"adaptation.mode '{self.adaptation.mode}' needs at least one adapter block")
        length = self.input.detector_length
        window = self.detector.attention_window
        for level in range(self.detector.num_levels):
            stride = 2**level
            divisor = stride * (window // 2) * 2 if window > 1 else stride
            if length % divisor:
                raise ValueError(
                    f"detector length {length} (input.frames / input.scale_factor) is not divisible by "
                    f"{divisor}, needed at level {level} (stride {stride}, attention window {window})"
                )
        return self
