"""Run vidcat's commands over the fuzz corpus under a memory limit and a wall timeout; print counts.

    python -m tests.fuzz.run                 # fast subset: 26 inputs, predict + flow + timeline
    python -m tests.fuzz.run --full          # 250 inputs, predict eval train flow mv features timeline
    python -m tests.fuzz.run --full --md benchmarks/results/fuzz.md   # also write the table

Every command line runs ``vidcat.cli.main`` in a process forked from one driver (tests/fuzz/forkrun.py)
that runs under ``prlimit --as=MEM`` (address space), each with its own wall timeout. The model is
a tiny3d trained for 2 steps on a 32 px synthetic set. Per command it counts:
``tracebacks`` (a Python traceback on stderr), ``hangs`` (timeout), ``oom`` (MemoryError /
bad_alloc / killed), ``crashes`` (other signals, exit codes other than 0 and 2), ``internal``
(records saying "internal error"), and checks one record per input (``missing``/``extra``).
Prints one JSON object; exit status 1 when any count that must be 0 is not.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.generate import ROOT, Entry, make_corpus

FAST_LIMIT, FULL_LIMIT = 26, 250
FAST_COMMANDS = ("predict", "flow", "timeline")
ALL_COMMANDS = ("predict", "eval", "train", "flow", "mv", "features", "timeline")
MUST_BE_ZERO = ("tracebacks", "hangs", "oom", "crashes", "internal", "missing", "extra")
TRACEBACK = "Traceback (most recent call last)"
# a process that ran out: Python's MemoryError, C++'s bad_alloc, torch's allocator. FFmpeg's clean
# refusal ("not a readable media file (Cannot allocate memory)") is an error record, not an OOM.
OOM = re.compile(r"MemoryError|std::bad_alloc|can't allocate memory|out of memory", re.I)


def python() -> list[str]:
    return [sys.executable]


# ``vidcat ARGS`` from this checkout, whether vidcat.cli is a module or a package
VIDCAT = [sys.executable, "-c", "import sys; from vidcat.cli import main; sys.exit(main(sys.argv[1:]))"]


def limited(cmd: list[str], mem: int | None) -> list[str]:
    """``cmd`` under an address-space limit (``prlimit --as``) when ``mem`` is set."""
    if mem and shutil.which("prlimit"):
        return ["prlimit", f"--as={mem}", "--", *cmd]
    return cmd


def vidcat(args: list[str], mem: int | None, timeout: float, env: dict) -> dict:
    """Run ``vidcat args`` limited; returns rc, hang, seconds, stdout, stderr."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(limited([*VIDCAT, *args], mem), capture_output=True, text=True,
                           timeout=timeout, cwd=ROOT, env=env, errors="replace")
        rc, out, err, hang = p.returncode, p.stdout, p.stderr, False
    except subprocess.TimeoutExpired as e:
        rc, hang = None, True
        out = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr or b"").decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    return {"rc": rc, "hang": hang, "seconds": round(time.monotonic() - t0, 2), "stdout": out, "stderr": err}


def make_checkpoint(work: Path, env: dict) -> Path:
    """tiny3d trained for 2 steps on a 4-per-class synthetic set of 12-frame 32 px clips."""
    data, run = work / "synth", work / "ckpt"
    for args in (["synth", str(data), "--kind", "motion", "--per-class", "4", "--frames", "12", "--size", "32",
                  "--quiet"],
                 ["train", "--data", str(data / "train.csv"), "--out", str(run), "--model", "tiny3d", "--epochs", "1",
                  "--max-steps", "2", "--batch-size", "4", "--workers", "0", "--quiet"]):
        r = vidcat(args, None, 600, env)
        if r["rc"] != 0:
            raise RuntimeError(f"vidcat {args[0]} failed: {r['stderr'][-2000:]}")
    return run / "last.pt"


