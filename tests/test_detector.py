"""The ActionFormer detector (spec §4): shapes and points, masking, local attention, label assignment
and losses, each checked against hand-computed values or an independent dense computation."""

from __future__ import annotations

import math

import pytest
import torch

from tadcli.model.detector.actionformer import build_actionformer
from tadcli.model.detector.assignment import assign_targets
from tadcli.model.detector.blocks import LocalMaskedMHCA, MaskedMHCA
from tadcli.model.detector.decode import decode_segments
from tadcli.model.detector.losses import ActionFormerLoss, LossNormalizer, diou_loss, sigmoid_focal_loss
from tadcli.model.detector.points import PointGenerator


def tiny_detector(attention_window: int = -1, max_seq_len: int = 64, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_actionformer(
        in_channels=12,
        num_classes=3,
        max_seq_len=max_seq_len,
        embed_dim=16,
        num_heads=2,
        head_channels=16,
        attention_window=attention_window,
        **kwargs,
    )


# ---------------------------------------------------------------- shapes and points


def test_default_arch_gives_six_levels_of_points_with_strides_and_ranges():
    detector = tiny_detector().eval()
    features = torch.randn(2, 12, 64)
    out = detector(features, torch.ones(2, 64, dtype=torch.bool))
    num_points = 64 + 32 + 16 + 8 + 4 + 2
    assert out.cls_logits.shape == (2, num_points, 3)
    assert out.offsets.shape == (2, num_points, 2)
    assert out.masks.shape == (2, num_points) and out.masks.all()
    assert out.points.shape == (num_points, 4)
    assert (out.offsets >= 0).all()
    # level 1 starts after the 64 points of level 0: positions 0, 2, 4, ... with range (4, 8), stride 2
    assert out.points[64].tolist() == [0.0, 4.0, 8.0, 2.0]
    assert out.points[65].tolist() == [2.0, 4.0, 8.0, 2.0]
    assert out.points[-1].tolist() == [32.0, 64.0, 10000.0, 32.0]
    # the classifier starts at the 0.01 prior: every score close to 0.01
    assert torch.sigmoid(out.cls_logits).mean().item() == pytest.approx(0.01, rel=0.3)


def test_shorter_input_is_padded_to_max_seq_len_and_marked_invalid():
    detector = tiny_detector().eval()
    out = detector(torch.randn(1, 12, 40))
    level0_mask = out.masks[0, :64]
    assert level0_mask[:40].all() and not level0_mask[40:].any()


def test_longer_input_at_eval_is_padded_to_a_multiple_of_the_largest_stride():
    detector = tiny_detector().eval()  # max_seq_len 64, strides up to 32
    out = detector(torch.randn(1, 12, 100))
    assert out.points.shape[0] == 128 + 64 + 32 + 16 + 8 + 4
    assert out.masks[0, :100].all() and not out.masks[0, 100:128].any()


def test_initialisation_follows_opentad():
    detector = tiny_detector()
    projection, head = detector.projection, detector.head
    biases = [m.bias for m in projection.modules() if isinstance(m, torch.nn.Conv1d) and m.bias is not None]
    assert biases and all(not b.any() for b in biases)
    assert head.cls_head.bias.tolist() == pytest.approx([-math.log(99)] * 3)
    assert head.reg_head.bias.abs().sum() > 0  # PyTorch default init, not zeroed
    assert [s.scale.item() for s in head.scale] == [1.0] * 6
    assert torch.all(projection.stem[0].drop_path_attn.scale == 1e-4)
    assert projection.stem[0].drop_path_attn.scale.shape == (1, 16, 1)
    assert projection.embed[0].norm.eps == 1e-6 and head.cls_convs[0].norm.eps == 1e-6
    assert detector.neck.fpn_norms[0].eps == 1e-6
    assert projection.stem[0].ln1.eps == 1e-5 and projection.stem[0].attn.query_norm.eps == 1e-5
    assert projection.embed[0].conv.bias is None and head.cls_convs[0].conv.bias is None
    branch_attn = projection.branch[0].attn
    assert branch_attn.query_conv.conv.stride == (2,) and branch_attn.query_conv.conv.kernel_size == (3,)
    assert branch_attn.query_conv.conv.groups == 16 and branch_attn.query_conv.conv.bias is None


def test_absolute_position_table_matches_actionformer_and_stretches_at_eval():
    detector = tiny_detector(use_abs_pe=True)
    table = detector.projection.pos_embed  # [1, D, T] / sqrt(D)
    position, channel = 5, 7  # odd channel -> cos
    angle = position / 10000 ** (2 * (channel // 2) / 16)
    assert table[0, channel, position].item() == pytest.approx(math.cos(angle) / 4, abs=1e-6)
    assert table[0, 6, position].item() == pytest.approx(math.sin(angle) / 4, abs=1e-6)
    with pytest.raises(AssertionError, match="exceeds max_seq_len"):
        detector.train()(torch.randn(1, 12, 128))
    assert detector.eval()(torch.randn(1, 12, 128)).masks.all()


def test_eight_level_charades_arch_and_epic_ranges_are_accepted():
    detector = tiny_detector(max_seq_len=128, arch=(2, 2, 7), regression_ranges=[(0, 4)] * 7 + [(4, 10000)])
    assert len(detector.point_generator.strides) == 8 and detector.point_generator.strides[-1] == 128
    with pytest.raises(AssertionError, match="explicit regression_ranges"):
        tiny_detector(max_seq_len=128, arch=(2, 2, 7))


def test_max_seq_len_must_fit_the_strides_and_attention_windows():
    with pytest.raises(AssertionError, match="divisible by 256"):
        tiny_detector(attention_window=9, max_seq_len=64)
    tiny_detector(attention_window=9, max_seq_len=256)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("attention_window", [-1, 3])
def test_padded_features_do_not_change_outputs_at_valid_points(attention_window):
    """Features at padded steps are not zeroed (as in OpenTAD, the backbone keeps them), so only the first
    embedding conv's one-step reach past the last valid step sees them; anything beyond never matters."""
    max_seq_len = 64 if attention_window <= 1 else 128
    detector = tiny_detector(attention_window, max_seq_len=max_seq_len).eval()
    valid = 37
    mask = torch.zeros(1, max_seq_len, dtype=torch.bool)
    mask[:, :valid] = True
    features = torch.randn(1, 12, max_seq_len)
    changed = features.clone()
    changed[..., valid + 1 :] = torch.randn(1, 12, max_seq_len - valid - 1) * 100
    out, out_changed = detector(features, mask), detector(changed, mask)
    assert torch.equal(out.masks, out_changed.masks)
    valid_points = out.masks[0]
    assert torch.allclose(out.cls_logits[0][valid_points], out_changed.cls_logits[0][valid_points], atol=1e-5)
    assert torch.allclose(out.offsets[0][valid_points], out_changed.offsets[0][valid_points], atol=1e-5)
    # and the projection itself outputs exact zeros at padded steps of every level
    levels, masks = detector.projection(features, mask[:, None, :])
    for level, level_mask in zip(levels, masks):
        assert (level * ~level_mask).abs().max() == 0


def test_strided_levels_keep_every_second_mask_step():
    detector = tiny_detector().eval()
    mask = torch.zeros(1, 64, dtype=torch.bool)
    mask[:, :37] = True
    out = detector(torch.randn(1, 12, 64), mask)
    level1 = out.masks[0, 64:96]
    assert level1.tolist() == mask[0, ::2].tolist()  # 19 valid steps: 0, 2, ..., 36


# ---------------------------------------------------------------- local attention


def dense_band_attention(q, k, v, kv_mask, w, scale):
    """Independent reference: [T, T] scores, band |i - j| <= w, padded keys -1e4, padded query rows zeroed."""
    length = q.shape[2]
    scores = (q * scale) @ k.transpose(-2, -1)
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    scores = scores - 1e4 * (~kv_mask[:, :, None, :]).float()
    scores = scores.masked_fill((i - j).abs() > w, float("-inf"))
    attn = torch.softmax(scores, dim=-1) * kv_mask[:, :, :, None].float()
    return attn @ v


@pytest.mark.parametrize("window_size", [3, 9])
def test_local_attention_equals_dense_attention_with_a_band_mask(window_size):
    torch.manual_seed(1)
    attention = LocalMaskedMHCA(16, 2, window_size)
    q, k, v = (torch.randn(2, 2, 24, 8) for _ in range(3))
    kv_mask = torch.ones(2, 1, 24, dtype=torch.bool)
    kv_mask[1, :, 15:] = False
    banded = attention.attend(q, k, v, kv_mask)
    dense = dense_band_attention(q, k, v, kv_mask, window_size // 2, attention.scale)
    assert torch.allclose(banded, dense, atol=1e-6)


def test_local_attention_with_a_window_covering_the_sequence_equals_global_attention():
    torch.manual_seed(2)
    local, global_ = LocalMaskedMHCA(16, 2, window_size=65, stride=2), MaskedMHCA(16, 2, stride=2)
    global_.load_state_dict(local.state_dict())
    x = torch.randn(2, 16, 32)
    mask = torch.ones(2, 1, 32, dtype=torch.bool)
    mask[0, :, 20:] = False
    out_local, mask_local = local(x * mask, mask)
    out_global, mask_global = global_(x * mask, mask)
    assert torch.equal(mask_local, mask_global) and mask_local.shape == (2, 1, 16)
    assert torch.allclose(out_local, out_global, atol=1e-5)


# ---------------------------------------------------------------- label assignment

# two levels: stride 1 regresses distances up to 4, stride 2 from 4 up
POINTS = PointGenerator([1, 2], [(0.0, 4.0), (4.0, 10000.0)])([20, 10])


def positives(cls_targets):
    """(level, position) of every positive point."""
    rows = torch.nonzero(cls_targets.sum(1) > 0).squeeze(1)
    return [(0 if r < 20 else 1, int(POINTS[r, 0])) for r in rows]


def test_center_sampling_is_strict_and_clipped_to_the_action():
    # action (4, 8): center 6, level-0 radius 1.5 -> (4.5, 7.5) strictly: points 5, 6, 7
    # level 1: radius 3 -> (3, 9) clipped to (4, 8) -> point 6 only, whose distance 2 < 4 is out of range
    cls, reg = assign_targets(POINTS, torch.tensor([[4.0, 8.0]]), torch.tensor([1]), num_classes=3)
    assert positives(cls) == [(0, 5), (0, 6), (0, 7)]
    assert cls[5].tolist() == [0.0, 1.0, 0.0]
    assert reg[5].tolist() == [1.0, 3.0]  # (5 - 4, 8 - 5) / stride 1
    # a point exactly on the center-region edge (4.5 -> point at 4.5 does not exist; use (3, 6): edge 3.0)
    cls, _ = assign_targets(POINTS, torch.tensor([[3.0, 6.0]]), torch.tensor([0]), num_classes=3)
    assert positives(cls) == [(0, 4), (0, 5)]  # center 4.5, region (3.0, 6.0): 3 is on the edge -> excluded


def test_regression_ranges_are_inclusive_at_both_ends():
    # action (0, 8), center 4: level 0 point 4 has max distance 4 = hi of (0, 4) -> positive;
    # level 1 point 4 has max distance 4 = lo of (4, 10000) -> positive too, target / stride 2
    cls, reg = assign_targets(POINTS, torch.tensor([[0.0, 8.0]]), torch.tensor([2]), num_classes=3)
    assert (0, 4) in positives(cls) and (1, 4) in positives(cls)
    assert reg[20 + 2].tolist() == [2.0, 2.0]
    assert (0, 3) not in positives(cls)  # distance 5 > 4


def test_shortest_action_wins_and_near_ties_give_multi_hot_targets():
    segments = torch.tensor([[2.0, 10.0], [4.0, 8.0], [4.0, 8.0005], [4.0, 8.01]])
    labels = torch.tensor([0, 1, 2, 0])
    cls, reg = assign_targets(POINTS, segments, labels, num_classes=3)
    # point 6 lies in all four; the shortest is (4, 8); (4, 8.0005) is within 1e-3 -> classes 1 and 2;
    # (4, 8.01) is 0.01 longer -> its class 0 is not added, nor is the long (2, 10)
    assert cls[6].tolist() == [0.0, 1.0, 1.0]
    assert reg[6].tolist() == [2.0, 2.0]  # from the argmin (4, 8)


def test_identical_actions_add_each_class_once_and_regress_to_the_first():
    segments = torch.tensor([[4.0, 8.0], [4.0, 8.0], [4.0, 8.0], [4.0, 8.0002]])
    cls, reg = assign_targets(POINTS, segments, torch.tensor([1, 1, 2, 0]), num_classes=3)
    assert cls[6].tolist() == [1.0, 1.0, 1.0]  # class 1 twice still clamps to 1; 8.0002 is within 1e-3
    assert reg[7].tolist() == [3.0, 1.0]  # from (4, 8), the first of the shortest, not (4, 8.0002)


def test_video_without_actions_is_all_background():
    cls, reg = assign_targets(POINTS, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), num_classes=3)
    assert cls.shape == (30, 3) and not cls.any() and not reg.any()


def test_bad_ground_truth_is_refused_with_the_video_index():
    detector = tiny_detector().eval()
    out = detector(torch.randn(2, 12, 64))
    good = (torch.tensor([[1.0, 5.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="video 1 .*label 3 outside"):
        detector.compute_loss(out, [good[0], torch.tensor([[2.0, 9.0]])], [good[1], torch.tensor([3])])
    with pytest.raises(ValueError, match=r"video 0 .*\(9.0, 2.0\) ends before"):
        detector.compute_loss(out, [torch.tensor([[9.0, 2.0]]), good[0]], [good[1], good[1]])


# ---------------------------------------------------------------- losses


def test_sigmoid_focal_loss_matches_the_formula():
    logits = torch.tensor([2.0, -1.0, 0.5])
    targets = torch.tensor([1.0, 0.0, 0.3])
    expected = 0.0
    for x, y in zip(logits.tolist(), targets.tolist()):
        p = 1 / (1 + math.exp(-x))
        bce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
        p_t = p * y + (1 - p) * (1 - y)
        alpha_t = 0.25 * y + 0.75 * (1 - y)
        expected += alpha_t * (1 - p_t) ** 2 * bce
    assert sigmoid_focal_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_diou_loss_matches_hand_computation():
    # pred (0, 4), target (2, 6): IoU 2/6, centers 2 and 4, enclosing 6 -> DIoU 1/3 - 4/36
    loss = diou_loss(torch.tensor([[0.0, 4.0]]), torch.tensor([[2.0, 6.0]]))
    assert loss.item() == pytest.approx(1 - (1 / 3 - 4 / 36), rel=1e-6)
    # identical segments: 0; disjoint: IoU 0 and a center penalty
    assert diou_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 3.0]])).item() == pytest.approx(0.0, abs=1e-6)
    disjoint = diou_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 4.0]])).item()
    assert disjoint == pytest.approx(1 + 9 / 16, rel=1e-6)


