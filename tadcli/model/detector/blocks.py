"""Masked 1-D building blocks of the ActionFormer projection and head.

Follows ActionFormer (Zhang et al., ECCV 2022, github.com/happyharrycn/actionformer_release,
``libs/modeling/blocks.py``) as re-implemented by OpenTAD (``opentad/models/bricks``), with the
constants of ``shared/spec/ADATAD.md`` §4.1. Every block maps ``(x, mask) -> (x, mask)`` with
``x`` [B, C, T] and a bool ``mask`` [B, 1, T] (True = valid step); strided blocks return the
downsampled mask. Module and parameter names match the released AdaTAD checkpoints (spec §9.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MaskedTensor = tuple[torch.Tensor, torch.Tensor]


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel dimension of a [B, C, T] tensor (weight and bias of shape [C])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, T] -> [B, T, C] -> LN -> [B, C, T]
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Keep every ``stride``-th step of a [B, 1, T] mask (nearest resampling for T divisible by stride)."""
    return mask[..., ::stride] if stride > 1 else mask


class MaskedConv1d(nn.Module):
    """Conv1d whose output is zeroed at invalid steps; a strided conv also downsamples the mask.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size; padding is ``kernel_size // 2``.
        stride: temporal stride (1 or 2 in ActionFormer).
        groups: conv groups (``in_channels`` for a depthwise conv).
        bias: whether the conv has a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        self.stride = stride
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=bias
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> MaskedTensor:
        assert x.shape[-1] % self.stride == 0, f"length {x.shape[-1]} is not divisible by stride {self.stride}"
        out = self.conv(x)
        out_mask = downsample_mask(mask, self.stride)
        return out * out_mask.to(out.dtype), out_mask


class ConvNormReLU(nn.Module):
    """Bias-free conv -> mask -> channel LayerNorm (eps 1e-6) -> ReLU -> mask (OpenTAD ``ConvModule``).

    Used for the projection's embedding convs and the head towers (stride 1).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size; padding is ``kernel_size // 2``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = ChannelLayerNorm(out_channels, eps=1e-6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> MaskedTensor:
        valid = mask.to(x.dtype)
        x = self.conv(x) * valid
        x = F.relu(self.norm(x)) * valid
        return x, mask


class Scale(nn.Module):
    """A learnable scalar multiplier (one per FPN level in the head), initialised to ``init_value``.

    Args:
        init_value: initial value of the scalar.
    """

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(init_value, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth: zero whole samples with probability ``drop_prob``, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device) < keep_prob
    return x / keep_prob * keep.to(x.dtype)


