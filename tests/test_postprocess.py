"""Post-processing (spec §5): soft-NMS and voting against plain Python reference loops written from the
spec's description, candidate selection, grid -> seconds and the merging of sliding windows."""

from __future__ import annotations

import math

import pytest
import torch

from tadcli.model.postprocess import (
    Detection,
    Detections,
    PostprocessSettings,
    batched_soft_nms,
    detections_to_seconds,
    fuse_video_classifier,
    merge_windows,
    round_for_output,
    select_candidates,
    soft_nms,
)


def reference_soft_nms(segments, scores, sigma, min_score, max_kept):
    """Greedy Gaussian soft-NMS, one segment at a time (OpenTAD's nms_cpu.cpp semantics)."""
    segments, scores = segments.tolist(), scores.tolist()
    remaining, kept = list(range(len(scores))), []
    while remaining and len(kept) < max_kept:
        best = max(remaining, key=lambda i: scores[i])
        kept.append((best, scores[best]))
        remaining.remove(best)
        best_start, best_end = segments[best]
        survivors = []
        for j in remaining:
            start, end = segments[j]
            inter = max(0.0, min(best_end, end) - max(best_start, start))
            iou = inter / ((best_end - best_start + 1e-6) + (end - start + 1e-6) - inter)
            scores[j] *= math.exp(-iou * iou / sigma)
            if scores[j] >= min_score:
                survivors.append(j)
        remaining = survivors
    return kept


def reference_voting(kept_segments, all_segments, all_scores, threshold):
    refined = []
    for start, end in kept_segments.tolist():
        total, acc_start, acc_end = 0.0, 0.0, 0.0
        for (s, e), w in zip(all_segments.tolist(), all_scores.tolist()):
            inter = max(0.0, min(end, e) - max(start, s))
            if inter / ((end - start) + (e - s) - inter) >= threshold:
                total, acc_start, acc_end = total + w, acc_start + w * s, acc_end + w * e
        refined.append((acc_start / total, acc_end / total))
    return torch.tensor(refined)


