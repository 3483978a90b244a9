"""``vidcat flow``: fill a motion cache (optical flow or codec motion vectors) ahead of training."""
from __future__ import annotations

import json
from dataclasses import dataclass

from vidcat.config import FLOW_METHODS, check_fields, opt
from vidcat.errors import VidcatError


@dataclass
class FlowConfig:
    """``vidcat flow PATHS... --method M --cache DIR``."""

    paths: tuple = opt(None, "video files or folders (searched recursively)", factory=tuple, positional=True,
                       nargs="+")
    method: str = opt("dis_fast", "dis = dis_fast; mv = codec motion vectors (fastest); tvl1 needs opencv-contrib",
                      choices=FLOW_METHODS)
    cache: str | None = opt(None, "cache folder (created if missing; default: $VIDCAT_CACHE, else "
                                  "$XDG_CACHE_HOME/vidcat, else ~/.cache/vidcat)")
    size: int | None = opt(None, "resize to this short side first (default: native)", min=8)
    workers: int = opt(1, "parallel processes", min=1)
    strict: bool = opt(False, "stop at the first unreadable video")
    raft_weights: str | None = opt(None, "local RAFT state-dict file (no downloads here)")
    progress: bool = opt(True, "no progress bar", flag="--quiet", invert=True)

    def __post_init__(self):
        self.paths = tuple(str(p) for p in (self.paths or ()))
        check_fields(self)


def run_flow(cfg: FlowConfig) -> int:
    """Run ``build_cache`` over the given files/folders; prints the summary as one JSON line."""
    from vidcat.motion.cache import build_cache

    params = {"weights": cfg.raft_weights} if cfg.raft_weights else {}
    summary = build_cache(list(cfg.paths), cfg.cache, cfg.method, size=cfg.size, workers=cfg.workers,
                          progress=cfg.progress, strict=cfg.strict, **params)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    if summary.get("failed") and not (summary.get("computed") or summary.get("cached")):
        raise VidcatError(f"no input could be read ({summary['failed']} failed, each named above)")
    return 0
