"""The commands of ``tad``: each turns its options into one call of a service in :mod:`tadcli.services` and
hands the result to one renderer of :mod:`tadcli.cli.render`.

Argument checks that need no service come first (the service imports take a moment; a usage error should
not). Services are imported inside the commands, so that ``tad --help`` imports no torch. The commands are
registered on the app in :mod:`tadcli.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tadcli.cli.errors import user_errors
from tadcli.cli.options import (
    DecoderOpt,
    AnnotationFormat,
    BatchOpt,
    DatasetName,
    DeviceOpt,
    EventFormat,
    FeatureFormat,
    PresetOpt,
    SetOpt,
    VideosArg,
    WorkersOpt,
)
from tadcli.cli.render import (
    progress_bar,
    render_demo_report,
    render_detect_report,
    render_eval,
    render_extract_report,
    render_memory_plan,
    render_prepare_report,
    render_preset_list,
    render_review_report,
    render_train_summary,
)
from tadcli.cli.train_display import TrainingDisplay
from tadcli.io.paths import is_stdout

if TYPE_CHECKING:
    from tadcli.evaluation.report import EvalReport


# -------------------------------------------------------------------------------------------- demo
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the dataset, the run and the detection outputs.")] = Path("demo"),
    videos: Annotated[int, typer.Option("--videos", min=5, help="Synthetic videos to write (train/val/test).")] = 24,
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help="Training epochs. Default: the tiny preset's. 2 for a smoke run.")
    ] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Run the whole system with no download: synthetic videos -> train tiny -> test mAP -> detect a held-out video.

    Writes OUT/data (dataset), OUT/run (run folder), OUT/events.json, OUT/events.srt and OUT/timeline.png.
    A few minutes on a laptop CPU with the defaults; '--videos 8 --epochs 2' for a one-minute smoke run.
    """
    from tadcli.services.demo import demo as run_demo

    with user_errors():
        with progress_bar() as progress:
            report = run_demo(out, num_videos=videos, epochs=epochs, device=device, progress=progress,
                              reporter_factory=TrainingDisplay)
    render_demo_report(report)