def random_detections(seed: int, count: int = 150, num_classes: int = 4) -> Detections:
    generator = torch.Generator().manual_seed(seed)
    starts = torch.rand(count, generator=generator) * 60
    lengths = torch.rand(count, generator=generator) * 15 + 0.1
    return Detections(
        torch.stack([starts, starts + lengths], dim=1),
        torch.rand(count, generator=generator),
        torch.randint(0, num_classes, (count,), generator=generator),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_score, max_kept", [(0.0, 1000), (0.05, 1000), (0.001, 7)])
def test_soft_nms_per_class_matches_the_reference_loop(seed, min_score, max_kept):
    dets = random_detections(seed)
    kept, kept_scores = soft_nms(dets.segments, dets.scores, dets.labels, 0.5, min_score, max_kept)
    ours = {int(i): float(s) for i, s in zip(kept, kept_scores)}
    expected = {}
    for label in dets.labels.unique().tolist():
        members = torch.nonzero(dets.labels == label).squeeze(1)
        for local, score in reference_soft_nms(dets.segments[members], dets.scores[members], 0.5, min_score, max_kept):
            expected[int(members[local])] = score
    assert ours.keys() == expected.keys()
    for index, score in expected.items():
        assert ours[index] == pytest.approx(score, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("seed", [3, 4])
def test_class_agnostic_soft_nms_with_voting_matches_the_reference(seed):
    dets = random_detections(seed)
    settings = PostprocessSettings(sigma=0.7, min_score=0.001, max_segments=20, multiclass=False, voting_threshold=0.6)
    out = batched_soft_nms(dets, settings)
    kept = reference_soft_nms(dets.segments, dets.scores, 0.7, 0.001, 20)
    kept.sort(key=lambda pair: -pair[1])
    kept_index = torch.tensor([i for i, _ in kept])
    assert out.scores.tolist() == pytest.approx([s for _, s in kept], rel=1e-5)
    assert torch.equal(out.labels, dets.labels[kept_index])  # labels travel with their segments
    voted = reference_voting(dets.segments[kept_index], dets.segments, dets.scores, 0.6)
    assert torch.allclose(out.segments, voted, atol=1e-4)
    assert not torch.allclose(out.segments, dets.segments[kept_index])  # voting moved some boundaries


def test_multiclass_nms_ignores_voting_sorts_and_caps_per_video():
    dets = random_detections(5, count=60, num_classes=3)
    voting = PostprocessSettings(sigma=0.5, max_segments=25, multiclass=True, voting_threshold=0.9)
    plain = PostprocessSettings(sigma=0.5, max_segments=25, multiclass=True)
    out = batched_soft_nms(dets, voting)
    assert torch.equal(out.segments, batched_soft_nms(dets, plain).segments)
    assert len(out) == 25
    assert out.scores.tolist() == sorted(out.scores.tolist(), reverse=True)
    # each kept segment is one of the inputs, with its own class
    for segment, label in zip(out.segments, out.labels):
        matches = (dets.segments == segment).all(dim=1)
        assert matches.any() and dets.labels[matches][0] == label


def test_overlapping_same_class_detections_are_decayed_not_removed():
    dets = Detections(
        torch.tensor([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0], [20.0, 30.0]]),
        torch.tensor([0.9, 0.8, 0.7, 0.6]),
        torch.tensor([0, 0, 1, 0]),
    )
    out = batched_soft_nms(dets, PostprocessSettings(sigma=0.5))
    rows = out.to_rows()
    decay = math.exp(-1 / 0.5)  # IoU 1 with the kept copy
    assert rows[0] == Detection(0.0, 10.0, 0, pytest.approx(0.9))
    assert rows[1] == Detection(0.0, 10.0, 1, pytest.approx(0.7))  # other class: untouched
    assert rows[2] == Detection(20.0, 30.0, 0, pytest.approx(0.6))  # disjoint: untouched
    assert rows[3].score == pytest.approx(0.8 * decay, rel=1e-5)
    # with min_score above the decayed score, the duplicate is dropped
    assert len(batched_soft_nms(dets, PostprocessSettings(sigma=0.5, min_score=0.2))) == 3


def test_empty_input_gives_empty_output():
    assert len(batched_soft_nms(Detections.empty(), PostprocessSettings())) == 0
    assert len(merge_windows([], PostprocessSettings())) == 0


def test_candidates_are_thresholded_and_ranked_over_all_levels_jointly():
    # 3 points (the last one padded), 2 classes; offsets in strides
    points = torch.tensor([[0.0, 0, 4, 1], [4.0, 4, 8, 2], [8.0, 4, 8, 2]])
    logits = torch.logit(torch.tensor([[0.5, 0.0005], [0.9, 0.3], [0.99, 0.99]]))
    offsets = torch.tensor([[1.0, 2.0], [1.0, 0.5], [0.0, 0.0]])
    mask = torch.tensor([True, True, False])
    dets = select_candidates(logits, offsets, points, mask, pre_nms_threshold=0.001, pre_nms_topk=2)
    # scores above 0.001: 0.5 (p0 c0), 0.9 (p1 c0), 0.3 (p1 c1); top 2 -> 0.9, 0.5
    assert dets.scores.tolist() == pytest.approx([0.9, 0.5])
    assert dets.labels.tolist() == [0, 0]
    assert dets.segments.tolist() == [[2.0, 5.0], [-1.0, 2.0]]  # (4 - 1*2, 4 + 0.5*2), (0 - 1, 0 + 2)


def test_single_class_keeps_every_valid_point_without_threshold():
    points = torch.tensor([[0.0, 0, 4, 1], [1.0, 0, 4, 1], [2.0, 0, 4, 1]])
    logits = torch.logit(torch.tensor([[1e-5], [0.7], [0.2]]))
    dets = select_candidates(logits, torch.ones(3, 2), points, torch.tensor([True, True, False]), 0.001, 1)
    assert dets.scores.tolist() == pytest.approx([1e-5, 0.7], rel=1e-4)
    assert dets.labels.tolist() == [0, 0]


def test_grid_to_seconds_for_a_sliding_window_and_a_resized_video():
    dets = Detections(torch.tensor([[0.0, 10.0], [700.0, 768.0]]), torch.tensor([0.5, 0.4]), torch.tensor([0, 1]))
    # THUMOS window starting at frame 1536, snippet stride 4, 30 fps, video of 150 s
    seconds = detections_to_seconds(dets, fps=30.0, snippet_stride=4, window_start_frame=1536, duration=150.0)
    assert seconds.segments[0].tolist() == pytest.approx([1536 / 30, (40 + 1536) / 30])
    assert seconds.segments[1].tolist() == pytest.approx([(2800 + 1536) / 30, 150.0])  # clamped to the duration
    # ActivityNet: 192 steps over a 57.3 s video at 15 fps
    resized = Detections(torch.tensor([[-3.0, 96.0]]), torch.tensor([0.5]), torch.tensor([0]))
    seconds = detections_to_seconds(
        resized, fps=15.0, snippet_stride=57.3 * 15 / 192, window_start_frame=0, duration=57.3
    )
    assert seconds.segments[0].tolist() == pytest.approx([0.0, 57.3 / 2])


def test_seconds_grid_round_trip():
    grid = torch.tensor([[12.25, 40.0], [0.0, 383.5]])
    fps, stride, start = 29.97, 4, 384 * 4
    seconds = detections_to_seconds(
        Detections(grid, torch.ones(2), torch.zeros(2, dtype=torch.long)), fps, stride, start, 1e6
    )
    back = (seconds.segments * fps - start) / stride  # the data pipeline's seconds -> grid map
    assert torch.allclose(back, grid, atol=1e-4)


def test_windows_of_one_video_are_merged_with_one_nms():
    settings = PostprocessSettings(sigma=0.5, max_segments=10)
    # the same action seen by two overlapping windows, plus one detection per window elsewhere
    first = Detections(torch.tensor([[50.0, 60.0], [5.0, 8.0]]), torch.tensor([0.8, 0.3]), torch.tensor([2, 2]))
    second = Detections(torch.tensor([[50.02, 60.0], [90.0, 95.0]]), torch.tensor([0.7, 0.6]), torch.tensor([2, 2]))
    merged = merge_windows([first, second], settings).to_rows()
    assert [row.score for row in merged[:3]] == pytest.approx([0.8, 0.6, 0.3])
    assert merged[3].start == pytest.approx(50.02) and merged[3].score < 0.7 * 0.2


def test_video_classifier_labels_every_segment_with_the_top_classes():
    dets = Detections(
        torch.tensor([[1.0, 5.0], [7.0, 9.0]]), torch.tensor([0.8, 0.5]), torch.zeros(2, dtype=torch.long)
    )
    class_scores = torch.tensor([0.1, 0.7, 0.2])
    fused = fuse_video_classifier(dets, class_scores, topk=2).to_rows()
    assert [(row.start, row.label) for row in fused] == [(1.0, 1), (7.0, 1), (1.0, 2), (7.0, 2)]
    assert [row.score for row in fused] == pytest.approx([0.56, 0.35, 0.16, 0.1])
    geometric = fuse_video_classifier(dets, class_scores, topk=1, geometric_mean=True)
    assert geometric.scores.tolist() == pytest.approx([math.sqrt(0.56), math.sqrt(0.35)])


def test_output_rounding():
    dets = Detections(torch.tensor([[1.23456, 7.891]]), torch.tensor([0.123456]), torch.tensor([4]))
    assert round_for_output(dets) == [Detection(1.23, 7.89, 4, 0.1235)]
