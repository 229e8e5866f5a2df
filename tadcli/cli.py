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
import importlib
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, List, Optional

import typer
from typer import rich_utils
from typer.core import TyperGroup
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tadcli import __version__
from tadcli.errors import TadError, TrainingInterrupted, user_error
from tadcli.io.paths import is_stdout

# Click's exceptions, wherever this Typer takes Click from (newer releases carry their own copy)
_click_errors = importlib.import_module(typer.BadParameter.__module__)
_NoArgsIsHelp = getattr(_click_errors, "NoArgsIsHelpError", ())  # Click >= 8.2


class _OneLineUsageErrors(TyperGroup):
    """The ``tad`` group: a bad option or value (``--frames abc``, ``--bogus``) is one line on stderr and exit code
    2, as tad's own errors are, instead of Typer's usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # an Exit's code, else None
        except _NoArgsIsHelp as error:  # 'tad' alone: the help, as Typer shows it
            rich_utils.rich_format_error(error)
            sys.exit(error.exit_code)
        except _click_errors.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
            err_console.print(Text.assemble(("error:", "bold red"), f" {error.format_message()}{hint}"))
            sys.exit(error.exit_code)
        except _click_errors.ClickException as error:
            err_console.print(Text.assemble(("error:", "bold red"), f" {error.format_message()}"))
            sys.exit(error.exit_code)
        except typer.Abort:  # Ctrl-C or end of input at a prompt
            err_console.print(Text("aborted", style="bold red"))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="tad",
    help="End-to-end temporal action detection (AdaTAD): find each action's start, end and class in a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
presets_app = typer.Typer(help="List the shipped presets (the default) or show one fully resolved.")
app.add_typer(presets_app, name="presets")

# Markup off: file names, labels and messages hold square brackets ("data/[draft] labels.csv",
# "expected [start, end]") that rich would otherwise take for style tags and drop.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


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
    custom = "custom"
    synthetic = "synthetic"


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
    """Turn a :class:`TadError` into one line and its exit code (2; 1 for a disk that filled up), and what
    the machine did (an ``OSError`` on a path, a decoding worker killed: :func:`tadcli.errors.user_error`)
    likewise; Ctrl-C into exit code 130 (a traceback only with --debug)."""
    try:
        yield
    except (TadError, OSError, RuntimeError) as exc:
        error = user_error(exc)
        if error is None or _State.debug:
            raise
        err_console.print(Text.assemble(("error:", "bold red"), f" {error}"), soft_wrap=True)
        raise typer.Exit(code=error.exit_code) from None
    except KeyboardInterrupt:
        if _State.debug:
            raise
        err_console.print(Text("interrupted", style="bold red"))  # what a command writes is staged or atomic
        raise typer.Exit(code=130) from None


PROGRESS_INTERVAL_VARIABLE = "TAD_PROGRESS_INTERVAL"  # seconds between two plain progress lines (default 10)
PROGRESS_FRACTION = 0.05  # a plain line when another 5 % is done ...
PROGRESS_LONGEST_WAIT = 3  # ... or, with any progress, after this many intervals


class PlainProgress:
    """Progress as plain lines, for logs (slurm, nohup, a pipe): ``what: done/total (p %), rate/s, ETA h:mm:ss``.

    The one progress mechanism of every command when stderr is not a terminal. :meth:`update` prints a line
    for a task once ``interval`` seconds have passed since its last line (or its start) and another 5 % is
    done, or ``3 x interval`` seconds have passed and anything is done, and a last line when it completes:
    a short task prints nothing, a long one a line every 10-30 s (``TAD_PROGRESS_INTERVAL`` sets the 10).
    :meth:`line` formats one line (``tad train`` prints one per logged step with it).
    """

    def __init__(
        self, console: Console, interval: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.console = console
        self.interval = _progress_interval() if interval is None else interval
        self.clock = clock
        self.tasks: dict[str, dict] = {}

    def line(self, description: str, done: int, total: int, started: float, first_done: int = 0) -> str:
        elapsed = self.clock() - started
        rate = (done - first_done) / elapsed if elapsed > 0 else 0.0
        percent = f" ({100 * done / total:.0f} %)" if total else ""
        text = f"{description}: {done}/{total}{percent}, {rate:.2f}/s"
        if rate > 0 and total >= done:
            text += f", ETA {_clock((total - done) / rate)}"
        return text

    def update(self, description: str, done: int, total: int) -> None:
        now = self.clock()
        # a task is counted from 0 (its first call may already report work done), its rate from its first call
        task = self.tasks.setdefault(
            description, {"started": now, "first": done, "last_time": now, "last_done": 0, "printed": False}
        )
        waited = now - task["last_time"]
        advanced = done - task["last_done"]
        due = (waited >= self.interval and advanced >= PROGRESS_FRACTION * total and advanced > 0) or (
            waited >= PROGRESS_LONGEST_WAIT * self.interval and advanced > 0
        )
        finished = total > 0 and done >= total and advanced > 0 and task["printed"]
        if due or finished:
            self.console.print(self.line(description, done, total, task["started"], task["first"]),
                               markup=False, highlight=False, soft_wrap=True)
            task.update(last_time=now, last_done=done, printed=True)


def _progress_interval() -> float:
    text = os.environ.get(PROGRESS_INTERVAL_VARIABLE, "")
    try:
        return max(0.0, float(text)) if text.strip() else 10.0
    except ValueError:
        return 10.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback ``(description, done, total)``: a rich bar on a terminal, plain lines in a log
    (:class:`PlainProgress`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not err_console.is_terminal:
        yield PlainProgress(err_console).update
        return
    with Progress(
        TextColumn("{task.description}", markup=False),
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


# -------------------------------------------------------------------------------------------- demo
@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the dataset, the run and the detection outputs.")] = Path("demo"),
    videos: Annotated[int, typer.Option("--videos", min=5, help="Synthetic videos to write (train/val/test).")] = 24,
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help="Training epochs. Default: the tiny preset's. 2 for a smoke run.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Run the whole system with no download: synthetic videos -> train tiny -> test mAP -> detect a held-out video.

    Writes OUT/data (dataset), OUT/run (run folder), OUT/events.json, OUT/events.srt and OUT/timeline.png.
    A few minutes on a laptop CPU with the defaults; '--videos 8 --epochs 2' for a one-minute smoke run.
    """
    from tadcli.io.events import READABLE_THRESHOLD
    from tadcli.services.demo import demo as run_demo

    try:
        with _user_errors():
            with _progress_bar() as progress:
                report = run_demo(out, num_videos=videos, epochs=epochs, device=device, progress=progress,
                                  reporter_factory=TrainingDisplay)
    except TrainingInterrupted as interrupted:
        err_console.print(str(interrupted), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    _render_eval_report(report.test, console)
    console.print(
        f"detected {report.num_events} events scoring >= {READABLE_THRESHOLD} in the held-out video {report.video}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"dataset: {report.dataset}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"run:     {report.run}  (tad eval --run {report.run}; tad detect VIDEO --run {report.run})",
                  markup=False, highlight=False, soft_wrap=True)
    for path in report.written:
        console.print(f"wrote    {path}", markup=False, highlight=False, soft_wrap=True)


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
    workers: Annotated[int, typer.Option(help="Parallel video probes.")] = 2,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an output folder that holds another dataset or files that are not a dataset."
        ),
    ] = False,
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

    with _user_errors():
        if check is not None:
            with _progress_bar() as progress:
                report = service.check_dataset(check, workers=workers, progress=progress)
        elif dataset is DatasetName.synthetic:
            with _progress_bar() as progress:
                report = service.prepare_synthetic(
                    out, num_videos=num_videos, num_classes=classes, seed=seed, force=force, progress=progress
                )
        else:
            with _progress_bar() as progress:
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
                    progress=progress,
                )
    _render_prepare_report(report)
    if not report.usable:
        raise typer.Exit(code=2)