# ----------------------------------------------------------------------------------------- prepare
def prepare(
    dataset: Annotated[
        Optional[DatasetName], typer.Argument(help="Dataset whose official annotation files are read.")
    ] = None,
    annotations: Annotated[
        Optional[Path], typer.Option(help="Annotation file or folder, as the dataset's owners distribute it.")
    ] = None,
    videos: Annotated[
        Optional[str],
        typer.Option(
            help="Folder of the video files; omit to prepare the annotations alone "
            "(synthetic: the number of videos to generate)."
        ),
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder to write the prepared dataset to.")] = None,
    check: Annotated[
        Optional[Path], typer.Option(help="Re-validate an already prepared dataset folder instead.")
    ] = None,
    annotation_format: Annotated[
        Optional[AnnotationFormat],
        typer.Option("--format", help="Annotation format, when not detected (EPIC: choose verb or noun)."),
    ] = None,
    class_list: Annotated[
        Optional[Path],
        typer.Option(
            help="Class names, one per line (line i names class index i), replacing the class list of "
            "ActivityNet-style, custom and Multi-THUMOS files; Multi-THUMOS: all 65 names, in index order."
        ),
    ] = None,
    blocked: Annotated[
        Optional[Path],
        typer.Option(
            help="Videos to remove from the evaluated subset: a JSON list or one id per line "
            "(ActivityNet: OpenTAD's blocked.json of videos no longer available)."
        ),
    ] = None,
    classes: Annotated[int, typer.Option(help="Synthetic only: number of action classes.")] = 4,
    seed: Annotated[int, typer.Option(help="Synthetic only: random seed (same seed, same dataset).")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel video probes (and proxy transcodes).")] = 2,
    decoder: DecoderOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an output folder that holds another dataset or files that are not a dataset."
        ),
    ] = False,
    proxy: Annotated[
        bool,
        typer.Option(
            "--proxy",
            help="Also transcode every video once to a proxy at the size and frame rate the presets read "
            "(faster training and evaluation; times stay the original's seconds). Resumable after Ctrl-C.",
        ),
    ] = False,
    proxy_preset: Annotated[
        Optional[list[str]],
        typer.Option(help="With --proxy: a preset the proxies must serve (repeatable). Default: the dataset's presets."),
    ] = None,
) -> None:
    """Turn official annotation files and a video folder into one checked dataset (or --check one).

    The dataset is built beside --out and put in place only when complete: a failure, an unusable
    re-run or Ctrl-C leaves an existing dataset as it was.
    """
    # arguments first: the service imports take a moment, a usage error should not
    if check is None and dataset is None:
        raise typer.BadParameter("give a DATASET to prepare, or --check DIR", param_hint="DATASET")
    if check is None and out is None:
        raise typer.BadParameter("--out DIR is required", param_hint="--out")
    if dataset is not None and dataset is not DatasetName.synthetic and check is None and annotations is None:
        raise typer.BadParameter(f"{dataset.value} needs --annotations PATH", param_hint="--annotations")
    num_videos = 24
    if dataset is DatasetName.synthetic and videos is not None:
        try:
            num_videos = int(videos)
        except ValueError:
            raise typer.BadParameter(f"synthetic takes a number of videos, got {videos!r}", param_hint="--videos")
    from tadcli.services import prepare as service

    with user_errors():
        _use_decoder(decoder)
        with progress_bar() as progress:
            if check is not None:
                report = service.check_dataset(check, workers=workers, progress=progress)
            elif dataset is DatasetName.synthetic:
                report = service.prepare_synthetic(
                    out, num_videos=num_videos, num_classes=classes, seed=seed, force=force, progress=progress,
                    proxy=proxy, proxy_presets=proxy_preset, workers=workers,
                )
            else:
                report = service.prepare_dataset(
                    dataset.value,
                    annotations,
                    Path(videos) if videos is not None else None,
                    out,
                    annotation_format=annotation_format.value if annotation_format is not None else None,
                    class_list=class_list,
                    blocked=blocked,
                    workers=workers,
                    force=force,
                    proxy=proxy,
                    proxy_presets=proxy_preset,
                    progress=progress,
                )
    render_prepare_report(report)
    if proxy and report.usable:
        typer.echo(service.proxy_summary(out), err=True)
    if not report.usable:
        raise typer.Exit(code=2)


# ------------------------------------------------------------------------------------------- train
def train(
    preset: Annotated[
        Optional[str],
        typer.Option("--preset", "-p", help="Preset name (see 'tad presets list') or YAML file. Default: tiny."),
    ] = None,
    data: Annotated[Optional[Path], typer.Option(help="A dataset folder written by 'tad prepare'.")] = None,
    overrides: SetOpt = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Run folder to create. Default: runs/<preset>-<dataset>-<time>.")
    ] = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="Continue this run folder exactly where its last checkpoint stands.")
    ] = None,
    nproc: Annotated[int, typer.Option(help="Training processes on this machine (DDP; gloo on CPU, NCCL on GPUs).")] = 1,
    device: DeviceOpt = "auto",
    workers: Annotated[
        Optional[int],
        typer.Option(
            help="Decoding processes per training process. Default: the preset's train.num_workers, else chosen "
            "from the cores and the measured decode-to-compute ratio (README: Training)."
        ),
    ] = None,
    threads: Annotated[
        Optional[int], typer.Option(help="CPU threads per training process. Default: the cores shared among processes.")
    ] = None,
    decoder: DecoderOpt = None,
) -> None:
    """Train AdaTAD end to end on a prepared dataset; writes a run folder that 'tad eval --run' and 'tad detect' read.

    Ctrl-C writes a resumable checkpoint and exits with code 130; 'tad train --resume RUN' continues it.
    Multi-GPU: 'tad train --nproc N ...' or 'torchrun --nproc_per_node N -m tadcli train ...'.
    """
    from tadcli.services.train import TrainRequest
    from tadcli.services.train import train as run_training

    request = TrainRequest(
        preset=preset,
        data=data,
        out=out,
        overrides=tuple(overrides or ()),
        resume=resume,
        device=device,
        num_workers=workers,
        threads=threads,
        reporter_factory=TrainingDisplay,
    )
    with user_errors():
        _use_decoder(decoder)
        summary = run_training(request, nproc=nproc)
    if summary is None:  # a worker rank of torchrun: rank 0 reports
        return
    render_train_summary(summary)


