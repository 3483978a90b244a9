"""``vidcat eval``, ``predict``, ``timeline``, ``features`` and ``fuse``: using trained checkpoints."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from vidcat.cli.common import command, views_alias
from vidcat.config import EvalConfig, FeaturesConfig, FuseConfig, PredictConfig, TimelineConfig


def run_eval(cfg: EvalConfig) -> int:
    from vidcat.engine.evaluate import evaluate, format_table

    print(format_table(evaluate(cfg)))
    return 0


def run_predict(cfg: PredictConfig) -> int:
    from vidcat.inference.onnx_predictor import load_predictor
    from vidcat.io.store import json_text

    if not cfg.checkpoint.lower().endswith(".onnx"):  # an exported model.onnx runs without torch
        from vidcat.engine.scoring import setup_threads

        setup_threads(cfg.threads)
    predictor = load_predictor(cfg.checkpoint, device=cfg.device, clips=cfg.clips, crops=cfg.crops, topk=cfg.topk,
                               threads=cfg.threads)
    if cfg.fast and hasattr(predictor, "model"):
        from vidcat.io.console import echo
        from vidcat.inference.fast import accelerate

        choice = accelerate(predictor, [p for p in cfg.paths if Path(p).is_file()][:4], variant=cfg.fast)
        echo(f"inference variant: {choice.get('variant', choice)}")
    if cfg.long_seconds:  # long files: one record aggregated over windows inside shots
        from functools import partial

        from vidcat.inference.timeline import predict_long

        predictor.long_seconds, predictor.long_record = cfg.long_seconds, partial(predict_long, predictor)
    failed = 0
    for record in predictor.predict_many(cfg.paths, strict=cfg.strict):
        failed += "error" in record
        print(json_text(record), flush=True)  # a JSON Lines record: strict JSON, NaN as null
    if failed and cfg.progress:
        print(f"vidcat: {failed} file(s) could not be read", file=sys.stderr)
    return 0


def run_timeline(cfg: TimelineConfig) -> int:
    from vidcat.inference.timeline import timeline

    result = timeline(cfg.checkpoint, cfg.video, window=cfg.window, stride=cfg.stride, out_dir=cfg.out,
                      device=cfg.device, shots=cfg.shots, fast=cfg.fast)
    print(json.dumps({k: result[k] for k in ("csv", "json", "png", "windows")}))
    return 0


def run_features(cfg: FeaturesConfig) -> int:
    from vidcat.inference.embeddings import run_features

    return run_features(cfg)


def run_fuse(cfg: FuseConfig) -> int:
    from vidcat.engine.fusion_weights import run_fuse

    return run_fuse(cfg)


def add_commands(sub) -> None:
    command(sub, "eval", "evaluate a checkpoint on held-out data", EvalConfig, run_eval, extra=views_alias)
    command(sub, "predict", "one JSON line per video (folders recurse)", PredictConfig, run_predict,
            extra=views_alias)
    command(sub, "timeline", "per-window scores over a long video (CSV, JSON, PNG)", TimelineConfig, run_timeline)
    command(sub, "features", "penultimate-layer embeddings of videos (.npy + .json, or .parquet)", FeaturesConfig,
            run_features)
    command(sub, "fuse", "fuse an RGB and a flow/mv checkpoint (late fusion, weights tuned on val)", FuseConfig,
            run_fuse)