def _count(r: dict, stats: dict) -> None:
    """Add one process result to a command's counts."""
    err = r["stderr"]
    stats["tracebacks"] += err.count(TRACEBACK)
    stats["hangs"] += bool(r["hang"])
    rc = r["rc"]
    oom = not r["hang"] and (bool(OOM.search(err)) or rc in (-9, 137))
    stats["oom"] += oom
    stats["crashes"] += (not r["hang"] and not oom and rc not in (0, 1, 2)) or (rc == 1 and TRACEBACK not in err)
    stats["seconds"] = round(stats["seconds"] + r.get("seconds", 0), 2)


def _new_stats(inputs: int) -> dict:
    return {"inputs": inputs, "records": 0, "ok": 0, "errors": 0, "warnings": 0, "tracebacks": 0, "hangs": 0,
            "oom": 0, "crashes": 0, "internal": 0, "missing": 0, "extra": 0, "seconds": 0.0}


def _owner(record_path: str, paths: list[str]) -> str | None:
    """The input a record belongs to: the same path, or a folder above it."""
    if record_path in paths:
        return record_path
    for p in paths:
        if record_path.startswith(p.rstrip("/") + "/"):
            return p
    return None


def _check_records(records: list[dict], entries: list[Entry], paths: list[str], stats: dict) -> None:
    """One record per input (``max(expect, 1)`` for a folder), each a prediction or an error."""
    got = {p: 0 for p in paths}
    for rec in records:
        stats["records"] += 1
        owner = _owner(str(rec.get("path")), paths)
        if owner is None:
            stats["extra"] += 1
            continue
        got[owner] += 1
        if "error" in rec:
            stats["errors"] += 1
            stats["internal"] += "internal error" in str(rec["error"])
        else:
            stats["ok"] += 1
            stats["warnings"] += "warning" in rec
    for e, p in zip(entries, paths):
        want = max(e.expect, 1)
        stats["missing"] += max(0, want - got[p])
        stats["extra"] += max(0, got[p] - want)


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _manifest(entries: list[Entry], paths: list[str], classes: list[str], out: Path) -> Path:
    """A CSV manifest (path,label) over every input, labels cycling through the checkpoint's classes."""
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for i, p in enumerate(paths):
            w.writerow([p, classes[i % len(classes)]])
    return out


def _jobs(cmd: str, ckpt: Path, paths: list[str], manifest: Path, work: Path, timeout: float,
          file_timeout: float) -> list[dict]:
    """The vidcat command lines that exercise ``cmd`` on the corpus (one, or one per file)."""
    def job(argv, key=cmd, t=timeout):
        return {"key": key, "argv": argv, "timeout": t}

    if cmd == "predict":
        return [job(["predict", "--checkpoint", str(ckpt), "--quiet", *paths])]
    if cmd in ("flow", "mv"):
        return [job(["flow", *paths, "--method", "dis_fast" if cmd == "flow" else "mv", "--size", "32",
                     "--cache", str(work / f"cache-{cmd}"), "--quiet"])]
    if cmd == "eval":
        return [job(["eval", "--checkpoint", str(ckpt), "--data", str(manifest), "--json", str(work / "eval.json"),
                     "--workers", "0", "--quiet"])]
    if cmd == "features":
        return [job(["features", str(manifest), "--model", str(ckpt), "--out", str(work / "features.npy"),
                     "--quiet"])]
    if cmd == "train":
        return [job(["train", "--data", str(manifest), "--val", str(manifest), "--out", str(work / "train-run"),
                     "--model", "tiny3d", "--epochs", "1", "--max-steps", "1", "--batch-size", "4", "--frames", "8",
                     "--size", "32", "--workers", "0", "--quiet"])]
    if cmd == "timeline":
        return [job(["timeline", "--checkpoint", str(ckpt), p, "--out", str(work / "timeline" / str(i))],
                    f"timeline:{i}", file_timeout) for i, p in enumerate(paths)]
    raise ValueError(f"unknown command {cmd!r}; choose from {', '.join(ALL_COMMANDS)}")


