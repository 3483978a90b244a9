"""``vidcat export`` (ONNX, int8), ``vidcat batch`` (Ray) and ``vidcat serve`` (HTTP + upload page)."""
from __future__ import annotations

from vidcat.cli.common import command
from vidcat.config import BatchConfig, ExportConfig, ServeConfig


def run_export(cfg: ExportConfig) -> int:
    from vidcat.inference.export import export_main

    return export_main(cfg)


def run_batch(cfg: BatchConfig) -> int:
    from vidcat.inference.batch import run_batch

    return run_batch(cfg)


def run_serve(cfg: ServeConfig) -> int:
    from vidcat.inference.server import run_serve

    return run_serve(cfg)


def add_commands(sub) -> None:
    command(sub, "export", "export a checkpoint to ONNX (class names + data config inside)", ExportConfig, run_export)
    command(sub, "batch", "predict a folder or manifest on Ray (local or a cluster) into Parquet / JSON lines",
            BatchConfig, run_batch)
    command(sub, "serve", "HTTP service + upload page for a checkpoint or an exported .onnx", ServeConfig, run_serve)
