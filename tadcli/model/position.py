"""The fixed sinusoid position table shared by the VideoMAE ViT (tokens) and ActionFormer (time steps)."""

from __future__ import annotations

import torch


def sinusoid_position_table(length: int, channels: int, device: torch.device | None = None) -> torch.Tensor:
    """``[length, channels]`` float32, computed in float64.

    ``angle[n, j] = n * 10000 ** (-2 * (j // 2) / channels)``; even channels take the sine, odd the cosine
    (VideoMAE's ``get_sinusoid_encoding_table``, ActionFormer's ``get_sinusoid_encoding``).
    """
    position = torch.arange(length, dtype=torch.float64, device=device)[:, None]
    exponent = 2 * torch.div(torch.arange(channels, device=device), 2, rounding_mode="floor").to(torch.float64) / channels
    angle = position / torch.pow(10000.0, exponent)[None, :]  # [T, C]
    table = torch.where(torch.arange(channels, device=device) % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32)
