"""The video backbone: a VideoMAE ViT turned into a ``[B, C, F/2]`` feature extractor, with the
adaptation modes of AdaTAD (spec §1.4, §2, §3) and weight loading.

Modes (the only parameters that require grad are set once, at construction):

- ``full``: every ViT parameter trains.
- ``frozen``: nothing trains; the ViT runs without a graph and stays in eval mode (no drop path).
- ``tia``: a :class:`~tadcli.model.adapters.TemporalAdapter` at the end of each chosen block; only
  adapters train. Blocks before the first adapted block run under ``no_grad``; frozen blocks keep
  drop path under ``model.train()`` (spec §3).
- ``plain``: the same with :class:`~tadcli.model.adapters.PlainAdapter` (no temporal convolution).
- ``side``: :class:`~tadcli.model.adapters.LadderAdapters` outside the ViT, on detached outputs of the
  chosen blocks; the ViT runs under ``no_grad`` in eval mode, no backward through it at all.

Activation checkpointing (:meth:`VideoBackbone.set_grad_checkpointing`) skips blocks whose input does not
require grad and that hold nothing trainable. With ``chunk_group`` > 0 (the default) the blocks' attention
and MLP run a few 16-frame chunks at a time wherever no graph is kept (inference, frozen and side ViTs,
blocks before the first adapter), and checkpointed training runs the blocks as one
:class:`~tadcli.model.chunked.BlockStack`, which keeps one tensor per block and recomputes chunk-wise
(issue 12). ``chunk_group`` 0 runs every block over the whole window, checkpointed per block by
``torch.utils.checkpoint`` (non-reentrant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Optional, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from tadcli.errors import WeightFormatError
from tadcli.io.weights import LoadReport, load_state_strict, read_backbone_weights
from tadcli.model.adapters import LadderAdapters, PlainAdapter, TemporalAdapter
from tadcli.model.chunked import (
    ActivationStore,
    BlockStack,
    StackPlan,
    pool_tubelets,
    run_adapter,
    run_groups,
    run_transformer,
    stack_parameters,
)
from tadcli.model.vit import ARCHS, Block, VideoViT, ViTArch

Adaptation = Literal["full", "frozen", "tia", "plain", "side"]
ADAPTATIONS: tuple[str, ...] = ("full", "frozen", "tia", "plain", "side")

# mmaction ActionDataPreprocessor values on 0-255 RGB (spec §1.4)
FRAME_MEAN = (123.675, 116.28, 103.53)
FRAME_STD = (58.395, 57.12, 57.375)


def normalize_frames(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 RGB frames ``[B, 3, F, H, W]`` (0-255) -> ``(x - mean) / std`` per channel, as ``dtype``.

    Move the uint8 tensor to the model's device first: the transfer is 4x smaller than in float.
    """
    if frames.dim() != 5 or frames.shape[1] != 3:
        raise ValueError(f"expected frames [B, 3, F, H, W], got {tuple(frames.shape)}")
    mean = torch.tensor(FRAME_MEAN, device=frames.device, dtype=dtype).view(1, 3, 1, 1, 1)
    std = torch.tensor(FRAME_STD, device=frames.device, dtype=dtype).view(1, 3, 1, 1, 1)
    return (frames.to(dtype) - mean) / std


