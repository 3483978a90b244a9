"""Compute motion (flow or codec MVs) once per video and keep it on disk.

Entries are artefact-store entries (:class:`vidcat.io.store.Store`, namespace ``motion``, under the
cache folder): the key hashes the file's :func:`~vidcat.io.store.content_key` (size + sha256 of its
first and last MiB; mtime left out, so copies and touched files share entries) with the method and
every parameter that changes the result, so editing a video or a setting recomputes instead of
serving stale data. Writes are atomic (temp file + rename), so a killed run leaves at worst a temp
file that is never read and is swept once stale; finished entries are skipped, which makes runs
resumable. Every read is verified (size, checksum, key): a truncated, garbled or foreign entry, or
one from an older vidcat (``.npz`` files), is ignored or rejected with one line and recomputed.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from vidcat.errors import VidcatError, VideoError
from vidcat.io.store import Store, content_key
from vidcat.io.inputs import expand_inputs
from vidcat.io.motion.flow import BOUND, canonical_method, flow_of_stream, iter_video_frames
from vidcat.io.motion.motion_vectors import expand_grids, read_motion_vectors, read_mv_grids

log = logging.getLogger("vidcat.io.motion")
CACHE_VERSION = 3  # 3: artefact-store entries; 2: flow from every decoded frame (streamed)
_KEY_IGNORES = {"device"}  # parameters that never change the result


def canonical(method: str) -> str:
    """``mv`` or a canonical flow method name (``dis`` -> ``dis_fast``, ``raft`` -> ``raft_small``)."""
    return "mv" if method in ("mv", "motion_vectors") else canonical_method(method)


def compute_motion(path, method: str = "dis_fast", size: int | None = None, threads: int = 0,
                   **params) -> np.ndarray:
    """File -> uint8 motion: flow (T-1, H, W, 2) or, for ``mv``, codec vectors (T, H, W, 2).

    ``size`` is the short side to resize to (``None`` = native), as in ``read_frames``. Frames
    are streamed, so a header that overstates the frame count costs nothing.
    """
    method = canonical(method)
    if method == "mv":
        return read_motion_vectors(path, size=size, bound=params.get("bound", BOUND))
    return _flow(path, method, size, threads, params)[0]


def _flow(path, method: str, size, threads: int, params: dict) -> tuple[np.ndarray, str | None]:
    """Whole-video flow from streamed frames, and the io layer's damage warning (or None)."""
    frames = iter_video_frames(path, short_side=size, threads=threads, gray=not method.startswith("raft"))
    flow = flow_of_stream(frames, method, **params)
    return flow, getattr(frames, "warning", None)


def _file_key(path) -> str:
    """The file's content key; a missing or unreadable file is a :class:`VideoError`."""
    try:
        return content_key(path)
    except FileNotFoundError:
        raise VideoError(path, "file not found") from None
    except IsADirectoryError:
        raise VideoError(path, "is a directory, not a video file") from None
    except OSError as e:
        raise VideoError(path, f"cannot read file ({e.strerror})") from None


def _store(cache_dir) -> Store:
    return Store("motion", CACHE_VERSION, root=cache_dir, log=lambda line: log.warning("%s", line))


def _settings(method: str, size, params: dict) -> dict:
    s = {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items() if k not in _KEY_IGNORES}
    s.setdefault("bound", BOUND)
    if method.startswith("raft"):
        s.setdefault("num_flow_updates", 12)
        s.setdefault("weights", None)
    return {"v": CACHE_VERSION, "method": method, "size": size, **s}


def entry_key(path, cache_dir, method: str = "dis_fast", size: int | None = None, **params) -> str:
    """The store key of this file's entry with these settings."""
    method = canonical(method)
    return _store(cache_dir).key({"file": _file_key(path), **_settings(method, size, params)})


def entry_path(path, cache_dir, method: str = "dis_fast", size: int | None = None, **params) -> Path:
    """Where the cache entry for this file and these settings lives (whether or not it exists)."""
    return _store(cache_dir).path(entry_key(path, cache_dir, method, size, **params))


def _compute_compact(path, method, size, threads, params) -> tuple[np.ndarray, dict | None, str | None]:
    """Like ``compute_motion`` but MVs stay at block resolution (64x less to compress/store);
    -> (array, MV grid geometry or None, damage warning or None)."""
    if method == "mv":
        grids, geom = read_mv_grids(path, size=size, bound=params.get("bound", BOUND))
        return grids, geom, None
    flow, warning = _flow(path, method, size, threads, params)
    return flow, None, warning


def load_entry(path, cache_dir, method: str = "dis_fast", size: int | None = None, **params):
    """``(uint8 motion array, meta)`` of the verified entry for ``path`` with these settings, or
    ``None`` when absent or bad (a bad entry is removed with one warning line)."""
    got = _store(cache_dir).get(entry_key(path, cache_dir, method, size, **params), with_meta=True)
    if got is None:
        return None
    arr, meta = got
    if meta.get("grid"):
        arr = expand_grids(arr, meta["grid"])
    return arr, meta


