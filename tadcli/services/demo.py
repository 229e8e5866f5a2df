"""``tad demo``: the whole system on a fresh machine with no download, in minutes on a CPU.

1. writes the built-in synthetic dataset (real mp4 videos of coloured shapes; train / val / test);
2. trains the ``tiny`` preset on it (the GPU if there is one), validating on ``val``;
3. evaluates the trained run on the held-out ``test`` subset (``tad eval --run``);
4. runs ``tad detect`` on a test video and writes its events scoring at least ``tad detect``'s default
   threshold (:data:`tadcli.io.events.READABLE_THRESHOLD`) as JSON and SRT and a timeline picture with the
   ground truth under the detections.

Everything lands in one folder (default ``demo/``): ``data/`` (the dataset), ``run/`` (the run directory),
``events.json``, ``events.srt``, ``timeline.png``. A re-run replaces the demo's own dataset and run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tadcli.errors import TadError
from tadcli.io.paths import check_output_dir
from tadcli.progress import ProgressCallback


DEMO_PRESET = "tiny"
DEMO_CLASSES = 4
# Events written for the held-out video: those scoring at least this (the mAP uses every detection). After the
# default training, real actions score about 0.5-0.7 and the next candidates below 0.2.


@dataclass(frozen=True)
class DemoReport:
    """What the demo made: the dataset, the run, the test scores and the files of the detection."""

    dataset: Path
    run: Path
    training: object  # tadcli.training.reporting.TrainSummary
    test: object  # tadcli.services.eval.EvalReport
    video: Path
    num_events: int
    written: list[Path]


def _check_previous_run(run_dir: Path) -> None:
    """The demo replaces its previous run folder, and only a run folder (one holding a tad ``config.json``)."""
    from tadcli.io.rundir import CONFIG_FILE

    if run_dir.exists() and not (run_dir / CONFIG_FILE).is_file():
        raise TadError(f"{run_dir}: exists and is not a tad run; choose another --out for the demo")


def demo(
    out: str | Path = "demo",
    num_videos: int = 24,
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    reporter_factory: Callable[[], object] | None = None,
) -> DemoReport:
    """Run the demo into ``out``.

    Args:
        out: the demo folder.
        num_videos: synthetic videos (at least 5: train, val and test need some).
        epochs: training epochs (``None``: the ``tiny`` preset's).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seed of the synthetic dataset (training uses the preset's seed).
        progress: ``(description, done, total)`` for dataset writing, evaluation and detection.
        reporter_factory: the training display (see :func:`tadcli.services.train.train`).
    """
    from tadcli.data.prepared import load_prepared_dataset
    from tadcli.io.events import write_events
    from tadcli.services.detect import detect
    from tadcli.services.eval import evaluate_run
    from tadcli.services.prepare import prepare_synthetic
    from tadcli.services.train import TrainRequest, train

    if num_videos < 5:
        raise TadError(f"--videos must be at least 5 (train, val and test subsets), got {num_videos}")
    if epochs is not None and epochs < 1:
        raise TadError(f"--epochs must be at least 1, got {epochs}")
    out = check_output_dir(out, "demo folder")
    data_dir, run_dir = out / "data", out / "run"
    _check_previous_run(run_dir)  # before minutes of work, not after

    report = prepare_synthetic(data_dir, num_videos=num_videos, num_classes=DEMO_CLASSES, seed=seed, progress=progress)
    if not report.usable:
        raise TadError(f"{data_dir}: the synthetic dataset is not usable:\n{report.summary()}")

    if run_dir.exists():
        shutil.rmtree(run_dir)  # the previous demo run (checked above)
    overrides = [f"train.epochs={epochs}"] if epochs is not None else []
    if epochs is not None:
        overrides.append(f"train.warmup_epochs={min(epochs - 1, 2)}")
    training = train(TrainRequest(DEMO_PRESET, data_dir, run_dir, overrides, device=device, reporter_factory=reporter_factory))

    test = evaluate_run(run_dir, data_dir, subset="test", device=device, progress=progress)
    dataset = load_prepared_dataset(data_dir)
    held_out = next(video for video in dataset.videos.values() if video.subset == "test")
    detection = detect(
        [held_out.path],
        out / "events.json",
        run_dir,
        plot=out / "timeline.png",
        annotations=data_dir / "manifest.json",
        device=device,
        progress=progress,
    )
    found = [video.events for video in detection.videos if video.events is not None]
    subtitles = write_events(out / "events.srt", detection.model, found, "srt")
    return DemoReport(
        dataset=data_dir,
        run=run_dir,
        training=training,
        test=test,
        video=held_out.path,
        num_events=sum(len(video.events) for video in found),
        written=[*detection.written, *subtitles],
    )