def resolve_arch(arch: Union[str, ViTArch]) -> ViTArch:
    """A :class:`ViTArch` from a variant name ("S", "B", "L", "H", "g") or an arch object."""
    if isinstance(arch, ViTArch):
        return arch
    if arch not in ARCHS:
        raise ValueError(f"unknown ViT variant {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def resolve_adapter_blocks(
    blocks: Union[Sequence[int], Literal["all", "last-half"], None], depth: int, adaptation: Adaptation
) -> tuple[int, ...]:
    """Block indices that get an adapter (or a side branch).

    None means the mode's default: all blocks for ``tia``/``plain``, the last half for ``side``
    (spec §1.5). ``full`` and ``frozen`` have no adapters and ignore ``blocks``.
    """
    if adaptation in ("full", "frozen"):
        return ()
    if blocks is None:
        blocks = "last-half" if adaptation == "side" else "all"
    if blocks == "all":
        return tuple(range(depth))
    if blocks == "last-half":
        return tuple(range(depth // 2, depth))
    indices = tuple(sorted(set(int(i) for i in blocks)))
    if not indices:
        raise ValueError(f"adaptation {adaptation!r} needs at least one adapter block")
    if indices[0] < 0 or indices[-1] >= depth:
        raise ValueError(f"adapter blocks {list(indices)} out of range for a ViT of depth {depth}")
    return indices


# transformers' VideoMAEConfig defaults, used for fields a config.json leaves out.
HUGGINGFACE_CONFIG_DEFAULTS = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "patch_size": 16,
    "tubelet_size": 2,
    "image_size": 224,
    "num_frames": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "use_mean_pooling": True,
    "layer_norm_eps": 1e-12,
}


def arch_from_huggingface_config(config: dict, source: Union[str, Path]) -> ViTArch:
    """The :class:`ViTArch` described by a transformers ``VideoMAEConfig`` (``config.json``)."""
    if config.get("model_type", "videomae") != "videomae":
        raise WeightFormatError(f"{source}: model_type is {config['model_type']!r}, expected 'videomae'")
    values = {**HUGGINGFACE_CONFIG_DEFAULTS, **config}
    if values["hidden_act"] != "gelu":
        raise WeightFormatError(f"{source}: hidden_act {values['hidden_act']!r} is not supported (only 'gelu')")
    if values["num_channels"] != 3:
        raise WeightFormatError(f"{source}: num_channels {values['num_channels']} is not supported (only 3)")
    try:
        return ViTArch(
            embed_dim=values["hidden_size"],
            depth=values["num_hidden_layers"],
            num_heads=values["num_attention_heads"],
            mlp_hidden_dim=values["intermediate_size"],
            patch_size=values["patch_size"],
            tubelet_size=values["tubelet_size"],
            img_size=values["image_size"],
            num_frames=values["num_frames"],
            qkv_bias=values["qkv_bias"],
            layer_norm_eps=values["layer_norm_eps"],
            final_norm=not values["use_mean_pooling"],
        )
    except ValueError as error:
        raise WeightFormatError(f"{source}: {error}") from error


def _has_trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


@dataclasses.dataclass(frozen=True)
class BackboneOptions:
    """Everything :class:`VideoBackbone` is built from besides the ViT shape: one object that every
    constructor path (:func:`build_backbone`, :func:`load_backbone`, presets) hands over whole, so no
    option can be dropped on the way.

    Args:
        adaptation: ``full``, ``frozen``, ``tia``, ``plain`` or ``side`` (see the module docstring).
        adapter_blocks: blocks with an adapter (tia, plain) or tapped by the side branches (side);
            None = all blocks (tia, plain) or the last half (side); ignored by full and frozen.
        adapter_ratio: adapter hidden width = ``int(C * adapter_ratio)`` (0.25; giant side 1/8).
        temporal_kernel: odd kernel of the adapters' temporal convolution.
        drop_path_rate: stochastic depth of the last block (linspace from 0 over the blocks).
        checkpointing: activation checkpointing per block (and per side adapter).
        chunk_group: 16-frame chunks the blocks' attention and MLP process at a time where no graph is
            kept, and in the checkpointed recompute; 0 = the whole window at once (``torch.utils.checkpoint``).
        compact_checkpoints: under autocast, keep the checkpointed block activations in the compute dtype
            (half the bytes; the recompute starts from rounded values). Needs ``chunk_group`` > 0.
        offload_checkpoints: keep the checkpointed block activations of a CUDA run in pinned CPU memory
            (asynchronous copies); nothing to do for CPU tensors. Needs ``chunk_group`` > 0.

    Raises:
        ValueError: an unknown adaptation, a negative ``chunk_group``, or compact/offloaded checkpoints
            with ``chunk_group`` 0.
    """

    adaptation: Adaptation = "frozen"
    adapter_blocks: Union[Sequence[int], Literal["all", "last-half"], None] = None
    adapter_ratio: float = 0.25
    temporal_kernel: int = 3
    drop_path_rate: float = 0.0
    checkpointing: bool = False
    chunk_group: int = 1
    compact_checkpoints: bool = False
    offload_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"unknown adaptation {self.adaptation!r}; choose one of {', '.join(ADAPTATIONS)}")
        if self.chunk_group < 0:
            raise ValueError(f"chunk_group must be >= 0, got {self.chunk_group}")
        if self.chunk_group == 0 and (self.compact_checkpoints or self.offload_checkpoints):
            raise ValueError("compact or offloaded checkpoints need chunk_group > 0")


