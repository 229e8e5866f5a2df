"""Exponential moving average of the model weights (OpenTAD ``ModelEma``, spec §3).

After every optimizer step, every floating state entry of the model (parameters and buffers) follows
``e <- decay * e + (1 - decay) * m``; integer buffers are copied. Evaluation and the saved model use
the average.

Frozen parameters never change, so their average equals them: the EMA model *shares* those tensors
with the trained model instead of holding a second copy (for the giant with adapters that is 1 B
parameters not duplicated). The result is the same as averaging them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """An averaged copy of ``model`` that shares its frozen parameters.

    Args:
        model: the model being trained (not DDP-wrapped); its ``requires_grad`` flags decide what is shared.
        decay: averaging decay (0.999 in the recipes).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        frozen = {id(p): p for p in model.parameters() if not p.requires_grad}
        self.decay = decay
        self.module = copy.deepcopy(model, memo=dict(frozen))  # frozen tensors are reused, not copied
        self.module.eval()
        self.module.requires_grad_(False)
        self._tracked = self._tracked_entries(model)

    def _tracked_entries(self, model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``key -> (average, source)`` for every state entry that can change (those not shared with ``model``)."""
        source = model.state_dict(keep_vars=True)
        average = self.module.state_dict(keep_vars=True)
        assert source.keys() == average.keys(), "EMA model and model differ in structure"
        return {key: (average[key], source[key]) for key in source if average[key] is not source[key]}

    @torch.no_grad()
    def update(self) -> None:
        """Move the average one step towards the current weights of the tracked model."""
        pairs = self._tracked.values()
        averages = [e for e, m in pairs if e.is_floating_point()]  # no graph here: the tensors themselves
        if averages:
            torch._foreach_mul_(averages, self.decay)
            torch._foreach_add_(averages, [m for e, m in pairs if e.is_floating_point()], alpha=1 - self.decay)
        for e, m in pairs:
            if not e.is_floating_point():
                e.copy_(m)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged entries that are not shared with the model (what a checkpoint must store)."""
        return {key: e.detach().clone() for key, (e, _) in self._tracked.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`; the keys must match exactly."""
        if state.keys() != self._tracked.keys():
            missing, unexpected = self._tracked.keys() - state.keys(), state.keys() - self._tracked.keys()
            raise KeyError(f"EMA state does not fit the model (missing {sorted(missing)}, unexpected {sorted(unexpected)})")
        with torch.no_grad():
            for key, (e, _) in self._tracked.items():
                e.copy_(state[key])
