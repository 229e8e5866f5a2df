"""Released AdaTAD / OpenTAD detector weights -> :class:`~tadcli.model.detector.actionformer.ActionFormer`.

The detector half of an OpenTAD checkpoint (spec ``shared/spec/ADATAD.md`` §9.1), with the ``module.``
prefix already removed (:func:`tadcli.io.weights.read_adatad_detector_state` does that), has keys
``projection.*``, ``neck.*`` and ``rpn_head.*``. tad's module names follow OpenTAD's inside each part,
so the translation is this table of part renames; the positives normaliser moves from the head to the
loss that owns it.
"""

from __future__ import annotations

import torch
from torch import nn

from tadcli.errors import WeightFormatError

State = dict[str, torch.Tensor]

# (OpenTAD key, tad key) for single keys, then (OpenTAD prefix, tad prefix) for whole parts.
OPENTAD_DETECTOR_KEYS = (("rpn_head.loss_normalizer", "loss.normalizer.value"),)
OPENTAD_DETECTOR_PREFIXES = (("projection.", "projection."), ("neck.", "neck."), ("rpn_head.", "head."))


def _shape(tensor: torch.Tensor) -> str:
    return "[" + ", ".join(str(size) for size in tensor.shape) + "]"


def opentad_detector_key(key: str) -> str:
    """tad's name of one OpenTAD detector key; a key outside the three parts is a :class:`WeightFormatError`."""
    for source_key, target_key in OPENTAD_DETECTOR_KEYS:
        if key == source_key:
            return target_key
    for source_prefix, target_prefix in OPENTAD_DETECTOR_PREFIXES:
        if key.startswith(source_prefix):
            return target_prefix + key[len(source_prefix) :]
    raise WeightFormatError(f"detector checkpoint: key {key!r} is not part of an OpenTAD projection, neck or rpn_head")


def convert_opentad_detector(state: State) -> State:
    """OpenTAD detector state (``projection.*``, ``neck.*``, ``rpn_head.*``) -> tad's detector names."""
    return {opentad_detector_key(key): value for key, value in state.items()}


def load_opentad_detector(detector: nn.Module, state: State, source: str = "detector checkpoint") -> None:
    """Load OpenTAD-named detector weights into ``detector`` (an ``ActionFormer``) strictly.

    Raises:
        WeightFormatError: a key the detector lacks, a detector key the checkpoint lacks, or a shape
            mismatch; the message names the OpenTAD key, tad's key and both shapes.
    """
    original_names = {opentad_detector_key(key): key for key in state}
    converted = convert_opentad_detector(state)
    expected = detector.state_dict()
    unexpected = [key for key in converted if key not in expected]
    if unexpected:
        key = unexpected[0]
        raise WeightFormatError(
            f"{source}: key {original_names[key]!r} (tad: {key!r}, shape {_shape(converted[key])}) is not part of "
            f"the detector ({len(unexpected)} such keys; does the preset have the same arch and head?)"
        )
    missing = [key for key in expected if key not in converted]
    if missing:
        raise WeightFormatError(f"{source}: detector key {missing[0]!r} is missing ({len(missing)} missing keys)")
    for key, value in converted.items():
        if value.shape != expected[key].shape:
            raise WeightFormatError(
                f"{source}: key {original_names[key]!r} has shape {_shape(value)} in the checkpoint but "
                f"{_shape(expected[key])} in the detector ({key!r})"
            )
    detector.load_state_dict(converted, strict=True)
