"""``vidcat models``, ``weights``, ``report`` and ``bench``: what is here, what a run did, how fast."""
from __future__ import annotations

import json
from pathlib import Path

from vidcat.cli.common import command
from vidcat.cli.options import Parser
from vidcat.config import (BenchDecodeConfig, BenchFlowConfig, BenchLoaderConfig, BenchModelConfig, BenchRecipeConfig,
                           BenchTrainConfig, ModelsConfig, ReportConfig, WeightsConfig)
from vidcat.errors import VidcatError


def _input(r: dict) -> str:
    size = r["input_size"][1:] if r["input_size"] else []
    return (f"{r['frames']}x" if r["frames"] > 1 else "") + "x".join(map(str, size[:1])) if size else "-"


def run_weights(cfg: WeightsConfig) -> int:
    """Print one row per catalogue entry (or JSON); returns 0."""
    from vidcat.weights import weight_rows

    rows = weight_rows(download=cfg.download)
    if cfg.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model:tag':<42} {'kind':<9} {'here':<5} {'from':<12} {'input':<7} {'mean/std':<12} {'sha256':<12} "
          "licence; where")
    for r in rows:
        norm = f"{r['mean'][0]:.3g}/{r['std'][0]:.3g}" if r["mean"] else "-"
        where = r["path"] or r["detail"]
        print(f"{r['name']:<42} {r['kind']:<9} {'yes' if r['available'] else 'no':<5} {r['source'] or '-':<12} "
              f"{_input(r):<7} {norm:<12} {(r['sha256'] or '-')[:12]:<12} {r['licence']}; {where}")
    return 0


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


# -- vidcat bench: the speed benchmarks live in the source tree (benchmarks/speed/), loaded when one runs --------
def source_root() -> Path:
    """The folder above the ``vidcat`` package: a source checkout's root (it holds ``benchmarks/``)."""
    return Path(__file__).resolve().parents[2]


def bench_module(name: str):
    """``benchmarks/speed/<name>.py`` of the checkout this vidcat runs from; one error line outside one."""
    import importlib
    import sys

    root = source_root()
    if not (root / "benchmarks" / "speed" / f"{name}.py").is_file():
        raise VidcatError(f"vidcat bench {name}: the speed benchmarks live in the source tree (benchmarks/speed/ "
                          f"of a vidcat checkout), not in the installed package: run it from a checkout")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(f"benchmarks.speed.{name}")
    if root not in Path(module.__file__).resolve().parents:
        raise VidcatError(f"vidcat bench {name}: another package named 'benchmarks' shadows {root / 'benchmarks'}")
    return module


def run_bench_decode(cfg: BenchDecodeConfig) -> int:
    return bench_module("decode").run_bench_decode(cfg)


def run_bench_loader(cfg: BenchLoaderConfig) -> int:
    return bench_module("loader").run_bench_loader(cfg)


def run_bench_model(cfg: BenchModelConfig) -> int:
    return bench_module("model").run_bench_model(cfg)


def run_bench_train(cfg: BenchTrainConfig) -> int:
    return bench_module("train").run_bench_train(cfg)


def run_bench_recipe(cfg: BenchRecipeConfig) -> int:
    return bench_module("recipe").run_bench_recipe(cfg)


def run_bench_flow(cfg: BenchFlowConfig) -> int:
    return bench_module("flow").run_bench_flow(cfg)


def add_commands(sub) -> None:
    command(sub, "models", "list registered models", ModelsConfig, run_models)
    command(sub, "report", "write RUN/report.md from a run's files", ReportConfig, run_report)
    command(sub, "weights", "every weight set vidcat knows, whether it resolves on this machine and from where", WeightsConfig,
            run_weights)
    bench = sub.add_parser("bench", help="speed benchmarks, printed as JSON with ratios to a baseline run in the "
                                         "same process")
    bench.set_defaults(options=())
    what = bench.add_subparsers(dest="what", required=True, parser_class=Parser)
    command(what, "decode", "decode speed vs ffmpeg -f null, a naive reader, OpenCV (+ torchcodec/decord)",
            BenchDecodeConfig, run_bench_decode)
    command(what, "loader", "clips/s of the data loader, first vs cached epochs; peak RSS on a long video",
            BenchLoaderConfig, run_bench_loader)
    command(what, "model", "ms/clip of inference variants (eager, channels_last, bf16, compile, ONNX, int8)",
            BenchModelConfig, run_bench_model)
    command(what, "train", "clips/s of full training steps for threads x workers", BenchTrainConfig, run_bench_train)
    command(what, "recipe", "CPU per frame of each stage of the default model's feature extraction, the "
                            "work-conserving bound and the pipeline against it", BenchRecipeConfig, run_bench_recipe)
    command(what, "flow", "optical-flow and motion-vector methods, pairs/s", BenchFlowConfig, run_bench_flow)
