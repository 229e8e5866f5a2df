"""The ``tad`` command line: argument parsing and printing only.

Every command turns its options into one call of a service in :mod:`tadcli.services` and renders
the result. Errors that the user can fix (:class:`tadcli.errors.TadError`) become one line on stderr
and exit code 2; ``--debug`` shows the traceback instead.

Examples::

    tad prepare synthetic --out data/synthetic
    tad prepare thumos14 --annotations thumos14.json --videos videos/ --out data/thumos14
    tad presets list
    tad presets show giant-1536 --set train.epochs=5
    tad eval --predictions results.json --annotations thumos14.json --dataset thumos14
    tad profile-memory --preset giant-1536 --gpu A100-80GB
"""

from __future__ import annotations

import enum
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from tadcli import __version__
from tadcli.errors import NotBuiltYetError, TadError

app = typer.Typer(
    name="tad",
    help="End-to-end temporal action detection (AdaTAD): find each action's start, end and class in a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
presets_app = typer.Typer(help="List the shipped presets or show one fully resolved.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")

console = Console()
err_console = Console(stderr=True)


class _State:
    debug = False


class DatasetName(str, enum.Enum):
    thumos14 = "thumos14"
    activitynet = "activitynet"
    charades = "charades"
    multithumos = "multithumos"
    epic_kitchens = "epic-kitchens"
    custom = "custom"
    synthetic = "synthetic"


class AnnotationFormat(str, enum.Enum):
    """Mirrors tadcli.data.annotations.ANNOTATION_FORMATS (checked by a test)."""

    activitynet_json = "activitynet-json"
    thumos14_txt = "thumos14-txt"
    activitynet_bsn = "activitynet-bsn"
    charades_csv = "charades-csv"
    multithumos_json = "multithumos-json"
    epic_kitchens_verb = "epic-kitchens-verb"
    epic_kitchens_noun = "epic-kitchens-noun"
    custom_csv = "custom-csv"
    custom_json = "custom-json"


class EvalDataset(str, enum.Enum):
    thumos14 = "thumos14"
    activitynet = "activitynet"
    charades = "charades"
    multithumos = "multithumos"
    epic_kitchens = "epic-kitchens"


# Options shared by several commands, declared once.
PresetOpt = Annotated[
    str, typer.Option("--preset", "-p", help="Preset name (see 'tad presets list') or path to a YAML file.")
]
SetOpt = Annotated[
    Optional[List[str]],
    typer.Option("--set", help="Override one preset value, e.g. --set train.epochs=5 (repeatable)."),
]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a :class:`TadError` into one line and exit code 2 (a traceback only with --debug)."""
    try:
        yield
    except TadError as exc:
        if _State.debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback ``(description, done, total)`` rendered with rich on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        tasks: dict[str, int] = {}

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total)
            progress.update(tasks[description], completed=done, total=total)

        yield update


def _version(value: bool) -> None:
    if value:
        console.print(f"tad {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    """End-to-end temporal action detection (AdaTAD)."""
    _State.debug = debug


# ----------------------------------------------------------------------------------------- prepare
@app.command()
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
        Optional[Path], typer.Option(help="Class names, one per line, for files that only hold indices.")
    ] = None,
    classes: Annotated[int, typer.Option(help="Synthetic only: number of action classes.")] = 4,
    seed: Annotated[int, typer.Option(help="Synthetic only: random seed (same seed, same dataset).")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel video probes.")] = 2,
) -> None:
    """Turn official annotation files and a video folder into one checked dataset (or --check one)."""
    from tadcli.services import prepare as service

    with _user_errors():
        if check is not None:
            with _progress_bar() as progress:
                report = service.check_dataset(check, workers=workers, progress=progress)
        elif dataset is None:
            raise typer.BadParameter("give a DATASET to prepare, or --check DIR", param_hint="DATASET")
        elif out is None:
            raise typer.BadParameter("--out DIR is required", param_hint="--out")
        elif dataset is DatasetName.synthetic:
            try:
                num_videos = int(videos) if videos is not None else 24
            except ValueError:
                raise typer.BadParameter(f"synthetic takes a number of videos, got {videos!r}", param_hint="--videos")
            with _progress_bar() as progress:
                report = service.prepare_synthetic(
                    out, num_videos=num_videos, num_classes=classes, seed=seed, progress=progress
                )
        else:
            if annotations is None:
                raise typer.BadParameter(f"{dataset.value} needs --annotations PATH", param_hint="--annotations")
            with _progress_bar() as progress:
                report = service.prepare_dataset(
                    dataset.value,
                    annotations,
                    Path(videos) if videos is not None else None,
                    out,
                    annotation_format=annotation_format.value if annotation_format is not None else None,
                    class_list=class_list,
                    workers=workers,
                    progress=progress,
                )
    _render_prepare_report(report)
    if not report.usable:
        raise typer.Exit(code=2)


def _render_prepare_report(report) -> None:  # noqa: ANN001 - tadcli.data.manifest.DatasetReport
    # file names and decoder messages hold brackets: print them as plain text, not rich markup
    console.print(report.summary(), markup=False, highlight=False)


# ------------------------------------------------------------------------------------------- train
@app.command()
def train(
    preset: PresetOpt = "tiny",
    data: Annotated[Optional[Path], typer.Option(help="A dataset folder written by 'tad prepare'.")] = None,
    overrides: SetOpt = None,
    out: Annotated[Path, typer.Option(help="Run folder for checkpoints and logs.")] = Path("runs/latest"),
) -> None:
    """Train AdaTAD end to end on a prepared dataset (not built yet)."""
    from tadcli.config.loader import load_preset

    with _user_errors():
        load_preset(preset, overrides or [])
        raise NotBuiltYetError(f"'tad train' is not built yet in this version (preset '{preset}' is valid)")


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


@app.command("eval")
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
        Optional[EvalDataset], typer.Option(help="Dataset profile giving default thresholds and subset.")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the scores to this JSON file.")] = None,
    run: Annotated[Optional[Path], typer.Option(help="Score a trained run folder (not built yet).")] = None,
) -> None:
    """Score detections with the official ActivityNet detection mAP."""
    thresholds = _parse_tiou(tiou)
    with _user_errors():
        if run is not None:
            raise NotBuiltYetError("'tad eval --run' is not built yet; score a results file with --predictions")
        if predictions is None or annotations is None:
            raise typer.BadParameter("--predictions FILE and --annotations FILE are required")
        from tadcli.services.eval import evaluate_predictions

        report = evaluate_predictions(
            predictions,
            annotations,
            subset=subset,
            tiou=thresholds,
            dataset=dataset.value if dataset is not None else None,
            json_out=json_out,
            annotation_format=annotation_format.value if annotation_format is not None else None,
        )
    _render_eval_report(report)


def _render_eval_report(report) -> None:  # noqa: ANN001 - tadcli.services.eval.EvalReport
    table = Table(title=f"Detection mAP on '{report.subset}'")
    table.add_column("tIoU", justify="right")
    table.add_column("mAP (%)", justify="right")
    table.add_column("recall (%)", justify="right")
    for threshold, value, recall in zip(report.tiou_thresholds, report.mAP, report.recall):
        table.add_row(f"{threshold:g}", f"{100 * value:.2f}", f"{100 * recall:.2f}")
    table.add_row("average", f"{100 * report.average_mAP:.2f}", "", style="bold")
    console.print(table)
    console.print(f"{report.num_ground_truth} ground-truth instances, {report.num_predictions} predictions")
    lowest = ", ".join(f"{label} {100 * ap:.2f}" for label, ap in report.lowest_classes)
    console.print(f"lowest AP (%, mean over tIoU): {lowest}", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    if report.json_path is not None:
        console.print(f"scores written to {report.json_path}", highlight=False)


# ------------------------------------------------------------------------------------------ detect
@app.command()
def detect(
    video: Annotated[Path, typer.Argument(help="Video file to run detection on.")],
    out: Annotated[Path, typer.Option(help="Where to write the detected events (JSON).")] = Path("events.json"),
    preset: PresetOpt = "tiny",
    overrides: SetOpt = None,
) -> None:
    """Detect actions in one video and write their start, end, class and score (not built yet)."""
    with _user_errors():
        raise NotBuiltYetError("'tad detect' is not built yet in this version")


# ---------------------------------------------------------------------------------- profile-memory
@app.command("profile-memory")
def profile_memory(
    preset: PresetOpt = "tiny",
    overrides: SetOpt = None,
    frames: Annotated[Optional[int], typer.Option(help="Frames per window (input.frames).")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Frame size in pixels (input.image_size).")] = None,
    batch: Annotated[
        int,
        typer.Option(
            help="Videos per micro-batch on the device; the preset's train.batch_size is reached by gradient "
            "accumulation."
        ),
    ] = 1,
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

    with _user_errors():
        with _progress_bar() as progress:
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
    _render_memory_plan(plan)


def _memory_unit(values: list[int]) -> tuple[str, int]:
    return ("GiB", 1 << 30) if max(values, default=0) >= 1 << 30 else ("MiB", 1 << 20)


def _render_memory_plan(plan) -> None:  # noqa: ANN001 - tadcli.services.profile_memory.MemoryPlan
    target = plan.target
    where = f"CUDA, {target.gpu.name}" if target.gpu else ("CUDA" if target.device == "cuda" else "CPU")
    console.print(
        f"{plan.preset}: {plan.frames} frames, {plan.image_size} px, {plan.batch} video(s) per micro-batch x "
        f"{plan.accumulation} accumulation, {target.precision}, predicted for {where} "
        f"(attention kernel: {target.attention_kernel})",
        highlight=False,
    )
    unit, scale = _memory_unit([row.profile.training.peak for row in plan.rows])
    table = Table(title=f"Peak memory of one training step and of inference ({unit})")
    columns = ["mode", "params", "trainable", "train", "weights", "grads", "optim.", "EMA", "activ.", "infer."]
    measured = any(row.measured is not None for row in plan.rows)
    if measured:
        columns += ["measured train", "measured infer."]
    if plan.capacity_label is not None:
        columns.append(f"fits {plan.capacity_label}")
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for row in plan.rows:
        p, t = row.profile, row.profile.training
        cells = [
            row.mode + (" (preset)" if row.is_preset and row.mode != "preset" else ""),
            f"{p.total_parameters / 1e6:.1f}M",
            f"{p.trainable_parameters / 1e6:.2f}M",
            *(f"{v / scale:.2f}" for v in (t.peak, t.weights, t.gradients, t.optimizer, t.ema, t.activations)),
            f"{p.inference.peak / scale:.2f}" if p.inference else "-",
        ]
        if measured:
            m = row.measured
            cells += [f"{m.training / scale:.2f} ({t.peak / m.training - 1:+.1%})",
                      f"{m.inference / scale:.2f} ({p.inference.peak / m.inference - 1:+.1%})"]
        if row.fits is not None:
            cells.append(f"{'yes' if row.fits else 'no'} (needs {p.required_bytes() / scale:.2f})")
        table.add_row(*cells)
    # a wide table: let it be wider than the 80 columns rich assumes when the output is not a terminal
    (console if console.is_terminal else Console(width=160)).print(table)
    if target.device == "cuda":
        console.print(
            "'needs' = the caching allocator's reserved segments at the peak + 0.5 GiB for the CUDA context; "
            "the peaks are what torch.cuda.max_memory_allocated reports.",
            highlight=False,
        )
    if measured:
        console.print(f"measured on {plan.rows[0].measured.device}; (+x%) = prediction vs measurement", highlight=False)
    focus = plan.focus_row()
    if focus.fits is False:
        if plan.suggestions:
            console.print(
                f"'{plan.focus}' does not fit {plan.capacity_label}; the nearest configurations that do (each profiled):",
                soft_wrap=True,
            )
            for suggestion in plan.suggestions:
                s = suggestion.profile
                console.print(
                    f"  {suggestion.change.description}: train peak {s.training.peak / scale:.2f} {unit}, needs "
                    f"{s.required_bytes() / scale:.2f} {unit}  [{' '.join(suggestion.change.flags)}]",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
        else:
            console.print(f"'{plan.focus}' does not fit {plan.capacity_label}, and no configuration tried fits.")
    if plan.json_path is not None:
        console.print(f"table written to {plan.json_path}", highlight=False)


# ----------------------------------------------------------------------------------------- presets
@presets_app.command("list")
def presets_list() -> None:
    """List the shipped presets."""
    from tadcli.services.presets import list_presets

    with _user_errors():
        rows = list_presets()
    table = Table(title="Shipped presets")
    for column in ("name", "backbone", "adaptation", "frames", "px", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.backbone, row.adaptation, str(row.frames), str(row.image_size), row.description)
    console.print(table)


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name or path to a YAML file.")],
    overrides: SetOpt = None,
) -> None:
    """Print a preset fully resolved: defaults, inheritance and overrides applied."""
    from tadcli.services.presets import show_preset

    with _user_errors():
        text = show_preset(name, overrides or [])
    typer.echo(text, nl=False)


def main() -> None:
    """Entry point of the ``tad`` console script."""
    app()