def _message(r: dict) -> list[str]:
    return r["stderr"].strip().splitlines()[-1:] or [""]


def _score(cmd: str, runs: list[dict], entries: list[Entry], paths: list[str], work: Path) -> dict:
    """Counts for one command from its process results."""
    stats = _new_stats(len(entries))
    for r in runs:
        _count(r, stats)
    if cmd == "timeline":
        for f, path in zip(runs, paths):
            ok = f["rc"] == 0 and len(_json_lines(f["stdout"])) == 1
            err_lines = [ln for ln in f["stderr"].splitlines() if ln.startswith("vidcat: error:")]
            bad = f["rc"] == 2 and len(err_lines) == 1
            stats["records"] += ok or bad
            stats["ok"] += ok
            stats["errors"] += bad
            stats["internal"] += bad and "internal error" in err_lines[0]
            if not (ok or bad) and not f["hang"]:
                stats.setdefault("unexplained", []).append(path)
        stats["missing"] = len(entries) - stats["records"]
        stats["slowest_s"] = max((f["seconds"] for f in runs), default=0.0)
        return stats
    r = runs[0]
    stats["exit"] = r["rc"]
    if r["rc"] not in (0, None):
        stats["message"] = _message(r)
    if cmd == "predict":
        _check_records(_json_lines(r["stdout"]), entries, paths, stats)
    elif cmd in ("flow", "mv"):
        summary = (_json_lines(r["stdout"]) or [{}])[-1]
        want = sum(max(e.expect, 1) for e in entries)
        stats["records"] = summary.get("total", 0)
        stats["ok"], stats["errors"] = summary.get("computed", 0), summary.get("failed", 0)
        stats["warnings"] = summary.get("warned", 0)
        if r["rc"] == 0:
            stats["missing"] = max(0, want - stats["records"])
            stats["extra"] = max(0, stats["records"] - want)
        stats["internal"] = len(re.findall(r"skipped .*: [A-Z]\w*(Error|Exception): ", r["stderr"]))
    elif cmd in ("eval", "features"):
        out = work / "eval.json"
        summary = json.loads(out.read_text()) if cmd == "eval" and out.is_file() else \
            (_json_lines(r["stdout"]) or [{}])[-1]
        stats["ok"], stats["errors"] = summary.get("n", 0), summary.get("skipped", 0)
        stats["records"] = stats["ok"] + stats["errors"]
        stats["missing"] = max(0, len(entries) - stats["records"]) if r["rc"] == 0 else 0
    elif cmd == "train":
        stats["errors"] = (_json_lines(r["stdout"]) or [{}])[-1].get("skipped", 0)
    return stats


