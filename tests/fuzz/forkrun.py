"""Run many ``vidcat`` command lines, each in a forked child with its own wall timeout.

    python -m tests.fuzz.forkrun JOBS.json      # [{"key": ..., "argv": [...], "timeout": s}, ...]

vidcat (torch, PyAV, OpenCV) is imported once, then every job runs ``vidcat.cli.main(argv)`` in a
fork of this process: the same code path as the ``vidcat`` command, without an interpreter start
per job. Prints one JSON line per job: ``{"key", "rc", "signal", "hang", "seconds", "stdout",
"stderr"}``. A memory limit on this process (``prlimit --as``) holds for every child.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback


def _child(argv: list[str], out_fd: int, err_fd: int) -> None:
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    rc = 1
    try:
        from vidcat.cli import main

        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 2
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc if isinstance(rc, int) else 1)


def run_one(argv: list[str], timeout: float) -> dict:
    """Fork, run ``vidcat argv`` in the child, wait at most ``timeout`` seconds (then SIGKILL)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(argv, out.fileno(), err.fileno())
        hang, status = False, None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - t0 > timeout:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                hang = True
                break
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        return {"rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -sig, "signal": sig, "hang": hang,
                "seconds": round(time.monotonic() - t0, 3),
                "stdout": out.read().decode("utf-8", "replace"), "stderr": err.read().decode("utf-8", "replace")}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tests.fuzz.forkrun JOBS.json", file=sys.stderr)
        return 2
    jobs = json.loads(open(argv[0]).read())
    import vidcat.cli  # noqa: F401  (warm: what the commands need is imported before forking)
    import vidcat.inference.predictor  # noqa: F401
    import vidcat.inference.timeline  # noqa: F401

    for job in jobs:
        print(json.dumps({"key": job["key"], **run_one(job["argv"], float(job["timeout"]))}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