class VideoBackbone(VideoViT):
    """VideoMAE ViT with adapters: frames ``[B, 3, F, H, W]`` (normalized, or uint8 0-255) -> features ``[B, C, F/2]``.

    F must be a multiple of ``arch.num_frames`` (16); every video of the batch has the same F. The frames
    are cut into 16-frame chunks, video-major (``[B, 3, K*16, H, W] -> [B*K, 3, 16, H, W]``), all chunks
    go through the ViT as one batch (``chunk_group`` chunks at a time where that holds less memory), and
    each tubelet's tokens are mean-pooled over space. A video's chunks are never split between batches:
    the temporal adapters convolve along all K*8 tubelets of a video.

    Args:
        arch: the ViT shape.
        options: adaptation mode, adapters, checkpointing and chunking (:class:`BackboneOptions`).
        device: where to allocate parameters (``"meta"`` builds without memory).
        dtype: parameter dtype.
    """

    def __init__(
        self,
        arch: ViTArch,
        options: BackboneOptions = BackboneOptions(),
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        adaptation = options.adaptation
        blocks = resolve_adapter_blocks(options.adapter_blocks, arch.depth, adaptation)
        hidden_dim = int(arch.embed_dim * options.adapter_ratio)
        adapters: list[Optional[nn.Module]] = [None] * arch.depth
        for index in blocks if adaptation in ("tia", "plain") else ():
            if adaptation == "tia":
                adapters[index] = TemporalAdapter(
                    arch.embed_dim, hidden_dim, arch.tubelets_per_chunk, options.temporal_kernel, device=device, dtype=dtype
                )
            else:
                adapters[index] = PlainAdapter(arch.embed_dim, hidden_dim, device=device, dtype=dtype)
        super().__init__(arch, options.drop_path_rate, adapters, device=device, dtype=dtype)
        self.options = options
        self.adaptation = adaptation
        self.adapter_blocks = blocks
        self.ladders: Optional[LadderAdapters] = None
        if adaptation == "side":
            self.ladders = LadderAdapters(
                len(blocks),
                arch.embed_dim,
                hidden_dim,
                arch.tubelets_per_chunk,
                options.temporal_kernel,
                device=device,
                dtype=dtype,
            )
        self.requires_grad_(adaptation == "full")
        for module in self.adapter_modules():
            module.requires_grad_(True)
        self.chunk_group = options.chunk_group
        self.activation_store = ActivationStore(compact=options.compact_checkpoints, offload=options.offload_checkpoints)
        self.set_grad_checkpointing(options.checkpointing)

    def adapter_modules(self) -> list[nn.Module]:
        """The adapter modules (in-block adapters, or the side ladder)."""
        modules: list[nn.Module] = [block.adapter for block in self.blocks if block.adapter is not None]
        if self.ladders is not None:
            modules.append(self.ladders)
        return modules

    def adapter_state_keys(self) -> set[str]:
        """State-dict keys that belong to adapters: the keys a pretrained ViT checkpoint lacks."""
        adapter_tensors = {id(t) for m in self.adapter_modules() for t in m.state_dict(keep_vars=True).values()}
        return {key for key, t in self.state_dict(keep_vars=True).items() if id(t) in adapter_tensors}

    def param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Trainable parameters by role: ``{"adapter": [(name, p), ...], "backbone": [...]}``.

        Both groups together are exactly the parameters that require grad.
        """
        adapter_params = {id(p) for m in self.adapter_modules() for p in m.parameters()}
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"adapter": [], "backbone": []}
        for name, param in self.named_parameters():
            if param.requires_grad:
                groups["adapter" if id(param) in adapter_params else "backbone"].append((name, param))
        return groups

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Switch activation checkpointing of the blocks (and side adapters) on or off."""
        self.grad_checkpointing = enabled
        if self.ladders is not None:
            self.ladders.grad_checkpointing = enabled

    def train(self, mode: bool = True) -> VideoBackbone:
        """``frozen`` and ``side`` keep the ViT in eval mode (no drop path); the side adapters follow ``mode``."""
        super().train(mode)
        if self.adaptation in ("frozen", "side"):
            for module in (self.patch_embed, self.blocks, self.norm):
                module.train(False)
        return self

    def _run_block(self, block: Block, x: torch.Tensor, temporal_size: int) -> torch.Tensor:
        trainable = _has_trainable(block)
        if not x.requires_grad and not trainable:
            with torch.no_grad():
                return block(x, temporal_size)
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, temporal_size, use_reentrant=False)
        return block(x, temporal_size)

    def forward_tokens(self, clips: torch.Tensor, temporal_size: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Chunks ``[B*K, 3, 16, H, W]`` (video-major) -> final tokens ``[B*K, t*h*w, C]`` and the grid,
        every block over the whole window (the ``chunk_group`` 0 path)."""
        if self.ladders is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.adaptation != "frozen"):
                x, grid = self.embed(clips)
                for block in self.blocks:
                    x = self._run_block(block, x, temporal_size)
                return self.norm(x), grid
        taps = []
        with torch.no_grad():
            x, grid = self.embed(clips)
            for index, block in enumerate(self.blocks[: self.adapter_blocks[-1] + 1]):
                x = block(x, temporal_size)
                if index in self.adapter_blocks:
                    taps.append(x)
        return self.norm(self.ladders(taps, temporal_size)), grid

    def _run_without_graph(self, blocks: Sequence[Block], x: torch.Tensor, temporal_size: int) -> torch.Tensor:
        for block in blocks:
            y = run_transformer(block, x, block.drop_masks(x.shape[0], x.device), self.chunk_group)
            x = run_adapter(block.adapter, y, temporal_size, self.chunk_group)
        return x

    def embed_chunks(self, frames: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Frames ``[B, 3, K*16, H, W]`` (uint8 0-255 or normalized float) -> tokens with positions
        ``[B*K, t*h*w, C]`` (video-major chunks) and h*w, ``chunk_group`` chunks at a time: the float window
        and its chunk-major copy never exist whole."""
        batch, channels, num_frames, height, width = frames.shape
        chunks, chunk = num_frames // self.arch.num_frames, self.arch.num_frames
        by_chunk = frames.reshape(batch, channels, chunks, chunk, height, width)  # a view

        def embed_part(part: slice) -> torch.Tensor:
            # chunk n of the video-major order is chunk n % K of video n // K: [n, 3, 16, H, W]
            clips = torch.stack([by_chunk[n // chunks, :, n % chunks] for n in range(part.start, part.stop)])
            return self.embed(normalize_frames(clips) if clips.dtype == torch.uint8 else clips)[0]

        tokens = run_groups(embed_part, batch * chunks, self.chunk_group)
        return tokens, (height // self.arch.patch_size) * (width // self.arch.patch_size)

    def forward_chunked(self, frames: torch.Tensor, temporal_size: int) -> torch.Tensor:
        """Frames ``[B, 3, K*16, H, W]`` (uint8 or normalized) -> tubelet features ``[B*K, t, C]`` (video-major),
        ``chunk_group`` chunks at a time wherever no graph is kept (see the module docstring)."""
        if self.ladders is not None:
            taps = []
            with torch.no_grad():
                x, tokens_per_tubelet = self.embed_chunks(frames)
                for index, block in enumerate(self.blocks[: self.adapter_blocks[-1] + 1]):
                    x = self._run_without_graph([block], x, temporal_size)
                    if index in self.adapter_blocks:
                        taps.append(x)
            return pool_tubelets(self.norm(self.ladders(taps, temporal_size)), tokens_per_tubelet)
        with_graph = torch.is_grad_enabled() and self.adaptation != "frozen"
        # a frozen patch embedding keeps no graph: its chunk groups run like any loop without one
        with torch.set_grad_enabled(with_graph and (frames.requires_grad or _has_trainable(self.patch_embed))):
            x, tokens_per_tubelet = self.embed_chunks(frames)
        needs_graph = [x.requires_grad or _has_trainable(block) for block in self.blocks]
        first = needs_graph.index(True) if with_graph and any(needs_graph) else len(self.blocks)
        with torch.no_grad():  # nothing before the first trainable block needs a graph
            x = self._run_without_graph(self.blocks[:first], x, temporal_size)
        plan = StackPlan(
            self.blocks[first:], self.norm, tokens_per_tubelet, temporal_size, self.chunk_group, self.activation_store
        )
        with torch.set_grad_enabled(with_graph):
            if first < len(self.blocks) and self.grad_checkpointing:
                return BlockStack.apply(plan, x, *stack_parameters(plan))
            for block in plan.blocks:  # a graph through every block: chunking would keep the same activations
                x = block(x, temporal_size)
            return plan.pool(x)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, 3, F, H, W]`` (F a multiple of 16), normalized float or uint8 0-255 (normalized here,
        per chunk group) -> float32 features ``[B, C, F/2]``."""
        batch, channels, num_frames, height, width = frames.shape
        chunk = self.arch.num_frames
        if num_frames % chunk:
            raise ValueError(f"frames per video must be a multiple of {chunk}, got {num_frames}")
        chunks = num_frames // chunk
        temporal_size = chunks * self.arch.tubelets_per_chunk
        if self.chunk_group:
            pooled = self.forward_chunked(frames, temporal_size)
        else:
            if frames.dtype == torch.uint8:
                frames = normalize_frames(frames)
            # [B, 3, K*16, H, W] -> [B, K, 3, 16, H, W] -> [B*K, 3, 16, H, W]: video-major chunks
            clips = frames.reshape(batch, channels, chunks, chunk, height, width).transpose(1, 2)
            clips = clips.reshape(batch * chunks, channels, chunk, height, width)
            tokens, (_, grid_h, grid_w) = self.forward_tokens(clips, temporal_size)
            pooled = pool_tubelets(tokens, grid_h * grid_w)  # [B*K, t*h*w, C] -> [B*K, t, C]
        pooled = pooled.reshape(batch, temporal_size, pooled.shape[-1])  # [B*K, t, C] -> [B, K*t, C]
        return pooled.transpose(1, 2).float()  # [B, K*t, C] -> [B, C, K*t]


def build_backbone(
    arch: Union[str, ViTArch],
    adaptation: Adaptation = "frozen",
    *,
    img_size: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[torch.dtype] = None,
    **options,
) -> VideoBackbone:
    """Build a randomly initialised :class:`VideoBackbone`.

    Args:
        arch: variant name ("S", "B", "L", "H", "g") or a :class:`ViTArch`.
        adaptation: ``full``, ``frozen``, ``tia``, ``plain`` or ``side``.
        img_size: image size defining the position-table grid; None keeps the arch's (224).
        device: parameter device (``"meta"`` allocates nothing).
        dtype: parameter dtype.
        **options: the other fields of :class:`BackboneOptions` (``adapter_blocks``, ``chunk_group``, ...).

    Raises:
        TypeError: an option :class:`BackboneOptions` does not have.
    """
    shape = resolve_arch(arch)
    if img_size is not None:
        shape = dataclasses.replace(shape, img_size=img_size)
    return VideoBackbone(
        shape,
        BackboneOptions(adaptation, **options),
        device=torch.device(device) if device is not None else None,
        dtype=dtype,
    )


def load_backbone_weights(backbone: VideoBackbone, source: Union[str, Path]) -> LoadReport:
    """Load a checkpoint file or Hugging Face directory into ``backbone`` strictly.

    Adapter keys are the only ones allowed to be missing (they keep their init and are listed in the
    report); any other missing, unexpected or mis-shaped key raises :class:`WeightFormatError`.
    """
    weights = read_backbone_weights(source)
    return load_state_strict(backbone, weights, allowed_missing=backbone.adapter_state_keys())


def _arch_hint(state: dict[str, torch.Tensor]) -> str:
    """A hint naming the variant whose shape matches the converted weights, if any."""
    patch = state.get("patch_embed.proj.weight")
    if patch is None:
        return ""
    depth = len({key.split(".")[1] for key in state if key.startswith("blocks.")})
    width, patch_size = patch.shape[0], patch.shape[-1]
    names = [
        name
        for name, arch in ARCHS.items()
        if (arch.embed_dim, arch.depth, arch.patch_size) == (width, depth, patch_size)
    ]
    found = f" (the weights have width {width}, {depth} blocks, patch {patch_size}"
    return found + (f": pass arch={names[0]!r})" if names else ")")


def load_backbone(
    source: Union[str, Path],
    arch: Union[str, ViTArch, None] = None,
    adaptation: Adaptation = "frozen",
    *,
    img_size: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[torch.dtype] = None,
    **options,
) -> VideoBackbone:
    """Build a :class:`VideoBackbone` and load pretrained weights into it.

    Args:
        source: a checkpoint file (.pth/.pt/.bin/.safetensors) in the original VideoMAE(v2),
            mmaction2/OpenTAD or released-AdaTAD layout, or a Hugging Face VideoMAE directory.
        arch: variant name or :class:`ViTArch`; may be omitted for a Hugging Face directory
            (read from ``config.json``); required for checkpoint files.
        adaptation, img_size, device, dtype, options: as in :func:`build_backbone`.

    Example:
        >>> backbone = load_backbone("vit-small-p16_videomae-k400.pth", arch="S", adaptation="tia")
        >>> feats = backbone(normalize_frames(frames_uint8))  # [1, 3, 768, 160, 160] -> [1, 384, 384]
    """
    weights = read_backbone_weights(source)
    if arch is None:
        if weights.huggingface_config is None:
            raise WeightFormatError(
                f"{source}: a {weights.format.value} checkpoint does not record its ViT shape; "
                f"pass arch (one of {', '.join(ARCHS)}){_arch_hint(weights.state)}"
            )
        arch = arch_from_huggingface_config(weights.huggingface_config, Path(source) / "config.json")
    backbone = build_backbone(arch, adaptation, img_size=img_size, device=device, dtype=dtype, **options)
    load_state_strict(backbone, weights, allowed_missing=backbone.adapter_state_keys())
    return backbone
