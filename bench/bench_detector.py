"""Detector and post-processing speed on this machine (CPU, fp32), at the sizes of the real recipes.

    python bench/bench_detector.py [--threads N] [--repeats R]

Measures:
- the ActionFormer detector of the THUMOS recipe (ViT-S features C=384, T=768, D=512, arch (2,2,5)),
  forward and forward+backward, global attention and the EPIC local window of 9;
- Gaussian soft-NMS (plain PyTorch, no compiled extension) on candidate sets of the sizes the recipes
  produce: one THUMOS window (top-2000 of 20 classes), one THUMOS video merged from 8 windows, a
  Multi-THUMOS window (top-8000 of 65 classes) and an ActivityNet video (192 class-agnostic points, voting).

Prints one markdown table row per measurement (median of ``--repeats`` runs).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Callable

import torch

from tadcli.model.detector.actionformer import build_actionformer
from tadcli.model.postprocess import Detections, PostprocessSettings, batched_soft_nms


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_detector(attention_window: int, repeats: int) -> list[str]:
    torch.manual_seed(0)
    detector = build_actionformer(in_channels=384, num_classes=20, max_seq_len=768, attention_window=attention_window)
    features = torch.randn(1, 384, 768)
    segments = [torch.tensor([[100.0, 160.0], [300.0, 310.0], [500.0, 700.0]])]
    labels = [torch.tensor([3, 7, 3])]
    params = sum(p.numel() for p in detector.parameters()) / 1e6

    def forward() -> None:
        with torch.no_grad():
            detector.eval()(features)

    def train_step() -> None:
        detector.train()
        losses = detector.compute_loss(detector(features), segments, labels)
        losses.total.backward()

    name = "global" if attention_window <= 1 else f"local window {attention_window}"
    return [
        f"| detector forward, T=768, D=512, {name} ({params:.1f} M params) | {median_seconds(forward, repeats):.3f} s |",
        f"| detector forward+loss+backward, {name} | {median_seconds(train_step, repeats):.3f} s |",
    ]


def random_candidates(count: int, num_classes: int, video_steps: float, seed: int) -> Detections:
    generator = torch.Generator().manual_seed(seed)
    starts = torch.rand(count, generator=generator) * video_steps
    lengths = torch.rand(count, generator=generator) * 60 + 1
    scores = torch.rand(count, generator=generator)
    labels = torch.randint(0, num_classes, (count,), generator=generator)
    return Detections(torch.stack([starts, starts + lengths], dim=1), scores, labels)


def bench_nms(repeats: int) -> list[str]:
    cases = [
        ("THUMOS window: 2000 candidates, 20 classes, sigma 0.7", 2000, 20, 768, PostprocessSettings(sigma=0.7)),
        ("THUMOS video: 8 windows = 16000 candidates, 20 classes", 16000, 20, 3072, PostprocessSettings(sigma=0.7)),
        (
            "Multi-THUMOS window: 8000 candidates, 65 classes, max 8000",
            8000,
            65,
            768,
            PostprocessSettings(sigma=0.5, pre_nms_topk=8000, max_segments=8000),
        ),
        (
            "ActivityNet video: 192 points, class-agnostic, voting 0.9, max 100",
            192,
            1,
            192,
            PostprocessSettings(sigma=0.7, min_score=0.001, max_segments=100, multiclass=False, voting_threshold=0.9),
        ),
    ]
    rows = []
    for name, count, num_classes, steps, settings in cases:
        candidates = random_candidates(count, num_classes, steps, seed=count)
        seconds = median_seconds(functools.partial(batched_soft_nms, candidates, settings), repeats)
        rows.append(f"| soft-NMS, {name} | {seconds * 1000:.1f} ms |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}")
    print("| measurement | time |\n|---|---|")
    for row in bench_detector(-1, args.repeats) + bench_detector(9, args.repeats) + bench_nms(args.repeats):
        print(row, flush=True)


if __name__ == "__main__":
    main()