def _render_prepare_report(report) -> None:  # noqa: ANN001 - tadcli.data.manifest.DatasetReport
    console.print(report.summary(), soft_wrap=True)  # one line per issue, however long


# ------------------------------------------------------------------------------------------- train
class TrainingDisplay:
    """Progress of ``tad train`` on stderr: a live rich display on a terminal, elsewhere (CI, nohup, slurm) one
    plain line per logged step (:class:`PlainProgress` formats its step count, rate and ETA).

    Built in the main training process (also when ``--nproc`` starts workers), so it must be importable
    by name: the training service receives the class, not an instance.
    """

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self.progress = None
        self.task = None
        self.steps_per_epoch = 1
        self.epochs = 1
        self.plain = PlainProgress(self.console)
        self.started = time.monotonic()
        self.first_step = 0

    def start(self, info) -> None:  # noqa: ANN001 - tadcli.training.reporting.RunStarted
        self.steps_per_epoch, self.epochs = info.steps_per_epoch, info.epochs
        self.started, self.first_step = time.monotonic(), info.global_step
        self.console.print(
            f"training into {info.run_dir} on {info.device} ({info.precision}): {self.epochs} epochs x "
            f"{self.steps_per_epoch} steps; {info.plan_text}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self.progress.start()
            total = self.epochs * self.steps_per_epoch
            self.task = self.progress.add_task("steps", total=total, completed=info.global_step, status="")

    @staticmethod
    def _status(record) -> str:  # noqa: ANN001 - tadcli.training.reporting.StepRecord
        lr = max(record.lr.values()) if record.lr else 0.0
        return (
            f"epoch {record.epoch} loss {record.loss_total:.4f} (cls {record.loss_classification:.4f} "
            f"reg {record.loss_regression:.4f}) lr {lr:.2e} {record.samples_per_second:.1f} videos/s"
        )

    def step(self, record) -> None:  # noqa: ANN001 - StepRecord
        if self.progress is not None:
            self.progress.update(self.task, completed=record.global_step, status=self._status(record))
        else:  # a log: one line per logged step
            line = self.plain.line("step", record.global_step, self.epochs * self.steps_per_epoch, self.started, self.first_step)
            self.message(f"{line} | {self._status(record)}")

    def epoch(self, record) -> None:  # noqa: ANN001 - EpochRecord
        if record.skipped_videos:
            self.message(f"epoch {record.epoch}: {record.skipped_videos} sample(s) replaced: their video failed to decode")

    def evaluation(self, record) -> None:  # noqa: ANN001 - EvalRecord
        per_threshold = " ".join(f"{t:g}:{100 * v:.1f}" for t, v in zip(record.tiou_thresholds, record.mAP))
        self.message(
            f"epoch {record.epoch} {record.subset} mAP (%) {per_threshold} | average {100 * record.average_mAP:.2f}"
        )

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None



@app.command()
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
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[
        Optional[int], typer.Option(help="Decoding processes per training process. Default: the preset's.")
    ] = None,
    threads: Annotated[
        Optional[int], typer.Option(help="CPU threads per training process. Default: the cores shared among processes.")
    ] = None,
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
    try:
        with _user_errors():
            summary = run_training(request, nproc=nproc)
    except TrainingInterrupted as interrupted:
        err_console.print(str(interrupted), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    if summary is None:  # a worker rank of torchrun: rank 0 reports
        return
    _render_train_summary(summary)


def _render_train_summary(summary) -> None:  # noqa: ANN001 - tadcli.training.loop.TrainSummary
    console.print(
        f"trained {summary.epochs} epochs ({summary.global_step} steps) into {summary.run_dir}",
        markup=False,
        highlight=False,
    )
    for title, evaluation in (("last epoch", summary.last_evaluation), ("best epoch", summary.best_evaluation)):
        if evaluation is None:
            continue
        per_threshold = ", ".join(f"{t:g}: {100 * v:.2f}" for t, v in zip(evaluation["tiou_thresholds"], evaluation["mAP"]))
        console.print(
            f"{title} ({evaluation['epoch']}) on '{evaluation['subset']}': average mAP {100 * evaluation['average_mAP']:.2f} % "
            f"({per_threshold})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if summary.skipped_videos:
        console.print(f"{summary.skipped_videos} training sample(s) were replaced because their video failed to decode")


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
            help="Reject predictions whose end precedes their start (by default they are scored as the "
            "official evaluator scores them, with a warning).",
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
) -> None:
    """Score detections with the official ActivityNet detection mAP: a results file (--predictions) or a
    trained run on a prepared dataset (--run)."""
    thresholds = _parse_tiou(tiou)
    to_stdout = is_stdout(json_out)
    with _user_errors():
        if run is not None:
            if predictions is not None or annotations is not None or thresholds is not None:
                raise typer.BadParameter("--run takes its thresholds and ground truth from the run and its dataset")
            from tadcli.services.eval import evaluate_run

            if csv_out is not None or strict:
                raise typer.BadParameter("--csv and --strict apply to a results file (--predictions)")
            with _progress_bar() as progress:
                report = evaluate_run(
                    run,
                    data,
                    subset=subset,
                    json_out=None if to_stdout else json_out,
                    out_dir=out,
                    device=device,
                    batch_size=batch_size,
                    num_workers=workers,
                    progress=progress,
                )
        else:
            report = _evaluate_predictions_file(
                predictions, annotations, subset, thresholds, dataset, json_out, annotation_format, strict, csv_out
            )
    _render_eval_report(report, err_console if to_stdout else console)
    if to_stdout:
        typer.echo(json.dumps(report.to_json(), indent=2))


def _evaluate_predictions_file(
    predictions: Optional[Path],
    annotations: Optional[Path],
    subset: Optional[str],
    thresholds: Optional[list[float]],
    dataset: Optional[EvalDataset],
    json_out: Optional[Path],
    annotation_format: Optional[AnnotationFormat],
    strict: bool,
    csv_out: Optional[Path],
):  # noqa: ANN202 - tadcli.services.eval.EvalReport
    if predictions is None or annotations is None:
        raise typer.BadParameter("--predictions FILE and --annotations FILE are required")
    from tadcli.services.eval import evaluate_predictions

    return evaluate_predictions(
        predictions,
        annotations,
        subset=subset,
        tiou=thresholds,
        dataset=dataset.value if dataset is not None else None,
        json_out=None if is_stdout(json_out) else json_out,
        annotation_format=annotation_format.value if annotation_format is not None else None,
        strict=strict,
        csv_out=csv_out,
    )


def _render_eval_report(report, console: Console) -> None:  # noqa: ANN001 - tadcli.services.eval.EvalReport
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
    console.print(f"lowest AP (%, mean over tIoU): {lowest}", soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", soft_wrap=True)
    if report.json_path is not None:
        console.print(f"scores written to {report.json_path}", soft_wrap=True)
    if report.csv_path is not None:
        console.print(f"per-class AP written to {report.csv_path}", soft_wrap=True)


# ------------------------------------------------------------------------------------------ detect
class EventsFormat(str, enum.Enum):
    json = "json"
    csv = "csv"
    srt = "srt"
    activitynet = "activitynet"


class FeaturesFormat(str, enum.Enum):
    npy = "npy"
    safetensors = "safetensors"


DeviceOpt = Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Windows per forward pass.")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="Decoding processes (0: decode in this process).")]
VideosArg = Annotated[List[str], typer.Argument(help="Video files, folders (searched recursively) or glob patterns.")]


@app.command()
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
        Optional[EvalDataset], typer.Option(help="With --checkpoint: the protocol it was trained on. Default: thumos14.")
    ] = None,
    events_format: Annotated[EventsFormat, typer.Option("--format", help="Output format.")] = EventsFormat.json,
    threshold: Annotated[
        Optional[float],
        typer.Option(help="Report events scoring at least this (0-1). Default: 0.2, and 0 for --format activitynet "
                     "(a results file to be scored keeps every candidate)."),
    ] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Report at most this many events per video.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also draw a timeline PNG: a row per class, shade = score.")] = None,
    annotations: Annotated[
        Optional[Path], typer.Option(help="Ground truth to draw under the detections in --plot (any format 'tad prepare' reads).")
    ] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 1,
    workers: WorkersOpt = 0,
) -> None:
    """Detect actions in raw videos: start and end in seconds, class and score of each.

    Examples: 'tad detect clip.mp4 --run runs/my-run --out events.json';
    'tad detect videos/ --checkpoint adatad_thumos_s.pth --preset small-768 --classes classes.txt --format srt'.
    Exit code 1 when some video could not be read (the others are written).
    """
    from tadcli.services.detect import detect as run_detect

    with _user_errors():
        source = _model_source(run, checkpoint)
        with _progress_bar() as progress:
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
                device=device,
                batch_size=batch_size,
                num_workers=workers,
                progress=progress,
            )
    says = err_console if is_stdout(out) else console  # standard output holds the events alone
    for video in report.videos:
        if video.events is None:
            err_console.print(f"error: {video.video}: {video.error}", markup=False, highlight=False, soft_wrap=True)
        else:
            says.print(f"{video.video}: {len(video.events.events)} events", markup=False, highlight=False, soft_wrap=True)
    for path in report.written:
        says.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    if report.stdout_text is not None:
        sys.stdout.write(report.stdout_text)
        sys.stdout.flush()
    if report.failed:
        raise typer.Exit(code=1)