# -------------------------------------------------------------------------------------------- eval
def _parse_tiou(text: Optional[str]) -> Optional[list[float]]:
    """'0.3,0.4,0.5' -> [0.3, 0.4, 0.5], each float parsed exactly as written."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint="--tiou") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise typer.BadParameter(f"thresholds must lie in (0, 1], got {text!r}", param_hint="--tiou")
    return values


def eval_(
    predictions: Annotated[
        Optional[Path], typer.Option(help="ActivityNet-format results JSON: {'results': {video: [...]}}.")
    ] = None,
    annotations: Annotated[
        Optional[Path],
        typer.Option(
            help="Ground truth: ActivityNet-style or OpenTAD JSON, THUMOS14 per-class txt folder, a prepared "
            "manifest.json, or any format 'tad prepare' reads."
        ),
    ] = None,
    annotation_format: Annotated[
        Optional[AnnotationFormat],
        typer.Option("--format", help="Ground-truth format, when not detected (EPIC: choose verb or noun)."),
    ] = None,
    subset: Annotated[
        Optional[str],
        typer.Option(
            help="Ground-truth subset to score, exact and case-sensitive. Default: the --dataset profile's "
            "evaluation subset (THUMOS14 txt: 'test'); else 'validation' if present, else the only subset."
        ),
    ] = None,
    tiou: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated tIoU thresholds, used exactly as written. Default: the --dataset profile's; "
            "without --dataset, ActivityNet's 0.5:0.05:0.95."
        ),
    ] = None,
    dataset: Annotated[
        Optional[DatasetName], typer.Option(help="Dataset profile giving default thresholds and subset.")
    ] = None,
    json_out: Annotated[
        Optional[Path],
        typer.Option("--json", help="Also write the scores to this JSON file ('-': standard output, the table to stderr)."),
    ] = None,
    csv_out: Annotated[
        Optional[Path], typer.Option("--csv", help="Also write the per-class AP table to this CSV file.")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Reject predictions and ground-truth instances whose end precedes their start (by default "
            "they are scored as the official evaluator scores them, with a warning or note).",
        ),
    ] = False,
    run: Annotated[
        Optional[Path], typer.Option(help="Evaluate a run folder written by 'tad train' (its saved EMA model).")
    ] = None,
    data: Annotated[
        Optional[Path], typer.Option(help="With --run: the prepared dataset. Default: the one the run trained on.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="With --run: folder for the results and metrics files. Default: RUN/eval.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="With --run: windows per forward pass.")] = 2,
    workers: Annotated[int, typer.Option(min=0, help="With --run: decoding processes.")] = 0,
    device: Annotated[str, typer.Option(help="With --run: auto, cpu, cuda or cuda:N.")] = "auto",
    diagnose: Annotated[
        Optional[Path],
        typer.Option(
            help="Also write DETAD's error diagnosis to this folder: diagnosis.json (false-positive, sensitivity "
            "and false-negative analyses) and PNG plots with matplotlib (pip install 'tadcli[plots]'). Bins follow "
            "--dataset (THUMOS14- or ActivityNet-style); thresholds --tiou, else DETAD's (THUMOS14 0.5, ActivityNet "
            "0.5:0.05:0.95)."
        ),
    ] = None,
    decoder: DecoderOpt = None,
) -> None:
    """Score detections with the official ActivityNet detection mAP: a results file (--predictions) or a
    trained run on a prepared dataset (--run); --diagnose DIR adds DETAD's error diagnosis."""
    thresholds = _parse_tiou(tiou)
    json_to_stdout = is_stdout(json_out)
    json_file = None if json_to_stdout else json_out
    with user_errors():
        _use_decoder(decoder)
        if run is not None:
            if predictions is not None or annotations is not None or thresholds is not None:
                raise typer.BadParameter("--run takes its thresholds and ground truth from the run and its dataset")
            report = _eval_run(
                run, data, subset, json_file, out, csv_out, strict, device, batch_size, workers, diagnose
            )
        else:
            report = _eval_predictions(
                predictions, annotations, subset, thresholds, dataset, json_file, annotation_format, strict, csv_out,
                diagnose,
            )
    render_eval(report, json_to_stdout)


