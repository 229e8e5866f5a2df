"""ActionFormer's projection: embedding convs, a transformer stem and a strided transformer branch.

Spec ``shared/spec/ADATAD.md`` §4.1 (OpenTAD ``Conv1DTransformerProj``). Turns backbone features
[B, Cin, T] into a feature pyramid of ``arch[2] + 1`` levels [B, D, T / 2^l] with their masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tadcli.model.detector.blocks import ConvNormReLU, TransformerBlock
from tadcli.model.position import sinusoid_position_table


class Conv1DTransformerProj(nn.Module):
    """Input dropout -> ``arch[0]`` masked convs -> optional abs. PE -> ``arch[1]`` stem blocks -> ``arch[2]`` stride-2 blocks.

    Args:
        in_channels: backbone feature channels Cin.
        embed_dim: projection width D.
        arch: (embedding convs, stem transformer blocks, branch transformer blocks); default (2, 2, 5).
        num_heads: attention heads in every transformer block.
        attention_window: one window for every level, or one per level (``arch[2] + 1`` values);
            <= 1 = global attention, > 1 = local attention of that (odd) width.
        max_seq_len: training sequence length T; the position table has this length.
        kernel_size: kernel of the embedding convs (odd).
        input_dropout: channel dropout (``nn.Dropout1d``) on the input features.
        path_dropout: drop-path probability in the transformer blocks.
        proj_dropout: dropout inside the transformer blocks' projections and MLPs.
        use_abs_pe: add ActionFormer's sinusoid table / sqrt(D) after the embedding convs.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 512,
        arch: tuple[int, int, int] = (2, 2, 5),
        num_heads: int = 4,
        attention_window: int | Sequence[int] = -1,
        max_seq_len: int = 2304,
        kernel_size: int = 3,
        input_dropout: float = 0.0,
        path_dropout: float = 0.1,
        proj_dropout: float = 0.0,
        use_abs_pe: bool = False,
    ) -> None:
        super().__init__()
        assert len(arch) == 3, f"arch must have 3 entries, got {arch}"
        assert arch[0] > 0 or in_channels == embed_dim, (
            f"without embedding convs the input channels ({in_channels}) must equal embed_dim ({embed_dim})"
        )
        num_levels = arch[2] + 1
        if isinstance(attention_window, int):
            attention_window = [attention_window] * num_levels
        assert len(attention_window) == num_levels, (
            f"attention_window has {len(attention_window)} entries for {num_levels} levels"
        )
        self.attention_windows = tuple(attention_window)
        self.num_levels = num_levels
        self.max_seq_len = max_seq_len
        self.use_abs_pe = use_abs_pe

        self.input_dropout = nn.Dropout1d(input_dropout)
        self.embed = nn.ModuleList(
            [ConvNormReLU(in_channels if i == 0 else embed_dim, embed_dim, kernel_size) for i in range(arch[0])]
        )
        self.stem = nn.ModuleList(
            [
                TransformerBlock(
                    embed_dim,
                    num_heads,
                    stride=1,
                    window_size=self.attention_windows[0],
                    path_dropout=path_dropout,
                    proj_dropout=proj_dropout,
                )
                for _ in range(arch[1])
            ]
        )
        self.branch = nn.ModuleList(
            [
                TransformerBlock(
                    embed_dim,
                    num_heads,
                    stride=2,
                    window_size=self.attention_windows[1 + i],
                    path_dropout=path_dropout,
                    proj_dropout=proj_dropout,
                )
                for i in range(arch[2])
            ]
        )
        pos_table = sinusoid_position_table(max_seq_len, embed_dim).T[None] / embed_dim**0.5 if use_abs_pe else None  # [1, C, T]
        self.register_buffer("pos_embed", pos_table, persistent=False)
        self._zero_biases()

    def _zero_biases(self) -> None:
        """Weights keep PyTorch's default init; every Conv1d/Linear bias starts at 0 (spec §4.1)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def _add_position_table(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        table = self.pos_embed
        if self.training:
            assert length <= self.max_seq_len, f"training length {length} exceeds max_seq_len {self.max_seq_len}"
        elif length >= self.max_seq_len:
            table = F.interpolate(table, size=length, mode="linear", align_corners=False)
        return x + table[:, :, :length].to(x.dtype) * mask.to(x.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x: [B, Cin, T]; mask: bool [B, 1, T] -> per level features [B, D, T/2^l] and masks [B, 1, T/2^l]."""
        x = self.input_dropout(x)
        for conv in self.embed:
            x, mask = conv(x, mask)
        if self.use_abs_pe:
            x = self._add_position_table(x, mask)
        for block in self.stem:
            x, mask = block(x, mask)
        features, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            features.append(x)
            masks.append(mask)
        return features, masks
