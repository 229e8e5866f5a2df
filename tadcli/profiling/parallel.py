"""Memory predictions of independent workloads in parallel: :class:`Predictor` hands them to the worker
processes of a :class:`~tadcli.profiling.workers.WorkerPool`, and this module is what those processes run.

A prediction is single-threaded Python dispatch on fake tensors, so the rows of a table and each round of
suggestions run one per core.
"""

from __future__ import annotations

import logging
import os
import pickle
import selectors
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO

from tadcli.profiling.fake import PredictionStopped, stopped_by
from tadcli.profiling.step import Profile, Target, Workload, predict
from tadcli.profiling.workers import Worker, WorkerPool, WorkerStopped

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    workload: Workload
    inference: bool

    def covers(self, other: _Job) -> bool:
        """Its answer answers ``other`` too: the same workload, and inference predicted if ``other`` asks for it
        (a table row's profile serves a suggestion of the same configuration)."""
        return self.workload == other.workload and (self.inference or not other.inference)


class _LocalRun:
    """One prediction in a thread of this process, so that the loop hands work to the workers meanwhile (it
    waits on their pipes, not for the GIL); its end is signalled on a pipe of its own, selected with theirs.
    :meth:`stop` ends it at its next op (the caller was interrupted)."""

    def __init__(self, job: _Job, target: Target) -> None:
        self.job = job
        self._read, self._write = os.pipe()
        self._outcome: Profile | BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(target,))
        self._thread.start()

    def _run(self, target: Target) -> None:
        try:
            with stopped_by(self._stop):
                self._outcome = predict(self.job.workload, target, self.job.inference)
        except PredictionStopped:
            pass  # nobody waits for it; its tensors are freed here, in the thread that counts them
        except BaseException as error:  # noqa: BLE001 - re-raised by outcome() in the caller's thread
            self._outcome = error
        finally:
            os.write(self._write, b"1")

    def stop(self) -> None:
        self._stop.set()
        self.outcome()

    def fileno(self) -> int:
        return self._read

    def outcome(self) -> Profile | BaseException:
        """The profile, or the error the prediction raised (once it has signalled its end)."""
        self._thread.join()
        os.close(self._read)
        os.close(self._write)
        return self._outcome


