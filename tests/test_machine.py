"""What the machine does to a run, through the ``tad`` console script in real processes (as root, so only
failures root cannot bypass): outputs under /proc, a file where a folder must be, a 300-character name, a
full disk (``RLIMIT_FSIZE`` with SIGXFSZ ignored: writes fail with EFBIG), bad option values, a killed
decoding worker; devices, FIFOs and symbolic links given as outputs; events on standard output; one
writer per run folder, a run that crashed before its first checkpoint, extending a finished run; plain
progress lines in logs."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import FAST_TINY

TAD = str(Path(sys.executable).with_name("tad"))  # the console script installed beside this Python
LONG_NAME = "n" * 300
TRAIN = ["--preset", "tiny", "--device", "cpu", "--threads", "1",
         *(arg for override in (*FAST_TINY, "train.warmup_epochs=0", "train.epochs=1", "train.eval_start_epoch=100") for arg in ("--set", override))]


def tad(*args: str, file_size_limit: int | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``tad ARGS`` in a real process; ``file_size_limit``: RLIMIT_FSIZE in bytes, SIGXFSZ ignored (a full disk)."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    # no plain progress line unless a test asks for them: a loaded machine must not change what stderr holds
    quiet = {"TAD_PROGRESS_INTERVAL": "3600"}
    return subprocess.run(
        [TAD, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **quiet, **(env or {})},
        preexec_fn=limit_file_size if file_size_limit is not None else None,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files of the atomic writer, staged folders, probes."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".lock"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_synthetic) -> dict[str, Path]:
    """A run trained one epoch, a held-out video, a file where folders are asked for."""
    from tadcli.data.prepared import load_prepared_dataset
    from tadcli.services.train import TrainRequest, train

    root = tmp_path_factory.mktemp("machine")
    run = root / "run"
    train(TrainRequest("tiny", small_synthetic, run, [*FAST_TINY, "train.warmup_epochs=0", "train.epochs=1", "train.eval_start_epoch=100"],
                       device="cpu", threads=1))
    (root / "afile").write_text("a file, not a folder\n")
    (root / "kept.json").write_text('{"kept": true}\n')
    test_videos = [v.path for v in load_prepared_dataset(small_synthetic).videos.values() if v.subset == "test"]
    return {"w": root, "run": run, "data": small_synthetic, "video": Path(test_videos[0])}


# (id, arguments with {w} {run} {data} {video} {long}, file-size limit, exit code, fragments of the one line)
OS_ERRORS = [
    ("prepare-under-proc", "prepare synthetic --out /proc/tad-x", None, 2, ["/proc/tad-x: cannot write the output folder in /proc"]),
    ("demo-under-proc", "demo --out /proc/tad-x", None, 2, ["/proc/tad-x: cannot write the demo folder in /proc"]),
    ("detect-under-proc", "detect {video} --run {run} --out /proc/tad-e.json", None, 2, ["/proc/tad-e.json: cannot write the events file"]),
    ("eval-under-proc", "eval --run {run} --out /proc/tad-eval", None, 2, ["/proc/tad-eval: cannot write the evaluation folder"]),
    ("train-under-proc", "train {train} --data {data} --out /proc/tad-run", None, 2, ["/proc/tad-run: cannot write the run folder"]),
    ("detect-file-as-folder", "detect {video} --run {run} --out {w}/afile/e.json", None, 2, ["{w}/afile is a file, not a folder"]),
    ("train-file-as-folder", "train {train} --data {data} --out {w}/afile/run", None, 2, ["{w}/afile is a file, not a folder"]),
    ("detect-name-too-long", "detect {video} --run {run} --out {w}/{long}.json", None, 2, ["{w}/" + LONG_NAME[:50], "file name too long"]),
    ("prepare-name-too-long", "prepare synthetic --out {w}/{long}", None, 2, ["file name too long"]),
    ("prepare-disk-full", "prepare synthetic --videos 6 --out {w}/full-data", 20_000, 1,
     ["{w}/full-data/videos/", "file too large", "{w}/full-data was not written"]),
    ("detect-disk-full", "detect {video} --run {run} --out {w}/kept.json", 300, 1,
     ["{w}/kept.json: file too large", "{w}/kept.json was left as it was"]),
    ("eval-disk-full", "eval --run {run} --out {w}/full-eval", 300, 1, ["{w}/full-eval/", "file too large", "was not written"]),
    ("train-workers-negative", "train {train} --data {data} --out {w}/new-run --workers -1", None, 2, ["--workers must be 0", "got -1"]),
    ("train-threads-zero", "train {train} --data {data} --out {w}/new-run --threads 0", None, 2, ["--threads must be at least 1, got 0"]),
]


def _arguments(template: str, world: dict[str, Path]) -> list[str]:
    values = {**{key: str(value) for key, value in world.items()}, "long": LONG_NAME, "train": " ".join(TRAIN)}
    return template.format(**values).split()


@pytest.mark.parametrize(("template", "limit", "code", "fragments"), [row[1:] for row in OS_ERRORS], ids=[row[0] for row in OS_ERRORS])
def test_an_os_error_is_one_line_naming_the_path_and_nothing_is_half_written(world, template, limit, code, fragments):
    before = {p.name: p.read_bytes() for p in world["w"].iterdir() if p.is_file()}
    done = tad(*_arguments(template, world), file_size_limit=limit)
    line = one_error_line(done)
    assert done.returncode == code, done.stderr
    for fragment in fragments:
        assert fragment.format(w=world["w"]) in line, line
    assert {p.name: p.read_bytes() for p in world["w"].iterdir() if p.is_file()} == before  # kept.json intact
    assert not leftovers(world["w"]) and not leftovers(world["run"])
    for name in ("full-data", "full-eval", "new-run", LONG_NAME[:255]):
        assert not (world["w"] / name).exists() or not any((world["w"] / name).iterdir())  # at most an empty folder


def test_a_read_only_run_folder_is_named_before_evaluating(world):
    """The run folder bind-mounted read-only in a private mount namespace (root can write through permissions,
    not through a read-only mount)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    script = f'mount --bind "{world["run"]}" "{world["run"]}" && mount -o remount,bind,ro "{world["run"]}" && "{TAD}" eval --run "{world["run"]}"'
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if "mount" in done.stderr and "error: " not in done.stderr:
        pytest.skip(f"no private read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 2
    assert one_error_line(done) == f"error: {world['run']}/eval: cannot write the evaluation folder in {world['run']}/eval: read-only file system"


def test_a_decoding_worker_killed_by_the_system_is_named_with_the_setting_to_lower():
    """A real DataLoader worker killed with SIGKILL (what the kernel's OOM killer sends), through the CLI's mapper."""
    import torch.utils.data

    from tadcli.errors import WorkerKilledError, user_error

    class KilledOnFirstItem(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> int:
            os.kill(os.getpid(), signal.SIGKILL)
            return index

    with pytest.raises(RuntimeError) as raised:
        list(torch.utils.data.DataLoader(KilledOnFirstItem(), num_workers=1))
    error = user_error(raised.value)
    assert isinstance(error, WorkerKilledError) and error.exit_code == 2
    assert "killed by the system" in str(error) and "--workers" in str(error)
    assert user_error(RuntimeError("some other bug")) is None  # a bug stays a traceback


# ----------------------------------------------------------------------- outputs that are not ours
def _read_fifo(path: Path, received: list[bytes]) -> None:
    with open(path, "rb") as handle:
        received.append(handle.read())


def test_devices_fifos_and_symlinks_given_as_output_are_written_through_never_replaced(world, tmp_path):
    video, run = str(world["video"]), str(world["run"])
    done = tad("detect", video, "--run", run, "--out", "/dev/null")
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)

    done = tad("detect", video, "--run", run, "--out", "/dev/full")
    assert done.returncode == 1 and "/dev/full: no space left on device" in one_error_line(done)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)

    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, received))
    reader.start()
    done = tad("detect", video, "--run", run, "--out", str(fifo))
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and json.loads(received[0])["videos"][0]["video"] == video

    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("{}\n")
    link.symlink_to(target.name)
    done = tad("detect", video, "--run", run, "--out", str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == target.name  # the link stays a link ...
    assert json.loads(target.read_text())["videos"][0]["video"] == video  # ... its target has the events
    assert not leftovers(tmp_path)


def _parse(format: str, text: str):  # noqa: ANN202
    if format in ("json", "activitynet"):
        return json.loads(text)
    if format == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    blocks = [block for block in text.strip().split("\n\n") if block]
    assert all(re.match(r"\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", block) for block in blocks), text[:200]
    return blocks


@pytest.mark.parametrize("format", ["json", "csv", "srt", "activitynet"])
def test_out_dash_writes_the_events_and_nothing_else_to_stdout(world, format):
    # threshold 0: every candidate of the briefly trained run, so that each format has events to write
    done = tad("detect", str(world["video"]), "--run", str(world["run"]), "--out", "-", "--format", format,
               "--threshold", "0")
    assert done.returncode == 0, done.stderr
    assert _parse(format, done.stdout)  # the whole of stdout parses
    assert f"{world['video']}: " in done.stderr and "wrote" not in done.stderr  # what it says goes to stderr
    assert not (Path.cwd() / "-").exists()


# ------------------------------------------------------------------------------------ run folders
def _train(out: Path, data: Path, *extra: str, epochs: int = 1) -> list[str]:
    return ["train", *TRAIN, "--set", f"train.epochs={epochs}", "--data", str(data), "--out", str(out), *extra]


def test_a_second_writer_of_a_training_run_folder_gets_one_line_naming_the_pid(world, tmp_path):
    run = tmp_path / "busy"
    first = subprocess.Popen([TAD, *_train(run, world["data"], epochs=50)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        for args in (["train", "--resume", str(run), "--device", "cpu"], _train(run, world["data"])):
            done = tad(*args)
            assert done.returncode == 2
            line = one_error_line(done)
            assert f"another process (PID {first.pid}) is training in this run folder" in line, line
    finally:
        first.kill()  # SIGKILL: the system releases the lock
        first.wait()
    lines_before = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
    assert all(json.loads(line) for line in lines_before.splitlines()[:-1])


def test_a_crash_before_the_first_checkpoint_resumes_from_the_beginning_and_a_finished_run_extends(world, tmp_path):
    run = tmp_path / "crashed"
    done = tad(*_train(run, world["data"]), file_size_limit=1_000_000)  # the first checkpoint does not fit
    assert done.returncode == 1, done.stderr
    line = [l for l in done.stderr.splitlines() if l.startswith("error: ")][-1]
    assert "model.safetensors: file too large" in line and f"tad train --resume {run}" in line
    assert not (run / "state").exists()

    done = tad("train", "--resume", str(run), "--device", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("has no checkpoint yet") == 1 and "training it from the beginning" in done.stderr
    steps = [json.loads(l)["global_step"] for l in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in l]
    assert steps == sorted(set(steps)) and steps[0] == 1  # the crashed attempt's lines are gone

    done = tad("train", "--resume", str(run), "--set", "train.epochs=2", "--set", "train.eval_interval=1", "--device", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "trained 2 epochs" in done.stdout
    assert json.loads((run / "config.json").read_text())["preset"]["train"]["epochs"] == 2

    for override, fragment in (("input.frames=32", "only train.epochs, train.eval_interval, train.eval_start_epoch may change"),
                               ("train.epochs=1", "has already trained 2 epochs")):
        done = tad("train", "--resume", str(run), "--set", override, "--device", "cpu")
        assert done.returncode == 2 and fragment in one_error_line(done)


# ------------------------------------------------------------------------------------------- logs
PLAIN_LINE = r"{what}: (\d+)/(\d+) \(\d+ %\), [\d.]+/s(, ETA \d+:\d\d:\d\d)?"


def test_long_work_prints_plain_progress_lines_when_stderr_is_not_a_terminal(world, tmp_path):
    fast = {"TAD_PROGRESS_INTERVAL": "0"}  # a line at each 5 %, instead of at most every 10 s
    done = tad("prepare", "synthetic", "--videos", "6", "--out", str(tmp_path / "data"), env=fast)
    assert done.returncode == 0, done.stderr
    written = [m.groups()[:2] for m in re.finditer(PLAIN_LINE.format(what="writing synthetic videos"), done.stderr)]
    assert written[-1] == ("6", "6") and len(written) >= 3, done.stderr
    assert "\x1b[" not in done.stderr  # no terminal control codes in a log

    done = tad("detect", str(world["video"]), "--run", str(world["run"]), "--out", str(tmp_path / "e.json"), env=fast)
    assert re.search(PLAIN_LINE.format(what="windows"), done.stderr), done.stderr

    # a task shorter than the interval prints no progress line at all
    done = tad("prepare", "synthetic", "--videos", "6", "--out", str(tmp_path / "quiet"), env={"TAD_PROGRESS_INTERVAL": "3600"})
    assert not re.search(PLAIN_LINE.format(what="writing synthetic videos"), done.stderr), done.stderr

    # train: one line per logged step, with its count, rate and ETA
    done = tad(*_train(tmp_path / "run", world["data"]))
    steps = [m.groups()[:2] for m in re.finditer(PLAIN_LINE.format(what="step"), done.stderr)]
    assert [int(done_) for done_, _ in steps] == list(range(1, len(steps) + 1)) and steps[-1][0] == steps[-1][1]


def test_plain_progress_lines_come_every_interval_with_5_percent_or_every_three_intervals():
    from rich.console import Console

    from tadcli.cli.render import PlainProgress

    clock = [0.0]
    output = io.StringIO()
    progress = PlainProgress(Console(file=output, width=200), interval=10, clock=lambda: clock[0])
    printed = []
    for second, done in [(0, 0), (5, 50), (11, 51), (12, 53), (25, 54), (30, 54), (44, 55), (50, 100)]:
        clock[0] = second
        before = output.getvalue().count("\n")
        progress.update("windows", done, 100)
        if output.getvalue().count("\n") > before:
            printed.append(second)
    # 11 s: 10 s and 51 %; 25 s: only 3 % in 14 s; 44 s: 32 s (three intervals) with progress; 50 s: done
    assert printed == [11, 44, 50]
    assert output.getvalue().splitlines()[0] == "windows: 51/100 (51 %), 4.64/s, ETA 0:00:11"
