"""How the default model's extraction should decode a clip's views: CPU per clip of each way, on real clips.

    python benchmarks/decode_views.py --per-set 4 > benchmarks/results/decode_views.json

The appearance stream reads a centre view and 2 augmented views per clip (8 TSN frames each, random per
segment for the augmented ones); the motion stream reads the centre view's frames and the 3 that follow each.
Per clip, one decoder thread, CPU ms (best of 3, process time: robust on a shared machine):

* ``apart``: each view decoded alone through one open reader (the extraction before one decode per clip);
* ``together``: every view's frames in one pass (``VideoClips.read_samples``) -- what it does now;
* ``whole``: every frame decoded *and converted* at the decode size, then the views picked (the clip cache's
  way: "decode everything at low resolution");
* ``together_t2``: the one pass with 2 decoder threads (frame threading): CPU and wall;
* ``gap_G``: the one pass seeking when the next wanted frame is G or more frames ahead (and its keyframe lies
  past the current frame), ``gap_scan`` never seeking: which G the rule should use;
* ``flow_apart`` / ``flow_together``: the motion stream's frames, its partner frames by a second reader
  (before) or with the clip's own (now).

Each row carries the clip's probe (frames, seconds, median keyframe interval, codec, size), so the rule can be
read off per clip. Clips: a seeded sample of each set of ``../shared/data`` and the development corpus.
"""
from __future__ import annotations

import argparse
import glob
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidcat.config import DataConfig  # noqa: E402
from vidcat.data.keyframes import keyframe_indices  # noqa: E402
from vidcat.data.sampling import sample_indices  # noqa: E402
from vidcat.featurefit.extract import clip_seed  # noqa: E402
from vidcat.io import video as V  # noqa: E402
from vidcat.io.video import VideoReader  # noqa: E402

SIDE = 160
GAPS = (4, 8, 16, 30)


def clip_sets(shared: Path, corpus: Path) -> dict:
    return {"ud810": str(shared / "ud810-actions" / "*.avi"), "arid-dark": str(shared / "arid-dark" / "*.mp4"),
            "ucf101-5": str(corpus / "ucf101-5" / "videos" / "*" / "*"),
            "mlr511-arsl": str(corpus / "mlr511-arsl" / "videos" / "*" / "*"),
            "body-gesture": str(corpus / "body-gesture" / "videos" / "*" / "*"),
            "ucf101-5 longest": str(corpus / "ucf101-5" / "videos" / "JumpRope" / "*g05_c0[135].avi")}


def views(path: str, n: int) -> list[np.ndarray]:
    """The appearance stream's 3 views of a clip: the centre one, then the 2 augmented ones of its content seed."""
    sc, seed = DataConfig(frames=8, sampler="tsn").sampler_config, clip_seed(path)
    return [sample_indices(n, sc, False, None)] + [sample_indices(n, sc, True, np.random.default_rng([seed, v]))
                                                   for v in (1, 2)]


def best_of(fn, reps: int = 3) -> tuple[float, float, int]:
    """(CPU ms, wall ms, frames decoded) of the cheapest of ``reps`` runs of ``fn() -> decoded``."""
    out = None
    for _ in range(reps):
        c, t = time.process_time(), time.perf_counter()
        d = fn()
        row = (1000 * (time.process_time() - c), 1000 * (time.perf_counter() - t), d)
        out = row if out is None or row[0] < out[0] else out
    return out


def read(path: str, want, threads: int = 1, gap: float | None = None) -> int:
    """Decode ``want`` (a list of index arrays, each read on its own) through one reader; frames decoded."""
    old = V.SEEK_GAP_FRAMES
    V.SEEK_GAP_FRAMES = gap if gap is not None else old
    try:
        with VideoReader(path, threads=threads) as r:
            n = 0
            for idx in want:
                r.frames(idx, short_side=SIDE) if idx is not None else r.frames(None, short_side=SIDE)
                n += r.decoded if idx is not None else r.info.num_frames
            return n
    finally:
        V.SEEK_GAP_FRAMES = old


def flow_apart(path: str, own: np.ndarray, partners: list[int]) -> int:
    with VideoReader(path, threads=1) as r:
        r.frames(own, short_side=SIDE)
        n = r.decoded
    with VideoReader(path, threads=1) as r:
        r.frames(partners, short_side=SIDE)
        return n + r.decoded


def measure(path: str) -> dict:
    with VideoReader(path, threads=1) as r:
        info = r.info
    keys = keyframe_indices(path)
    v = views(path, info.num_frames)
    union = np.unique(np.concatenate(v))
    flow = np.unique(np.minimum(np.concatenate([v[0] + k for k in range(4)]), info.num_frames - 1))
    partners = sorted(set(flow.tolist()) - set(v[0].tolist()))
    ways = {"apart": lambda: read(path, v), "together": lambda: read(path, [union]),
            "whole": lambda: read(path, [None]), "together_t2": lambda: read(path, [union], threads=2),
            "flow_apart": lambda: flow_apart(path, v[0], partners), "flow_together": lambda: read(path, [flow])}
    for g in GAPS + (10 ** 9,):
        ways[f"gap_{g if g < 10 ** 9 else 'scan'}"] = lambda g=g: read(path, [union], gap=g)
    row = {"frames": info.num_frames, "seconds": round(info.duration, 2), "codec": info.codec,
           "size": f"{info.width}x{info.height}", "gop": int(np.median(np.diff(keys))) if len(keys) > 1 else
           info.num_frames}
    for name, fn in ways.items():
        cpu, wall, decoded = best_of(fn)
        row[name] = {"cpu_ms": round(cpu, 1), "wall_ms": round(wall, 1), "decoded": decoded}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-set", type=int, default=4, help="clips per set (a seeded sample)")
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--corpus", default=str(Path.home() / ".cache" / "vidcat" / "corpus"))
    args = ap.parse_args(argv)
    rng = random.Random(0)
    for name, pattern in clip_sets(Path(args.shared), Path(args.corpus)).items():
        files = sorted(glob.glob(pattern))
        for path in files if "longest" in name else rng.sample(files, min(args.per_set, len(files))):
            print(json.dumps({"set": name, "file": Path(path).name, **measure(path)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
