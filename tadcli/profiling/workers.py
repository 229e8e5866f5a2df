"""Worker processes for memory predictions, started without importing torch.

A worker is a plain ``python -m tadcli.profiling.parallel`` process that imports torch and the model code
(about 3 s of one core), says it is ready, then reads pickled jobs on stdin and answers on stdout: unlike
:mod:`multiprocessing`'s spawn and forkserver workers it never re-runs the caller's ``__main__`` script, so a
script that calls ``tadcli.profile_memory`` without an ``if __name__ == "__main__"`` guard works (and a piped
one too). This module imports nothing heavy, so a caller can start its workers first and import torch while
they do (:func:`tadcli.services.profile_memory.profile_memory`); :class:`tadcli.profiling.parallel.Predictor`
hands them the predictions.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

WORKER_MEMORY_BYTES = 1 << 30  # host memory a worker may need (giant-1536: 0.8 GiB resident, measured)


def worker_count() -> int:
    """Predictions to run at once: one per usable core, no more than the available host memory holds."""
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


class Worker:
    """One worker process and its pipes; ``ready`` once it has imported what it needs and said so."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # where ``tadcli`` is imported from here
        paths = [package_root, os.environ.get("PYTHONPATH", "")]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tadcli.profiling.parallel"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths))),
            start_new_session=True,  # Ctrl-C is the caller's, who ends them (a signal inside torch could abort one)
        )
        self.ready = False

    def send(self, job: object) -> None:
        try:
            pickle.dump(job, self.process.stdin)
            self.process.stdin.flush()
        except OSError as error:  # a broken pipe: it has ended
            raise WorkerStopped(self._ended()) from error

    def receive(self) -> object | None:
        """Its next answer, or None for 'ready'; re-raises the job's own error."""
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

    def stop(self) -> None:
        """End it at once: it holds nothing but what it imported (letting it exit on its own takes a second)."""
        self.process.kill()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()


class WorkerPool:
    """The worker processes of one planning session; a context manager.

    ``parallel`` predictions run at once, the calling process included, so :meth:`start` starts
    ``parallel - 1`` workers. Leaving the ``with`` block (on an error or Ctrl-C too) ends them at once, busy or
    idle, or still importing (started for work that did not come).

    Args:
        parallel: predictions at once; None = :func:`worker_count`.
    """

    def __init__(self, parallel: int | None = None) -> None:
        self.parallel = worker_count() if parallel is None else parallel
        self.workers: list[Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the missing workers now; they import while the caller goes on."""
        while len(self.workers) < self.parallel - 1:
            self.workers.append(Worker())

    def drop(self, worker: Worker) -> None:
        """Stop a worker that failed; none is started in its place (it may have been killed for memory)."""
        self.workers.remove(worker)
        worker.stop()
        self.parallel -= 1

    def close(self) -> None:
        workers, self.workers = self.workers, []
        for worker in workers:
            worker.stop()
