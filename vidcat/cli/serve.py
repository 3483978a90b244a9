"""``vidcat export`` (ONNX, int8), ``vidcat batch`` (Ray) and ``vidcat serve`` (HTTP + upload page)."""
from __future__ import annotations

from dataclasses import dataclass

from vidcat.cli.common import command
from vidcat.config import check_fields, opt, require
from vidcat.inference.batch import BatchConfig, run_batch
from vidcat.inference.server import ServeConfig, run_serve


@dataclass
class ExportConfig:
    """``vidcat export``: a checkpoint as ONNX (class names + data config inside), optionally int8."""

    checkpoint: str = opt(None, "a checkpoint (RUN/best.pt)", required=True)
    out: str = opt(None, "the .onnx file to write", required=True)
    opset: int = opt(17, "ONNX opset", min=11)
    int8: bool = opt(False, "quantize to int8: static QDQ with --calib (recommended for CNNs), else dynamic")
    calib: str | None = opt(None, "dataset (folder, CSV, ...) whose clips calibrate --int8")
    eval: str | None = opt(None, "dataset for parity and int8 agreement (default: --calib)")
    clips: int = opt(16, "clips read from --calib / --eval (spread evenly)", min=1)
    threads: int = opt(0, "ONNX Runtime intra-op threads (0 = default)", min=0)

    def __post_init__(self):
        require(self, "checkpoint", "out")
        check_fields(self)


def run_export(cfg: ExportConfig) -> int:
    from vidcat.inference.export import export_main

    return export_main(cfg)


def add_commands(sub) -> None:
    command(sub, "export", "export a checkpoint to ONNX (class names + data config inside)", ExportConfig, run_export)
    command(sub, "batch", "predict a folder or manifest on Ray (local or a cluster) into Parquet / JSON lines",
            BatchConfig, run_batch)
    command(sub, "serve", "HTTP service + upload page for a checkpoint or an exported .onnx", ServeConfig, run_serve)