def test_normalizer_ema_is_updated_before_use_in_training_and_unused_in_eval():
    normalizer = LossNormalizer(100.0, 0.9)
    assert normalizer(torch.tensor(10)).item() == pytest.approx(91.0)
    assert normalizer(torch.tensor(0)).item() == pytest.approx(0.9 * 91.0 + 0.1 * 1)
    normalizer.eval()
    assert normalizer(torch.tensor(7)).item() == 7.0
    assert normalizer(torch.tensor(0)).item() == 1.0
    assert normalizer.value.item() == pytest.approx(0.9 * 91.0 + 0.1)
    assert "value" in normalizer.state_dict()


def test_loss_combines_focal_with_label_smoothing_and_weighted_diou():
    points = PointGenerator([1], [(0.0, 100.0)])([4])
    logits = torch.tensor([[[1.0, -2.0], [0.0, 0.0], [-1.0, 3.0], [5.0, 5.0]]])
    offsets = torch.tensor([[[1.0, 1.0], [2.0, 1.0], [0.5, 0.5], [9.0, 9.0]]])
    masks = torch.tensor([[True, True, True, False]])
    cls_targets = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    reg_targets = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [1.0, 1.0], [0.0, 0.0]]])
    loss = ActionFormerLoss(2, regression_weight=2.0, label_smoothing=0.1, normalizer_init=100.0).eval()
    out = loss(logits, offsets, masks, points, cls_targets, reg_targets)
    # 2 positives (points 1 and 2; point 3 is padding), eval normaliser = 2
    smoothed = cls_targets[0, :3] * 0.9 + 0.1 / 3
    expected_cls = sigmoid_focal_loss(logits[0, :3], smoothed).item() / 2
    pred = decode_segments(points, offsets[0])[1:3]  # (-1, 2), (1.5, 2.5)
    target = decode_segments(points, reg_targets[0])[1:3]  # (0, 3), (1, 3)
    expected_reg = diou_loss(pred, target).item() / 2
    assert out.num_positives.item() == 2
    assert out.classification.item() == pytest.approx(expected_cls, rel=1e-6)
    assert out.regression.item() == pytest.approx(expected_reg, rel=1e-6)
    assert out.total.item() == pytest.approx(expected_cls + 2.0 * expected_reg, rel=1e-6)


