"""The paper's scale on one CUDA device, in one command that survives being cut short (issue 21).

Parts, most important first; each runs in its own process with its own time limit and writes
``NN-PART.json`` and ``NN-PART.md`` into ``--out`` as soon as it ends (a part that overruns is stopped,
recorded as ``timeout`` with the rows it finished, and the next part starts):

1. ``device``: the device, driver, torch / CUDA / cuDNN versions and the measured bf16 matmul TFLOP/s;
2. ``train-giant-1536``: ``giant-1536`` (random init, one video per micro-batch), two real training steps
   (forward, loss, backward, clipping, fused AdamW, EMA) without and with ``adaptation.offload_checkpoints``:
   peak ``max_memory_allocated`` / ``max_memory_reserved`` and seconds per step beside ``tad profile-memory``'s
   prediction of the same setting;
3. ``train-public``: the same for ``small-768``, ``base-768`` and ``giant-768`` (public figures: 5.0 and 30.7 GB);
4. ``detect``: ``tad detect`` with ``giant-1536`` on a generated 60 s 720p video: video seconds per wall second,
   and the backbone forward's FLOP/s as a share of part 1's measured bf16 matmul peak;
5. ``demo``: ``tad demo --device cuda --epochs 10``: wall time and test mAP.

    python bench/gpu_check.py --out gpu-check            # on a CUDA machine: under 8 minutes on an H100 / H200
    python bench/gpu_check.py --dry-run --out /tmp/gc    # every part on the CPU, tiny-sized, fp32 (the test)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the other bench scripts' constants

from bench_profile_memory import ONE_VIDEO_PER_GPU, PUBLIC_FIGURES  # noqa: E402

import tadcli  # noqa: E402
from tadcli.config.profiles import get_profile  # noqa: E402
from tadcli.data.synthetic import write_mp4  # noqa: E402
from tadcli.inference.detector import Detector  # noqa: E402
from tadcli.inference.loading import ready_for_inference, without_pretrained_weights  # noqa: E402
from tadcli.inference.plan import InferencePlan, inference_plan  # noqa: E402
from tadcli.io.atomic import write_text_atomic  # noqa: E402
from tadcli.io.events import ModelIdentity  # noqa: E402
from tadcli.io.jsonio import write_json_atomic  # noqa: E402
from tadcli.profiling.step import Workload, measure_training_steps  # noqa: E402

GIB = 1 << 30
OFFLOAD = "adaptation.offload_checkpoints=true"
CLASSES = 4  # detector classes of the random-initialised models (memory does not depend on them much)


@dataclass(frozen=True)
class Case:
    """One training setting: a label, a preset with overrides, and its public memory figure (GB) if any."""

    label: str
    preset: str
    overrides: tuple[str, ...]
    public_gb: float | None = None


@dataclass(frozen=True)
class Settings:
    """What the parts run: the paper's settings on CUDA, or tiny ones on the CPU (``--dry-run``)."""

    device: str
    precision: str | None  # None: the device's own (fp32 on the CPU)
    matmul_size: int
    giant: tuple[Case, ...]
    public: tuple[Case, ...]
    detect_preset: str
    detect_overrides: tuple[str, ...]
    video: tuple[float, int, int, int]  # seconds, height, width, fps
    demo_epochs: int
    demo_videos: int | None  # None: the demo's default
    limits: dict[str, int]  # part -> seconds


