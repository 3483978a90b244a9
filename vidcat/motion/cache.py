"""Compute motion (flow or codec MVs) once per video and keep it on disk.

Entries are ``<stem>-<key>.npz`` (zip of a uint8 ``.npy`` + ``meta.json``), where ``key`` hashes a
fast file fingerprint (size, mtime, first and last 64 KiB) with the method and every parameter
that changes the result, so editing a video or a setting recomputes instead of serving stale data.
Writes go to ``<entry>.tmp-<pid>`` and are renamed into place (``os.replace`` is atomic), so a killed
run leaves at worst a ``.tmp-*`` file that is never read and is swept on the next run; finished
entries are skipped, which makes runs resumable.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from vidcat.errors import VidcatError, VideoError
from vidcat.inputs import expand_inputs
from vidcat.motion.flow import BOUND, canonical_method, flow_of_stream, iter_video_frames
from vidcat.motion.motion_vectors import expand_grids, read_motion_vectors, read_mv_grids

log = logging.getLogger("vidcat.motion")
CACHE_VERSION = 2  # 2: flow from every decoded frame (streamed), not from header-count timestamps
_CHUNK = 64 * 1024
_TMP = re.compile(r"\.tmp-(\d+)$")
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


def fingerprint(path) -> str:
    """Cheap identity of a file's content: size, mtime and its first and last 64 KiB."""
    p = Path(path)
    try:
        st = p.stat()
        with open(p, "rb") as f:
            head = f.read(_CHUNK)
            if st.st_size > _CHUNK:
                f.seek(max(st.st_size - _CHUNK, _CHUNK))
            tail = f.read(_CHUNK)
    except FileNotFoundError:
        raise VideoError(path, "file not found") from None
    except IsADirectoryError:
        raise VideoError(path, "is a directory, not a video file") from None
    except OSError as e:
        raise VideoError(path, f"cannot read file ({e.strerror})") from None
    h = hashlib.blake2b(f"{st.st_size}:{st.st_mtime_ns}:".encode(), digest_size=16)
    h.update(head)
    h.update(tail)
    return h.hexdigest()


def _settings(method: str, size, params: dict) -> dict:
    s = {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items() if k not in _KEY_IGNORES}
    s.setdefault("bound", BOUND)
    if method.startswith("raft"):
        s.setdefault("num_flow_updates", 12)
        s.setdefault("weights", None)
    return {"v": CACHE_VERSION, "method": method, "size": size, **s}


def entry_path(path, cache_dir, method: str = "dis_fast", size: int | None = None, **params) -> Path:
    """Where the cache entry for this file and these settings lives (whether or not it exists)."""
    method = canonical(method)
    blob = json.dumps({"file": fingerprint(path), **_settings(method, size, params)}, sort_keys=True, default=str)
    key = hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem)[:48] or "video"
    return Path(cache_dir) / f"{stem}-{key}.npz"


def _compute_compact(path, method, size, threads, params) -> tuple[np.ndarray, dict | None, str | None]:
    """Like ``compute_motion`` but MVs stay at block resolution (64x less to compress/store);
    -> (array, MV grid geometry or None, damage warning or None)."""
    if method == "mv":
        grids, geom = read_mv_grids(path, size=size, bound=params.get("bound", BOUND))
        return grids, geom, None
    flow, warning = _flow(path, method, size, threads, params)
    return flow, None, warning


