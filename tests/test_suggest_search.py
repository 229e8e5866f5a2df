"""The suggestion search finds the first change that fits on each axis, as a scan would, in fewer profiles than
halving: memory along an axis is near linear, and the search interpolates between what it has profiled; where it
knows how much of the configuration's memory a change scales (frames, tokens, blocks), its first round usually
ends the search."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from tadcli.profiling.suggest import Change, Start, _Search

GIB = 1 << 30


@dataclass(frozen=True)
class _Required:
    """Stands for a Profile: what the search reads of one."""

    bytes: int

    def required_bytes(self) -> int:
        return self.bytes

    def fits(self, capacity: int) -> bool:
        return self.bytes <= capacity


def _curve(shape: str, count: int) -> list[int]:
    """Memory of the configuration (position -1) and of ``count`` changes, falling along the axis."""
    points = range(-1, count)
    fraction = [(count - 1 - k) / count for k in points]  # 1 at the configuration, 0 at the last change
    if shape == "linear":
        values = [8 + 20 * f for f in fraction]
    elif shape == "quadratic":  # image size: tokens grow with its square
        values = [8 + 20 * f * f for f in fraction]
    elif shape == "steps":  # allocator rounding: flat runs
        values = [8 + 2 * math.floor(10 * f) for f in fraction]
    else:  # noisy linear: a constant cost, then near linear
        values = [8 + 20 * f + (0.4 if k % 3 == 0 else 0) for k, f in zip(points, fraction)]
    return [int(v * GIB) for v in values]


def _run(
    curve: list[int], capacity: int, parallel: int, scales: list[float] | None = None, fixed: int | None = None
) -> tuple[int | None, list[list[int]]]:
    """The first fit the search finds, and the positions it profiled, round by round."""
    changes = [Change(f"change {k}", (), (), None if scales is None else scales[k]) for k in range(len(curve) - 1)]
    memory = dict(zip(changes, (_Required(b) for b in curve[1:])))
    rounds = []

    def profile(batch):
        rounds.append([changes.index(change) for change in batch])
        return [memory[change] for change in batch]

    found = _Search(profile, capacity).nearest_each([changes], parallel, Start(curve[0], fixed))
    first = changes.index(found[0].change) if found else None
    return first, rounds


@pytest.mark.parametrize("shape", ["linear", "quadratic", "steps", "noisy"])
@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_the_search_finds_the_first_change_that_fits_in_fewer_profiles_than_halving(shape, parallel):
    count = 95  # the frames axis of giant-1536: 1520 down to 16
    curve = _curve(shape, count)
    for capacity_gib in (27.9, 26, 23.6, 17, 12.5, 9, 8.1, 7):  # from just below the configuration to none fits
        capacity = int(capacity_gib * GIB)
        fitting = [k for k, b in enumerate(curve[1:]) if b <= capacity]
        first, rounds = _run(curve, capacity, parallel)
        assert first == (fitting[0] if fitting else None)
        if shape == "linear" and parallel == 1:
            assert sum(map(len, rounds)) <= 4 < math.ceil(math.log2(count + 1))  # halving needs 7


def test_without_the_configurations_memory_the_search_halves_first():
    curve = _curve("linear", 95)
    changes = [Change(f"change {k}", ()) for k in range(95)]
    first_round = []
    _Search(lambda batch: first_round.append(list(batch)) or [_Required(curve[1 + changes.index(c)]) for c in batch],
            int(20 * GIB)).nearest_each([changes], 1)
    assert first_round[0] == [changes[47]]  # the middle


def _scaled_curve(shape: str, count: int, fixed_gib: float) -> tuple[list[int], list[float]]:
    """Memory of the configuration (scale 1) and of ``count`` changes keeping a falling share of its activations:
    ``fixed`` plus activations that scale as ``shape`` says (linear: as the frames do; quadratic: a size whose
    tokens are not the scale; steps: allocator rounding)."""
    scales = [(count - k) / (count + 1) for k in range(count)]
    activations = {
        "linear": lambda s: 20 * s,
        "quadratic": lambda s: 20 * s * s,
        "steps": lambda s: 2 * math.ceil(10 * s),
    }[shape]
    curve = [int((fixed_gib + activations(s)) * GIB) for s in [1.0, *scales]]
    return curve, scales


@pytest.mark.parametrize("shape", ["linear", "quadratic", "steps"])
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_search_that_knows_the_scales_finds_the_first_fit(shape, parallel):
    count, fixed = 95, 8.0
    curve, scales = _scaled_curve(shape, count, fixed)
    for capacity_gib in (27.9, 26, 23.6, 17, 12.5, 9, 8.1, 7):
        capacity = int(capacity_gib * GIB)
        fitting = [k for k, b in enumerate(curve[1:]) if b <= capacity]
        first, rounds = _run(curve, capacity, parallel, scales, int(fixed * GIB))
        assert first == (fitting[0] if fitting else None)
        if shape == "linear":  # the first guess is right: it and the change before it, in one round
            assert len(rounds) == 1 and len(rounds[0]) == (1 if not fitting or fitting[0] == 0 else 2)


def test_scales_need_the_configurations_fixed_memory():
    curve, scales = _scaled_curve("linear", 95, 8.0)
    _, with_fixed = _run(curve, int(17 * GIB), 1, scales, int(8 * GIB))
    _, without = _run(curve, int(17 * GIB), 1, scales)
    assert len(with_fixed) == 1 and without[0] == [94]  # without it: the farthest change first, as without scales
