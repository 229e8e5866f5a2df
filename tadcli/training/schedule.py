"""Linear warm-up then cosine annealing, stepped every iteration (spec ``shared/spec/ADATAD.md`` §8).

For iteration ``t`` (0-based), warm-up length ``W`` and schedule length ``M`` (iterations):

* ``t < W``: ``lr = base * t / (W - 1)``, so the very first step runs at lr exactly 0;
* ``t >= W``: ``lr = eta_min + (base - eta_min) * (1 + cos(pi * (t - W) / (M - W))) / 2``.

Training may stop before ``M`` (the THUMOS recipes stop at epoch 60 of a 100-epoch cosine).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

ETA_MIN = 1e-8


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, eta_min: float = ETA_MIN) -> float:
    """The learning rate at iteration ``step`` of a ``total_steps`` schedule with ``warmup_steps`` of warm-up."""
    if step < warmup_steps:
        return base_lr * step / max(warmup_steps - 1, 1)
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return eta_min + 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * progress))


class WarmupCosineSchedule:
    """Sets every parameter group's lr from its own ``base_lr`` with :func:`warmup_cosine_lr`.

    Call :meth:`set_step` before each optimizer step with the global iteration index; the schedule keeps
    no state besides the two lengths, so resuming only needs the iteration index.

    Args:
        optimizer: groups carry ``base_lr`` (set here from ``lr`` on first use).
        warmup_steps: warm-up iterations (``warmup_epochs * iterations_per_epoch``).
        total_steps: schedule iterations (``cosine_epochs * iterations_per_epoch``).
        eta_min: final lr of the cosine.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, eta_min: float = ETA_MIN) -> None:
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.eta_min = eta_min
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])

    def set_step(self, step: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = warmup_cosine_lr(step, group["base_lr"], self.warmup_steps, self.total_steps, self.eta_min)

    def learning_rates(self) -> dict[str, float]:
        """The current lr of each group, by group name."""
        return {group.get("name", str(i)): group["lr"] for i, group in enumerate(self.optimizer.param_groups)}