def test_batch_without_positives_has_zero_regression_loss_and_still_backpropagates():
    detector = tiny_detector().train()
    out = detector(torch.randn(2, 12, 64))
    empty = [torch.zeros(0, 2), torch.zeros(0, 2)]
    losses = detector.compute_loss(out, empty, [torch.zeros(0, dtype=torch.long)] * 2)
    assert losses.regression.item() == 0.0 and losses.num_positives.item() == 0
    losses.total.backward()
    assert detector.head.cls_head.weight.grad is not None
    assert detector.loss.normalizer.value.item() == pytest.approx(0.9 * 100 + 0.1)


def test_training_steps_on_a_real_assignment_reduce_the_loss():
    detector = tiny_detector(path_dropout=0.0)
    features = torch.randn(2, 12, 64)
    segments = [torch.tensor([[5.0, 20.0], [30.0, 34.0]]), torch.tensor([[10.0, 60.0]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]

    def eval_loss() -> float:  # eval mode: normalised by this batch's positives, not the running EMA
        with torch.no_grad():
            return detector.eval().compute_loss(detector(features), segments, labels).total.item()

    before = eval_loss()
    optimizer = torch.optim.AdamW(detector.parameters(), lr=1e-3)
    detector.train()
    for _ in range(10):
        losses = detector.compute_loss(detector(features), segments, labels)
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
    assert eval_loss() < 0.7 * before