def _eval_run(
    run: Path,
    data: Optional[Path],
    subset: Optional[str],
    json_file: Optional[Path],
    out: Optional[Path],
    csv_out: Optional[Path],
    strict: bool,
    device: str,
    batch_size: int,
    workers: int,
    diagnose: Optional[Path],
) -> EvalReport:
    """``tad eval --run``: the run's model on its prepared dataset."""
    from tadcli.services.eval import evaluate_run

    if csv_out is not None or strict:
        raise typer.BadParameter("--csv and --strict apply to a results file (--predictions)")
    with progress_bar() as progress:
        return evaluate_run(
            run,
            data,
            subset=subset,
            json_out=json_file,
            out_dir=out,
            device=device,
            batch_size=batch_size,
            num_workers=workers,
            progress=progress,
            diagnose_dir=diagnose,
        )


def _eval_predictions(
    predictions: Optional[Path],
    annotations: Optional[Path],
    subset: Optional[str],
    thresholds: Optional[list[float]],
    dataset: Optional[DatasetName],
    json_file: Optional[Path],
    annotation_format: Optional[AnnotationFormat],
    strict: bool,
    csv_out: Optional[Path],
    diagnose: Optional[Path],
) -> EvalReport:
    """``tad eval --predictions``: a results file against a ground-truth file."""
    if predictions is None or annotations is None:
        raise typer.BadParameter("--predictions FILE and --annotations FILE are required")
    from tadcli.services.eval import evaluate_predictions

    return evaluate_predictions(
        predictions,
        annotations,
        subset=subset,
        tiou=thresholds,
        dataset=dataset.value if dataset is not None else None,
        json_out=json_file,
        annotation_format=annotation_format.value if annotation_format is not None else None,
        strict=strict,
        csv_out=csv_out,
        diagnose_dir=diagnose,
    )


# ------------------------------------------------------------------------------------------ detect
def detect(
    videos: VideosArg,
    out: Annotated[
        Path, typer.Option(help="Events file to write (srt with several videos: one file per video); '-': standard output.")
    ] = Path(
        "events.json"
    ),
    run: Annotated[Optional[Path], typer.Option(help="A run folder written by 'tad train' (holds everything).")] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option(help="A released AdaTAD/OpenTAD checkpoint (needs --preset and --classes).")
    ] = None,
    preset: Annotated[Optional[str], typer.Option(help="With --checkpoint: its preset name or YAML file.")] = None,
    classes: Annotated[
        Optional[Path],
        typer.Option(help="With --checkpoint: class names, one per line, in the model's order; or 'thumos14' "
                     "(the list of the released THUMOS14 checkpoints ships with tad)."),
    ] = None,
    dataset: Annotated[
        Optional[DatasetName], typer.Option(help="With --checkpoint: the protocol it was trained on. Default: thumos14.")
    ] = None,
    events_format: Annotated[EventFormat, typer.Option("--format", help="Output format.")] = EventFormat.JSON,
    threshold: Annotated[
        Optional[float],
        typer.Option(help="Report events scoring at least this (0-1). Default: 0.2, and 0 for --format activitynet "
                     "(a results file to be scored keeps every candidate)."),
    ] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Report at most this many events per video.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also draw a timeline PNG: a row per class, shade = score.")] = None,
    annotations: Annotated[
        Optional[Path],
        typer.Option(help="Ground truth to draw under the detections in --plot and --html (any format 'tad prepare' reads)."),
    ] = None,
    html: Annotated[
        Optional[Path], typer.Option(help="Also write the HTML review page (as 'tad review' does): video, timeline, filters.")
    ] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 1,
    workers: WorkersOpt = 0,
    decoder: DecoderOpt = None,
) -> None:
    """Detect actions in raw videos: start and end in seconds, class and score of each.

    Examples: 'tad detect clip.mp4 --run runs/my-run --out events.json';
    'tad detect videos/ --checkpoint adatad_thumos_s.pth --preset small-768 --classes classes.txt --format srt'.
    Exit code 1 when some video could not be read (the others are written).
    """
    from tadcli.services.detect import detect as run_detect

    with user_errors():
        _use_decoder(decoder)
        source = _model_source(run, checkpoint)
        with progress_bar() as progress:
            report = run_detect(
                videos,
                out,
                source,
                preset=preset,
                classes=classes,
                profile=dataset.value if dataset is not None else None,
                format=events_format.value,
                threshold=threshold,
                top_k=top_k,
                plot=plot,
                annotations=annotations,
                html=html,
                device=device,
                batch_size=batch_size,
                num_workers=workers,
                progress=progress,
            )
    render_detect_report(report, out)
    if report.failed:
        raise typer.Exit(code=1)


