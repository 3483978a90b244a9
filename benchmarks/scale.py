"""The default ``vidcat train`` at scale: wall time, CPU time per clip and peak memory on one machine for
>= 2,000 real clips, the same extraction on a local Ray cluster, and how the cost grows with the clips.

    python benchmarks/scale.py                               # every corpus set, 2,000 clips, fractions 1/4, 1/2, 1
    python benchmarks/scale.py --ray                         # and the largest run again on a local Ray cluster
    python benchmarks/scale.py --sets ud810 --per-set 6 --clips 8 --fractions 1 --streams appearance,motion

Clips: every set of the development corpus (``benchmarks/corpus.py`` lays it out: ~1,260 clips), labels
prefixed by their set, groups kept. The manifest has no time windows (a row is a whole file), so the script
reaches ``--clips`` with *copies*: a corpus video's packets remuxed unchanged into a new file under ``--work``
(outside the repository) whose container metadata names the copy. A copy decodes exactly like its source
(the same packets, so the same decode and model work) but has its own content key, so every cache entry of it
is computed, not read. A copy keeps its source's label and group (no copy is ever scored against its source).

Each fraction of the clips runs ``vidcat train`` (no ``--model``) in a child process with every vidcat cache
empty (features, pose keypoints, exported backbone graphs: ``$VIDCAT_CACHE`` of its own), while this process samples the memory of the child's whole process tree. It prints one JSON line per
run -- wall seconds, CPU seconds (this process's waited children) per clip, peak RSS of the tree, each
stream's extraction wall and CPU per clip (from the run's cost record: with ``--ray`` the only CPU count that
sees Ray's workers), the rest of the run's seconds (``rest_s``: planning, grouping and the selection, which
dominates at scale; with ``--ray`` also starting Ray) and the selection's candidate count -- then how the cost
grows: the extraction's seconds per clip from a straight-line fit (and how far the runs stray from it), and
the rest's growth exponent in clips, per clip x candidate.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("VIDCAT_CORPUS", Path.home() / ".cache" / "vidcat" / "corpus"))
SETS = ("ud810", "arid-dark", "ucf101-5", "mlr511-arsl", "body-gesture")


def corpus_rows(sets, per_set: int | None, seed: int = 0) -> list[dict]:
    """``{path, label, group}`` of every clip of ``sets`` (``per_set``: a seeded sample of each)."""
    rows = []
    for name in sets:
        manifest = CORPUS / name / "manifest.csv"
        if not manifest.is_file():
            raise SystemExit(f"scale: {manifest} not found (python benchmarks/corpus.py lays the corpus out)")
        got = [{"path": str((manifest.parent / r["path"]).resolve()), "label": f"{name}/{r['label']}",
                "group": f"{name}/{r.get('group') or r['path']}"} for r in csv.DictReader(manifest.open())]
        if per_set:
            got = random.Random(seed).sample(got, min(per_set, len(got)))
        rows += got
    return rows


def remux_copy(src: str, dst: Path, tag: str) -> bool:
    """``src``'s video and audio packets, unchanged, in a new file whose metadata says ``tag``; False when
    the container cannot be rewritten."""
    import av

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(src) as inp, av.open(str(dst), "w") as out:
            out.metadata["comment"] = tag
            keep = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
            for packet in inp.demux([inp.streams[i] for i in keep]):
                if packet.dts is None:
                    continue
                packet.stream = keep[packet.stream.index]
                out.mux(packet)
        return True
    except (av.error.FFmpegError, ValueError, OSError):
        dst.unlink(missing_ok=True)
        return False


def with_copies(rows: list[dict], clips: int, work: Path) -> list[dict]:
    """``rows`` plus remuxed copies (source cycled in a fixed order) until there are ``clips`` rows."""
    out, k = list(rows), 0
    while len(out) < clips and rows:
        src = rows[k % len(rows)]
        n = k // len(rows) + 1
        dst = work / "copies" / f"copy{n}" / src["label"].replace("/", "_") / Path(src["path"]).name
        if dst.is_file() or remux_copy(src["path"], dst, f"vidcat-scale copy {n} of {Path(src['path']).name}"):
            out.append({**src, "path": str(dst)})
        k += 1
        if k > 4 * clips:
            raise SystemExit("scale: too few clips could be copied")
    return out


def write_manifest(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["path", "label", "group"])
        w.writeheader()
        w.writerows(rows)
    return path


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every process below it (Linux /proc; 0 elsewhere)."""
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            rss = int(Path(f"/proc/{p}/statm").read_text().split()[1])
            total += rss * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_train(manifest: Path, out: Path, cache: Path, args, ray: bool) -> dict:
    """``vidcat train`` on ``manifest`` in a child process: wall, CPU of the waited children, peak tree RSS."""
    cmd = [sys.executable, "-m", "vidcat", "train", "--data", str(manifest), "--out", str(out), "--cache",
           str(cache), "--quiet"] + (["--workers", str(args.workers)] if args.workers is not None else []) \
        + (["--streams", args.streams] if args.streams else []) + (["--ray"] if ray else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, peak, done = time.perf_counter(), [0], threading.Event()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VIDCAT_CACHE": str(cache)}   # every cache cold: pose, graphs
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    threading.Thread(target=sample, daemon=True).start()
    rc = proc.wait()
    done.set()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if rc != 0:
        raise SystemExit(f"scale: vidcat train exited {rc} ({' '.join(cmd)})")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(peak[0] / 2 ** 20),
            "max_process_rss_mb": round(after.ru_maxrss / 1024)}


