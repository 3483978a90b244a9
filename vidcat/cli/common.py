"""Shared plumbing of the command modules: a sub-command whose options come from a dataclass."""
from __future__ import annotations

from vidcat.cli.options import HelpFormatter, add_options, build


def command(sub, name: str, help_text: str, cls, run, exclude=(), extra=None):
    """Register ``name`` with the flags of ``cls``; on use, ``run(cls(**flags))``. ``extra(parser)`` may
    add flags that are not fields (aliases); they reach ``run`` through ``cls`` only if it reads them."""
    p = sub.add_parser(name, help=help_text, description=(cls.__doc__ or help_text).strip().split("\n")[0],
                       formatter_class=HelpFormatter)
    add_options(p, cls, exclude)
    if extra:
        extra(p)
    p.set_defaults(func=lambda a: run(apply_views(a, cls)), options=cls)
    return p


def views_alias(p) -> None:
    """``--views CLIPS,CROPS``: the older spelling of ``--clips`` and ``--crops``."""
    def parse(s):
        import argparse

        try:
            clips, crops = (int(x) for x in s.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError("--views wants CLIPS,CROPS such as 1,1 or 4,3") from None
        return clips, crops

    p.add_argument("--views", type=parse, default=None, help="CLIPS,CROPS in one flag (same as --clips, --crops)")


def apply_views(a, cls):
    """Build ``cls`` from ``a``, with ``--views`` (when given) setting clips and crops."""
    extra = {"clips": a.views[0], "crops": a.views[1]} if getattr(a, "views", None) else {}
    return build(cls, a, **extra)