def _use_decoder(decoder: Optional[str]) -> None:
    """``--decoder X``: TAD_DECODER=X for this command and the processes it starts (DataLoader and DDP workers)."""
    if decoder is not None:
        from tadcli.data.video import use_decoder

        use_decoder(decoder)


def _model_source(run: Optional[Path], checkpoint: Optional[Path]) -> Path:
    if (run is None) == (checkpoint is None):
        raise typer.BadParameter("give either --run RUN or --checkpoint FILE (with --preset and --classes)")
    return run if run is not None else checkpoint


# ------------------------------------------------------------------------------------------ review
def review(
    events: Annotated[Path, typer.Argument(help="An events file written by 'tad detect' (json, csv, srt or activitynet).")],
    out: Annotated[Path, typer.Option(help="The HTML page to write (one self-contained file; videos are linked).")],
    annotations: Annotated[
        Optional[Path],
        typer.Option(help="Ground truth to draw beneath the predictions (any format 'tad eval' reads)."),
    ] = None,
    annotation_format: Annotated[
        Optional[AnnotationFormat], typer.Option("--format", help="Ground-truth format, when not detected.")
    ] = None,
    video: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--video",
            help="A video of the events file, matched by file name without extension (repeatable). Default: the "
            "paths a json or csv file names; an srt file's one video; activitynet files need it.",
        ),
    ] = None,
) -> None:
    """Write an HTML page to review detections: the video beside a timeline of its events, per class.

    Example: 'tad review events.json --annotations gt.json --out review.html', then open review.html in a browser.
    """
    from tadcli.services.review import review as run_review

    with user_errors():
        report = run_review(
            events,
            out,
            annotations=annotations,
            videos=video or (),
            annotation_format=annotation_format.value if annotation_format is not None else None,
        )
    render_review_report(report)


