"""Training: the recipe's schedule, accumulation semantics, non-finite losses, learning, exact resume, DDP."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tadcli
from tadcli.config.loader import load_preset
from tadcli.data.dataset import WindowBatch, collate_windows
from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
from tadcli.data.pipeline import train_dataset
from tadcli.errors import TadError
from tadcli.inference.evaluate import evaluate_on_dataset
from tadcli.inference.loading import load_run_model
from tadcli.io.rundir import RunError, read_run_config, run_paths
from tadcli.training.batching import plan_batches
from tadcli.training.checkpoint import load_training_state
from tadcli.training.distributed import launch_workers
from tadcli.training.schedule import WarmupCosineSchedule, warmup_cosine_lr
from tadcli.training.step import NonFiniteLossError, NormalizerSlots, build_optimizer, resolve_precision, training_step

from conftest import FAST_TINY, TRAINED_EPOCHS

CPU = torch.device("cpu")


def spec_lr(t: int, base: float, warmup: int, total: int, eta_min: float = 1e-8) -> float:
    """Spec §8, written out independently of the implementation."""
    if t < warmup:
        return base * t / (warmup - 1)
    return eta_min + 0.5 * (base - eta_min) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


def test_schedule_matches_the_closed_form_on_every_group():
    model = tadcli.build_model(load_preset("tiny"), num_classes=3)
    optimizer = build_optimizer(model, head_lr=1e-4, adapter_lr=2e-4, backbone_lr=1e-5, weight_decay=0.05, device=CPU)
    warmup, total = 5 * 100, 100 * 100  # THUMOS: 5 warm-up epochs of a 100-epoch cosine, 100 iterations each
    schedule = WarmupCosineSchedule(optimizer, warmup, total)
    for t in (0, 1, 250, warmup - 1, warmup, 3000, 6000 - 1, total - 1):
        schedule.set_step(t)
        rates = schedule.learning_rates()
        assert rates["detector_decay"] == pytest.approx(spec_lr(t, 1e-4, warmup, total), rel=1e-12, abs=0)
        assert rates["adapter"] == pytest.approx(spec_lr(t, 2e-4, warmup, total), rel=1e-12, abs=0)
    assert warmup_cosine_lr(0, 1e-4, warmup, total) == 0.0  # the very first step runs at lr exactly 0
    assert warmup_cosine_lr(warmup - 1, 1e-4, warmup, total) == pytest.approx(1e-4)


def test_a_batch_that_does_not_split_over_the_processes_names_what_to_set():
    with pytest.raises(TadError) as error:
        plan_batches(load_preset("tiny", ["train.batch_size=3"]), num_videos=10, world_size=2)
    assert str(error.value) == (
        "train.batch_size 3 (the global batch) does not split into 2 process(es) x train.micro_batch_size 1 video(s) "
        "x an accumulation count: run on 1 or 3 process(es), or --set train.batch_size=2"
    )
    plan = plan_batches(load_preset("tiny", ["train.batch_size=4"]), num_videos=10, world_size=2)
    assert (plan.world_size, plan.accumulation, plan.micro_batch_size, plan.steps_per_epoch) == (2, 2, 1, 2)


def _window_batches(dataset_dir: Path, preset, count: int) -> list[WindowBatch]:
    dataset = load_prepared_dataset(dataset_dir)
    records = records_from_prepared(dataset, "train")
    windows = train_dataset(records, preset, dataset.dataset_profile, seed=0)
    return [collate_windows([windows[i]]) for i in range(count)]


def _fresh_model(preset, num_classes: int):
    torch.manual_seed(0)
    return tadcli.build_model(preset, num_classes=num_classes)


def test_accumulation_gives_the_update_of_one_video_per_device(small_synthetic):
    """Global batch 2 as 2 micro-batches of 1 = what 2 GPUs x 1 video compute (each with its own loss
    normaliser, gradients averaged), as OpenTAD's recipe runs."""
    preset = load_preset("tiny", [*FAST_TINY, "backbone.drop_path_rate=0", "detector.path_dropout=0"])
    batches = _window_batches(small_synthetic, preset, 2)
    precision = resolve_precision(CPU, False)

    model = _fresh_model(preset, 2)
    model.train()
    optimizer = build_optimizer(model, 1e-3, 1e-3, 1e-5, 0.05, CPU)
    slots = NormalizerSlots(model, 2)
    training_step(model, batches, optimizer, precision, precision.grad_scaler(), None, slots, CPU, step=0)
    accumulated = [p.grad.clone() for p in model.parameters() if p.requires_grad]

    per_device = []
    for batch in batches:  # each "GPU" starts from the same weights and normaliser
        replica = _fresh_model(preset, 2)
        replica.train()
        outputs = replica(batch.frames, batch.masks)
        replica.compute_loss(outputs, batch.gt_segments, batch.gt_labels).total.backward()
        per_device.append([p.grad.clone() for p in replica.parameters() if p.requires_grad])
    for got, first, second in zip(accumulated, *per_device):
        torch.testing.assert_close(got, (first + second) / 2, rtol=1e-5, atol=1e-8)
    normaliser = preset.loss.normalizer_init * 0.9
    assert all(value > normaliser for value in slots.state_dict())  # each slot moved by its own positives