class AffineDropPath(nn.Module):
    """Per-channel learnable scale (layer scale, init 1e-4) followed by per-sample drop path.

    Args:
        num_channels: channels C of the [B, C, T] input; the scale has shape [1, C, 1].
        drop_prob: drop-path probability.
        init_scale: initial value of every channel's scale.
    """

    def __init__(self, num_channels: int, drop_prob: float, init_scale: float = 1e-4) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale = nn.Parameter(torch.full((1, num_channels, 1), init_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(self.scale * x, self.drop_prob, self.training)


class MaskedMHCA(nn.Module):
    """Multi-head conv attention with masking, global over the sequence (ActionFormer ``MaskedMHCA``).

    q, k and v each pass a masked depthwise conv (kernel 3, stride ``stride``, no bias), a LayerNorm
    (eps 1e-5) and a 1x1 conv. Padded keys are excluded; outputs at padded queries are zero.

    Args:
        embed_dim: channels D (input and output).
        num_heads: attention heads; D must be divisible by it.
        stride: 1, or 2 to downsample queries, keys and values together.
        proj_dropout: dropout after the output projection.
    """

    def __init__(self, embed_dim: int, num_heads: int, stride: int = 1, proj_dropout: float = 0.0) -> None:
        super().__init__()
        assert embed_dim % num_heads == 0, f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
        assert stride == 1 or stride % 2 == 0, f"stride must be 1 or even, got {stride}"
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        kernel_size = stride + 1 if stride > 1 else 3
        self.query_conv = MaskedConv1d(embed_dim, embed_dim, kernel_size, stride, groups=embed_dim, bias=False)
        self.key_conv = MaskedConv1d(embed_dim, embed_dim, kernel_size, stride, groups=embed_dim, bias=False)
        self.value_conv = MaskedConv1d(embed_dim, embed_dim, kernel_size, stride, groups=embed_dim, bias=False)
        self.query_norm = ChannelLayerNorm(embed_dim)
        self.key_norm = ChannelLayerNorm(embed_dim)
        self.value_norm = ChannelLayerNorm(embed_dim)
        self.query = nn.Conv1d(embed_dim, embed_dim, 1)
        self.key = nn.Conv1d(embed_dim, embed_dim, 1)
        self.value = nn.Conv1d(embed_dim, embed_dim, 1)
        self.proj = nn.Conv1d(embed_dim, embed_dim, 1)
        self.proj_drop = nn.Dropout(proj_dropout)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        # [B, nh*hs, T] -> [B, nh, hs, T] -> [B, nh, T, hs]
        return x.view(batch, self.num_heads, self.head_dim, length).transpose(2, 3)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        """Global masked attention. q, k, v: [B, nh, T, hs]; kv_mask: bool [B, 1, T] -> [B, nh, T, hs]."""
        # [B, nh, T, hs] x [B, nh, hs, T] -> [B, nh, T, T]
        scores = (q * self.scale) @ k.transpose(-2, -1)
        scores = scores.masked_fill(~kv_mask[:, :, None, :], float("-inf"))
        attn = F.softmax(scores, dim=-1)
        # [B, nh, T, T] x [B, nh, T, hs] -> [B, nh, T, hs]
        return attn @ (v * kv_mask[:, :, :, None].to(v.dtype))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> MaskedTensor:
        batch, channels, _ = x.shape
        q, qx_mask = self.query_conv(x, mask)
        k, kv_mask = self.key_conv(x, mask)
        v, _ = self.value_conv(x, mask)
        q = self.query(self.query_norm(q))
        k = self.key(self.key_norm(k))
        v = self.value(self.value_norm(v))
        out = self.attend(self._split_heads(q), self._split_heads(k), self._split_heads(v), kv_mask)
        # [B, nh, T', hs] -> [B, nh, hs, T'] -> [B, nh*hs, T']
        out = out.transpose(2, 3).reshape(batch, channels, -1)
        out = self.proj_drop(self.proj(out)) * qx_mask.to(out.dtype)
        return out, qx_mask


class LocalMaskedMHCA(MaskedMHCA):
    """:class:`MaskedMHCA` restricted to a band: each query attends to keys within ``window_size // 2`` steps.

    Longformer-style semantics of ActionFormer's ``LocalMaskedMHCA``: keys outside the sequence are
    excluded, padded keys get -1e4 added to their score, rows of padded queries are zero after the
    softmax. Computed by unfolding the keys and values of every query's band ([T, 2w+1] scores
    instead of [T, T]), which gives the same result as dense attention with a band mask.

    Args:
        embed_dim: channels D (input and output).
        num_heads: attention heads; D must be divisible by it.
        window_size: odd band width (> 1); w = window_size // 2 keys on each side.
        stride: 1, or 2 to downsample queries, keys and values together.
        proj_dropout: dropout after the output projection.
    """

    def __init__(
        self, embed_dim: int, num_heads: int, window_size: int, stride: int = 1, proj_dropout: float = 0.0
    ) -> None:
        super().__init__(embed_dim, num_heads, stride, proj_dropout)
        assert window_size > 1, f"local attention needs window_size > 1, got {window_size}"
        self.window_overlap = window_size // 2

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        """Banded masked attention. q, k, v: [B, nh, T, hs]; kv_mask: bool [B, 1, T] -> [B, nh, T, hs]."""
        w = self.window_overlap
        length = k.shape[2]
        band = 2 * w + 1
        # [B, nh, T, hs] -> pad T by w on both sides -> unfold T: [B, nh, T, hs, 2w+1], each query's band
        k_bands = F.pad(k, (0, 0, w, w)).unfold(2, band, 1)
        v_bands = F.pad(v, (0, 0, w, w)).unfold(2, band, 1)
        # [B, nh, T, 1, hs] x [B, nh, T, hs, 2w+1] -> [B, nh, T, 2w+1]
        scores = ((q * self.scale).unsqueeze(-2) @ k_bands).squeeze(-2)
        # key position of band slot j for query i is i - w + j; [T, 2w+1]
        positions = torch.arange(length, device=q.device)[:, None] + torch.arange(-w, w + 1, device=q.device)
        inside = (positions >= 0) & (positions < length)
        # [B, 1, T] -> [B, 1, T + 2w] -> [B, 1, T, 2w+1]: validity of each band slot's key
        key_valid = F.pad(kv_mask, (w, w), value=False).unfold(2, band, 1)
        scores = scores + (~key_valid).to(scores.dtype) * -1e4
        scores = scores.masked_fill(~inside, float("-inf"))
        attn = F.softmax(scores, dim=-1)
        attn = attn * kv_mask[:, :, :, None].to(attn.dtype)
        # [B, nh, T, 1, 2w+1] x [B, nh, T, 2w+1, hs] -> [B, nh, T, hs]
        return (attn.unsqueeze(-2) @ v_bands.transpose(-2, -1)).squeeze(-2)


class TransformerBlock(nn.Module):
    """Pre-LN transformer block with conv attention and an optional stride-2 downsampling.

    ``out = skip(x)*m' + ADP(MHCA(LN1(x)))``; ``out = out + ADP(MLP(LN2(out))*m')`` with skip =
    identity (stride 1) or MaxPool1d(3, 2, padding 1) (stride 2), MLP = 1x1 conv D->4D, GELU,
    dropout, 1x1 conv 4D->D, dropout. ADP = :class:`AffineDropPath` when ``path_dropout > 0``.

    Args:
        embed_dim: channels D.
        num_heads: attention heads.
        stride: 1 (stem) or 2 (branch: halves T).
        window_size: attention window; <= 1 means global attention, > 1 local (odd).
        path_dropout: drop-path probability (0 disables the layer scale too).
        proj_dropout: dropout in the attention projection and the MLP.
        mlp_ratio: MLP hidden width / D.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        stride: int = 1,
        window_size: int = -1,
        path_dropout: float = 0.0,
        proj_dropout: float = 0.0,
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.ln1 = ChannelLayerNorm(embed_dim)
        self.ln2 = ChannelLayerNorm(embed_dim)
        if window_size > 1:
            self.attn: MaskedMHCA = LocalMaskedMHCA(embed_dim, num_heads, window_size, stride, proj_dropout)
        else:
            self.attn = MaskedMHCA(embed_dim, num_heads, stride, proj_dropout)
        if stride > 1:
            self.pool_skip: nn.Module = nn.MaxPool1d(stride + 1, stride=stride, padding=(stride + 1) // 2)
        else:
            self.pool_skip = nn.Identity()
        hidden = mlp_ratio * embed_dim
        self.mlp = nn.Sequential(
            nn.Conv1d(embed_dim, hidden, 1),
            nn.GELU(),
            nn.Dropout(proj_dropout),
            nn.Conv1d(hidden, embed_dim, 1),
            nn.Dropout(proj_dropout),
        )
        if path_dropout > 0:
            self.drop_path_attn: nn.Module = AffineDropPath(embed_dim, path_dropout)
            self.drop_path_mlp: nn.Module = AffineDropPath(embed_dim, path_dropout)
        else:
            self.drop_path_attn = nn.Identity()
            self.drop_path_mlp = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> MaskedTensor:
        out, out_mask = self.attn(self.ln1(x), mask)
        valid = out_mask.to(out.dtype)
        out = self.pool_skip(x) * valid + self.drop_path_attn(out)
        out = out + self.drop_path_mlp(self.mlp(self.ln2(out)) * valid)
        return out, out_mask
