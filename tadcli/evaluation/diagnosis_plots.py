"""The figures of a DETAD diagnosis (:mod:`tadcli.evaluation.diagnosis`) as PNG bytes.

matplotlib is an optional extra (``pip install 'tadcli[plots]'``), imported on use: without it
:func:`render_diagnosis_plots` raises :class:`ModuleNotFoundError` and the JSON still stands alone. The figures
follow DETAD's: the false-positive profile (type shares of groups 1G..10G) with the mAP_N gain of removing each
error type; normalized mAP per characteristic bin; missed share per bin.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from tadcli.evaluation.diagnosis import ERROR_TYPES, PREDICTION_TYPES, Diagnosis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLOT_FILES", "render_diagnosis_plots"]

PLOT_FILES = ("false_positive_analysis.png", "sensitivity_analysis.png", "false_negative_analysis.png")
_TYPE_COLOURS = ("#2ca02c", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b", "#d62728")  # one per PREDICTION_TYPES
_CHARACTERISTIC_TITLES = {"coverage": "coverage", "length": "length (s)", "num_instances": "instances per video"}


def render_diagnosis_plots(diagnosis: Diagnosis) -> dict[str, bytes]:
    """File name (:data:`PLOT_FILES`) -> PNG content.

    Raises:
        ModuleNotFoundError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    figures = (_false_positive_figure(diagnosis), _sensitivity_figure(diagnosis), _false_negative_figure(diagnosis))
    return {name: _png(figure) for name, figure in zip(PLOT_FILES, figures)}


def _png(figure: Figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _false_positive_figure(diagnosis: Diagnosis) -> Figure:
    import matplotlib.pyplot as plt

    analysis = diagnosis.false_positives
    figure, (profile, gains) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [2, 1]})
    groups = [f"{k + 1}G" for k in range(len(analysis.group_counts))]
    bottom = np.zeros(len(groups))
    shares = np.nan_to_num(analysis.group_shares) * 100  # [10, 6]; empty groups drawn empty
    for t, name in enumerate(PREDICTION_TYPES):
        profile.bar(groups, shares[:, t], bottom=bottom, color=_TYPE_COLOURS[t], label=name.replace("_", " "))
        bottom += shares[:, t]
    profile.set_ylabel("share of predictions (%)")
    profile.set_xlabel("top predictions, in blocks of G (instances per class)")
    profile.set_ylim(0, 100)
    profile.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
    profile.set_title(f"false-positive profile (average mAP_N {100 * analysis.average_map_n:.2f})")
    values = [100 * analysis.map_gain[name] for name in ERROR_TYPES]
    gains.barh([name.replace("_", " ") for name in ERROR_TYPES], values, color=_TYPE_COLOURS[1:])
    gains.invert_yaxis()
    gains.set_xlabel("average mAP_N gain (points)")
    gains.set_title("removing each error type")
    figure.tight_layout()
    return figure


def _sensitivity_figure(diagnosis: Diagnosis) -> Figure:
    analysis = diagnosis.sensitivity
    return _bins_figure(
        diagnosis,
        {name: 100 * scores.values for name, scores in analysis.bins.items()},
        "mAP_N (%)",
        reference=100 * analysis.average_map_n,
        title=f"sensitivity (average mAP_N {100 * analysis.average_map_n:.2f}, dashed)",
    )


def _false_negative_figure(diagnosis: Diagnosis) -> Figure:
    return _bins_figure(
        diagnosis,
        {name: 100 * scores.values for name, scores in diagnosis.false_negatives.bins.items()},
        "missed instances (%)",
        reference=None,
        title="false negatives",
    )


def _bins_figure(
    diagnosis: Diagnosis, values: dict[str, np.ndarray], ylabel: str, reference: float | None, title: str
) -> Figure:
    """One panel per characteristic, one bar per bin (empty bins have none), instance counts under the names."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(diagnosis.bins), figsize=(4 * len(diagnosis.bins), 3.6), sharey=True)
    for axis, (name, bins) in zip(axes, diagnosis.bins.items()):
        counts = diagnosis.sensitivity.bins[name].counts
        labels = [f"{bin_name}\n{count}" for bin_name, count in zip(bins.names, counts)]
        axis.bar(labels, np.nan_to_num(values[name]), color="#1f77b4")
        if reference is not None and np.isfinite(reference):
            axis.axhline(reference, color="black", linestyle="--", linewidth=1)
        axis.set_title(_CHARACTERISTIC_TITLES[name])
        axis.set_ylim(0, 100)
    axes[0].set_ylabel(ylabel)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
