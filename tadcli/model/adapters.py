"""Adapters that tune a frozen ViT for temporal action detection (spec §2).

- :class:`TemporalAdapter` (TIA): a bottleneck with a depthwise temporal convolution that runs along the
  whole video window, across 16-frame chunks; placed at the end of a ViT block, with its own residual.
- :class:`PlainAdapter`: the same bottleneck without the temporal convolution.
- :class:`LadderAdapters`: the side variant (AdaTAD†): TIA branches outside the ViT on detached block
  outputs, summed in parallel onto the last one.

Tokens arrive as ``[B*K, t*h*w, C]``: K chunks per video, video-major (all chunks of video 0 first),
t tubelets per chunk, (t, y, x) raster order inside a chunk. ``temporal_size`` = K*t, the tubelets of
one video; every video of the batch has the same number of chunks.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint


def _init_projections(down_proj: nn.Linear, up_proj: nn.Linear) -> None:
    """Down projection trunc-normal(0.02), up projection all zero: the adapter starts as an identity."""
    trunc_normal_(down_proj.weight, std=0.02)
    nn.init.zeros_(down_proj.bias)
    nn.init.zeros_(up_proj.weight)
    nn.init.zeros_(up_proj.bias)


class _Bottleneck(nn.Module):
    """What both in-block adapters share: ``x + gamma * up_proj(mix(down_proj(x)))``; each subclass defines
    ``down_proj``, ``up_proj``, ``gamma`` and its ``mix(h, temporal_size)``."""

    def output(self, x: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """``x + gamma * up_proj(mixed)`` for any subset of tokens, ``mixed`` from :meth:`mix` of ``down_proj(x)``."""
        return x + self.gamma * self.up_proj(mixed)

    def forward(self, x: torch.Tensor, temporal_size: int) -> torch.Tensor:
        """``[B*K, t*h*w, C]`` -> same; ``temporal_size`` = K*t tubelets per video."""
        return self.output(x, self.mix(self.down_proj(x), temporal_size))


class TemporalAdapter(_Bottleneck):
    """Temporal-informative adapter (spec §2.1).

    ``z = GELU(down_proj(x)); z = z + conv(dwconv(z)) along time; out = x + gamma * up_proj(z)``.

    Args:
        dim: token width C.
        hidden_dim: bottleneck width C' (``int(C * ratio)``).
        tubelets_per_chunk: temporal tokens per chunk t (8).
        kernel_size: odd kernel of the depthwise temporal convolution.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        tubelets_per_chunk: int,
        kernel_size: int = 3,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.tubelets_per_chunk = tubelets_per_chunk
        self.down_proj = nn.Linear(dim, hidden_dim, device=device, dtype=dtype)
        self.dwconv = nn.Conv1d(
            hidden_dim,
            hidden_dim,
            kernel_size,
            padding=kernel_size // 2,
            groups=hidden_dim,
            device=device,
            dtype=dtype,
        )
        self.conv = nn.Conv1d(hidden_dim, hidden_dim, 1, device=device, dtype=dtype)
        self.up_proj = nn.Linear(hidden_dim, dim, device=device, dtype=dtype)
        self.gamma = nn.Parameter(torch.ones(1, device=device, dtype=dtype))
        _init_projections(self.down_proj, self.up_proj)
        nn.init.normal_(self.dwconv.weight, std=math.sqrt(2.0 / kernel_size))
        nn.init.zeros_(self.dwconv.bias)
        nn.init.normal_(self.conv.weight, std=math.sqrt(2.0 / hidden_dim))
        nn.init.zeros_(self.conv.bias)

    def mix(self, h: torch.Tensor, temporal_size: int) -> torch.Tensor:
        """The narrow middle of the adapter: ``down_proj`` outputs ``[B*K, t*h*w, C']`` -> ``z + conv(dwconv(z))``
        with ``z = GELU(h)``, the convolutions along each video's K*t tubelets."""
        chunks, tokens, hidden = h.shape
        t = self.tubelets_per_chunk
        if (chunks * t) % temporal_size:
            raise ValueError(f"{chunks} chunks of {t} tubelets do not split into videos of {temporal_size}")
        videos, locations = chunks * t // temporal_size, tokens // t
        z = F.gelu(h)
        # [B*K, t*h*w, C'] -> [B, K*t, h*w, C'] -> [B*h*w, C', K*t]: one sequence per location over the video
        series = z.reshape(videos, temporal_size, locations, hidden).permute(0, 2, 3, 1)
        series = series.reshape(videos * locations, hidden, temporal_size)
        mixed = self.conv(self.dwconv(series))
        # [B*h*w, C', K*t] -> [B, h*w, C', K*t] -> [B, K*t, h*w, C'] -> [B*K, t*h*w, C']
        mixed = mixed.reshape(videos, locations, hidden, temporal_size).permute(0, 3, 1, 2)
        return z + mixed.reshape(chunks, tokens, hidden)

    def mix_parameters(self) -> list[nn.Parameter]:
        """The parameters of :meth:`mix` (the two temporal convolutions)."""
        return [*self.dwconv.parameters(), *self.conv.parameters()]

    def branch(self, x: torch.Tensor, temporal_size: int) -> torch.Tensor:
        """The adapter's output without the outer residual: ``[B*K, t*h*w, C]`` -> same."""
        return self.gamma * self.up_proj(self.mix(self.down_proj(x), temporal_size))