_PUBLIC_GB = {name: figure for name, overrides, figure, _ in PUBLIC_FIGURES if not overrides}
GPU = Settings(
    device="cuda",
    precision="bf16",
    matmul_size=8192,
    giant=(
        Case("giant-1536", "giant-1536", tuple(ONE_VIDEO_PER_GPU)),
        Case("giant-1536 + offload", "giant-1536", (*ONE_VIDEO_PER_GPU, OFFLOAD)),
    ),
    public=tuple(
        Case(name, name, tuple(ONE_VIDEO_PER_GPU), _PUBLIC_GB.get(name)) for name in ("small-768", "base-768", "giant-768")
    ),
    detect_preset="giant-1536",
    detect_overrides=(),
    video=(60.0, 720, 1280, 30),
    demo_epochs=10,
    demo_videos=None,
    limits={"device": 30, "train-giant-1536": 120, "train-public": 110, "detect": 80, "demo": 90},  # 430 s
)
_TINY = (*ONE_VIDEO_PER_GPU, "input.frames=32")
DRY_RUN = Settings(
    device="cpu",
    precision=None,
    matmul_size=256,
    giant=(Case("tiny", "tiny", _TINY), Case("tiny + offload", "tiny", (*_TINY, OFFLOAD))),
    public=(Case("tiny 64 frames", "tiny", (*ONE_VIDEO_PER_GPU, "input.frames=64"), 0.1),),
    detect_preset="tiny",
    detect_overrides=(),
    video=(12.0, 72, 96, 8),
    demo_epochs=1,
    demo_videos=5,
    limits={part: 600 for part in ("device", "train-giant-1536", "train-public", "detect", "demo")},  # a busy CPU
)


# ---------------------------------------------------------------------------------------------- writing


def _markdown(title: str, status: str, rows: list[dict], note: str = "") -> str:
    lines = [f"### {title} ({status})", ""]
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return "" if value is None else str(value)


class PartFiles:
    """The JSON and markdown files of one part, rewritten (atomically) whenever a row is added."""

    def __init__(self, out: Path, index: int, part: str) -> None:
        self.json = out / f"{index:02d}-{part}.json"
        self.markdown = self.json.with_suffix(".md")
        self.part = part

    def write(self, status: str, rows: list[dict], **extra: object) -> None:
        content = {"part": self.part, "status": status, "rows": rows, **extra}
        write_json_atomic(self.json, content)
        write_text_atomic(self.markdown, _markdown(self.part, status, rows, str(extra.get("note", ""))))

    def read(self) -> dict | None:
        try:
            return json.loads(self.json.read_text())
        except (OSError, ValueError):
            return None


# ------------------------------------------------------------------------------------------------ parts


