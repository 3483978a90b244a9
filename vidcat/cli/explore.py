"""``vidcat suggest`` (which unlabelled clips to label next) and ``vidcat cluster`` (a first look at an unlabelled
folder): the default model's features of clips nobody has labelled yet."""
from __future__ import annotations

import json

from vidcat.cli.common import command
from vidcat.config import ClusterConfig, SuggestConfig


def _log(progress: bool):
    import sys

    return (lambda s: print(s, file=sys.stderr)) if progress else (lambda s: None)


def run_suggest(cfg: SuggestConfig) -> int:
    from vidcat.featurefit.explore import suggest_next

    print(json.dumps(suggest_next(cfg, _log(cfg.progress))))
    return 0


def run_cluster(cfg: ClusterConfig) -> int:
    from vidcat.featurefit.explore import cluster_folder

    print(json.dumps(cluster_folder(cfg, _log(cfg.progress))))
    return 0


def add_commands(sub) -> None:
    command(sub, "suggest", "the unlabelled clips to label next (uncertain and diverse), as a manifest CSV",
            SuggestConfig, run_suggest)
    command(sub, "cluster", "group an unlabelled folder by the default model's features: contact sheet + manifest",
            ClusterConfig, run_cluster)
