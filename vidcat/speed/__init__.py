"""Speed measurements behind ``vidcat bench``, printed as JSON, each with a ratio against a baseline
measured in the same process (never a timed assertion in tests). Accuracy benchmarks are the scripts
in ``benchmarks/``, not here.

``decode``: :mod:`vidcat.speed.decode`; ``flow``: :mod:`vidcat.speed.flow`; ``loader``:
:mod:`vidcat.speed.loader` (clip cache, RSS); ``model``: :mod:`vidcat.speed.model` (inference variants);
``train``: :mod:`vidcat.speed.train` (threads x workers). Each has a dataclass config and a
``run_bench_<what>(cfg)`` the CLI calls.
"""
from __future__ import annotations

from pathlib import Path


def default_files() -> list[str]:
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "media"
    return [str(p) for p in sorted(shared.glob("*.mp4"))[:3]] if shared.exists() else []
