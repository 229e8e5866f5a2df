"""Chunk-wise execution and the lean checkpointed recompute of the ViT blocks (issue 12): same loss and
gradients as plain autograd through unchunked blocks, same inference features, and the bytes the
benchmark's live-tensor tracker sees drop as claimed. Tiny shapes on CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tadcli.config.loader import load_preset
from tadcli.model import ViTArch, build_backbone
from tadcli.model.build import build_backbone_from_preset
from tadcli.profiling.tracker import LiveTensorMemory


# 3 blocks, width 32, 8-px patches on 32-px frames: 8 tubelets x 4 x 4 = 128 tokens per chunk.
TINY = ViTArch(embed_dim=32, depth=3, num_heads=2, mlp_hidden_dim=64, patch_size=8, img_size=32)
TINY_FINAL_NORM = dataclasses.replace(TINY, final_norm=True)


def live_tensor_tracker() -> LiveTensorMemory:
    """The live-tensor tracker of the benchmarks and ``tad profile-memory --measure``."""
    return LiveTensorMemory()


def frames(videos: int = 2, count: int = 48) -> torch.Tensor:
    return torch.randn(videos, 3, count, 32, 32, generator=torch.Generator().manual_seed(0))


def trained_backbone(adaptation: str, dtype: torch.dtype = torch.float32, arch: ViTArch = TINY, **options):
    torch.manual_seed(0)
    backbone = build_backbone(arch, adaptation, drop_path_rate=0.3, dtype=dtype, **options).train()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every trainable tensor random, the zero-initialised adapter projections included
        for param in backbone.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=generator, dtype=dtype) * 0.2)
    return backbone


def loss_and_gradients(backbone, clips: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(123)  # the same drop-path draws in every run
    features = backbone(clips)
    weights = torch.randn(features.shape, generator=torch.Generator().manual_seed(2), dtype=features.dtype)
    loss = (features * weights).sum()
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in backbone.named_parameters() if p.grad is not None}


def assert_same_gradients(result, reference, rtol: float) -> None:
    (loss, grads), (loss_ref, grads_ref) = result, reference
    torch.testing.assert_close(loss, loss_ref, rtol=rtol, atol=0)
    assert grads.keys() == grads_ref.keys() and grads_ref
    for name, grad in grads_ref.items():
        error = (grads[name] - grad).norm() / grad.norm()
        assert error <= rtol, f"{name}: relative error {error:.2e}"


# 2 videos x 3 chunks: groups of 4 chunks straddle the two videos
CASES = [
    ("tia", TINY, {}, 1),
    ("tia", TINY, {}, 4),
    ("plain", TINY, {}, 4),
    ("full", TINY, {}, 1),
    ("tia", TINY, {"adapter_blocks": [1, 2]}, 4),  # blocks before the first adapter run without a graph
    ("tia", TINY_FINAL_NORM, {}, 1),  # a final LayerNorm inside the recompute
    ("full", TINY_FINAL_NORM, {}, 4),
]


@pytest.mark.parametrize("adaptation, arch, options, chunk_group", CASES)
def test_chunked_recompute_gives_the_loss_and_gradients_of_plain_autograd(adaptation, arch, options, chunk_group):
    clips = frames()
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        plain = trained_backbone(adaptation, dtype, arch, chunk_group=0, checkpointing=False, **options)
        chunked = trained_backbone(adaptation, dtype, arch, chunk_group=chunk_group, checkpointing=True, **options)
        expected = loss_and_gradients(plain, clips.to(dtype))
        assert_same_gradients(loss_and_gradients(chunked, clips.to(dtype)), expected, rtol)


@pytest.mark.parametrize("adaptation", ["tia", "frozen", "side"])
def test_chunk_groups_do_not_change_inference_features(adaptation):
    reference = trained_backbone(adaptation, chunk_group=0).eval()
    chunked = trained_backbone(adaptation, chunk_group=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(chunked(frames()), reference(frames()), rtol=1e-5, atol=1e-6)


def test_drop_path_draws_one_mask_per_chunk_whatever_the_grouping():
    features = []
    for chunk_group in (0, 1, 4):
        backbone = trained_backbone("tia", chunk_group=chunk_group)  # train mode, drop path 0.3
        torch.manual_seed(7)
        with torch.no_grad():
            features.append(backbone(frames()))
    torch.testing.assert_close(features[1], features[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features[2], features[0], rtol=1e-5, atol=1e-6)


def tracked_step(backbone, clips: torch.Tensor) -> tuple[int, int]:
    """(bytes kept from forward to backward, peak bytes the backward adds on top), by the live-tensor tracker."""
    tracker = live_tensor_tracker()
    with tracker:
        features = backbone(clips)
        kept = tracker.current - features.numel() * features.element_size()
        tracker.reset_peak()
        start = tracker.current
        features.square().sum().backward()
    return kept, tracker.peak().total - start


def test_tracker_sees_one_activation_per_block_and_a_backward_without_whole_window_activations():
    clips = frames(videos=1, count=96)  # 6 chunks
    chunks, tokens, dim, mlp = 6, 128, TINY.embed_dim, TINY.mlp_hidden_dim
    block_tensor = chunks * tokens * dim * 4  # one [N, L, C] fp32 tensor
    whole_window_mlp = chunks * tokens * mlp * 4  # one block's MLP hidden activation over the window
    kept_plain, backward_plain = tracked_step(trained_backbone("tia", chunk_group=0, checkpointing=True), clips)
    kept_chunked, backward_chunked = tracked_step(trained_backbone("tia", chunk_group=1, checkpointing=True), clips)
    # forward -> backward: one tensor per block (the adapter inputs), plus the pooled output
    assert TINY.depth * block_tensor <= kept_chunked <= TINY.depth * block_tensor + chunks * 8 * dim * 4 + 1024
    assert kept_chunked <= kept_plain + 1024  # the same count as per-block checkpoints (+ drop-path masks)
    # the per-block checkpoint recomputes a whole block at once (its MLP hidden alone: 2 x whole_window_mlp);
    # the chunk-wise one holds the gradient buffer, one adapter's narrow mix values (its narrow graph only
    # while that adapter's own backward runs) and one chunk's activations
    assert backward_plain > 2 * whole_window_mlp + 4 * block_tensor
    assert backward_chunked < 2.75 * block_tensor
    assert backward_chunked < backward_plain / 3


def test_compact_checkpoints_halve_the_kept_bytes_under_autocast():
    clips = frames()
    results, kept = [], []
    for compact in (False, True):
        backbone = trained_backbone("tia", chunk_group=2, checkpointing=True, compact_checkpoints=compact)
        tracker = live_tensor_tracker()
        torch.manual_seed(123)
        with tracker, torch.autocast("cpu", dtype=torch.bfloat16):
            features = backbone(clips)
            kept.append(tracker.current - features.numel() * features.element_size())
        features.sum().backward()
        results.append({name: p.grad for name, p in backbone.named_parameters() if p.grad is not None})
    # the patch embedding (a conv) already yields bf16 tokens, so block 0's output is bf16 anyway; the adapter
    # (fp32 gamma) turns the residual stream fp32, and those outputs of blocks 1 and 2 are kept at half size
    bf16_block_tensor = 6 * 128 * TINY.embed_dim * 2
    assert kept[0] - kept[1] == 2 * bf16_block_tensor
    for name, grad in results[0].items():  # the recompute starts from bf16-rounded block outputs
        assert ((results[1][name] - grad).norm() / grad.norm()) < 0.05, name


def test_offload_is_a_no_op_for_cpu_tensors_and_compact_a_no_op_without_autocast():
    clips = frames()
    reference = loss_and_gradients(trained_backbone("tia", checkpointing=True), clips)
    for options in ({"offload_checkpoints": True}, {"compact_checkpoints": True}):
        result = loss_and_gradients(trained_backbone("tia", checkpointing=True, **options), clips)
        assert torch.equal(result[0], reference[0])
        assert all(torch.equal(result[1][name], grad) for name, grad in reference[1].items()), options


def test_preset_options_reach_the_backbone_and_are_validated():
    preset = load_preset("tiny", ["adaptation.chunk_group=3", "adaptation.offload_checkpoints=true"])
    backbone = build_backbone_from_preset(preset, device="meta")
    assert backbone.chunk_group == 3 and backbone.activation_store.offload and not backbone.activation_store.compact
    assert load_preset("tiny").adaptation.chunk_group == 1  # one chunk at a time: the least memory, no slower on the CPU
    with pytest.raises(Exception, match="need chunk_group > 0"):
        load_preset("tiny", ["adaptation.chunk_group=0", "adaptation.compact_checkpoints=true"])
