"""Memory predictions of independent workloads in parallel worker processes.

A prediction is single-threaded Python dispatch on fake tensors, so the rows of a table and each round of
suggestions run one per core. The workers are plain ``python -m tadcli.profiling.parallel`` processes that
read pickled jobs on stdin and answer on stdout: unlike :mod:`multiprocessing`'s spawn and forkserver
workers they never re-run the caller's ``__main__`` script, so a script that calls
``tadcli.profile_memory`` without an ``if __name__ == "__main__"`` guard works (and a piped one too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from tadcli.profiling.step import Profile, Target, Workload, predict

logger = logging.getLogger(__name__)

WORKER_MEMORY_BYTES = 1 << 30  # host memory a worker may need (giant-1536: 0.8 GiB resident, measured)


def worker_count() -> int:
    """Worker processes to run: one per usable core, no more than the available host memory holds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    available = _available_memory()
    return cores if available is None else max(1, min(cores, available // WORKER_MEMORY_BYTES))


def _available_memory() -> int | None:
    """Bytes of host memory available to new processes (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class WorkerStopped(Exception):
    """A worker process ended without answering (killed for memory, or unable to start)."""


class _Worker:
    """One worker process and its pipes; ``ready`` once it has imported what it needs and said so."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # where ``tadcli`` is imported from here
        paths = [package_root, os.environ.get("PYTHONPATH", "")]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tadcli.profiling.parallel"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths))),
        )
        self.ready = False

    def send(self, job: tuple[Workload, Target, bool]) -> None:
        try:
            pickle.dump(job, self.process.stdin)
            self.process.stdin.flush()
        except OSError as error:  # a broken pipe: it has ended
            raise WorkerStopped(self._ended()) from error

    def receive(self) -> Profile | None:
        """Its next answer: a profile, or None for 'ready'; re-raises the prediction's own error."""
        try:
            kind, value = pickle.load(self.process.stdout)
        except (EOFError, pickle.UnpicklingError, OSError) as error:
            raise WorkerStopped(self._ended()) from error
        if kind == "error":
            raise value  # a bad preset, a bug: as the caller would have seen it in this process
        self.ready = True
        return value

    def _ended(self) -> str:
        return f"a memory prediction worker process ended with exit code {self.process.wait()}"

    def stop(self, now: bool) -> None:
        """Close its input (it exits once idle); ``now``: kill it first."""
        if now:
            self.process.kill()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()


class Predictor:
    """:func:`~tadcli.profiling.step.predict` for one target, several workloads at a time; a context manager.

    This process predicts too. The first call with several workloads starts ``parallel - 1`` worker processes
    and goes on predicting while they import what they need (about 4 s of one core: torch, timm); from then on
    each workload goes to whoever is free first. Even the smallest preset's prediction takes about a second
    per mode, so a table of six pays for a worker; a single workload never starts one. Workers serve every
    later call until the ``with`` block ends; leaving it on an error or Ctrl-C kills them at once. A worker
    that stops (killed for memory, say) is dropped with a warning and its workload is predicted by the others:
    the same predictions.

    Args:
        target: what every prediction is for.
        parallel: workloads predicted at once, this process included; None = :func:`worker_count`.
    """

    def __init__(self, target: Target, parallel: int | None = None) -> None:
        self.target = target
        self.parallel = worker_count() if parallel is None else parallel
        self._workers: list[_Worker] = []

    def __enter__(self) -> Predictor:
        return self

    @property
    def worker_processes(self) -> list[subprocess.Popen]:
        """The worker processes running now."""
        return [worker.process for worker in self._workers]

    def __exit__(self, error_type: type[BaseException] | None, *rest: object) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:  # one still importing (started for suggestions that were not needed) is killed
            worker.stop(now=error_type is not None or not worker.ready)

    def predict(
        self, workloads: Sequence[Workload], inference: bool = True, done: Callable[[int], None] | None = None
    ) -> list[Profile]:
        """The predictions of ``workloads``, in that order; ``done(count)`` is called as they finish."""
        profiles: list[Profile | None] = [None] * len(workloads)
        waiting = deque(range(len(workloads)))  # indices of workloads nobody predicts yet
        busy: dict[_Worker, int] = {}  # worker: the index it predicts

        def finished(index: int, profile: Profile) -> None:
            profiles[index] = profile
            if done is not None:
                done(sum(p is not None for p in profiles))

        def drop(worker: _Worker, stopped: WorkerStopped) -> None:
            logger.warning("%s; the other processes go on without it", stopped)
            selector.unregister(worker.process.stdout)
            self._workers.remove(worker)
            worker.stop(now=True)
            self.parallel -= 1  # it may have been killed for memory: none is started in its place
            if worker in busy:
                waiting.appendleft(busy.pop(worker))

        with selectors.DefaultSelector() as selector:
            if len(workloads) > 1:
                self.start_workers()
            for worker in self._workers:
                selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
            while waiting or busy:
                for worker in [w for w in self._workers if w.ready and w not in busy][: len(waiting)]:
                    busy[worker] = index = waiting.popleft()
                    try:
                        worker.send((workloads[index], self.target, inference))
                    except WorkerStopped as stopped:
                        drop(worker, stopped)
                if waiting:  # every worker is busy or starting: predict one here
                    index = waiting.popleft()
                    finished(index, predict(workloads[index], self.target, inference))
                events = selector.select(timeout=None if busy and not waiting else 0) if self._workers else []
                for key, _ in events:
                    worker = key.data
                    try:
                        profile = worker.receive()
                    except WorkerStopped as stopped:
                        drop(worker, stopped)
                        continue
                    if profile is not None:  # else it has just said it is ready
                        finished(busy.pop(worker), profile)
        return profiles

    def start_workers(self) -> None:
        """Start the worker processes now (they import while this process works on), e.g. where a single
        prediction may be followed by several."""
        while len(self._workers) < self.parallel - 1:
            self._workers.append(_Worker())


def _serve(jobs: BinaryIO, answers: BinaryIO) -> None:
    """A worker's loop: ``("ready", None)`` out, then for each pickled ``(workload, target, inference)`` in,
    ``("profile", profile)`` or ``("error", exception)`` out, until its input closes."""
    answer: tuple[str, object] = ("ready", None)
    while True:
        pickle.dump(answer, answers)
        answers.flush()
        try:
            workload, target, inference = pickle.load(jobs)
        except EOFError:
            return
        try:
            answer = ("profile", predict(workload, target, inference))
        except Exception as error:  # noqa: BLE001 - handed back to the caller, who raises it
            answer = ("error", error)


if __name__ == "__main__":
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed goes to stderr, not into the answers
    try:
        _serve(sys.stdin.buffer, answers)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the caller stops its workers
        pass