def _model_source(run: Optional[Path], checkpoint: Optional[Path]) -> Path:
    if (run is None) == (checkpoint is None):
        raise typer.BadParameter("give either --run RUN or --checkpoint FILE (with --preset and --classes)")
    return run if run is not None else checkpoint


# ----------------------------------------------------------------------------------------- extract
@app.command()
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
        Optional[EvalDataset], typer.Option(help="With --preset: the sampling protocol (snippet stride). Default: thumos14.")
    ] = None,
    features_format: Annotated[FeaturesFormat, typer.Option("--format", help="Array file format.")] = FeaturesFormat.npy,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 1,
    workers: WorkersOpt = 0,
) -> None:
    """Write backbone features [T, C] of whole videos, with a sidecar that maps feature index to seconds.

    Exit code 1 when some video could not be read (the others are written).
    """
    from tadcli.services.extract import extract as run_extract

    with _user_errors():
        with _progress_bar() as progress:
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
    for video, error in report.failed:
        err_console.print(f"error: {video}: {error}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {len(report.written)} feature file(s) to {out}", markup=False, highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------- profile-memory
@app.command("profile-memory")
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
    (console if console.is_terminal else Console(width=160, markup=False, highlight=False)).print(table)
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
@presets_app.callback(invoke_without_command=True)
def _presets_root(context: typer.Context) -> None:
    """List the shipped presets (as 'tad presets list'), or show one with 'tad presets show NAME'."""
    if context.invoked_subcommand is None:
        presets_list(dataset=None)


@presets_app.command("list")
def presets_list(
    dataset: Annotated[
        Optional[DatasetName], typer.Option(help="Only the recipes of this dataset (e.g. activitynet).")
    ] = None,
) -> None:
    """List the shipped presets, optionally only one dataset's recipes."""
    from tadcli.services.presets import list_presets

    with _user_errors():
        rows = list_presets(dataset.value if dataset is not None else None)
    table = Table(title="Shipped presets" + (f" for {dataset.value}" if dataset is not None else ""))
    table.add_column("name", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    table.add_column("description")
    for row in rows:
        table.add_row(row.name, row.dataset, row.description)
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
