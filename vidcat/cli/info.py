"""``vidcat models``, ``vidcat report`` and ``vidcat bench``: what is here, what a run did, how fast."""
from __future__ import annotations

import json
from dataclasses import dataclass

from vidcat.cli.common import command
from vidcat.config import check_fields, opt, require
from vidcat.models.pretrained import WeightsConfig, run_weights

BENCHES = ("decode", "loader", "model", "train", "flow", "mv")


@dataclass
class ModelsConfig:
    """``vidcat models``: the registry (family, input, parameters)."""

    family: str | None = opt(None, "only this family (2d, 3d, recurrent, transformer, audio, text, fusion)")
    json: bool = opt(False, "JSON instead of a table")
    params: bool = opt(True, "skip building models to count parameters", flag="--no-params", invert=True)


@dataclass
class ReportConfig:
    """``vidcat report RUN``: RUN/report.md from a run's files."""

    run: str = opt(None, "a run folder (vidcat train --out)", positional=True)

    def __post_init__(self):
        require(self, "run")


@dataclass
class BenchConfig:
    """``vidcat bench WHAT [FILES]``: speed, printed as JSON with ratios to a baseline run in the same process."""

    what: str = opt(None, "what to time", positional=True, choices=BENCHES)
    files: tuple = opt(None, "videos to time (default: ../shared/data/media or generated ones)", factory=tuple,
                       positional=True, nargs="*")
    model: str = opt("tiny3d", "model for bench model / loader")
    repeat: int = opt(3, "best of this many runs", min=1)

    def __post_init__(self):
        require(self, "what")
        self.files = tuple(self.files or ())
        check_fields(self)


def run_models(cfg: ModelsConfig) -> int:
    from vidcat.models.registry import get_spec, list_models, model_summary

    names = list_models(cfg.family)
    if cfg.json:
        print(json.dumps([get_spec(n).info() for n in names], indent=1))
    else:
        print(model_summary(names, params=cfg.params))
    return 0


def run_report(cfg: ReportConfig) -> int:
    from vidcat.report import write_report

    print(write_report(cfg.run))
    return 0


def run_bench_command(cfg: BenchConfig) -> int:
    from vidcat.bench import run_bench

    print(json.dumps(run_bench(cfg.what, list(cfg.files), cfg), indent=1))
    return 0


def add_commands(sub) -> None:
    command(sub, "models", "list registered models", ModelsConfig, run_models)
    command(sub, "report", "write RUN/report.md from a run's files", ReportConfig, run_report)
    command(sub, "weights", "pretrained weights that resolve on this machine, and from where", WeightsConfig,
            run_weights)
    command(sub, "bench", "speed benchmarks, printed as JSON with ratios to a baseline", BenchConfig, run_bench_command)
