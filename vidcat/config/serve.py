"""Commands that ship a trained model: ``vidcat export`` (ONNX), ``batch`` (Ray) and ``serve`` (HTTP)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidcat.config.fields import check_fields, csv_tuple, opt, part_of, require
from vidcat.config.runtime import Runtime, Views
from vidcat.errors import VidcatError

OUT_FORMATS = (".parquet", ".jsonl")       # what `vidcat batch --out` writes
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
UPLOAD_TIMEOUT = 30.0   # seconds an upload may send nothing before it is dropped (408)
TOKEN_ENV = "VIDCAT_TOKEN"


@dataclass
class ExportConfig(part_of(Runtime, "threads")):
    """``vidcat export``: a checkpoint as ONNX (class names + data config inside), optionally int8."""

    checkpoint: str = opt(None, "a checkpoint (RUN/best.pt)", required=True)
    out: str = opt(None, "the .onnx file to write", required=True)
    opset: int = opt(18, "ONNX opset (a video model's graph resizes frames: 18 or later)", min=11)
    int8: bool = opt(False, "quantize to int8: static QDQ with --calib (recommended for CNNs), else dynamic")
    calib: str | None = opt(None, "dataset (folder, CSV, ...) whose clips calibrate --int8")
    eval: str | None = opt(None, "dataset for parity and int8 agreement (default: --calib)")
    clips: int = opt(16, "clips read from --calib / --eval (spread evenly)", min=1)

    def __post_init__(self):
        require(self, "checkpoint", "out")
        check_fields(self)


@dataclass
class BatchConfig(Views):
    """Options of ``vidcat batch``."""

    checkpoint: str = opt(None, "RUN/best.pt (torch) or model.onnx (ONNX Runtime)", required=True)
    out: str = opt(None, "results file: .parquet or .jsonl (one record per input)", required=True)
    paths: tuple = opt((), "the videos, like predict: a folder (recursive), a CSV/JSONL manifest or one file",
                       positional=True, nargs="?")
    data: str | None = opt(None, "the same, as an option (instead of the positional)")
    address: str | None = opt(None, "Ray cluster to join (default: $RAY_ADDRESS, else a local Ray with 2 CPUs)")
    num_cpus: float = opt(1.0, "CPUs per model actor", gt=0)
    num_gpus: float = opt(0.0, "GPUs per model actor (torch checkpoints)", min=0)
    actors: int = opt(1, "model actors running at once", min=1)
    batch_size: int = opt(4, "videos per model call", min=1)
    topk: int = opt(5, "labels per record", min=1)
    resume: bool = opt(False, "skip inputs already in --out (and its journal)")
    fast: str | None = opt(None, "torch checkpoints: each actor runs the fastest inference variant that agrees with "
                                 "eager (auto, or a variant name such as channels_last_bf16)")

    def __post_init__(self):
        require(self, "checkpoint", "out")
        check_fields(self)
        if Path(self.out).suffix.lower() not in OUT_FORMATS:
            raise VidcatError(f"--out must end in .parquet or .jsonl, not {Path(self.out).name!r}")
        if not Path(self.checkpoint).is_file():
            raise VidcatError(f"{self.checkpoint}: checkpoint not found")
        paths = (self.paths,) if isinstance(self.paths, str) else tuple(self.paths or ())
        if paths and self.data and paths[0] != self.data:
            raise VidcatError("give the videos once: as the positional argument or as --data, not both")
        self.data = self.data or (paths[0] if paths else None)
        if not self.data:
            raise VidcatError("the videos to score are required: vidcat batch --checkpoint CKPT VIDEOS --out FILE")
        if not Path(self.data).exists():
            raise VidcatError(f"{self.data}: no such file or folder")
        if Path(self.out).exists() and not self.resume:
            raise VidcatError(f"{self.out} exists: pass --resume to skip the videos it holds, or delete it")


@dataclass
class ServeConfig(part_of(Runtime, "device", "threads")):
    """Options of ``vidcat serve``."""

    checkpoint: str = opt(None, "RUN/best.pt (torch) or model.onnx (ONNX Runtime)", required=True)
    host: str = opt("127.0.0.1", "bind address (0.0.0.0 exposes it to the network)")
    port: int = opt(8000, "TCP port", min=1, max=65535)
    topk: int = opt(5, "labels per answer (a request may ask fewer)", min=1)
    max_upload_mb: int = opt(MAX_UPLOAD_BYTES // 2**20, "largest upload (MiB)", min=1)
    max_concurrent: int = opt(0, "requests handled at once, the next gets 503 (0 = CPU count, at most 4)", min=0)
    fast: str | None = opt(None, "torch checkpoints: serve the fastest inference variant that agrees with eager "
                                 "(auto, or a variant name such as channels_last_bf16)")
    token_file: str | None = opt(None, f"file holding the API token (default: ${TOKEN_ENV}); clients then send "
                                       "'Authorization: Bearer TOKEN' (/ and /health stay open)")
    allowed_hosts: tuple | None = opt(None, "Host header names accepted, comma-separated, '*' = any, '*.example.com' = "
                                            "its subdomains (default: the loopback names when --host is loopback, "
                                            "else any)", parse=csv_tuple)
    upload_timeout: float = opt(UPLOAD_TIMEOUT, "seconds an upload may send nothing before it is dropped (408)",
                                gt=0)
    per_client: int = opt(0, "requests one client address may have in flight, the next gets 429 (0 = half of "
                             "--max-concurrent, at least 1)", min=0)

    def __post_init__(self):
        require(self, "checkpoint")
        if self.allowed_hosts is not None:
            self.allowed_hosts = csv_tuple(self.allowed_hosts)
            if not self.allowed_hosts:
                raise VidcatError("--allowed-hosts names no host (use '*' for any)")
            for host in self.allowed_hosts:  # Starlette's TrustedHostMiddleware takes '*' and '*.domain'
                if "*" in host[1:] or host.startswith("*") and host != "*" and not host.startswith("*."):
                    raise VidcatError(f"--allowed-hosts: a wildcard is '*' or like '*.example.com', not {host!r}")
        if self.token_file is not None and not Path(self.token_file).is_file():
            raise VidcatError(f"--token-file {self.token_file}: no such file")
        check_fields(self)

    def token(self) -> str | None:
        """The API token: the first line of ``token_file``, else ``$VIDCAT_TOKEN``, else None (no auth)."""
        if self.token_file is None:
            return os.environ.get(TOKEN_ENV, "").strip() or None
        try:
            lines = Path(self.token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise VidcatError(f"--token-file {self.token_file}: cannot read it ({e})") from None
        token = lines[0].strip() if lines else ""
        if len(token) < 8:
            raise VidcatError(f"--token-file {self.token_file}: the token (first line) needs at least 8 characters")
        return token
