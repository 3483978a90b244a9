"""``vidcat flow``: fill a motion cache from the command line; ``bench_flow_main`` for ``bench flow``."""
from __future__ import annotations

import json

CLI_METHODS = ["dis", "dis_ultrafast", "dis_fast", "dis_medium", "farneback", "tvl1",
               "raft", "raft_small", "raft_large", "mv"]


def flow_main(args) -> int:
    """Run ``build_cache`` over the given files/folders; prints the summary as one JSON line."""
    from vidcat.motion.cache import build_cache

    params = {}
    if args.raft_weights:
        params["weights"] = args.raft_weights
    summary = build_cache(args.paths, args.cache, args.method, size=args.size, workers=args.workers,
                          progress=not args.quiet, strict=args.strict, **params)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    return 0


def add_parser(subparsers) -> None:
    """Register ``vidcat flow PATHS... --method M --cache DIR [--workers N] [--strict]``."""
    p = subparsers.add_parser("flow", help="compute optical flow / codec motion vectors into a cache")
    p.add_argument("paths", nargs="+", help="video files or folders (searched recursively)")
    p.add_argument("--method", default="dis_fast", choices=CLI_METHODS,
                   help="dis = dis_fast; mv = codec motion vectors (fastest); tvl1 needs opencv-contrib")
    p.add_argument("--cache", required=True, help="cache folder (created if missing)")
    p.add_argument("--size", type=int, help="resize to this short side first (default: native)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable video")
    p.add_argument("--raft-weights", help="local RAFT state-dict file (no downloads here)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=flow_main)


def add_bench_arguments(p) -> None:
    """Options for a ``bench flow`` sub-command, if the lead wants its own parser for it."""
    p.add_argument("files", nargs="+")
    p.add_argument("--methods", default="mv,dis_ultrafast,dis_fast,dis_medium,farneback,tvl1",
                   help="comma-separated")
    p.add_argument("--pairs", type=int, default=40, help="frame pairs for the motion-step-alone timing")
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    p.add_argument("--json", help="also write the result here")


def bench_flow_main(args) -> int:
    """Run ``bench_flow`` from parsed ``args`` (see ``add_bench_arguments``); prints JSON once."""
    from vidcat.bench.flow import bench_flow

    methods = getattr(args, "methods", None) or "mv,dis_ultrafast,dis_fast,dis_medium,farneback,tvl1"
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    res = bench_flow(args.files, methods=methods, pairs=getattr(args, "pairs", 40),
                     repeats=getattr(args, "repeat", 3), verbose=True)
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