class Predictor:
    """:func:`~tadcli.profiling.step.predict` for one target, several workloads at a time; a context manager.

    This process predicts too, in a thread, so that a worker that finishes is handed its next workload at
    once. The first call with several workloads starts the pool's workers (unless started already) and goes
    on predicting while they import what they need (about 3 s of one core: torch, timm); from then on each
    workload goes to whoever is free first. Even the smallest preset's prediction takes about a second per
    mode, so a table of six pays for a worker; a single workload never starts one. Workloads that may be asked
    for later can be :meth:`prefetch`-ed: idle workers predict them meanwhile. A worker that stops (killed for
    memory, say) is dropped with a warning and its workload is predicted by the others: the same predictions.

    Args:
        target: what every prediction is for.
        parallel: workloads predicted at once, this process included; None = :func:`worker_count
            <tadcli.profiling.workers.worker_count>`. Ignored with ``pool``.
        pool: the worker processes to use (perhaps started earlier), closed by whoever opened it; None = a pool
            of this predictor's own, closed when its ``with`` block ends.
    """

    def __init__(self, target: Target, parallel: int | None = None, pool: WorkerPool | None = None) -> None:
        self.target = target
        self._own_pool = pool is None
        self.pool = WorkerPool(parallel) if pool is None else pool
        self._answers: list[tuple[_Job, Profile | BaseException]] = []  # every job answered, prefetched ones too
        self._running: dict[Worker, _Job] = {}  # what each busy worker predicts
        self._prefetched: deque[_Job] = deque()  # for idle workers only

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exception: object) -> None:
        if self._own_pool:
            self.pool.close()

    @property
    def parallel(self) -> int:
        """Workloads predicted at once, this process included."""
        return self.pool.parallel

    @property
    def worker_processes(self) -> list[subprocess.Popen]:
        """The worker processes running now."""
        return [worker.process for worker in self.pool.workers]

    def prefetch(self, workloads: Sequence[Workload], inference: bool = True) -> None:
        """Let idle workers predict ``workloads`` while this process works on (starting the workers): a later
        :meth:`predict` of an equal workload takes the answer; one never asked for is dropped. This process
        never predicts them itself."""
        self._prefetched.extend(_Job(workload, inference) for workload in workloads)
        if workloads:
            self.pool.start()

    def predict(
        self, workloads: Sequence[Workload], inference: bool = True, done: Callable[[int], None] | None = None
    ) -> list[Profile]:
        """The predictions of ``workloads``, in that order; ``done(count)`` is called as they finish."""
        jobs = [_Job(workload, inference) for workload in workloads]
        if len(jobs) > 1:
            self.pool.start()
        local: _LocalRun | None = None
        reported = 0
        with selectors.DefaultSelector() as selector:
            for worker in self.pool.workers:
                selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
            try:
                while (finished := sum(self._answered(job) is not None for job in jobs)) < len(jobs) or local:
                    if done is not None and finished > reported:
                        reported = finished
                        done(finished)
                    local = self._hand_out(jobs, local, selector)
                    for key, _ in selector.select():
                        if key.data is local:
                            selector.unregister(local)
                            self._answers.append((local.job, local.outcome()))
                            local = None
                        else:
                            self._receive(key.data, selector)
            finally:
                if local is not None:  # interrupted (Ctrl-C) or failed: this process's prediction ends at once
                    local.stop()
            if done is not None and reported < len(jobs):
                done(len(jobs))
        profiles = [self._answer(job) for job in jobs]
        for profile in profiles:
            if isinstance(profile, BaseException):
                raise profile  # a bad preset, a bug: as a prediction in this process would have raised it
        return profiles

    def _answered(self, job: _Job) -> Profile | BaseException | None:
        """The answer that covers ``job`` (perhaps with inference it did not ask for), None while there is none."""
        return next((answer for answered, answer in self._answers if answered.covers(job)), None)

    def _answer(self, job: _Job) -> Profile | BaseException:
        """``job``'s answer, as a prediction of exactly ``job`` would have given it."""
        answer = self._answered(job)
        if isinstance(answer, Profile) and not job.inference:
            return replace(answer, inference=None)
        return answer

    def _hand_out(
        self, jobs: list[_Job], local: _LocalRun | None, selector: selectors.BaseSelector
    ) -> _LocalRun | None:
        """Give this process the first job nobody has (never a prefetched one: it is certain to be free), then
        each idle ready worker the next (else a prefetched one); returns the local run."""

        def unclaimed(candidates: Sequence[_Job]) -> list[_Job]:
            taken = [*self._running.values(), *([local.job] if local else [])]
            fresh = [job for job in candidates if self._answered(job) is None and not any(t.covers(job) for t in taken)]
            return [job for index, job in enumerate(fresh) if not any(f.covers(job) for f in fresh[:index])]

        if local is None and (queue := unclaimed(jobs)):
            local = _LocalRun(queue[0], self.target)
            selector.register(local, selectors.EVENT_READ, local)
        for worker in [w for w in self.pool.workers if w.ready and w not in self._running]:
            self._prefetched = deque(unclaimed(self._prefetched))
            queue = unclaimed(jobs) or list(self._prefetched)
            if not queue:
                break
            self._running[worker] = queue[0]
            try:
                worker.send((queue[0].workload, self.target, queue[0].inference))
            except WorkerStopped as stopped:
                self._drop(worker, stopped, selector)
        return local

    def _receive(self, worker: Worker, selector: selectors.BaseSelector) -> None:
        try:
            answer = worker.receive()
        except WorkerStopped as stopped:
            self._drop(worker, stopped, selector)
        except Exception as error:  # noqa: BLE001 - the prediction's own error, raised if its job is asked for
            self._answers.append((self._running.pop(worker), error))
        else:
            if answer is not None:  # else it has just said it is ready
                self._answers.append((self._running.pop(worker), answer))

    def _drop(self, worker: Worker, stopped: WorkerStopped, selector: selectors.BaseSelector) -> None:
        logger.warning("%s; the other processes go on without it", stopped)
        selector.unregister(worker.process.stdout)
        self.pool.drop(worker)
        job = self._running.pop(worker, None)
        if job is not None:  # asked for: someone else predicts it; prefetched: back in the queue
            self._prefetched.appendleft(job)


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
    _serve(sys.stdin.buffer, answers)