def run_fuzz(work: Path, limit: int, commands, seed: int = 0, mem: int | None = 6_000_000_000,
             timeout: float = 900.0, file_timeout: float = 60.0, corpus: Path | None = None,
             ckpt: Path | None = None) -> dict:
    """Generate (or reuse) the corpus, run ``commands`` over it, return the counts.

    All command lines run in one driver process under the memory limit (``tests.fuzz.forkrun``),
    each forked with its own timeout. ``ckpt``: a checkpoint to use instead of training one here.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    if corpus is None:
        corpus = work / "corpus"
        entries = make_corpus(corpus, seed, limit)
    else:
        from tests.fuzz.generate import load_corpus
        entries = load_corpus(corpus)
    paths = [str(corpus / e.name) for e in entries]
    ckpt = ckpt or make_checkpoint(work, env)
    import torch

    classes = torch.load(ckpt, map_location="cpu", weights_only=True)["classes"]
    manifest = _manifest(entries, paths, classes, work / "manifest.csv")
    jobs = [j for cmd in commands for j in _jobs(cmd, ckpt, paths, manifest, work, timeout, file_timeout)]
    (work / "jobs.json").write_text(json.dumps(jobs))
    budget = sum(j["timeout"] for j in jobs) + 120
    try:
        d = subprocess.run(limited([*python(), "-m", "tests.fuzz.forkrun", str(work / "jobs.json")], mem),
                           capture_output=True, text=True, cwd=ROOT, env=env, errors="replace", timeout=budget)
        driver = {"rc": d.returncode, "stderr": d.stderr[-4000:], "stdout": d.stdout}
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        driver = {"rc": None, "stderr": "driver timed out", "stdout": out}
    (work / "runs.jsonl").write_text(driver["stdout"])  # every job's rc, stdout, stderr: for diagnosis
    results: dict[str, list[dict]] = {}
    for r in _json_lines(driver["stdout"]):
        results.setdefault(r["key"].split(":")[0], []).append(r)
    result: dict = {"inputs": len(entries), "limit_bytes": mem, "commands": {}}
    for cmd in commands:
        runs = results.get(cmd, [])
        if not runs or (cmd == "timeline" and len(runs) < len(paths)):  # the driver died on the way
            stats = _new_stats(len(entries))
            stats.update(crashes=1, missing=len(entries), message=[driver["stderr"][-300:]])
        else:
            stats = _score(cmd, runs, entries, paths, work)
        result["commands"][cmd] = stats
    totals = {k: sum(s.get(k, 0) for s in result["commands"].values()) for k in MUST_BE_ZERO}
    result["totals"] = totals
    result["clean"] = not any(totals.values())
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def markdown(result: dict, command_line: str) -> str:
    """The counts as a Markdown table (benchmarks/results/fuzz.md)."""
    cols = ("inputs", "records", "ok", "errors", "warnings", *MUST_BE_ZERO, "seconds")
    lines = ["# Fuzz run", "", f"`{command_line}`: {result['inputs']} inputs, address-space limit "
             f"{result['limit_bytes']} bytes, {result['seconds']} s in all.", "",
             "| command | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for cmd, s in result["commands"].items():
        lines.append(f"| {cmd} | " + " | ".join(str(s.get(c, "")) for c in cols) + " |")
    lines += ["", f"Must-be-zero totals: `{json.dumps(result['totals'])}`; clean: **{result['clean']}**.", ""]
    notes = {c: {k: s[k] for k in ("exit", "message", "unexplained") if k in s} for c, s in result["commands"].items()}
    lines += ["Exit codes and messages:", "", "```json", json.dumps(notes, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help=f"{FULL_LIMIT} inputs and every command")
    p.add_argument("--limit", type=int, help="corpus size (default: 26, or 250 with --full)")
    p.add_argument("--commands", help=f"comma-separated subset of {','.join(ALL_COMMANDS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mem", type=int, default=6_000_000_000, help="address-space limit in bytes (0 = none)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per batch command")
    p.add_argument("--file-timeout", type=float, default=60, help="seconds per file (timeline)")
    p.add_argument("--work", help="keep the corpus and outputs here (default: a temp folder, removed)")
    p.add_argument("--md", help="also write the counts as Markdown here")
    a = p.parse_args(argv)
    limit = a.limit or (FULL_LIMIT if a.full else FAST_LIMIT)
    commands = a.commands.split(",") if a.commands else (ALL_COMMANDS if a.full else FAST_COMMANDS)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="vidcat-fuzz-"))
    try:
        result = run_fuzz(work, limit, commands, a.seed, a.mem or None, a.timeout, a.file_timeout)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if a.md:
        md = Path(a.md)
        md.parent.mkdir(parents=True, exist_ok=True)
        tmp = md.with_name(md.name + ".tmp")
        tmp.write_text(markdown(result, "python -m tests.fuzz.run " + " ".join(argv or sys.argv[1:])))
        os.replace(tmp, md)
    return 0 if result["clean"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