def test_a_non_finite_loss_stops_naming_the_step_and_part_and_changes_nothing(small_synthetic):
    preset = load_preset("tiny", list(FAST_TINY))
    batches = _window_batches(small_synthetic, preset, 1)
    model = _fresh_model(preset, 2)
    with torch.no_grad():
        model.detector.head.cls_head.bias.fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, 1e-3, 1e-3, 1e-5, 0.05, CPU)
    precision = resolve_precision(CPU, False)
    with pytest.raises(NonFiniteLossError, match=r"step 7: the (classification|total) loss is nan"):
        training_step(model, batches, optimizer, precision, precision.grad_scaler(), 1.0, NormalizerSlots(model, 1), CPU, step=7)
    for key, value in model.state_dict().items():
        if key != "detector.loss.normalizer.value":
            torch.testing.assert_close(value, before[key], equal_nan=True)


def test_a_short_run_learns_and_leaves_a_complete_run_directory(trained_run, small_synthetic, tmp_path):
    paths = run_paths(trained_run)
    for key in ("config", "weights", "state", "metrics"):
        assert getattr(paths, key).is_file(), key
    config = read_run_config(trained_run)
    assert config.classes == load_prepared_dataset(small_synthetic).classes
    assert config.profile == "synthetic" and config.preset.train.epochs == TRAINED_EPOCHS

    lines = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert len([line for line in lines if line["kind"] == "train"]) == TRAINED_EPOCHS * 4  # 8 videos, batch 2
    last_epoch = TRAINED_EPOCHS - 1
    assert [line["epoch"] for line in lines if line["kind"] == "eval"] == [last_epoch]  # the last epoch is always evaluated

    # The loss falls: the same training windows, scored in eval mode (normaliser = positives of the batch).
    _, trained_model = load_run_model(trained_run)
    untrained_model = _fresh_model(config.preset, len(config.classes)).eval()
    batches = _window_batches(small_synthetic, config.preset, 6)
    assert _mean_loss(trained_model, batches) < 0.5 * _mean_loss(untrained_model, batches)

    # TensorBoard (installed with the dev extra) has the same losses as the metrics log
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard"))
    events.Reload()
    logged = [line["loss_total"] for line in lines if line["kind"] == "train"]
    assert [event.value for event in events.Scalars("loss/total")] == pytest.approx(logged, rel=1e-6)
    assert [event.value for event in events.Scalars("val/average_mAP")] == pytest.approx(
        [line["average_mAP"] for line in lines if line["kind"] == "eval"], rel=1e-6)

    trained = evaluate_on_dataset(trained_model, small_synthetic, config.classes, config.preset, "val", tmp_path, tag="trained")
    untrained = evaluate_on_dataset(untrained_model, small_synthetic, config.classes, config.preset, "val", tmp_path, tag="untrained")
    assert trained.average_mAP > untrained.average_mAP + 0.2
    assert trained.mAP[0] > 0.5  # tIoU 0.3


@torch.no_grad()
def _mean_loss(model, batches: list[dict]) -> float:
    losses = [
        model.compute_loss(model(b.frames, b.masks), b.gt_segments, b.gt_labels).total.item() for b in batches
    ]
    return float(np.mean(losses))


