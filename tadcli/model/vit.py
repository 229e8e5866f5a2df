"""The VideoMAE / VideoMAEv2 vision transformer, as used by AdaTAD (spec §1).

Module names follow the original VideoMAE code and timm (``patch_embed.proj``, ``blocks.{i}.attn.qkv``,
``blocks.{i}.attn.q_bias``, ``blocks.{i}.mlp.fc1``), so original checkpoints load with almost no renaming
(:mod:`tadcli.io.weights`).

The model returns the token feature map, never a pooled classification vector. The ``fc_norm``
LayerNorm of the original checkpoints belongs to the classifier's pooling path and is never used by
AdaTAD (spec §1.2), so this module does not have it: the weight converters drop ``fc_norm.*`` together
with the classification head. No parameter of the model is therefore unused.

Position table: a fixed 1-D sinusoid over the flattened (t, y, x) token index of a ``img_size`` clip,
regenerated here (never read from files) and resized bicubically per temporal slice when the input grid
differs (spec §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import Mlp, trunc_normal_
from torch import nn

from tadcli.config.schema import DEPTH_OF_SIZE
from tadcli.model.position import sinusoid_position_table


@dataclass(frozen=True)
class ViTArch:
    """The shape of a VideoMAE ViT.

    Args:
        embed_dim: token width C.
        depth: number of transformer blocks.
        num_heads: attention heads (head dim = C / heads).
        mlp_hidden_dim: FFN hidden width (``int(C * mlp_ratio)``; 6144 for the giant).
        patch_size: spatial patch size p in pixels.
        tubelet_size: frames per tubelet (temporal patch size).
        img_size: image size that defines the position-table grid ``img_size // p`` (not the input size).
        num_frames: frames per ViT forward (one chunk); the table has ``num_frames // tubelet_size`` slices.
        qkv_bias: learnable q and v biases (the k bias is always zero).
        layer_norm_eps: LayerNorm epsilon.
        final_norm: apply a last LayerNorm ``norm`` to the tokens (checkpoints without mean pooling).
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden_dim: int
    patch_size: int = 16
    tubelet_size: int = 2
    img_size: int = 224
    num_frames: int = 16
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    final_norm: bool = False

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_frames % self.tubelet_size:
            raise ValueError(f"num_frames {self.num_frames} is not divisible by tubelet_size {self.tubelet_size}")

    @property
    def tubelets_per_chunk(self) -> int:
        """Temporal tokens per chunk (8 for 16 frames and tubelets of 2)."""
        return self.num_frames // self.tubelet_size


# The variants of spec §1.1. ``g`` is VideoMAEv2-giant (mlp_ratio 48/11, patch 14). Depths: the preset
# schema's table (it checks adapter block indices without importing torch).
ARCHS: dict[str, ViTArch] = {
    "S": ViTArch(embed_dim=384, depth=DEPTH_OF_SIZE["S"], num_heads=6, mlp_hidden_dim=1536),
    "B": ViTArch(embed_dim=768, depth=DEPTH_OF_SIZE["B"], num_heads=12, mlp_hidden_dim=3072),
    "L": ViTArch(embed_dim=1024, depth=DEPTH_OF_SIZE["L"], num_heads=16, mlp_hidden_dim=4096),
    "H": ViTArch(embed_dim=1280, depth=DEPTH_OF_SIZE["H"], num_heads=16, mlp_hidden_dim=5120),
    "g": ViTArch(embed_dim=1408, depth=DEPTH_OF_SIZE["g"], num_heads=16, mlp_hidden_dim=6144, patch_size=14),
}


