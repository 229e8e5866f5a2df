"""The nearest configurations that fit a memory budget, each found by profiling it, never by guessing.

Each axis lists changes from the smallest to the largest departure from the configuration: fewer frames,
a smaller image, adapters on fewer (later) blocks, side adapters, a smaller per-device batch with gradient
accumulation, checkpointing on, checkpointed activations offloaded to CPU memory (CUDA). Memory falls along an
axis, so a search over it finds the nearest change that fits in a few profiles: the first guess comes from the
configuration's own profile (its activations scale with the frames, tokens, adapted blocks or videos a change
keeps; weights, gradients, optimizer state and EMA stay), later ones from a line through what has been
profiled. The axes are searched side by side, so that the profiles of one round run in parallel. When no
single change fits, the structural changes are combined (checkpointing on, one video per micro-batch, side
adapters) and frames and image size are searched again on top of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tadcli.config.schema import Preset
from tadcli.profiling.step import Profile

TUNED_MODES = ("tia", "plain", "full")  # modes whose blocks run a backward, where checkpointing matters


@dataclass(frozen=True)
class Change:
    """A configuration to try, relative to the profiled one.

    Attributes:
        description: what changes, for people ("768 frames (was 1536)").
        flags: the same as ``tad profile-memory`` / ``tad train`` options.
        overrides: preset overrides (``key=value``), applied after the configuration's own.
        scale: the share of the configuration's activations the change keeps, about (frames, tokens per
            frame, adapted blocks or videos, relative to the configuration's); None where it does not scale them.
    """

    description: str
    flags: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    scale: float | None = None

    def then(self, other: Change) -> Change:
        """This change followed by ``other``."""
        scales = [s for s in (self.scale, other.scale) if s is not None]
        return Change(
            f"{self.description} + {other.description}",
            self.flags + other.flags,
            self.overrides + other.overrides,
            math.prod(scales) if scales else None,
        )


@dataclass(frozen=True)
class Suggestion:
    """A change that fits, with its profile."""

    change: Change
    profile: Profile


def _block_list(blocks: Sequence[int]) -> str:
    return "[" + ",".join(str(b) for b in blocks) + "]"


def side_change(preset: Preset) -> Change:
    """Side adapters (no backward through the ViT), on the last half of the blocks unless fewer are chosen."""
    overrides = ["adaptation.mode=side", "adaptation.checkpointing=true"]
    if preset.adaptation.blocks == "all":
        overrides.append("adaptation.blocks=last-half")
    return Change("side adapters", ("--mode", "side"), tuple(overrides))


def axes(
    preset: Preset, batch: int, global_batch: int, valid: Callable[[Change], bool], device: str = "cuda"
) -> dict[str, list[Change]]:
    """The changes to try on each axis, nearest first; ``valid`` says whether a change gives a valid preset;
    ``device``: the device predicted for (offloading to CPU memory frees memory on CUDA only)."""
    mode, found = preset.adaptation.mode, {}
    frames, size, patch = preset.input.frames, preset.input.image_size, preset.backbone.patch_size
    tiles = size // patch  # patches along a side: tokens per frame are its square
    found["frames"] = [
        Change(f"{f} frames (was {frames})", ("--frames", str(f)), (f"input.frames={f}",), f / frames)
        for f in range(frames - 16, 15, -16)
    ]
    found["image size"] = [
        Change(f"{s} px (was {size})", ("--image-size", str(s)), (f"input.image_size={s}",), (s // patch / tiles) ** 2)
        for s in range((size - 1) // patch * patch, patch - 1, -patch)
    ]
    if mode in ("tia", "plain", "side"):
        depth, count = preset.backbone.resolved_depth, len(preset.adapter_blocks())
        found["adapter blocks"] = [
            Change(
                f"adapters on the last {kept} blocks (was {count})",
                ("--set", f"adaptation.blocks={_block_list(range(depth - kept, depth))}"),
                (f"adaptation.blocks={_block_list(range(depth - kept, depth))}",),
                kept / count,
            )
            for kept in range(count - 1, 0, -1)
        ]
    if mode in TUNED_MODES:
        found["side adapters"] = [side_change(preset)]
    if batch > 1:
        found["batch"] = [
            Change(
                f"{b} video(s) per micro-batch x {global_batch // b} accumulation (was {batch})",
                ("--set", f"train.micro_batch_size={b}"),
                (f"train.micro_batch_size={b}",),
                b / batch,
            )
            for b in range(batch - 1, 0, -1)
            if global_batch % b == 0
        ]
    if mode in TUNED_MODES and not preset.adaptation.checkpointing:
        override = "adaptation.checkpointing=true"
        found["checkpointing"] = [Change("checkpointing on", ("--set", override), (override,))]
    chunked_checkpoints = preset.adaptation.checkpointing and preset.adaptation.chunk_group > 0
    if device == "cuda" and mode in TUNED_MODES and chunked_checkpoints and not preset.adaptation.offload_checkpoints:
        override = "adaptation.offload_checkpoints=true"
        offload = Change("checkpointed activations offloaded to CPU memory", ("--set", override), (override,))
        found["offload"] = [offload]
    return {axis: [c for c in changes if valid(c)] for axis, changes in found.items()}


def first_changes(
    preset: Preset, batch: int, global_batch: int, valid: Callable[[Change], bool], device: str = "cuda"
) -> list[Change]:
    """The changes :func:`suggest` profiles first whatever the configuration's own memory: those of the axes
    of one change (side adapters, checkpointing, offloading). They can be profiled while the configuration is."""
    return [changes[0] for changes in axes(preset, batch, global_batch, valid, device).values() if len(changes) == 1]


@dataclass(frozen=True)
class Start:
    """The memory of the configuration the changes of a search apply to.

    Attributes:
        required_bytes: what it requires (:meth:`~tadcli.profiling.step.Profile.required_bytes`).
        fixed_bytes: the part no change of scale reduces (weights, gradients, optimizer state, EMA, the
            allocator's slack, the CUDA context); None where unknown.
    """

    required_bytes: int
    fixed_bytes: int | None = None

    @classmethod
    def of(cls, profile: Profile) -> Start:
        required = profile.required_bytes()
        return cls(required, max(0, required - profile.training.activations))


@dataclass
class _Search:
    """Profiles changes once each, several at a time, and remembers which fit."""

    profile: Callable[[Sequence[Change]], list[Profile]]
    capacity: int
    profiled: dict[Change, Profile] = field(default_factory=dict)

    def profile_all(self, changes: Sequence[Change]) -> None:
        """Profile those of ``changes`` not profiled yet, in one call (they run in parallel)."""
        new = [change for change in dict.fromkeys(changes) if change not in self.profiled]
        if new:
            self.profiled.update(zip(new, self.profile(new)))

    def fitting(self, change: Change) -> Profile | None:
        self.profile_all([change])
        result = self.profiled[change]
        return result if result.fits(self.capacity) else None

    def nearest_each(
        self, searches: Sequence[Sequence[Change]], parallel: int = 1, start: Start | None = None
    ) -> list[Suggestion]:
        """The first change that fits in each of ``searches`` (memory falls along each), where one does;
        ``start``: the memory of the configuration they change, where known (it does not fit).

        Searches side by side, in rounds: each round profiles at once, in every unfinished search, the change
        where the memory meets the budget, with the change before it (the first that fits only if that one does
        not). Where every change of a search has a scale and ``start`` its fixed bytes, the memory is read off
        the line through the nearest known points around each change: the fixed bytes at scale 0, the
        configuration at 1 and the changes profiled so far. Otherwise the first round takes the farthest
        change (the configuration's memory is the other end; without it, the middle) and later rounds the
        change interpolated between the nearest profiled ones, one each while at least ``parallel`` searches
        are left (where more fit in a round, the change before it and changes splitting the rest). A guess
        that did not halve the interval is followed by the middle. Memory along an axis is near linear in the
        frames, tokens or blocks it keeps, so a search usually ends in the first round, in two profiles, or in
        one where nothing on the axis fits; it finds the change a scan would.
        """
        bounds = [(0, len(changes)) for changes in searches]
        halving = [False] * len(searches)  # the last guess did not halve the interval: take the middle next
        best: list[Suggestion | None] = [None] * len(searches)
        while active := [i for i, (low, high) in enumerate(bounds) if low < high]:
            count = max(1, parallel // len(active))
            probes = {i: self._probes(searches[i], *bounds[i], count, halving[i], start) for i in active}
            self.profile_all([searches[i][k] for i in active for k in probes[i][0]])
            for i in active:
                low, high = bounds[i]
                for k in probes[i][0]:  # ascending: the first that fits bounds the search from above
                    result = self.fitting(searches[i][k])
                    if result is not None:
                        best[i], high = Suggestion(searches[i][k], result), k
                        break
                    low = k + 1
                halving[i] = probes[i][1] and 2 * (high - low) > bounds[i][1] - bounds[i][0]
                bounds[i] = (low, high)
        return [found for found in best if found is not None]

    def _probes(
        self, changes: Sequence[Change], low: int, high: int, count: int, halve: bool, start: Start | None
    ) -> tuple[list[int], bool]:
        """Up to ``count`` positions of ``[low, high)`` to profile next, ascending (see :meth:`nearest_each`),
        and whether they were read off a line (rather than the farthest change or the middle)."""
        estimate = None if halve else self._estimated(changes, low, high, start)
        if estimate is not None:
            guess, fits = estimate
            return sorted({guess} | ({guess - 1} if fits and guess > low else set())), True
        if halve:
            guess = None
        elif high == len(changes) and start is not None:
            guess = high - 1  # the farthest change: the other end of the line (and the cheapest profile)
        else:
            guess = self._interpolated(changes, low, high, start)
        if guess is None:
            return _splits(low, high, count), False
        chosen = {guess} | ({guess - 1} if count > 1 and guess > low else set())
        if count > len(chosen):
            chosen |= set(_splits(low, high, count - len(chosen)))
        return sorted(chosen), high < len(changes)

    def _estimated(
        self, changes: Sequence[Change], low: int, high: int, start: Start | None
    ) -> tuple[int, bool] | None:
        """The nearest position of ``[low, high)`` whose memory, on the line through the known points around
        its scale, fits (and True), else the farthest (and False); None without scales or fixed bytes."""
        if start is None or start.fixed_bytes is None or any(c.scale is None for c in changes):
            return None
        known = {0.0: start.fixed_bytes, 1.0: start.required_bytes}
        known.update((c.scale, self.profiled[c].required_bytes()) for c in changes if c in self.profiled)
        points = sorted(known.items())
        for k in range(low, high):
            if _on_line(points, changes[k].scale) <= self.capacity:
                return k, True
        return high - 1, False

    def _interpolated(self, changes: Sequence[Change], low: int, high: int, start: Start | None) -> int | None:
        """The position in ``[low, high)`` where the memory of the profiled neighbours ``low - 1`` (or the
        configuration itself) and ``high``, joined by a line, meets the budget; None where one is unknown."""
        if high >= len(changes):
            return None
        if low == 0:
            before = start.required_bytes if start else None
        else:
            before = self.profiled[changes[low - 1]].required_bytes()
        after = self.profiled[changes[high]].required_bytes()
        if before is None or before <= after:
            return None
        position = (low - 1) + math.ceil((before - self.capacity) * (high - low + 1) / (before - after))
        return min(max(position, low), high - 1)


def _on_line(points: Sequence[tuple[float, int]], scale: float) -> float:
    """The memory at ``scale`` on the line between the nearest of ``points`` (scale, bytes; ascending, the
    first at 0) on either side; beyond the last, its value."""
    for (left, below), (right, above) in zip(points, points[1:]):
        if scale <= right:
            return below + (above - below) * (scale - left) / (right - left)
    return points[-1][1]


def _splits(low: int, high: int, count: int) -> list[int]:
    """Up to ``count`` positions splitting ``[low, high)`` evenly, ascending; one is the middle."""
    return sorted({low + (high - low) * j // (count + 1) for j in range(1, count + 1)})


def suggest(
    preset: Preset,
    batch: int,
    global_batch: int,
    capacity: int,
    profile: Callable[[Sequence[Change]], list[Profile]],
    valid: Callable[[Change], bool],
    device: str = "cuda",
    parallel: int = 1,
    start: Profile | None = None,
) -> list[Suggestion]:
    """The nearest fitting change on each axis (see the module docstring), or combinations when none fits.

    Args:
        preset: the configuration that does not fit (its mode, blocks, frames, size).
        batch: its videos per micro-batch; ``global_batch``: the preset's videos per optimizer step.
        capacity: bytes available.
        profile: profiles the configuration with each of several changes applied (one profile per change, in
            order; the changes of one call are independent, so it may run them in parallel).
        valid: whether a change gives a valid preset.
        device: the device predicted for, ``cuda`` or ``cpu``.
        parallel: how many profiles ``profile`` runs at once: each round of the searches asks for about that
            many (the same suggestions whatever it is).
        start: the configuration's profile, where known: the searches estimate from it (the same suggestions,
            found in fewer profiles).
    """
    search = _Search(profile, capacity)
    options = axes(preset, batch, global_batch, valid, device)
    single = search.nearest_each(list(options.values()), parallel, None if start is None else Start.of(start))
    if single:
        return single
    structural = [
        changes[-1] for axis, changes in options.items() if axis in ("checkpointing", "batch", "offload") and changes
    ]
    bases = []
    if structural:
        combined = structural[0]
        for change in structural[1:]:
            combined = combined.then(change)
        bases.append(combined)
    if preset.adaptation.mode in TUNED_MODES:
        bases.append(bases[0].then(side_change(preset)) if bases else side_change(preset))
    search.profile_all(bases)
    suggestions = []
    for base in bases:
        fitted = search.fitting(base)
        if fitted is not None:
            suggestions.append(Suggestion(base, fitted))
            continue
        combined = [[base.then(change) for change in options.get(axis, [])] for axis in ("frames", "image size")]
        suggestions += search.nearest_each(
            [[c for c in changes if valid(c)] for changes in combined], parallel, Start.of(search.profiled[base])
        )
        if suggestions:
            break
    return suggestions