def _train_command(data: Path, out: Path, extra: list[str]) -> list[str]:
    sets = [arg for override in (*FAST_TINY, "train.epochs=3", "train.eval_start_epoch=100") for arg in ("--set", override)]
    return [sys.executable, "-m", "tadcli", "train", "--preset", "tiny", "--data", str(data), "--out", str(out),
            "--device", "cpu", "--threads", "1", *sets, *extra]


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_training_state(run_dir)
    return {**load_file(str(run_paths(run_dir).weights)), **{f"raw.{k}": v for k, v in state["model"].items()}}


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(small_synthetic, tmp_path):
    """SIGKILL while epoch 1 runs; --resume continues from the end of epoch 0 and ends bitwise equal."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_train_command(small_synthetic, reference, []), check=True, capture_output=True)

    process = subprocess.Popen(_train_command(small_synthetic, killed, []), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run_paths(killed).metrics
    _wait_for_step(metrics, lambda record: record.get("epoch") == 1)  # epoch 0 is checkpointed by then
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert load_training_state(killed)["position"]["epoch"] >= 1  # the last complete checkpoint loads

    resumed = subprocess.run(
        [sys.executable, "-m", "tadcli", "train", "--resume", str(killed), "--device", "cpu", "--threads", "1"],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _final_weights(reference), _final_weights(killed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    steps = [json.loads(l)["global_step"] for l in metrics.read_text().splitlines() if '"train"' in l]
    assert steps == list(range(1, 13))  # no step logged twice, none missing

    # Ctrl-C in the middle of epoch 0: a checkpoint at the step reached, exit 130, and the same end again
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_train_command(small_synthetic, interrupted, []), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_step(run_paths(interrupted).metrics, lambda record: record.get("global_step", 0) >= 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"tad train --resume {interrupted}" in stderr and "Traceback" not in stderr
    position = load_training_state(interrupted)["position"]
    assert position["global_step"] >= 1 and (position["epoch"], position["step_in_epoch"]) != (1, 0)
    resumed = subprocess.run([sys.executable, "-m", "tadcli", "train", "--resume", str(interrupted), "--device", "cpu",
                              "--threads", "1"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    got = _final_weights(interrupted)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def _wait_for_step(metrics: Path, reached, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.is_file():
            lines = metrics.read_text().splitlines()[:-1]  # the last line may be half written
            if any(reached(json.loads(line)) for line in lines if line):
                return
        time.sleep(0.02)
    raise AssertionError(f"{metrics}: training did not get there in {timeout} s")


@pytest.mark.slow
def test_a_video_that_fails_to_decode_is_replaced_and_counted(small_synthetic, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(small_synthetic, dataset)
    manifest = json.loads((dataset / "manifest.json").read_text())
    video_id, entry = next((k, v) for k, v in manifest["database"].items() if v["subset"] == "train")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 2048)  # no longer a video
    entry["video_path"] = str(broken)
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "run"
    result = subprocess.run(_train_command(dataset, out, ["--set", "train.epochs=2"]), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    epochs = [json.loads(l) for l in run_paths(out).metrics.read_text().splitlines() if '"epoch"' in l and '"kind": "epoch"' in l]
    assert [record["skipped_videos"] for record in epochs] == [1, 1]  # its slot got another video, each epoch
    assert "1 sample(s) replaced" in result.stderr


@pytest.mark.slow
def test_two_processes_follow_the_single_process_loss_curve(small_synthetic, tmp_path):
    """The preset's defaults compute the reference's per-GPU step on any process count: --nproc 2 (gloo, one
    video each) and one process accumulating two one-video forwards follow the same loss curve."""
    deterministic = ["--set", "backbone.drop_path_rate=0", "--set", "detector.path_dropout=0"]
    single, double = tmp_path / "single", tmp_path / "double"
    alone = subprocess.run(_train_command(small_synthetic, single, deterministic), capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    result = subprocess.run(_train_command(small_synthetic, double, [*deterministic, "--nproc", "2"]), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "global batch 2 = 1 process(es) x 2 accumulated forward(s) x 1 video(s)" in alone.stderr
    assert "global batch 2 = 2 process(es) x 1 accumulated forward(s) x 1 video(s)" in result.stderr
    assert "each forward keeps its own loss normaliser" in alone.stderr
    plan = read_run_config(single).batch_plan
    assert (plan["world_size"], plan["accumulation"], plan["micro_batch_size"], plan["normaliser"]) == (1, 2, 1, "per forward")

    def curve(run_dir: Path) -> np.ndarray:
        lines = [json.loads(l) for l in run_paths(run_dir).metrics.read_text().splitlines()]
        return np.array([l["loss_total"] for l in lines if l["kind"] == "train"])

    # Same data, weights and normaliser slots; only the order of float sums differs (gloo all-reduce).
    np.testing.assert_allclose(curve(double), curve(single), rtol=1e-4)
    assert sorted(p.name for p in double.iterdir()) == [
        ".lock", "config.json", "eval", "metrics.jsonl", "model.safetensors", "state", "tensorboard"
    ]  # .lock: the parent of the two workers held the folder's writer lock


def test_a_worker_process_error_reaches_the_parent_as_its_own_class(tmp_path):
    """--nproc workers: a tad error in a worker is raised in the parent with its class, message and exit code
    (not parsed from the worker's traceback text)."""
    missing = tmp_path / "missing"
    with pytest.raises(RunError) as raised:
        launch_workers(1, read_run_config, (missing,))
    assert str(raised.value) == f"{missing}: no such run folder"
    assert raised.value.exit_code == 2


@pytest.mark.slow
def test_validation_during_training_reads_the_prepared_dataset_once(small_synthetic, tmp_path, monkeypatch):
    from tadcli.data import prepared
    from tadcli.inference import evaluate
    from tadcli.services.train import TrainRequest, train

    reads = []

    def counted(dataset_dir):  # noqa: ANN001, ANN202
        reads.append(dataset_dir)
        return load_prepared_dataset(dataset_dir)

    monkeypatch.setattr(prepared, "load_prepared_dataset", counted)
    monkeypatch.setattr(evaluate, "load_prepared_dataset", counted)
    out = tmp_path / "run"
    overrides = [*FAST_TINY, "train.epochs=2", "train.eval_start_epoch=0", "train.eval_interval=1"]
    train(TrainRequest("tiny", small_synthetic, out, overrides, device="cpu", threads=1))
    lines = [json.loads(line) for line in run_paths(out).metrics.read_text().splitlines()]
    assert [line["epoch"] for line in lines if line["kind"] == "eval"] == [0, 1]
    assert sorted(p.name for p in run_paths(out).eval.iterdir()) == [
        "epoch_000_metrics.json", "epoch_000_results.json", "epoch_001_metrics.json", "epoch_001_results.json"
    ]
    assert len(reads) == 1