def resize_position_table(table: torch.Tensor, tubelets: int, grid: int, new_grid: tuple[int, int]) -> torch.Tensor:
    """Resize each temporal slice of a position table bicubically (``align_corners=False``).

    Args:
        table: ``[1, tubelets * grid * grid, C]``.
        tubelets: temporal slices (no temporal interpolation).
        grid: side of the table's square spatial grid.
        new_grid: the target (h, w).

    Returns:
        ``[1, tubelets * h * w, C]``.
    """
    dim = table.shape[-1]
    height, width = new_grid
    slices = table.reshape(tubelets, grid, grid, dim).permute(0, 3, 1, 2)  # [1, t*g*g, C] -> [t, C, g, g]
    slices = F.interpolate(slices, size=(height, width), mode="bicubic", align_corners=False)
    return slices.permute(0, 2, 3, 1).reshape(1, tubelets * height * width, dim)  # [t, C, h, w] -> [1, t*h*w, C]


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: Conv3d with kernel = stride = (tubelet, p, p) and (t, y, x) token order.

    Args:
        embed_dim: output width C.
        patch_size: spatial patch size p.
        tubelet_size: frames per tubelet.
        in_channels: input channels (RGB).
    """

    def __init__(
        self,
        embed_dim: int,
        patch_size: int,
        tubelet_size: int,
        in_channels: int = 3,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel, stride=kernel, device=device, dtype=dtype)

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """``[N, 3, F, H, W]`` -> tokens ``[N, t*h*w, C]`` and the grid ``(t, h, w)``.

        Pixels beyond the last whole patch are ignored (160 px with p = 14 uses 154 px).
        """
        x = self.proj(clips)  # [N, C, t, h, w]
        grid = (x.shape[2], x.shape[3], x.shape[4])
        return x.flatten(2).transpose(1, 2), grid  # [N, C, t, h, w] -> [N, t*h*w, C]


class Attention(nn.Module):
    """Multi-head self-attention with VideoMAE's biases: ``qkv`` without bias, learnable ``q_bias`` and
    ``v_bias``, and a zero key bias that is neither a parameter nor saved.

    Args:
        dim: token width C.
        num_heads: number of heads.
        qkv_bias: create ``q_bias`` and ``v_bias``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False, device=device, dtype=dtype)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))
            self.v_bias = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))
            self.register_buffer("k_bias", torch.zeros(dim, device=device, dtype=dtype), persistent=False)
        else:
            self.q_bias = None
            self.v_bias = None
            self.k_bias = None
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, L, C]`` -> ``[N, L, C]``; attention within each of the N sequences."""
        batch, length, dim = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        qkv = qkv.reshape(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [N, L, 3, nh, hd] -> 3 x [N, nh, L, hd]
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(batch, length, dim)  # [N, nh, L, hd] -> [N, L, C]
        return self.proj(x)


class Block(nn.Module):
    """Pre-LN transformer block, optionally ending with an adapter (spec §1.2, §2.2).

    ``x = x + DropPath(Attn(LN1 x)); x = x + DropPath(FFN(LN2 x)); x = adapter(x)``.

    The first two steps (:meth:`transformer`) act within each of the N sequences (16-frame chunks),
    so they can run on any subset of the chunks; only the adapter may mix chunks. Stochastic depth
    masks are drawn apart (:meth:`drop_masks`), for all N chunks at once, so that chunk-wise runs
    and recomputations apply the same masks as one run over all chunks.

    Args:
        dim: token width C.
        num_heads: attention heads.
        mlp_hidden_dim: FFN hidden width.
        qkv_bias: learnable q and v biases.
        drop_path: stochastic depth rate of both residual branches.
        layer_norm_eps: LayerNorm epsilon.
        adapter: module applied to the block output, called as ``adapter(x, temporal_size)``
            and holding its own residual; None for none.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden_dim: int,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        layer_norm_eps: float = 1e-6,
        adapter: Optional[nn.Module] = None,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps, device=device, dtype=dtype)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, device=device, dtype=dtype)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps, device=device, dtype=dtype)
        self.mlp = Mlp(dim, mlp_hidden_dim, act_layer=nn.GELU, device=device, dtype=dtype)
        self.drop_path = drop_path
        for linear in (self.attn.qkv, self.attn.proj, self.mlp.fc1, self.mlp.fc2):
            # VideoMAE init; the adapter keeps its own constructor init (spec §2.1)
            trunc_normal_(linear.weight, std=0.02)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        self.adapter = adapter

    def drop_masks(self, count: int, device: torch.device) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Stochastic-depth masks ``[count, 1, 1]`` of the two residual branches, each 0 or 1 / keep
        (timm ``DropPath``: one draw per sequence); None in eval mode or with rate 0."""
        if not self.training or self.drop_path == 0:
            return None
        keep = 1.0 - self.drop_path
        attn_mask = torch.empty(count, 1, 1, device=device).bernoulli_(keep).div_(keep)
        mlp_mask = torch.empty(count, 1, 1, device=device).bernoulli_(keep).div_(keep)
        return attn_mask, mlp_mask

    def transformer(self, x: torch.Tensor, masks: Optional[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Attention and MLP with their residuals, ``[N, L, C]`` -> same, within each sequence.

        ``masks``: from :meth:`drop_masks` for these N sequences, or None for no stochastic depth.
        """
        branch = self.attn(self.norm1(x))
        x = x + (branch if masks is None else branch * masks[0].to(branch.dtype))
        branch = self.mlp(self.norm2(x))
        return x + (branch if masks is None else branch * masks[1].to(branch.dtype))

    def forward(self, x: torch.Tensor, temporal_size: int) -> torch.Tensor:
        """``[B*K, t*h*w, C]`` -> same; ``temporal_size`` = tubelets per video (K*t), used by the adapter."""
        x = self.transformer(x, self.drop_masks(x.shape[0], x.device))
        if self.adapter is not None:
            x = self.adapter(x, temporal_size)
        return x