def load_cached(path, cache_dir, method: str = "dis_fast", size: int | None = None, **params):
    """The cached motion array for ``path`` with these settings, or ``None`` if not (validly) cached."""
    got = load_entry(path, cache_dir, method, size, **params)
    return None if got is None else got[0]


def _build_one(path: str, cache_dir: str, key: str, method: str, size, params: dict, threads: int):
    """Worker: compute and store one video -> (path, error or None, seconds, damage warning or None)."""
    t0 = time.perf_counter()
    try:
        arr, grid, warning = _compute_compact(path, method, size, threads, params)
        meta = {"source": str(path), "shape": list(arr.shape), **_settings(method, size, params),
                "kind": "flow" if grid is None else "mv", "grid": grid, "warning": warning}
        _store(cache_dir).put(key, arr, meta)
        return path, None, time.perf_counter() - t0, warning
    except (KeyboardInterrupt, SystemExit):
        raise
    except VidcatError as e:
        reason = e.reason if isinstance(e, VideoError) else str(e)
    except Exception as e:  # a bad file must not stop a long batch
        reason = f"{type(e).__name__}: {e}"
    return path, reason, time.perf_counter() - t0, None


def _init_worker():
    import cv2
    cv2.setNumThreads(1)


def _check_method(method: str, params: dict) -> None:
    """Fail once, up front, when the method's optional parts are missing."""
    if method.startswith("raft"):
        from vidcat.io.motion.flow import find_raft_weights
        find_raft_weights(method, params.get("weights"))
    if method == "tvl1":
        from vidcat.io.motion.flow import _tvl1_factory
        _tvl1_factory()


def _run_jobs(jobs: list, workers: int, done) -> None:
    """Run ``_build_one`` over ``jobs`` here or in ``workers`` spawned processes; ``done(result)`` each."""
    if workers <= 1 or len(jobs) <= 1:
        for j in jobs:
            done(_build_one(*j))
        return
    ctx = mp.get_context("spawn")  # no fork of a process holding torch/OpenCV threads
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker) as ex:
        futs = [ex.submit(_build_one, *j) for j in jobs]
        try:
            for fut in as_completed(futs):
                done(fut.result())
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise


def build_cache(paths, cache_dir=None, method: str = "dis_fast", size: int | None = None, workers: int = 1,
                progress: bool = True, strict: bool = False, **params) -> dict:
    """Compute and store motion for every video in ``paths`` (files or folders); returns a summary.

    Already-cached (valid) entries are skipped (``cached`` count); bad videos are logged as one line
    each and counted in ``failed`` (``strict=True`` raises ``VideoError`` instead); so is every input
    that gives no video (a missing path, a link loop, a folder without videos), and ``warned``
    counts stored videos the decoder found damaged (truncated): their entry's meta has ``warning``.
    ``workers`` > 1 runs that many processes, each single-threaded. ``cache_dir`` defaults to
    :func:`~vidcat.io.store.cache_root`.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from vidcat.io.progress import progress as progress_bar

    t0 = time.perf_counter()
    method = canonical(method)
    _check_method(method, params)
    inputs = expand_inputs(paths)  # every input path gives one entry: a file or a reason
    store = _store(cache_dir)
    store.root.mkdir(parents=True, exist_ok=True)
    store.sweep()
    summary = {"method": method, "cache_dir": str(store.root.parent), "total": len(inputs), "computed": 0,
               "cached": 0, "failed": 0, "warned": 0, "failures": []}
    bar = progress_bar(total=len(inputs), desc=f"motion[{method}]", unit="video", enabled=progress)

    def fail(path, reason):
        if strict:
            raise VideoError(path, reason)
        log.warning("skipped %s: %s", path, reason)
        summary["failed"] += 1
        summary["failures"].append({"path": str(path), "reason": reason})
        bar.update()

    def done(res):
        path, reason, _, warning = res
        if reason is not None:
            return fail(path, reason)
        summary["computed"] += 1
        if warning:  # stored anyway (what the file holds), but said
            log.warning("%s: %s", path, warning)
            summary["warned"] += 1
        bar.update()

    with logging_redirect_tqdm(), bar:  # log lines above the bar, not through it
        todo = []
        for f, problem in inputs:
            try:
                if problem is not None:
                    raise VideoError(f, problem)
                key = entry_key(f, store.root.parent, method, size, **params)
            except VideoError as e:
                fail(f, e.reason)
                continue
            if store.get(key) is not None:  # verified: a bad entry is removed and recomputed
                summary["cached"] += 1
                bar.update()
            else:
                todo.append((str(f), str(store.root.parent), key, method, size, params, 0 if workers <= 1 else 1))
        _run_jobs(todo, workers, done)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if progress:
        print(f"motion cache [{method}]: {summary['total']} videos: {summary['computed']} computed, "
              f"{summary['cached']} already cached, {summary['failed']} skipped (bad) "
              f"in {summary['seconds']:.1f}s -> {summary['cache_dir']}", file=sys.stderr)
    return summary
