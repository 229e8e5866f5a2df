"""The planner's worker processes: started before torch is imported, given the predictions that may be asked
for next while idle, never asked the same prediction twice, and their errors raised as the caller's own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tadcli.config.loader import load_preset
from tadcli.profiling import parallel
from tadcli.profiling import step as profiling_step
from tadcli.profiling.parallel import Predictor
from tadcli.profiling.step import Target, Workload
from tadcli.profiling.workers import WorkerPool

CPU = Target("cpu", "fp32")


def _tiny(frames: int, classes: int = 20) -> Workload:
    return Workload(load_preset("tiny", ["train.batch_size=1", f"input.frames={frames}"]), 1, 1, classes)


@pytest.fixture
def predicted_here(monkeypatch) -> list[Workload]:
    """The workloads this process predicts (its predictor thread included), in order."""
    seen: list[Workload] = []

    def recording(workload, target, inference=True):
        seen.append(workload)
        return profiling_step.predict(workload, target, inference)

    monkeypatch.setattr(parallel, "predict", recording)
    return seen


@pytest.mark.slow
def test_the_service_starts_its_workers_before_it_imports_torch():
    # importing torch and the model takes seconds in every process: the workers do it while the caller does
    script = textwrap.dedent(
        """
        import json, sys
        from tadcli.profiling import workers
        torch_loaded_at_start = []  # per call that started processes
        start = workers.WorkerPool.start

        def recording_start(self):
            before, torch_loaded = len(self.workers), "torch" in sys.modules
            start(self)
            if len(self.workers) > before:
                torch_loaded_at_start.append(torch_loaded)

        workers.WorkerPool.start = recording_start
        import tadcli
        plan = tadcli.profile_memory("tiny", batch=1, device="cpu")
        print(json.dumps({"starts": torch_loaded_at_start, "rows": len(plan.rows)}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"starts": [False], "rows": 6}


def test_a_prediction_with_inference_answers_the_same_workload_without(predicted_here):
    workload = _tiny(64)
    alone = profiling_step.predict(workload, CPU, inference=False)
    with Predictor(CPU, parallel=1) as predictor:
        [row] = predictor.predict([workload], inference=True)
        [suggestion] = predictor.predict([workload], inference=False)
    assert row.inference is not None and suggestion == alone  # the training part, inference left out
    assert predicted_here == [workload]  # once


def test_an_error_in_this_process_is_raised_to_the_caller():
    with Predictor(CPU, parallel=1) as predictor, pytest.raises(RuntimeError, match="weight"):
        predictor.predict([_tiny(64, classes=0)])  # a detector of no class cannot be built


@pytest.mark.slow
def test_idle_workers_predict_what_was_prefetched_and_later_calls_take_it(predicted_here):
    asked, prefetched = _tiny(64), _tiny(80)
    expected = [profiling_step.predict(w, CPU, inference=False) for w in (asked, prefetched)]
    predicted_here.clear()
    with WorkerPool(parallel=2) as pool:
        pool.start()
        assert pool.workers[0].receive() is None  # its "ready": it has imported what it needs
        predictor = Predictor(CPU, pool=pool)
        predictor.prefetch([prefetched], inference=False)
        assert predictor.predict([asked], inference=False) == expected[:1]
        assert predicted_here == [asked]  # this process never takes a prefetched workload
        assert predictor.predict([prefetched], inference=False) == expected[1:]
        assert predicted_here == [asked]  # the worker's answer, not a second prediction
    assert not pool.workers  # ended with the pool


@pytest.mark.slow
def test_an_error_in_a_worker_is_raised_to_the_caller(predicted_here):
    with WorkerPool(parallel=2) as pool:
        pool.start()
        assert pool.workers[0].receive() is None
        predictor = Predictor(CPU, pool=pool)
        with pytest.raises(RuntimeError, match="weight"):
            predictor.predict([_tiny(64), _tiny(64, classes=0)])  # this process takes the first, the worker the second
        assert predicted_here == [_tiny(64)]


def _worker_pids() -> set[int]:
    """The memory prediction worker processes running on this machine."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"tadcli.profiling.parallel" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:  # ended meanwhile
            pass
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="lists processes through /proc")
def test_ctrl_c_stops_the_planner_and_its_workers_at_once():
    """SIGINT to the process group, as a terminal's Ctrl-C, while this process and a worker predict: exit code
    130, one line, no worker left behind (workers sit in their own session: the caller ends them)."""
    before = _worker_pids()
    process = subprocess.Popen(
        [sys.executable, "-m", "tadcli", "profile-memory", "--preset", "giant-1536", "--gpu", "RTX-4090"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TAD_PROGRESS_INTERVAL="0.01"),  # a progress line as soon as the first row is done
    )
    for line in process.stderr:  # predicting: imports done, the next rows under way
        if line.startswith("profiling modes"):
            break
    assert _worker_pids() - before
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    start = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr, stderr
    assert time.monotonic() - start < 10  # not after the predictions under way
    assert not _worker_pids() - before