class VideoViT(nn.Module):
    """VideoMAE ViT parts: tubelet embedding, fixed position table, blocks, optional final norm.

    The block loop, with its adaptation modes and checkpointing, is the forward of
    :class:`tadcli.model.backbone.VideoBackbone`, which subclasses this module so that the parameter
    names stay those of the original checkpoints.

    Args:
        arch: the shape (see :data:`ARCHS`).
        drop_path_rate: stochastic depth of the last block; block i gets ``linspace(0, rate, depth)[i]``.
        adapters: one adapter (or None) per block, placed at the end of that block.
    """

    def __init__(
        self,
        arch: ViTArch,
        drop_path_rate: float = 0.0,
        adapters: Optional[list[Optional[nn.Module]]] = None,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        if adapters is not None and len(adapters) != arch.depth:
            raise ValueError(f"got {len(adapters)} adapter slots for {arch.depth} blocks")
        self.arch = arch
        dim = arch.embed_dim
        self.patch_embed = PatchEmbed3d(dim, arch.patch_size, arch.tubelet_size, device=device, dtype=dtype)
        self.pos_grid = arch.img_size // arch.patch_size
        table = sinusoid_position_table(arch.tubelets_per_chunk * self.pos_grid**2, dim)[None]  # [1, N, C]
        self.register_buffer("pos_embed", table.to(device=device), persistent=False)
        rates = torch.linspace(0, drop_path_rate, arch.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(
                dim,
                arch.num_heads,
                arch.mlp_hidden_dim,
                qkv_bias=arch.qkv_bias,
                drop_path=rates[i],
                layer_norm_eps=arch.layer_norm_eps,
                adapter=adapters[i] if adapters is not None else None,
                device=device,
                dtype=dtype,
            )
            for i in range(arch.depth)
        )
        if arch.final_norm:
            self.norm = nn.LayerNorm(dim, eps=arch.layer_norm_eps, device=device, dtype=dtype)
        else:
            self.norm = nn.Identity()

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """The position table for an ``(height, width)`` token grid: ``[1, t*h*w, C]``."""
        if (height, width) == (self.pos_grid, self.pos_grid):
            return self.pos_embed
        return resize_position_table(self.pos_embed, self.arch.tubelets_per_chunk, self.pos_grid, (height, width))

    def embed(self, clips: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Clips ``[N, 3, num_frames, H, W]`` -> tokens with positions ``[N, t*h*w, C]`` and grid (t, h, w)."""
        tokens, grid = self.patch_embed(clips)
        return tokens + self.position_embedding(grid[1], grid[2]).to(tokens.dtype), grid