# ----------------------------------------------------------------------------------------- extract
def extract(
    videos: VideosArg,
    out: Annotated[Path, typer.Option(help="Folder for one features file and one JSON sidecar per video.")],
    run: Annotated[Optional[Path], typer.Option(help="Extract with this run's backbone (its trained adapters).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Or extract with this preset's backbone.")] = None,
    weights: Annotated[
        Optional[Path], typer.Option(help="With --preset: pretrained backbone weights (VideoMAE, mmaction, Hugging Face).")
    ] = None,
    overrides: SetOpt = None,
    dataset: Annotated[
        Optional[DatasetName], typer.Option(help="With --preset: the sampling protocol (snippet stride). Default: thumos14.")
    ] = None,
    features_format: Annotated[FeatureFormat, typer.Option("--format", help="Array file format.")] = FeatureFormat.NPY,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 1,
    workers: WorkersOpt = 0,
    decoder: DecoderOpt = None,
) -> None:
    """Write backbone features [T, C] of whole videos, with a sidecar that maps feature index to seconds.

    Exit code 1 when some video could not be read (the others are written).
    """
    from tadcli.services.extract import extract as run_extract

    with user_errors():
        _use_decoder(decoder)
        with progress_bar() as progress:
            report = run_extract(
                videos,
                out,
                run=run,
                preset=preset,
                weights=weights,
                overrides=overrides or [],
                profile=dataset.value if dataset is not None else None,
                format=features_format.value,
                device=device,
                batch_size=batch_size,
                num_workers=workers,
                progress=progress,
            )
    render_extract_report(report, out)
    if report.failed:
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------- profile-memory
def profile_memory(
    preset: PresetOpt = "tiny",
    overrides: SetOpt = None,
    frames: Annotated[Optional[int], typer.Option(help="Frames per window (input.frames).")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Frame size in pixels (input.image_size).")] = None,
    batch: Annotated[
        Optional[int],
        typer.Option(
            help="Videos per micro-batch on the device (train.micro_batch_size). Default: the preset's (the "
            "reference's per-GPU batch), as 'tad train' runs it; accumulation reaches train.batch_size."
        ),
    ] = None,
    mode: Annotated[
        Optional[str],
        typer.Option(
            help="Profile one mode: full, full-checkpointing, frozen, tia, tia-no-checkpointing, side, or preset "
            "(the preset as it is). Default: every mode."
        ),
    ] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            help="fp32, bf16 or fp16. Default: the preset's mixed precision on CUDA (bf16, or fp16 on GPUs "
            "without bf16), fp32 on the CPU."
        ),
    ] = None,
    gpu: Annotated[
        Optional[str],
        typer.Option(help="GPU to fit: A100-40GB, A100-80GB, H100, H200, L4, L40S, RTX-3090, RTX-4090, V100-32GB, ..."),
    ] = None,
    memory: Annotated[Optional[float], typer.Option("--memory", help="Memory budget in GiB, instead of --gpu.")] = None,
    device: Annotated[
        Optional[str],
        typer.Option(help="cuda or cpu: the device to predict for. Default: cuda (with --measure: the available one)."),
    ] = None,
    measure: Annotated[bool, typer.Option(help="Also run the real step here and print its measured peak.")] = False,
    classes: Annotated[int, typer.Option(help="Detector classes (20 = THUMOS14).")] = 20,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table to this JSON file.")] = None,
) -> None:
    """Predict the peak GPU memory of one training step and of inference, per adaptation mode, without
    allocating it; say whether it fits a GPU and, if not, the nearest configurations that do."""
    from tadcli.services.profile_memory import profile_memory as service

    with user_errors():
        with progress_bar() as progress:
            plan = service(
                preset,
                overrides or [],
                frames=frames,
                image_size=image_size,
                batch=batch,
                mode=mode,
                precision=precision,
                gpu=gpu,
                memory_gb=memory,
                device=device,
                measure_peak=measure,
                num_classes=classes,
                json_out=json_out,
                progress=progress,
            )
    render_memory_plan(plan)


# ----------------------------------------------------------------------------------------- presets
def presets_root(context: typer.Context) -> None:
    """List the shipped presets (as 'tad presets list'), or show one with 'tad presets show NAME'."""
    if context.invoked_subcommand is None:
        presets_list(dataset=None)


def presets_list(
    dataset: Annotated[
        Optional[DatasetName], typer.Option(help="Only the recipes of this dataset (e.g. activitynet).")
    ] = None,
) -> None:
    """List the shipped presets, optionally only one dataset's recipes."""
    from tadcli.services.presets import list_presets

    with user_errors():
        rows = list_presets(dataset.value if dataset is not None else None)
    render_preset_list(rows, dataset.value if dataset is not None else None)


def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name or path to a YAML file.")],
    overrides: SetOpt = None,
) -> None:
    """Print a preset fully resolved: defaults, inheritance and overrides applied."""
    from tadcli.services.presets import show_preset

    with user_errors():
        text = show_preset(name, overrides or [])
    typer.echo(text, nl=False)
