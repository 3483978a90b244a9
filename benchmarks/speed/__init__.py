"""Speed measurements behind ``vidcat bench``, printed as JSON, each with a ratio against a baseline
measured in the same process (never a timed assertion in tests). Accuracy benchmarks are the scripts
in ``benchmarks/``.

They live in the source tree, not in the installed package: ``vidcat bench`` loads them from the checkout
it runs from. ``decode``: :mod:`benchmarks.speed.decode`; ``flow``: :mod:`benchmarks.speed.flow`; ``loader``:
:mod:`benchmarks.speed.loader` (clip cache, RSS); ``model``: :mod:`benchmarks.speed.model` (inference
variants); ``train``: :mod:`benchmarks.speed.train` (threads x workers); ``recipe``:
:mod:`benchmarks.speed.recipe` (the default's extraction, CPU per stage). Each has a dataclass config and a
``run_bench_<what>(cfg)`` the CLI calls.
"""
from __future__ import annotations

from pathlib import Path


def default_files() -> list[str]:
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "media"
    return [str(p) for p in sorted(shared.glob("*.mp4"))[:3]] if shared.exists() else []
