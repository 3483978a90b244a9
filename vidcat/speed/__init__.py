"""Speed measurements behind ``vidcat bench``, printed as JSON, each with a ratio against a baseline
measured in the same process (never a timed assertion in tests). Accuracy benchmarks are the scripts
in ``benchmarks/``, not here.

``decode`` / ``flow`` / ``mv``: :mod:`vidcat.speed.decode`, :mod:`vidcat.speed.flow`;
``loader``: :mod:`vidcat.speed.loader` (clip cache, RSS); ``model``: :mod:`vidcat.speed.model`
(inference variants); ``train``: :mod:`vidcat.speed.train` (threads x workers). The last three also
have a dataclass config + ``run_bench_<what>(cfg)`` for the CLI.
"""
from __future__ import annotations

from pathlib import Path

from vidcat.errors import VidcatError


def default_files() -> list[str]:
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "media"
    return [str(p) for p in sorted(shared.glob("*.mp4"))[:3]] if shared.exists() else []


def run_bench(what: str, files: list[str], args) -> dict:
    """The JSON of ``vidcat bench WHAT [FILES]``; ``args`` carries ``model`` and ``repeat``."""
    if what == "decode":  # without files it makes its own 60 s H.264 test files
        from vidcat.speed.decode import bench_decode
        return bench_decode(files, repeat=args.repeat)
    files = files or default_files()
    if what in ("flow", "mv") and not files:
        raise VidcatError(f"bench {what}: give video files (no ../shared/data/media found)")
    if what == "loader":
        from vidcat.speed.loader import BenchLoaderConfig, bench_loader
        return bench_loader(BenchLoaderConfig(files=tuple(files), model=args.model))
    if what == "model":
        from vidcat.speed.model import BenchModelConfig, bench_variants
        return bench_variants(BenchModelConfig(model=args.model, repeat=args.repeat))
    if what == "train":
        from vidcat.speed.train import BenchTrainConfig, bench_train
        return bench_train(BenchTrainConfig(model=args.model))
    if what not in ("flow", "mv"):
        raise VidcatError(f"unknown bench {what!r}; known: decode, loader, model, train, flow, mv")
    from vidcat.speed.flow import bench_flow
    methods = None if what == "flow" else ["mv", "dis_fast", "dis_medium"]
    return bench_flow(files, **({"methods": methods} if methods else {}), repeats=args.repeat, verbose=False)
