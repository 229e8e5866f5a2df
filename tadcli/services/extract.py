"""``tad extract``: backbone features of whole videos for feature-based detectors (ActionFormer, TriDet, ...).

One ``[T, C]`` float32 array per video (``.npy`` or ``.safetensors``) and a JSON sidecar stating the
video's duration, fps, frame stride, snippet stride, window, image size, backbone and weights, and the
time of feature ``i`` in real seconds (:mod:`tadcli.io.features`; variable-frame-rate videos are read at
their presentation times). The backbone is a run's (its trained adapters included) or a preset's with
its pretrained weights. Videos are decoded window by window (windows that do not overlap); the same
error rules as ``tad detect`` apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tadcli.data.video import expand_video_inputs
from tadcli.errors import TadError
from tadcli.io.paths import check_input_path, check_output_dir
from tadcli.progress import ProgressCallback

DEFAULT_EXTRACT_PROFILE = "thumos14"


@dataclass
class ExtractReport:
    """What ``tad extract`` wrote: one array per video, and the videos that failed with their reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def extract(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    run: str | Path | None = None,
    preset: str | None = None,
    weights: str | Path | None = None,
    overrides: Sequence[str] = (),
    profile: str | None = None,
    format: str = "npy",
    device: str = "auto",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> ExtractReport:
    """Write the backbone features of every input video into ``out_dir``.

    Args:
        inputs: video files, folders and glob patterns.
        out_dir: the output folder.
        run: a run folder whose (EMA) backbone extracts; or ``None`` with ``preset``.
        preset: a preset whose backbone extracts (``weights`` or the preset's ``backbone.weights``, required for
            a named ViT size; ``none``: random initialisation).
        weights: pretrained backbone weights for ``preset`` (any format ``tad`` reads).
        overrides: ``--set`` overrides of ``preset``.
        profile: the sampling protocol (snippet stride); a run uses its own, a preset ``thumos14`` by default.
        format: ``npy`` or ``safetensors``.
        device, batch_size, num_workers: where and how the backbone runs.
        progress: ``(description, done, total)`` callback.
    """
    from tadcli.config.loader import load_preset
    from tadcli.config.profiles import get_profile
    from tadcli.inference.engine import extract_video_features
    from tadcli.inference.loading import load_preset_model, load_run_model
    from tadcli.inference.plan import inference_plan
    from tadcli.io.features import FEATURE_FORMATS, write_features
    from tadcli.devices import resolve_device

    if format not in FEATURE_FORMATS:
        raise TadError(f"unknown format '{format}' (choose {', '.join(FEATURE_FORMATS)})")
    if (run is None) == (preset is None):
        raise TadError("give either --run RUN or --preset P (with --weights W for pretrained weights)")
    videos = expand_video_inputs(inputs)
    out_dir = check_output_dir(out_dir, "features folder")
    torch_device = resolve_device(device)
    if run is not None:
        config, model = load_run_model(run, torch_device)
        resolved, profile_name, source = config.preset, config.profile, f"run {run}"
    else:
        resolved = load_preset(preset, list(overrides))
        if weights is not None:
            check_input_path(weights, "backbone weights")
            resolved = resolved.model_copy(update={"backbone": resolved.backbone.model_copy(update={"weights": str(weights)})})
        resolved.backbone.require_weights(resolved.name)
        model = load_preset_model(resolved, torch_device)
        profile_name = profile or DEFAULT_EXTRACT_PROFILE
        source = resolved.backbone.pretrained_weights or "random initialisation"
    plan = inference_plan(resolved, get_profile(profile_name), torch_device)

    report = ExtractReport()
    for video, output in zip(videos, extract_video_features(model, videos, plan, batch_size, num_workers, progress)):
        if output.result is None:
            report.failed.append((str(video), output.error or "decoding failed"))
            continue
        sidecar = {
            "video": str(video),
            "duration": output.record.duration,
            "fps": output.result.fps,
            "frame_stride": plan.geometry.frame_stride,
            "snippet_stride": output.result.snippet_stride,
            "window_frames": resolved.input.frames,
            "image_size": resolved.input.image_size,
            "backbone": resolved.name,
            "weights": str(source),
            "adaptation": resolved.adaptation.mode,
            "profile": profile_name,
        }
        report.written.append(write_features(out_dir, video.stem, output.result.features, sidecar, format))
    return report
