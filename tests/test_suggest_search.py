"""The suggestion search finds the first change that fits on each axis, as a scan would, in fewer profiles than
halving: memory along an axis is near linear, and the search interpolates between what it has profiled."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from tadcli.profiling.suggest import Change, _Search

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


def _run(curve: list[int], capacity: int, parallel: int) -> tuple[int | None, int]:
    changes = [Change(f"change {k}", ()) for k in range(len(curve) - 1)]
    memory = dict(zip(changes, (_Required(b) for b in curve[1:])))
    profiled = []

    def profile(batch):
        profiled.extend(batch)
        return [memory[change] for change in batch]

    found = _Search(profile, capacity).nearest_each([changes], parallel, start_bytes=curve[0])
    first = changes.index(found[0].change) if found else None
    return first, len(profiled)


@pytest.mark.parametrize("shape", ["linear", "quadratic", "steps", "noisy"])
@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_the_search_finds_the_first_change_that_fits_in_fewer_profiles_than_halving(shape, parallel):
    count = 95  # the frames axis of giant-1536: 1520 down to 16
    curve = _curve(shape, count)
    for capacity_gib in (27.9, 26, 23.6, 17, 12.5, 9, 8.1, 7):  # from just below the configuration to none fits
        capacity = int(capacity_gib * GIB)
        fitting = [k for k, b in enumerate(curve[1:]) if b <= capacity]
        first, profiles = _run(curve, capacity, parallel)
        assert first == (fitting[0] if fitting else None)
        if shape == "linear" and parallel == 1:
            assert profiles <= 4 < math.ceil(math.log2(count + 1))  # halving needs 7


def test_without_the_configurations_memory_the_search_halves_first():
    curve = _curve("linear", 95)
    changes = [Change(f"change {k}", ()) for k in range(95)]
    first_round = []
    _Search(lambda batch: first_round.append(list(batch)) or [_Required(curve[1 + changes.index(c)]) for c in batch],
            int(20 * GIB)).nearest_each([changes], 1)
    assert first_round[0] == [changes[47]]  # the middle
