"""What the commands print: the consoles, progress (a bar on a terminal, plain lines in a log) and one
renderer per report.

Both consoles have markup and highlighting off: file names, labels and messages hold square brackets
("data/[draft] labels.csv", "expected [start, end]") that rich would otherwise take for style tags and drop.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from tadcli.io.events import READABLE_THRESHOLD
from tadcli.io.paths import is_stdout
from tadcli.progress import ProgressCallback

if TYPE_CHECKING:
    from tadcli.data.report import DatasetReport
    from tadcli.evaluation.diagnosis import DiagnosisOutput
    from tadcli.evaluation.report import EvalReport
    from tadcli.services.demo import DemoReport
    from tadcli.services.detect import DetectReport
    from tadcli.services.extract import ExtractReport
    from tadcli.services.presets import PresetSummary
    from tadcli.services.review import ReviewReport
    from tadcli.services.memory_plan import MemoryPlan
    from tadcli.training.reporting import TrainSummary

console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------- progress
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
            # any console: markup off here, whatever the console's setting
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
def progress_bar() -> Iterator[ProgressCallback]:
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


# ----------------------------------------------------------------------------------------- reports
def render_demo_report(report: DemoReport) -> None:
    render_eval_report(report.test, console)
    console.print(
        f"detected {report.num_events} events scoring >= {READABLE_THRESHOLD} in the held-out video {report.video}"
    )
    console.print(f"dataset: {report.dataset}")
    console.print(f"run:     {report.run}  (tad eval --run {report.run}; tad detect VIDEO --run {report.run})")
    for path in report.written:
        console.print(f"wrote    {path}")


def render_prepare_report(report: DatasetReport) -> None:
    console.print(report.summary())  # one line per issue, however long


def render_train_summary(summary: TrainSummary) -> None:
    console.print(f"trained {summary.epochs} epochs ({summary.global_step} steps) into {summary.run_dir}")
    for title, evaluation in (("last epoch", summary.last_evaluation), ("best epoch", summary.best_evaluation)):
        if evaluation is None:
            continue
        per_threshold = ", ".join(f"{t:g}: {100 * v:.2f}" for t, v in zip(evaluation["tiou_thresholds"], evaluation["mAP"]))
        console.print(
            f"{title} ({evaluation['epoch']}) on '{evaluation['subset']}': average mAP {100 * evaluation['average_mAP']:.2f} % "
            f"({per_threshold})"
        )
    if summary.skipped_videos:
        console.print(f"{summary.skipped_videos} training sample(s) were replaced because their video failed to decode")


def render_eval(report: EvalReport, json_to_stdout: bool) -> None:
    """The scores table, and with ``--json -`` the scores as JSON on standard output (the table on stderr)."""
    render_eval_report(report, err_console if json_to_stdout else console)
    if json_to_stdout:
        typer.echo(json.dumps(report.to_json(), indent=2))


def render_eval_report(report: EvalReport, out: Console) -> None:
    table = Table(title=f"Detection mAP on '{report.subset}'")
    table.add_column("tIoU", justify="right")
    table.add_column("mAP (%)", justify="right")
    table.add_column("recall (%)", justify="right")
    for threshold, value, recall in zip(report.tiou_thresholds, report.mAP, report.recall):
        table.add_row(f"{threshold:g}", f"{100 * value:.2f}", f"{100 * recall:.2f}")
    table.add_row("average", f"{100 * report.average_mAP:.2f}", "", style="bold")
    out.print(table)
    out.print(f"{report.num_ground_truth} ground-truth instances, {report.num_predictions} predictions")
    lowest = ", ".join(f"{label} {100 * ap:.2f}" for label, ap in report.lowest_classes)
    out.print(f"lowest AP (%, mean over tIoU): {lowest}")
    for note in report.notes:
        out.print(f"note: {note}")
    for warning in report.warnings:
        err_console.print(f"warning: {warning}")
    if report.json_path is not None:
        out.print(f"scores written to {report.json_path}")
    if report.csv_path is not None:
        out.print(f"per-class AP written to {report.csv_path}")
    if report.diagnosis is not None:
        render_diagnosis(report.diagnosis, out)


def render_diagnosis(output: DiagnosisOutput, out: Console) -> None:
    """Where the diagnosis went, and its headline: the largest error type at 1G and the weakest bin."""
    diagnosis = output.diagnosis
    thresholds = ", ".join(f"{t:g}" for t in diagnosis.tiou_thresholds)
    plots = f" and {len(output.plot_paths)} plots" if output.plot_paths else ""
    out.print(
        f"diagnosis (DETAD, {diagnosis.flavour.value} bins, tIoU {thresholds}) written to {output.json_path}{plots}"
    )
    largest = diagnosis.largest_error_at_1g()
    if largest is not None:
        error, share = largest
        gain = diagnosis.false_positives.map_gain[error]
        out.print(
            f"  largest error in the top-1G predictions: {error.replace('_', ' ')} {100 * share:.1f} % "
            f"(removing that type: average mAP_N {100 * diagnosis.false_positives.average_map_n:.2f} {100 * gain:+.2f})"
        )
    weakest = diagnosis.weakest_bin()
    if weakest is not None:
        characteristic, bin_name, value = weakest
        out.print(
            f"  weakest bin: {characteristic} {bin_name}, mAP_N {100 * value:.2f} % "
            f"(all instances: {100 * diagnosis.sensitivity.average_map_n:.2f} %)"
        )
    for note in output.notes:
        out.print(f"note: {note}")


def render_detect_report(report: DetectReport, out: Path) -> None:
    says = err_console if is_stdout(out) else console  # standard output holds the events alone
    for video in report.videos:
        if video.events is None:
            err_console.print(f"error: {video.video}: {video.error}")
        else:
            says.print(f"{video.video}: {len(video.events.events)} events")
    for path in report.written:
        says.print(f"wrote {path}")
    if report.stdout_text is not None:
        sys.stdout.write(report.stdout_text)
        sys.stdout.flush()


def render_review_report(report: ReviewReport) -> None:
    for note in report.notes:
        err_console.print(f"note: {note}")
    events = sum(len(video.predictions) for video in report.videos)
    console.print(f"{len(report.videos)} video(s), {events} events ({report.format.value}); wrote {report.page}")


def render_extract_report(report: ExtractReport, out: Path) -> None:
    for video, error in report.failed:
        err_console.print(f"error: {video}: {error}")
    console.print(f"wrote {len(report.written)} feature file(s) to {out}")


def render_preset_list(rows: Sequence[PresetSummary], dataset: str | None) -> None:
    table = Table(title="Shipped presets" + (f" for {dataset}" if dataset is not None else ""))
    table.add_column("name", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    table.add_column("description")
    for row in rows:
        table.add_row(row.name, row.dataset, row.description)
    console.print(table)


def _memory_unit(values: list[int]) -> tuple[str, int]:
    return ("GiB", 1 << 30) if max(values, default=0) >= 1 << 30 else ("MiB", 1 << 20)


def render_memory_plan(plan: MemoryPlan) -> None:
    target = plan.target
    where = f"CUDA, {target.gpu.name}" if target.gpu else ("CUDA" if target.device == "cuda" else "CPU")
    console.print(
        f"{plan.preset}: {plan.frames} frames, {plan.image_size} px, {plan.batch} video(s) per micro-batch x "
        f"{plan.accumulation} accumulation, {target.precision}, predicted for {where} "
        f"(attention kernel: {target.attention_kernel})"
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
            "the peaks are what torch.cuda.max_memory_allocated reports."
        )
    if measured:
        console.print(f"measured on {plan.rows[0].measured.device}; (+x%) = prediction vs measurement")
    focus = plan.focus_row()
    if focus.fits is False:
        if plan.suggestions:
            console.print(
                f"'{plan.focus}' does not fit {plan.capacity_label}; the nearest configurations that do (each profiled):"
            )
            for suggestion in plan.suggestions:
                s = suggestion.profile
                console.print(
                    f"  {suggestion.change.description}: train peak {s.training.peak / scale:.2f} {unit}, needs "
                    f"{s.required_bytes() / scale:.2f} {unit}  [{' '.join(suggestion.change.flags)}]"
                )
        else:
            console.print(f"'{plan.focus}' does not fit {plan.capacity_label}, and no configuration tried fits.")
    if plan.json_path is not None:
        console.print(f"table written to {plan.json_path}")
