"""``vidcat bench``: speed measurements printed as JSON, each with a ratio against a baseline
measured in the same process (never a timed assertion in tests)."""
from __future__ import annotations

from pathlib import Path

from vidcat.errors import VidcatError


def default_files() -> list[str]:
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "media"
    return [str(p) for p in sorted(shared.glob("*.mp4"))[:3]] if shared.exists() else []


def run_bench(what: str, files: list[str], args) -> dict:
    if what == "decode":  # without files it makes its own 60 s H.264 test files
        from vidcat.bench.decode import bench_decode
        return bench_decode(files, repeat=args.repeat)
    files = files or default_files()
    if what in ("decode", "loader", "flow", "mv") and not files:
        raise VidcatError(f"bench {what}: give video files (no ../shared/data/media found)")
    if what == "loader":
        from vidcat.bench.decode import bench_loader
        return bench_loader(files, model=args.model)
    if what == "model":
        from vidcat.bench.model import bench_model
        return bench_model(args.model, repeat=args.repeat)
    from vidcat.bench.flow import bench_flow
    methods = None if what == "flow" else ["mv", "dis_fast", "dis_medium"]
    return bench_flow(files, **({"methods": methods} if methods else {}), repeats=args.repeat, verbose=False)
