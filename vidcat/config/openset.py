"""What the default model knows about what it does not know: the shared :class:`OpenSet` group ("none of these"
for ``predict``, ``batch``, ``serve``, ``timeline``, ``eval`` and ``train``), ``vidcat suggest`` (which unlabelled
clips to label next) and ``vidcat cluster`` (a first look at an unlabelled folder)."""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.config.fields import check_fields, csv_tuple, opt, part_of, require
from vidcat.config.runtime import Runtime
from vidcat.errors import VidcatError

UNCERTAINTY = ("margin", "entropy")
CLUSTER_STREAMS = ("appearance", "motion")
DEFAULT_COVERAGE = 0.95     # the default target: at most ~5 % of known clips turned away


@dataclass(kw_only=True)
class OpenSet:
    """"None of these": the default model answers ``unknown`` where a clip's unknown-score is above the
    threshold learnt from its out-of-fold scores. A target given here refits that threshold from the scores the
    checkpoint keeps (no retraining); with none, the checkpoint's own (coverage 0.95 unless --background clips
    set it at train time)."""

    min_precision: float | None = opt(None, "answer 'unknown' below the threshold at which the accepted "
                                            "predictions of the out-of-fold clips reach this precision, e.g. 0.9",
                                      gt=0.0, max=1.0, group="open set")
    coverage: float | None = opt(None, "accept this share of known clips at most (the rest: 'unknown'), e.g. 0.95 "
                                       f"(the default target when no option is given: {DEFAULT_COVERAGE})",
                                 gt=0.0, max=1.0, group="open set")
    unknown: bool = opt(True, "never answer 'unknown' (only default-model checkpoints carry the rule)", flag="--no-unknown",
                        invert=True, group="open set")

    def __post_init__(self):
        check_fields(self)


def open_set_target(cfg) -> dict | None:
    """``{"min_precision", "coverage"}`` of a config holding (part of) :class:`OpenSet`, or None when it
    gives neither."""
    mp, cov = getattr(cfg, "min_precision", None), getattr(cfg, "coverage", None)
    return None if mp is None and cov is None else {"min_precision": mp, "coverage": cov}


@dataclass
class SuggestConfig(part_of(Runtime, "workers", "strict", "progress")):
    """``vidcat suggest``: the unlabelled clips to label next (uncertain and diverse), as a manifest CSV."""

    checkpoint: str = opt(None, "a default-model checkpoint (RUN/best.pt)", required=True)
    pool: str = opt(None, "unlabelled clips: a folder (searched recursively) or a CSV/JSONL manifest", required=True)
    n: int = opt(20, "clips to suggest", flag="-n", min=1)
    out: str = opt("suggestions.csv", "the CSV to write (path,label,confidence,rank,reason): correct the labels "
                                      "and train on it")
    uncertainty: str = opt("margin", "margin (1 - top-2 gap) or entropy of the calibrated probabilities",
                           choices=UNCERTAINTY)
    diversity: bool = opt(True, "rank by uncertainty alone (no spreading over the feature space)",
                          flag="--no-diversity", invert=True)
    cache: str | None = opt(None, "cache folder of the stream features (default: vidcat's)")

    def __post_init__(self):
        require(self, "checkpoint", "pool")
        if not str(self.out).lower().endswith(".csv"):
            raise VidcatError(f"--out must be a .csv file, not {self.out!r}")
        check_fields(self)


@dataclass
class ClusterConfig(part_of(Runtime, "workers", "strict", "progress")):
    """``vidcat cluster DIR``: groups an unlabelled folder by the default model's features; a contact sheet
    (PNG + HTML, one strip per cluster) and a manifest whose label column you rename."""

    folder: str = opt(None, "a folder of clips (searched recursively) or a CSV/JSONL manifest", positional=True)
    out: str = opt(None, "output folder: clusters.png, clusters.html, clusters.csv, clusters.json", required=True)
    streams: tuple = opt(CLUSTER_STREAMS, "streams whose features are clustered", parse=csv_tuple,
                         choices=CLUSTER_STREAMS, many=True)
    k_min: int = opt(2, "fewest clusters tried", min=2)
    k_max: int = opt(12, "most clusters tried (the mean silhouette picks k)", min=2)
    per_cluster: int = opt(8, "clips shown per cluster strip (the most typical first)", min=1)
    size: int | None = opt(None, "frame size the features see (default: the default model's)", min=16)
    cache: str | None = opt(None, "cache folder of the stream features (default: vidcat's)")

    def __post_init__(self):
        require(self, "folder", "out")
        self.streams = tuple(dict.fromkeys(csv_tuple(self.streams)))
        if not self.streams:
            raise VidcatError("--streams names no stream (appearance, motion)")
        check_fields(self)
        if self.k_max < self.k_min:
            raise VidcatError(f"--k-max must be >= --k-min ({self.k_min}), not {self.k_max}")
