"""``vidcat flow``: fill a motion cache (optical flow or codec motion vectors) ahead of training."""
from __future__ import annotations

import json

from vidcat.config import FlowConfig
from vidcat.errors import VidcatError


def run_flow(cfg: FlowConfig) -> int:
    """Run ``build_cache`` over the given files/folders; prints the summary as one JSON line."""
    from vidcat.io.motion.cache import build_cache

    params = {"weights": cfg.raft_weights} if cfg.raft_weights else {}
    summary = build_cache(list(cfg.paths), cfg.cache, cfg.method, size=cfg.size, workers=cfg.workers,
                          progress=cfg.progress, strict=cfg.strict, **params)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    if summary.get("failed") and not (summary.get("computed") or summary.get("cached")):
        raise VidcatError(f"no input could be read ({summary['failed']} failed, each named above)")
    return 0
