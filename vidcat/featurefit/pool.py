"""Clip workers shared by every stream of a run: each loads a clip and runs its stream's module on it.

A clip's whole job -- decode, sample, the data loaders, then the stream's frozen module -- runs in one worker
process on one torch (and OpenCV) thread, ``workers`` clips at a time; the main process only writes what comes
back (feature vectors, a few KB). Cores are filled by clips, never by intra-op threads: torch's OpenMP team on
a busy 2-core box waits at every barrier for a thread the scheduler preempted (2 threads took up to 4x the CPU
of one for the appearance backbone's 24-frame batches there), and one-thread clip workers need no split of the
cores between loading and the module, a split that differs 10-fold between streams. ``vidcat bench recipe``:
11.2 ms CPU per appearance frame in clip workers against 16.2 ms for the loader processes beside 2 torch
threads they replaced.

The processes start once, at the first clip any stream sends them, each given every stream's module once, and
serve every stream of the run (:class:`ClipPool`). Each task reports the CPU seconds it took, so every stream's
cost is known while the pool lives on. A worker that dies (a decoder crash on a hostile file) loses nothing but
that clip: the pool restarts and the clips it held are tried again one at a time; the one that kills it again
is reported unreadable.
"""
from __future__ import annotations

import multiprocessing
import pickle
import resource
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

_MODULES: dict = {}     # a worker's stream modules, by stream name


def own_cpu() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def torch_threads(n: int | None):
    """Torch's intra-op threads set to ``n`` inside the block (None: left as they are), restored after."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def opencv_threads(n: int):
    """OpenCV's threads set to ``n`` inside the block, restored after."""
    import cv2

    old = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def worker_context():
    """The start method of clip workers: fork where that is safe, spawn once MediaPipe is loaded here -- a
    forked child that runs MediaPipe's graphs after its parent did aborts in malloc (a corrupted heap), which
    lost every clip that needed the hand detector after the plan's probe had run it."""
    ctx = multiprocessing.get_context()
    if ctx.get_start_method() == "fork" and "mediapipe" in sys.modules:
        return multiprocessing.get_context("spawn")
    return ctx


def _init_worker(modules, fresh: bool) -> None:
    """A clip worker: one torch thread (the workers fill the cores) and the run's modules (pickled whole, so a
    worker builds its own runtime sessions). OpenCV's threads are set here only in a fresh process: a forked
    one must not touch the pool it inherited (it hangs on its locks), and is forked while it has one thread."""
    import torch

    torch.set_num_threads(1)
    if fresh:
        import cv2

        cv2.setNumThreads(1)
    _MODULES.update(pickle.loads(modules) if isinstance(modules, bytes) else modules)


def _payload(modules: dict):
    """The modules as a worker gets them: pickled (runtime sessions and such are left behind), else as they
    are (inherited by a forked worker)."""
    try:
        return pickle.dumps(modules)
    except Exception:   # noqa: BLE001 - a module that cannot be pickled is inherited instead
        return modules


def _in_worker(fn, name: str, *args):
    return fn(_MODULES[name], *args)


class ClipPool:
    """Up to ``size`` clip workers holding ``modules`` ({stream name: module}); ``size`` 0 runs every task
    here. Started at the first task, kept for every later :meth:`map`."""

    def __init__(self, size: int, modules: dict):
        self.size, self.modules, self._executor = max(0, int(size)), dict(modules), None
        for m in self.modules.values():
            m.eval()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def holds(self, module) -> bool:
        return self.modules.get(getattr(module, "name", None)) is module

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = worker_context()
            forked = ctx.get_start_method() == "fork"
            ex = ProcessPoolExecutor(self.size, mp_context=ctx, initializer=_init_worker,
                                     initargs=(_payload(self.modules), not forked))
            if forked:
                with opencv_threads(1):       # every worker forked now, while OpenCV has no pool threads
                    ex.submit(int).result()
            self._executor = ex
        return self._executor

    def _drop_broken(self) -> None:
        """Forget a pool a dead worker broke (the next task starts a fresh one)."""
        if self._executor is not None and getattr(self._executor, "_broken", False):
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def map(self, fn, name: str, tasks: list, lost=None):
        """``fn(module, *task)`` of every task with stream ``name``'s module, in the order they finish. A task
        whose worker died twice yields ``lost(task)``."""
        if self.size == 0:
            yield from (fn(self.modules[name], *t) for t in tasks)
            return
        retry: list = []
        yield from self._window(fn, name, list(tasks), 2 * self.size, retry)
        for task in retry:             # alone, so a second death is this task's own
            again: list = []
            yield from self._window(fn, name, [task], 1, again)
            if again and lost:
                yield lost(task)

    def _window(self, fn, name: str, tasks: list, ahead: int, died: list):
        """Run ``tasks``, ``ahead`` of them queued at a time; the tasks of a pool that broke go to ``died``."""
        pending, it = {}, iter(tasks)
        for task in it:
            pending[self._start().submit(_in_worker, fn, name, *task)] = task
            if len(pending) >= ahead:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task, result = pending.pop(fut), None
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    died.append(task)
                    self._drop_broken()
                nxt = next(it, None)
                if nxt is not None:
                    pending[self._start().submit(_in_worker, fn, name, *nxt)] = nxt
                if result is not None:
                    yield result
