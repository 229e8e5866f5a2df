"""The VideoMAE backbone with adapters: shapes, parameter counts, trainability, temporal mixing,
checkpointing and the position table (spec §1-§3). Tiny shapes on CPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tadcli.model import ARCHS, ViTArch, build_backbone, normalize_frames
from tadcli.model.adapters import TemporalAdapter
from tadcli.model.position import sinusoid_position_table

# 3 blocks, width 32, 8-px patches on 32-px frames: 8 tubelets x 4 x 4 = 128 tokens per chunk.
TINY = ViTArch(embed_dim=32, depth=3, num_heads=2, mlp_hidden_dim=64, patch_size=8, img_size=32)


def tiny_frames(videos: int = 2, frames: int = 48, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(videos, 3, frames, size, size, generator=generator)


def randomize_adapters(backbone) -> None:
    """Give the up projections non-zero weights so that the adapters change the features."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.requires_grad:
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.2)


def autograd_leaves(output: torch.Tensor) -> set[int]:
    """ids of the leaf tensors the autograd graph of ``output`` accumulates gradients into."""
    leaves, stack, seen = set(), [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            leaves.add(id(node.variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


# ViT params of spec §1.1 (patch embed + blocks + fc_norm) and adapter totals of §2.1 (all blocks).
SPEC_COUNTS = {
    "S": (21.9e6, 1.0e6),
    "B": (86.2e6, 4.0e6),
    "L": (303.9e6, 14.2e6),
    "H": (631.6e6, 29.6e6),
    "g": (1011.6e6, 44.7e6),
}
SPEC_ADAPTER = {"S": 83_905, "B": 333_697, "L": 592_385, "H": 924_801, "g": 1_118_657}


@pytest.mark.parametrize("name", list(ARCHS))
def test_parameter_counts_match_the_spec_on_the_meta_device(name):
    backbone = build_backbone(name, "tia", device="meta")
    assert all(p.is_meta for p in backbone.parameters())
    adapter = sum(p.numel() for _, p in backbone.param_groups()["adapter"])
    vit = sum(p.numel() for p in backbone.parameters()) - adapter
    # our module has no fc_norm (unused by AdaTAD), the spec's count includes its 2*C parameters
    vit_with_fc_norm = vit + 2 * ARCHS[name].embed_dim
    spec_vit, spec_adapters = SPEC_COUNTS[name]
    assert abs(vit_with_fc_norm - spec_vit) / spec_vit < 0.005
    assert sum(p.numel() for p in backbone.blocks[0].adapter.parameters()) == SPEC_ADAPTER[name]
    assert adapter == ARCHS[name].depth * SPEC_ADAPTER[name]
    assert abs(adapter - spec_adapters) < 0.05e6  # the spec's totals are rounded to 0.1 M


def test_forward_contract_and_videos_stay_independent():
    backbone = build_backbone(TINY, "tia").eval()
    randomize_adapters(backbone)
    frames = tiny_frames(videos=2, frames=48)
    with torch.no_grad():
        features = backbone(frames)
        alone = backbone(frames[1:])
    assert features.shape == (2, 32, 24) and features.dtype == torch.float32
    # chunks are video-major: video 1's features do not depend on video 0 sharing the batch
    torch.testing.assert_close(features[1:], alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 16"):
        backbone(tiny_frames(frames=40))


def test_features_are_tubelet_means_of_the_token_map():
    backbone = build_backbone(TINY, "frozen")
    frames = tiny_frames(videos=1, frames=32)
    clips = torch.stack([frames[0, :, :16], frames[0, :, 16:]])  # chunk 0 and chunk 1 of the video
    with torch.no_grad():
        tokens, (t, h, w) = backbone.forward_tokens(clips, temporal_size=16)
        expected = tokens.reshape(2, t, h * w, 32).mean(2).reshape(16, 32).T
        features = backbone(frames)[0]
    torch.testing.assert_close(features, expected)


def test_normalize_frames_uses_the_spec_mean_and_std():
    frames = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1, 1).expand(1, 3, 16, 2, 2)
    normalized = normalize_frames(frames)
    expected = torch.tensor([(0 - 123.675) / 58.395, (128 - 116.28) / 57.12, (255 - 103.53) / 57.375])
    torch.testing.assert_close(normalized[0, :, 0, 0, 0], expected)
    assert normalized.dtype == torch.float32


def test_adapters_are_an_exact_identity_at_initialisation():
    frozen = build_backbone(TINY, "frozen").eval()
    for adaptation in ("tia", "plain", "side"):
        adapted = build_backbone(TINY, adaptation, adapter_blocks="all" if adaptation != "side" else [0, 2]).eval()
        adapted.load_state_dict(frozen.state_dict(), strict=False)
        with torch.no_grad():
            assert torch.equal(adapted(tiny_frames()), frozen(tiny_frames())), adaptation


def test_tia_gradients_reach_only_the_adapters():
    backbone = build_backbone(TINY, "tia", adapter_blocks=[1, 2], drop_path_rate=0.1).train()
    randomize_adapters(backbone)
    backbone(tiny_frames()).square().mean().backward()
    groups = backbone.param_groups()
    assert groups["backbone"] == []
    assert {name.split(".adapter.")[0] for name, _ in groups["adapter"]} == {"blocks.1", "blocks.2"}
    for name, param in backbone.named_parameters():
        assert (param.grad is not None) == name.startswith(("blocks.1.adapter.", "blocks.2.adapter.")), name
    assert all(param.grad.abs().sum() > 0 for _, param in groups["adapter"])


@pytest.mark.parametrize("adaptation", ["side", "frozen"])
def test_no_backbone_parameter_enters_the_graph(adaptation):
    backbone = build_backbone(TINY, adaptation, drop_path_rate=0.1).train()
    frames = tiny_frames().requires_grad_()  # even a differentiable input does not pull the ViT into the graph
    features = backbone(frames)
    vit_params = {id(p) for name, p in backbone.named_parameters() if not name.startswith("ladders.")}
    if adaptation == "frozen":
        assert not features.requires_grad
        assert backbone.param_groups() == {"adapter": [], "backbone": []}
        return
    leaves = autograd_leaves(features)
    assert leaves == {id(p) for p in backbone.ladders.parameters()}
    assert not leaves & vit_params
    assert {id(p) for _, p in backbone.param_groups()["adapter"]} == {id(p) for p in backbone.ladders.parameters()}


def test_frozen_and_side_vit_ignore_train_mode():
    for adaptation in ("frozen", "side"):
        backbone = build_backbone(TINY, adaptation, drop_path_rate=0.5).train()
        assert backbone(tiny_frames()).equal(backbone(tiny_frames())), adaptation
        assert adaptation == "frozen" or backbone.ladders.training


def test_drop_path_stays_active_in_frozen_blocks_of_tia():
    backbone = build_backbone(TINY, "tia", drop_path_rate=0.5).train()
    with torch.no_grad():
        assert not backbone(tiny_frames()).equal(backbone(tiny_frames()))


def test_full_trains_every_parameter():
    backbone = build_backbone(TINY, "full")
    groups = backbone.param_groups()
    assert groups["adapter"] == [] and len(groups["backbone"]) == len(list(backbone.parameters()))


def chunk_sensitivity(adaptation: str) -> torch.Tensor:
    """How much the features of chunk 1 change when only the frames of chunk 0 change."""
    backbone = build_backbone(TINY, adaptation).eval()
    randomize_adapters(backbone)
    frames = tiny_frames(videos=1, frames=32)
    changed = frames.clone()
    changed[:, :, :16] = tiny_frames(videos=1, frames=16, seed=5)
    with torch.no_grad():
        return (backbone(frames)[..., 8:] - backbone(changed)[..., 8:]).abs().max()


def test_temporal_adapter_carries_information_across_chunks():
    assert chunk_sensitivity("tia") > 1e-3
    assert chunk_sensitivity("plain") == 0
    assert chunk_sensitivity("frozen") == 0


def test_temporal_conv_runs_along_the_whole_video_timeline():
    adapter = TemporalAdapter(dim=4, hidden_dim=2, tubelets_per_chunk=8)
    with torch.no_grad():
        adapter.up_proj.weight.normal_()
    x = torch.randn(3, 8 * 5, 4)  # 3 chunks of one video, 8 tubelets x 5 locations
    reference = adapter(x, temporal_size=24)
    x_changed = x.clone()
    x_changed[0, 7 * 5 + 2] += 1.0  # last tubelet of chunk 0, location 2
    diff = (adapter(x_changed, temporal_size=24) - reference).abs().sum(-1)  # [chunks, tokens]
    changed = {(int(c), int(n)) for c, n in (diff > 1e-6).nonzero()}
    # kernel 3: the token itself, its predecessor in chunk 0 and the first tubelet of chunk 1 (same location)
    assert changed == {(0, 7 * 5 + 2), (0, 6 * 5 + 2), (1, 0 * 5 + 2)}


def saved_activation_bytes(adaptation: str, checkpointing: bool) -> int:
    """Bytes of the tensors autograd keeps for backward during one forward."""
    backbone = build_backbone(TINY, adaptation, checkpointing=checkpointing, chunk_group=0).train()
    saved = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        backbone(tiny_frames())
    return sum(saved)


@pytest.mark.parametrize("adaptation", ["tia", "full", "side"])
def test_checkpointing_gives_the_same_loss_and_gradients(adaptation):
    results = []
    for enabled in (False, True):
        torch.manual_seed(0)
        backbone = build_backbone(TINY, adaptation, drop_path_rate=0.3, checkpointing=enabled, chunk_group=0).train()
        randomize_adapters(backbone)
        torch.manual_seed(123)  # same drop-path masks in both runs
        loss = backbone(tiny_frames()).square().mean()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in backbone.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (loss_off, grads_off), (loss_on, grads_on) = results
    assert saved_activation_bytes(adaptation, True) < saved_activation_bytes(adaptation, False) / 2
    torch.testing.assert_close(loss_on, loss_off, rtol=1e-6, atol=0)
    assert grads_on.keys() == grads_off.keys() and grads_off
    for name in grads_off:
        torch.testing.assert_close(grads_on[name], grads_off[name], rtol=1e-4, atol=1e-7, msg=name)


def test_position_table_is_the_videomae_sinusoid():
    table = sinusoid_position_table(50, 6).double()
    n, j = 37, 3
    angle = n / 10000 ** (2 * (j // 2) / 6)
    assert table[n, j].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert table[n, 2].item() == pytest.approx(math.sin(n / 10000 ** (2 / 6)), abs=1e-6)


def test_160_px_input_uses_the_bicubically_resized_224_px_table():
    arch = ViTArch(embed_dim=16, depth=1, num_heads=2, mlp_hidden_dim=32)  # patch 16, table for 224 px (14 x 14)
    backbone = build_backbone(arch, "frozen")
    table = sinusoid_position_table(8 * 14 * 14, 16)[None]  # [1, N, C]
    slices = table.reshape(8, 14, 14, 16).permute(0, 3, 1, 2)
    expected = F.interpolate(slices, size=(10, 10), mode="bicubic", align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(1, 800, 16)
    torch.testing.assert_close(backbone.position_embedding(10, 10), expected)
    clip = torch.randn(1, 3, 16, 160, 160)
    with torch.no_grad():
        tokens, grid = backbone.embed(clip)
        patches = backbone.patch_embed.proj(clip).flatten(2).transpose(1, 2)
    assert grid == (8, 10, 10)
    torch.testing.assert_close(tokens, patches + expected)
    assert torch.equal(backbone.position_embedding(14, 14), table)


def test_adapter_block_choices():
    assert build_backbone(TINY, "side").adapter_blocks == (1, 2)  # default: the last half
    assert build_backbone(TINY, "tia").adapter_blocks == (0, 1, 2)
    assert [b.adapter is not None for b in build_backbone(TINY, "plain", adapter_blocks=[2]).blocks] == [
        False,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="out of range"):
        build_backbone(TINY, "tia", adapter_blocks=[3])
    with pytest.raises(ValueError, match="unknown adaptation"):
        build_backbone(TINY, "lora")
