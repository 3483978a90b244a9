"""Run one ``vidcat`` command per input file, each in a forked child with a wall timeout.

    python -m tests.fuzz.forkrun LIST.json TIMEOUT_S -- timeline --checkpoint C {} --out OUT/{i}

vidcat (torch, PyAV, OpenCV) is imported once, then every file runs in a fork of this process, so a
per-file command costs milliseconds instead of an interpreter start. ``{}`` is the file, ``{i}`` its
index. Prints one JSON line per file: ``{"path", "rc", "signal", "hang", "seconds", "stdout", "stderr"}``.
The memory limit of this process (``prlimit --as``) holds for every child.
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
    if "--" not in argv or argv.index("--") != 2:
        print("usage: python -m tests.fuzz.forkrun LIST.json TIMEOUT_S -- VIDCAT_ARGS ({} = file)", file=sys.stderr)
        return 2
    files = json.loads(open(argv[0]).read())
    timeout, template = float(argv[1]), argv[3:]
    import vidcat.cli  # noqa: F401  (warm: everything a command needs is imported before forking)
    import vidcat.inference.timeline  # noqa: F401

    for i, path in enumerate(files):
        args = [a.replace("{}", path).replace("{i}", str(i)) for a in template]
        print(json.dumps({"path": path, **run_one(args, timeout)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