def run_summary(run: dict, out: Path, clips: int, ray: bool) -> dict:
    """One run's line: the measured numbers, each stream's cost record and the selection's share."""
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    costs = recipe.get("costs", {})
    extraction = 60 * sum(c["wall_min"] for c in costs.values())
    candidates = sum(len(h.get("candidates") or []) for h in recipe.get("heads", {}).values())
    return {"clips": clips, "ray": ray, **run, "cpu_s_per_clip": round(run["cpu_s"] / clips, 3),
            "streams": {n: {"wall_s": round(60 * c["wall_min"], 1), "cpu_s_per_clip": c["cpu_s_per_clip"]}
                        for n, c in costs.items()},
            "stream_cpu_s_per_clip": round(sum(c["cpu_s_per_clip"] for c in costs.values()), 3),
            "extraction_s": round(extraction, 1), "rest_s": round(recipe["seconds"] - extraction, 1),
            "candidates": candidates, "chosen": recipe.get("streams"), "estimate": recipe.get("line")}


def growth(lines: list[dict]) -> str:
    """How the cost grows: extraction seconds per clip (least squares) and the selection's exponent."""
    import numpy as np

    n = np.array([r["clips"] for r in lines], float)
    ext = np.array([r["extraction_s"] for r in lines], float)
    sel = np.array([max(r["rest_s"], 1e-3) for r in lines], float)
    if len(lines) < 2:
        r = lines[0]
        return (f"one run: extraction {r['extraction_s'] / r['clips']:.3f} s/clip, selection "
                f"{r['rest_s'] / max(r['clips'] * r['candidates'], 1) * 1000:.2f} ms per clip x candidate "
                f"(run --fractions with several values to see how they grow)")
    slope, icpt = np.polyfit(n, ext, 1)
    stray = float(np.max(np.abs(ext - (slope * n + icpt)) / np.maximum(ext, 1e-9)))
    k = float(np.polyfit(np.log(n), np.log(sel), 1)[0])
    per = [r["rest_s"] / max(r["clips"] * r["candidates"], 1) * 1000 for r in lines]
    return (f"extraction: {slope:.3f} s per clip + {icpt:.1f} s (runs within {100 * stray:.0f} % of the line: "
            f"{'linear' if stray < 0.15 else 'not linear'} in clips); the rest (mostly the selection) grows as "
            f"clips^{k:.2f}, "
            f"{min(per):.2f}-{max(per):.2f} ms per clip x candidate")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="corpus sets (comma-separated)")
    ap.add_argument("--per-set", type=int, default=None, help="a seeded sample of this many clips per set")
    ap.add_argument("--clips", type=int, default=2000, help="clips of the largest run (copies fill up to it)")
    ap.add_argument("--fractions", default="0.25,0.5,1", help="fractions of --clips to run, each afresh")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "vidcat" / "scale"),
                    help="folder for copies, manifests, runs and feature stores (never the repository)")
    ap.add_argument("--workers", type=int, default=None, help="vidcat train --workers (default: its own)")
    ap.add_argument("--streams", default="", help="vidcat train --streams (default: planned)")
    ap.add_argument("--ray", action="store_true", help="also run the largest fraction on a local Ray cluster")
    args = ap.parse_args(argv)
    work = Path(args.work).expanduser().resolve()
    if ROOT in work.parents or work == ROOT:
        raise SystemExit("scale: --work must be outside the repository")
    rows = corpus_rows([s for s in args.sets.split(",") if s], args.per_set)
    rows = with_copies(rows, args.clips, work)
    random.Random(0).shuffle(rows)
    stamp, lines = time.strftime("%Y%m%d-%H%M%S"), []
    fractions = sorted(float(f) for f in args.fractions.split(","))
    plan = [(f, False) for f in fractions] + ([(fractions[-1], True)] if args.ray else [])
    for f, ray in plan:
        n = max(2, round(f * len(rows)))
        tag = f"{stamp}-{n}{'-ray' if ray else ''}"
        manifest = write_manifest(rows[:n], work / "manifests" / f"{tag}.csv")
        run = run_train(manifest, work / "runs" / tag, work / "stores" / tag, args, ray)
        lines.append(run_summary(run, work / "runs" / tag, n, ray))
        print(json.dumps(lines[-1]), flush=True)
    local = [r for r in lines if not r["ray"]]
    print(json.dumps({"growth": growth(local), "copies": sum("/copies/" in r["path"] for r in rows),
                      "clips": len(rows)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
