"""`tad profile-memory`: predictions on fake tensors agree with a measured step; suggestions fit when
re-profiled; the giant profiles without its weights; bad input is one line and exit code 2."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from typer.testing import CliRunner

import tadcli
from tadcli.cli import app
from tadcli.config.loader import load_preset
from tadcli.model.chunked import representative_groups
from tadcli.profiling import step as profiling_step
from tadcli.errors import PresetError
from tadcli.profiling.gpus import GIB
from tadcli.profiling.parallel import Predictor
from tadcli.profiling.replay import CallTraces
from tadcli.profiling.step import Profile, Target, Workload
from tadcli.profiling.suggest import Change, axes, suggest
from tadcli.profiling.tracker import LiveTensorMemory, cuda_block_bytes
from tadcli.profiling.modes import MODES

from conftest import error_line

runner = CliRunner()
TOLERANCE = 0.10  # the accuracy target against a measured CPU step
ONE_MICRO_BATCH = "train.batch_size=1"  # a step of one micro-batch: half the work where accumulation is not tested


@pytest.fixture(autouse=True)
def one_thread():
    """Real CPU steps: one intra-op thread (two busy threads on a shared machine are many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiny_table_agrees_with_a_measured_cpu_step():
    plan = tadcli.profile_memory("tiny", batch=1, device="cpu", measure_peak=True)  # 2 micro-batches: accumulation
    assert [row.mode for row in plan.rows] == list(MODES)
    assert [row.mode for row in plan.rows if row.is_preset] == ["tia-no-checkpointing"]  # tiny: tia, no checkpointing
    for row in plan.rows:
        train, infer, measured = row.profile.training, row.profile.inference, row.measured
        assert abs(train.peak / measured.training - 1) <= TOLERANCE, (row.mode, train.peak, measured.training)
        assert abs(infer.peak / measured.inference - 1) <= TOLERANCE, (row.mode, infer.peak, measured.inference)
        parts = train.weights + train.gradients + train.optimizer + train.ema + train.activations
        assert parts == train.peak
        assert train.weights >= 4 * row.profile.total_parameters  # fp32, frozen weights included
        assert train.optimizer >= 2 * 4 * row.profile.trainable_parameters  # AdamW: two moments per parameter
    peaks = {row.mode: row.profile.training.peak for row in plan.rows}
    assert peaks["full-checkpointing"] < peaks["full"] and peaks["tia"] < peaks["tia-no-checkpointing"]
    trainable = {row.mode: row.profile.trainable_parameters for row in plan.rows}
    assert trainable["frozen"] < trainable["tia"] < trainable["full"]


@pytest.mark.slow
def test_a_preset_that_does_not_fit_gets_suggestions_that_fit_when_re_profiled(tmp_path):
    budget = "0.05"  # GiB; tiny's own configuration needs about 61 MiB on the CPU
    base = ["profile-memory", "--preset", "tiny", "--set", ONE_MICRO_BATCH, "--device", "cpu", "--memory", budget]
    plan = tadcli.profile_memory("tiny", [ONE_MICRO_BATCH], mode="preset", device="cpu", memory_gb=float(budget))
    assert plan.rows[0].fits is False
    changes = {s.change.description.split(" (")[0] for s in plan.suggestions}
    assert "checkpointing on" in changes and "side adapters" in changes
    assert any("frames" in change for change in changes)
    for index, suggestion in enumerate(plan.suggestions):
        assert suggestion.profile.fits(plan.capacity_bytes)
        flags = list(suggestion.change.flags)
        mode = [] if "--mode" in flags else ["--mode", "preset"]
        out = tmp_path / f"again{index}.json"
        result = runner.invoke(app, [*base, *mode, *flags, "--json", str(out)])
        assert result.exit_code == 0, result.output
        again = json.loads(out.read_text())["modes"][0]
        assert again["fits"] is True, suggestion.change.description
        assert again["training_bytes"]["peak"] == suggestion.profile.training.peak


@pytest.mark.slow
def test_suggestion_searches_run_side_by_side_find_the_same_changes_in_fewer_rounds():
    preset, target = load_preset("tiny", [ONE_MICRO_BATCH]), Target("cpu", "fp32")
    capacity = int(0.05 * GIB)  # tiny's own configuration needs about 61 MiB on the CPU
    profiled: dict[tuple[str, ...], Profile] = {}  # each configuration predicted once for both runs

    def changed(change: Change):
        return load_preset("tiny", [ONE_MICRO_BATCH, *change.overrides])

    def valid(change: Change) -> bool:
        try:
            changed(change)
        except PresetError:
            return False
        return True

    def run(parallel: int) -> tuple[list, list[int]]:
        rounds: list[int] = []

        def profile(changes):
            rounds.append(len(changes))
            for change in changes:
                if change.overrides not in profiled:
                    profiled[change.overrides] = profiling_step.predict(
                        Workload(changed(change), 1, 1, 20), target, inference=False
                    )
            return [profiled[change.overrides] for change in changes]

        found = suggest(preset, 1, 1, capacity, profile, valid, "cpu", parallel)
        return [(s.change, s.profile.training.peak) for s in found], rounds

    one_at_a_time, rounds_of_one = run(parallel=1)
    side_by_side, rounds_of_many = run(parallel=16)
    assert side_by_side == one_at_a_time and len(one_at_a_time) >= 3
    assert all(profile.fits(capacity) for profile in (profiled[change.overrides] for change, _ in side_by_side))
    assert len(rounds_of_many) < len(rounds_of_one)  # fewer waits for a round of parallel profiles
    assert max(rounds_of_many) <= 16


def _tiny_workloads(count: int) -> list[Workload]:
    return [Workload(load_preset("tiny", [ONE_MICRO_BATCH, f"input.frames={16 * (4 + i)}"]), 1, 1, 20)
            for i in range(count)]


@pytest.mark.slow
def test_a_script_without_a_main_guard_predicts_in_worker_processes(tmp_path):
    # multiprocessing's spawn / forkserver workers re-run such a script (and cannot re-run a piped one)
    script = tmp_path / "plan.py"
    script.write_text(textwrap.dedent(
        """
        import json
        from tadcli.config.loader import load_preset
        from tadcli.profiling.parallel import Predictor
        from tadcli.profiling.step import Target, Workload, predict
        target = Target("cpu", "fp32")
        workloads = [Workload(load_preset("tiny", ["train.batch_size=1", f"input.frames={16 * (4 + i)}"]), 1, 1, 20)
                     for i in range(4)]
        with Predictor(target, parallel=3) as predictor:
            parallel = predictor.predict(workloads, inference=False)
            workers = len(predictor.worker_processes)
        alone = [predict(workload, target, inference=False) for workload in workloads]
        print(json.dumps({"workers": workers, "same": parallel == alone}))
        """
    ))
    for run in ([sys.executable, str(script)], [sys.executable, "-"]):
        done = subprocess.run(run, input=script.read_text() if run[-1] == "-" else None, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"workers": 2, "same": True}, done.stderr
        assert "worker process ended" not in done.stderr


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_the_same_predictions(caplog):
    target, workloads = Target("cpu", "fp32"), _tiny_workloads(5)
    alone = [profiling_step.predict(workload, target, inference=False) for workload in workloads]
    with Predictor(target, parallel=3) as predictor:

        def kill_a_worker(count: int) -> None:  # as the kernel's out-of-memory killer would
            if count == 2 and len(predictor.worker_processes) == 2:
                predictor.worker_processes[0].kill()

        with caplog.at_level("WARNING", logger="tadcli.profiling.parallel"):
            assert predictor.predict(workloads, inference=False, done=kill_a_worker) == alone
        assert len(predictor.worker_processes) == 1 and predictor.parallel == 2
    assert "a memory prediction worker process ended with exit code -9" in caplog.text


@pytest.mark.slow
def test_giant_1536_profiles_without_allocating_its_weights():
    script = textwrap.dedent(
        """
        import json, resource, time
        import tadcli
        start = time.perf_counter()
        plan = tadcli.profile_memory("giant-1536", mode="preset", gpu="A100-80GB")
        row = plan.rows[0]
        print(json.dumps({"seconds": time.perf_counter() - start,
                          "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                          "parameters": row.profile.total_parameters,
                          "weights": row.profile.training.weights, "peak": row.profile.training.peak}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["parameters"] > 1_000_000_000
    assert result["weights"] >= 4 * result["parameters"]  # fp32 weights: 4 GB predicted...
    assert result["max_rss"] < result["weights"] / 2  # ...that this process never held
    assert result["peak"] > 10 * 2**30  # its time is a benchmark (BENCHMARKS.md, Memory prediction), not a test


@pytest.mark.parametrize("mode", ["tia", "full-checkpointing", "side"])
def test_running_only_the_representative_chunk_groups_predicts_the_same_bytes(mode, monkeypatch):
    # 13 chunks in groups of 2: seven groups, the last one shorter; full-checkpointing sums transformer gradients
    overrides = [ONE_MICRO_BATCH, "input.frames=208", "adaptation.chunk_group=2"]

    def rows() -> list:
        plan = tadcli.profile_memory("tiny", overrides, mode=mode, device="cuda", precision="bf16")
        return [(row.profile.training, row.profile.inference) for row in plan.rows]

    representative = rows()
    monkeypatch.setattr(profiling_step, "representative_groups", contextlib.nullcontext)
    assert representative == rows()  # every group run


@pytest.mark.parametrize(
    "mode, device", [("tia", "cuda"), ("side", "cuda"), ("frozen", "cuda"), ("tia", "cpu"), ("full-checkpointing", "cpu")]
)
def test_replayed_block_calls_predict_the_same_bytes_as_running_every_call(mode, device, monkeypatch):
    # 4 blocks of 13 chunks in groups of 2: the frozen transformer parts repeat from block to block
    overrides = [ONE_MICRO_BATCH, "input.frames=208", "adaptation.chunk_group=2", "adaptation.checkpointing=true"]

    def rows() -> list:
        plan = tadcli.profile_memory("tiny", overrides, mode=mode, device=device, suggest_changes=False)
        return [(row.profile.training, row.profile.inference) for row in plan.rows]

    replays = []
    replay = LiveTensorMemory.replay
    monkeypatch.setattr(LiveTensorMemory, "replay", lambda *args: replays.append(1) or replay(*args))
    first, again = rows(), rows()  # the first records each call once, the second replays all it can
    assert len(replays) > 0
    monkeypatch.setattr(CallTraces, "replaying", lambda self, tracker: contextlib.nullcontext())
    assert first == again == rows()  # every call run


def test_representative_chunk_groups_refuse_real_tensors():
    with pytest.raises(RuntimeError, match="fake tensors only"), representative_groups():
        pass


def test_offloaded_checkpoints_leave_the_device_in_a_cuda_prediction_only():
    base = [ONE_MICRO_BATCH, "adaptation.checkpointing=true"]  # tiny: tia on 4 blocks, 8 chunks of 128 tokens

    def training(device: str, offload: bool):
        overrides = [*base, f"adaptation.offload_checkpoints={str(offload).lower()}"]
        plan = tadcli.profile_memory("tiny", overrides, mode="preset", device=device)
        return plan.rows[0].profile.training

    block_tensor = 8 * 128 * 128 * 4  # one kept [N, L, C] fp32 block output
    # CUDA: at the top of the backward only the blocks being worked on are back on the device
    assert training("cuda", False).peak - training("cuda", True).peak >= 2 * block_tensor
    assert training("cpu", True) == training("cpu", False)  # on the CPU offloading moves nothing


def test_mixed_precision_and_the_cuda_allocator_are_accounted():
    fp32, bf16 = (
        tadcli.profile_memory("tiny", [ONE_MICRO_BATCH], mode="full", device="cuda", precision=precision)
        .rows[0].profile.training
        for precision in ("fp32", "bf16")
    )
    assert bf16.weights == fp32.weights and bf16.optimizer == fp32.optimizer  # fp32 master weights under autocast
    assert bf16.activations < 0.75 * fp32.activations  # linear / attention outputs kept in bf16
    assert fp32.reserved >= fp32.peak and fp32.peak % 512 == 0  # 512-byte blocks, whole segments reserved


def test_the_tracker_counts_cuda_blocks_and_segments():
    tracker = LiveTensorMemory(cuda_allocator=True)
    with tracker:
        small = torch.empty(100, dtype=torch.uint8)  # one 512-byte block in a 2 MiB segment
        large = torch.empty(11 << 20, dtype=torch.uint8)  # its own segment, rounded up to 12 MiB
        del small
        view = large[:10]  # a view allocates nothing
    peak = tracker.peak({"large": [view]})
    assert cuda_block_bytes(100) == 512 and cuda_block_bytes(0) == 0
    assert peak.total == 512 + (11 << 20) and peak.groups == {"large": 11 << 20, "other": 512}
    assert peak.reserved == (2 << 20) + (12 << 20)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "A200"], "unknown GPU 'A200'; did you mean H200"),
        (["--batch", "3"], "--batch 3 must divide the preset's global batch"),
        (["--device", "cpu", "--precision", "bf16"], "--precision bf16 is CUDA only"),
        (["--gpu", "V100-32GB", "--precision", "bf16"], "has no bf16 support"),
        (["--gpu", "L4", "--memory", "20"], "not both"),
        (["--frames", "100"], "frames must be a multiple of 16"),
        (["--mode", "lora"], "unknown mode 'lora'"),
        (["--memory", "-1"], "--memory must be positive"),
        (["--json", "."], "JSON table must be a file, this is a folder"),  # refused before profiling
    ],
)
def test_unknown_gpus_and_bad_flags_are_one_line_and_exit_code_2(args, message):
    line = error_line(runner.invoke(app, ["profile-memory", "--preset", "tiny", *args]))
    assert line.startswith("error: ") and message in line, line


def test_suggestions_offer_offloading_for_cuda_targets_only():
    preset = load_preset("tiny", ["adaptation.checkpointing=true"])
    for device, offered in (("cuda", True), ("cpu", False)):
        found = axes(preset, batch=2, global_batch=2, valid=lambda change: True, device=device)
        assert ("offload" in found) is offered
    change = axes(preset, 2, 2, lambda change: True, "cuda")["offload"][0]
    assert change.flags == ("--set", "adaptation.offload_checkpoints=true")