def matmul_tflops(size: int, device: torch.device, dtype: torch.dtype, repeats: int = 5, iterations: int = 10) -> float:
    """Measured TFLOP/s of a square matmul: the best of ``repeats`` timings of ``iterations`` products."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            a @ b
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * iterations / best / 1e12


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _driver_version() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def _dtype(settings: Settings) -> torch.dtype:
    return torch.bfloat16 if settings.precision == "bf16" else torch.float32


def part_device(settings: Settings, files: PartFiles) -> None:
    device = torch.device(settings.device)
    cuda = device.type == "cuda"
    row = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "driver": _driver_version() if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if cuda else None,
        "memory_GiB": round(torch.cuda.get_device_properties(device).total_memory / GIB, 1) if cuda else None,
        "threads": torch.get_num_threads(),
        "matmul_dtype": str(_dtype(settings)).removeprefix("torch."),
        "matmul_TFLOPs": round(matmul_tflops(settings.matmul_size, device, _dtype(settings)), 3),
    }
    files.write("ok", [row])


def _training_row(case: Case, settings: Settings) -> dict:
    """Two measured steps of one setting beside its prediction (``tad profile-memory --mode preset``)."""
    device = torch.device(settings.device)
    plan = tadcli.profile_memory(
        case.preset, list(case.overrides), mode="preset", device=settings.device, precision=settings.precision,
        suggest_changes=False, num_classes=CLASSES,
    )
    predicted = plan.rows[0].profile
    preset = tadcli.load_preset(case.preset, list(case.overrides))
    workload = Workload(preset, plan.batch, plan.accumulation, CLASSES)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()  # reserved memory starts from this setting's own segments
    measured = measure_training_steps(workload, plan.target, device, steps=2)
    training = predicted.training
    return {
        "setting": case.label,
        "precision": plan.target.precision,
        "predicted_allocated_GiB": round(training.peak / GIB, 3),
        "max_memory_allocated_GiB": round(measured.allocated / GIB, 3),
        "allocated_error": round(training.peak / measured.allocated - 1, 4),
        "predicted_reserved_GiB": round(training.reserved / GIB, 3),
        "max_memory_reserved_GiB": round(measured.reserved / GIB, 3),
        "reserved_error": round(training.reserved / measured.reserved - 1, 4),
        "predicted_needs_GiB": round(predicted.required_bytes() / GIB, 3),
        "seconds_per_step": [round(s, 3) for s in measured.seconds],
        "public_figure_GB": case.public_gb,
    }


def _training_part(cases: tuple[Case, ...], settings: Settings, files: PartFiles) -> None:
    rows: list[dict] = []
    for case in cases:
        rows.append(_training_row(case, settings))
        files.write("running", rows)  # a timeout keeps the settings already measured
    files.write("ok", rows, note="target: predicted within 10 % of max_memory_allocated")


def part_train_giant(settings: Settings, files: PartFiles) -> None:
    _training_part(settings.giant, settings, files)


def part_train_public(settings: Settings, files: PartFiles) -> None:
    _training_part(settings.public, settings, files)


def write_test_video(path: Path, seconds: float, height: int, width: int, fps: int) -> Path:
    """A video of moving vertical bars (cheap to draw and to encode)."""
    columns = np.arange(width)
    path.parent.mkdir(parents=True, exist_ok=True)

    def frames():
        for index in range(round(seconds * fps)):
            shade = ((columns + 8 * index) // 32 % 2 * 160 + 40).astype(np.uint8)  # [W]
            frame = np.empty((height, width, 3), dtype=np.uint8)
            frame[:] = shade[None, :, None]
            frame[:, :, 1] = (index * 3) % 256
            yield frame

    return write_mp4(path, frames(), fps)


def _backbone_flops_per_second(model: tadcli.AdaTAD, preset, plan: InferencePlan) -> tuple[float, float]:  # noqa: ANN001
    """(FLOP of one window through the backbone, its best time in seconds), as ``tad detect`` runs it."""
    from torch.utils.flop_counter import FlopCounterMode

    device = plan.device
    shape = (1, 3, preset.input.frames, preset.input.image_size, preset.input.image_size)
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    with torch.no_grad(), plan.autocast():
        with FlopCounterMode(display=False) as counter:
            model.backbone(frames)
        best = float("inf")
        for _ in range(2):
            _synchronize(device)
            start = time.perf_counter()
            model.backbone(frames)
            _synchronize(device)
            best = min(best, time.perf_counter() - start)
    return counter.get_total_flops(), best


def part_detect(settings: Settings, files: PartFiles) -> None:
    device = torch.device(settings.device)
    seconds, height, width, fps = settings.video
    video = write_test_video(files.json.parent / "work" / f"video-{height}p.mp4", seconds, height, width, fps)
    preset = without_pretrained_weights(tadcli.load_preset(settings.detect_preset, list(settings.detect_overrides)))
    torch.manual_seed(0)
    model = ready_for_inference(tadcli.build_model(preset, CLASSES, device=device), device)
    classes = [f"class_{i}" for i in range(CLASSES)]
    plan = inference_plan(preset, get_profile("thumos14"), device)
    identity = ModelIdentity(settings.detect_preset, "thumos14", tuple(classes), tadcli.__version__)
    detector = Detector(model, plan, classes, identity)
    detector.detect(video)  # warm-up: kernels, autotuning
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    events = detector.detect(video)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    flops, backbone_seconds = _backbone_flops_per_second(detector.model, preset, plan)
    matmul = _matmul_peak(files, settings)
    files.write("ok", [{
        "preset": settings.detect_preset,
        "video": f"{events.duration:.0f} s, {width}x{height}, {fps} fps",
        "wall_seconds": round(wall, 2),
        "video_seconds_per_second": round(events.duration / wall, 2),
        "detect_max_memory_allocated_GiB": None if peak is None else round(peak / GIB, 2),
        "backbone_TFLOP_per_window": round(flops / 1e12, 3),
        "backbone_seconds_per_window": round(backbone_seconds, 3),
        "backbone_share_of_matmul_peak": round(flops / backbone_seconds / 1e12 / matmul, 3),
        "matmul_peak_TFLOPs": matmul,
    }])


def _matmul_peak(files: PartFiles, settings: Settings) -> float:
    """Part 1's measured matmul TFLOP/s (measured again if part 1 has not written it)."""
    device_part = PartFiles(files.json.parent, 1, "device").read()
    if device_part and device_part.get("rows"):
        return device_part["rows"][0]["matmul_TFLOPs"]
    return round(matmul_tflops(settings.matmul_size, torch.device(settings.device), _dtype(settings)), 3)