def _save(dst: Path, arr: np.ndarray, meta: dict) -> None:
    """Atomic write: a fully written, fsynced temp file renamed over ``dst``."""
    tmp = dst.with_name(f"{dst.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            # deflate level 1: ~3x faster than numpy's savez_compressed, nearly as small for
            # these fields (mostly values near 128, block-constant for MVs)
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                with zf.open("motion.npy", "w", force_zip64=True) as e:
                    np.lib.format.write_array(e, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr("meta.json", json.dumps(meta))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_entry(entry) -> tuple[np.ndarray, dict]:
    """Read one ``.npz`` entry -> (uint8 array, meta dict); raises on a damaged file."""
    with zipfile.ZipFile(entry) as zf:
        meta = json.loads(zf.read("meta.json"))
        with zf.open("motion.npy") as e:
            arr = np.lib.format.read_array(e, allow_pickle=False)
    if meta.get("grid"):
        arr = expand_grids(arr, meta["grid"])
    return arr, meta


def load_cached(path, cache_dir, method: str = "dis_fast", size: int | None = None, **params):
    """The cached motion array for ``path`` with these settings, or ``None`` if not (validly) cached."""
    entry = entry_path(path, cache_dir, method, size, **params)
    if not entry.is_file():
        return None
    try:
        return read_entry(entry)[0]
    except Exception as e:  # damaged by something outside our atomic writes (disk, user)
        log.warning("%s: unreadable cache entry %s (%s); it will be recomputed", path, entry.name, e)
        return None


def _done(entry: Path) -> bool:
    return entry.is_file() and zipfile.is_zipfile(entry)


def _sweep_tmp(cache_dir: Path) -> int:
    """Delete temp files left by killed runs (their writer process is gone)."""
    n = 0
    for p in cache_dir.glob("*.tmp-*"):
        m = _TMP.search(p.name)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            if pid != os.getpid():
                os.kill(pid, 0)  # signal 0: only asks whether the process exists
                continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        p.unlink(missing_ok=True)
        n += 1
    return n


def _build_one(path: str, entry: str, method: str, size, params: dict, threads: int):
    """Worker: compute and store one video -> (path, error or None, seconds, damage warning or None)."""
    t0 = time.perf_counter()
    try:
        arr, grid, warning = _compute_compact(path, method, size, threads, params)
        meta = {"source": str(path), "shape": list(arr.shape), **_settings(method, size, params),
                "kind": "flow" if grid is None else "mv", "grid": grid, "warning": warning}
        _save(Path(entry), arr, meta)
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


def build_cache(paths, cache_dir, method: str = "dis_fast", size: int | None = None, workers: int = 1,
                progress: bool = True, strict: bool = False, **params) -> dict:
    """Compute and store motion for every video in ``paths`` (files or folders); returns a summary.

    Already-cached entries are skipped (``cached`` count); bad videos are logged as one line each
    and counted in ``failed`` (``strict=True`` raises ``VideoError`` instead); so is every input
    that gives no video (a missing path, a link loop, a folder without videos), and ``warned``
    counts stored videos the decoder found damaged (truncated): their entry's meta has ``warning``.
    ``workers`` > 1 runs that many processes, each single-threaded.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from vidcat.io.progress import progress as progress_bar

    t0 = time.perf_counter()
    method = canonical(method)
    if method.startswith("raft"):
        from vidcat.motion.flow import find_raft_weights
        find_raft_weights(method, params.get("weights"))  # fail once, up front
    if method == "tvl1":
        from vidcat.motion.flow import _tvl1_factory
        _tvl1_factory()
    inputs = expand_inputs(paths)  # every input path gives one entry: a file or a reason
    files = [f for f, _ in inputs]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _sweep_tmp(cache_dir)

    summary = {"method": method, "cache_dir": str(cache_dir), "total": len(files), "computed": 0,
               "cached": 0, "failed": 0, "warned": 0, "failures": []}
    todo = []
    bar = progress_bar(total=len(files), desc=f"motion[{method}]", unit="video", enabled=progress)

    def fail(path, reason):
        if strict:
            raise VideoError(path, reason)
        log.warning("skipped %s: %s", path, reason)
        summary["failed"] += 1
        summary["failures"].append({"path": str(path), "reason": reason})

    with logging_redirect_tqdm(), bar:  # log lines above the bar, not through it
        for f, problem in inputs:
            if problem is not None:
                fail(f, problem)
                bar.update()
                continue
            try:
                entry = entry_path(f, cache_dir, method, size, **params)
            except VideoError as e:
                fail(f, e.reason)
                bar.update()
                continue
            if _done(entry):
                summary["cached"] += 1
                bar.update()
            else:
                todo.append((str(f), str(entry)))
        threads = 0 if workers <= 1 else 1
        jobs = [(f, e, method, size, params, threads) for f, e in todo]

        def done(res):
            path, reason, _, warning = res
            if reason is None:
                summary["computed"] += 1
                if warning:  # stored anyway (what the file holds), but said
                    log.warning("%s: %s", path, warning)
                    summary["warned"] += 1
            else:
                fail(path, reason)
            bar.update()

        if workers <= 1 or len(jobs) <= 1:
            for j in jobs:
                done(_build_one(*j))
        else:
            ctx = mp.get_context("spawn")  # no fork of a process holding torch/OpenCV threads
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker) as ex:
                futs = [ex.submit(_build_one, *j) for j in jobs]
                try:
                    for fut in as_completed(futs):
                        done(fut.result())
                except BaseException:
                    ex.shutdown(wait=False, cancel_futures=True)
                    raise
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if progress:
        print(f"motion cache [{method}]: {summary['total']} videos: {summary['computed']} computed, "
              f"{summary['cached']} already cached, {summary['failed']} skipped (bad) "
              f"in {summary['seconds']:.1f}s -> {cache_dir}", file=sys.stderr)
    return summary
