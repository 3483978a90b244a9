"""Progress bars that suit where the output goes: a tqdm bar on a terminal, plain lines elsewhere.

A log file or pipe never gets tqdm's carriage-return frames: off a terminal :func:`progress` returns
a :class:`LineProgress` that only counts and, with ``summary``, writes one line when it closes::

    for clip in progress(jobs, desc="synth motion", unit="video", enabled=show):
        ...                      # terminal: a bar; a file: "vidcat: synth motion: 24 videos (3.1 s)"
"""
from __future__ import annotations

import sys
import time


def on_terminal() -> bool:
    """Whether progress (written to stderr) reaches a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class LineProgress:
    """The part of tqdm's interface vidcat uses (iterate, ``update``, ``set_postfix``, ``with``), with
    no bar: at most one summary line on stderr when done."""

    def __init__(self, iterable=None, desc: str = "", unit: str = "it", total=None, summary: bool = True, **_):
        self.iterable, self.desc, self.unit, self.total = iterable, desc, unit, total
        self.summary, self.n, self.postfix, self.closed = summary, 0, {}, False
        self.t0 = time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __len__(self):
        return len(self.iterable) if self.total is None else self.total

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **kw) -> None:
        self.postfix = kw

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.summary and self.desc:
            extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
            print(f"vidcat: {self.desc}: {self.n} {self.unit}{'s' if self.n != 1 else ''}{extra} "
                  f"({time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)


def progress(iterable=None, *, enabled: bool = True, desc: str = "", unit: str = "it", leave: bool = True,
             summary: bool | None = None, **kw):
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal; otherwise a :class:`LineProgress`
    (one line at the end when ``enabled`` and ``summary``, which defaults to ``leave``)."""
    if enabled and on_terminal():
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, unit=unit, leave=leave, file=sys.stderr, **kw)
    return LineProgress(iterable, desc=desc, unit=unit, summary=enabled and (leave if summary is None else summary),
                        **kw)