def part_demo(settings: Settings, files: PartFiles) -> None:
    from tadcli.services.demo import demo

    extra = {} if settings.demo_videos is None else {"num_videos": settings.demo_videos}
    start = time.perf_counter()
    report = demo(files.json.parent / "work" / "demo", epochs=settings.demo_epochs, device=settings.device, **extra)
    wall = time.perf_counter() - start
    files.write("ok", [{
        "command": f"tad demo --device {settings.device} --epochs {settings.demo_epochs}"
        + (f" --videos {settings.demo_videos}" if settings.demo_videos else ""),
        "wall_seconds": round(wall, 1),
        "test_average_mAP": round(report.test.average_mAP, 4),
        "test_mAP": [round(value, 4) for value in report.test.mAP],
        "tiou": report.test.tiou_thresholds,
    }])


PARTS: dict[str, Callable[[Settings, PartFiles], None]] = {  # in the order they run: most important first
    "device": part_device,
    "train-giant-1536": part_train_giant,
    "train-public": part_train_public,
    "detect": part_detect,
    "demo": part_demo,
}


# ------------------------------------------------------------------------------------------------ runner


def _files(out: Path, part: str) -> PartFiles:
    return PartFiles(out, list(PARTS).index(part) + 1, part)


def run_part(part: str, out: Path, settings: Settings, limit: int) -> dict:
    """Run one part in its own process group, stopped after ``limit`` seconds; returns what it wrote."""
    files = _files(out, part)
    command = [sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--part", part]
    if settings is DRY_RUN:
        command.append("--dry-run")
    start = time.perf_counter()
    child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = child.communicate(timeout=limit)
        status = "ok" if child.returncode == 0 else f"failed (exit code {child.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the part and whatever it started (prediction workers, decoders)
        output, _ = child.communicate()
        status = "timeout"
    wall = round(time.perf_counter() - start, 1)
    written = files.read() or {"rows": []}
    if status != "ok" or written.get("status") != "ok":
        tail = "\n".join(output.strip().splitlines()[-15:])
        status = status if status != "ok" else "failed (wrote no result)"
        note = f"{status} after {wall} s (limit {limit} s); last output:\n\n```\n{tail}\n```"
        files.write(status, written.get("rows", []), wall_seconds=wall, limit_seconds=limit, note=note)
    else:
        files.write("ok", written["rows"], wall_seconds=wall, limit_seconds=limit, note=written.get("note", ""))
    return files.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and markdown files")
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU with tiny settings")
    parser.add_argument("--part", choices=list(PARTS), help="run this part only, in this process")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to run")
    parser.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS", help="another time limit")
    args = parser.parse_args()
    settings = DRY_RUN if args.dry_run else GPU
    limits = dict(settings.limits)
    for item in args.limit:
        part, _, seconds = item.partition("=")
        if part not in PARTS or not seconds.isdigit():
            parser.error(f"--limit {item}: expected PART=SECONDS with PART one of {', '.join(PARTS)}")
        limits[part] = int(seconds)
    if settings.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: run on a GPU machine, or --dry-run for the CPU check")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part is not None:
        PARTS[args.part](settings, _files(args.out, args.part))
        return
    print(f"writing into {args.out.resolve()}", flush=True)
    for part in args.parts:
        result = run_part(part, args.out, settings, limits[part])
        files = _files(args.out, part)
        print(f"{part}: {result['status']} in {result['wall_seconds']} s -> {files.json} , {files.markdown}", flush=True)


if __name__ == "__main__":
    main()