class PlainAdapter(_Bottleneck):
    """Bottleneck adapter without temporal mixing (spec §2.4): ``x + gamma * up_proj(GELU(down_proj(x)))``.

    Args:
        dim: token width C.
        hidden_dim: bottleneck width C'.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.down_proj = nn.Linear(dim, hidden_dim, device=device, dtype=dtype)
        self.up_proj = nn.Linear(hidden_dim, dim, device=device, dtype=dtype)
        self.gamma = nn.Parameter(torch.ones(1, device=device, dtype=dtype))
        _init_projections(self.down_proj, self.up_proj)

    def mix(self, h: torch.Tensor, temporal_size: int) -> torch.Tensor:
        """``GELU(h)`` of the ``down_proj`` outputs (same call as :meth:`TemporalAdapter.mix`)."""
        return F.gelu(h)

    def mix_parameters(self) -> list[nn.Parameter]:
        """:meth:`mix` has no parameters."""
        return []


class LadderAdapters(nn.Module):
    """Side adapters (spec §2.5): ``out = f[-1] + sum_i a_i(f[i])`` over the detached outputs f of the
    chosen ViT blocks, each ``a_i`` a :meth:`TemporalAdapter.branch` (no outer residual).

    Args:
        num_adapters: number of tapped blocks D.
        dim: token width C.
        hidden_dim: bottleneck width C' (1/8 of C for the giant side configs).
        tubelets_per_chunk: temporal tokens per chunk t.
        kernel_size: odd kernel of the temporal convolution.
    """

    def __init__(
        self,
        num_adapters: int,
        dim: int,
        hidden_dim: int,
        tubelets_per_chunk: int,
        kernel_size: int = 3,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(
            TemporalAdapter(dim, hidden_dim, tubelets_per_chunk, kernel_size, device=device, dtype=dtype)
            for _ in range(num_adapters)
        )
        self.grad_checkpointing = False

    def forward(self, block_outputs: list[torch.Tensor], temporal_size: int) -> torch.Tensor:
        """D tensors ``[B*K, t*h*w, C]`` (outputs of the tapped blocks, in block order) -> ``[B*K, t*h*w, C]``."""
        if len(block_outputs) != len(self.adapters):
            raise ValueError(f"got {len(block_outputs)} block outputs for {len(self.adapters)} ladder adapters")
        out = block_outputs[-1]
        for adapter, features in zip(self.adapters, block_outputs):
            if self.grad_checkpointing and torch.is_grad_enabled():
                out = out + checkpoint(adapter.branch, features, temporal_size, use_reentrant=False)
            else:
                out = out + adapter.branch(features, temporal_size)
        return out
