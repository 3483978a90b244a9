"""Faster inference of a trained single-stream model: the fastest variant that keeps its answers.

    fast = fastest_variant(model, clips, labels)     # -> FastModel, e.g. variant "channels_last_bf16"
    logits = fast(x)                                 # (B, K) float32, like model(x)
    accelerate(predictor, ["a.mp4", "b.mp4"])        # predict / timeline / batch / serve: --fast

Variants (all CPU, all measured against ``eager`` fp32 on the same clips in the same process):

- ``channels_last``: 5-D weights and input in ``torch.channels_last_3d`` (oneDNN's blocked layout);
- ``bf16`` / ``channels_last_bf16``: ``torch.autocast`` bfloat16 (fast where the CPU has AVX512-BF16/AMX);
- ``compile`` / ``compile_bf16``: ``torch.compile`` (inductor, ``freezing``: weights folded as constants,
  BN folded into conv); seconds to minutes to compile, so opt-in;
- ``ort_fp32`` / ``ort_int8``: the model exported with :mod:`vidcat.inference.export`'s exporter and run on
  ONNX Runtime; int8 is static QDQ with per-channel weights, calibrated on the clips given.

:func:`fastest_variant` keeps a variant only if it is accurate enough -- top-1 within ``max_top1_drop``
of eager's on labelled clips, or top-1 agreement with eager >= ``min_agreement`` without labels -- and
returns the fastest of those at the batch size the caller runs.
"""
from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidcat.errors import VidcatError
from vidcat.config import MULTI_STREAM

TORCH_VARIANTS = ("eager", "channels_last", "bf16", "channels_last_bf16", "compile", "compile_bf16")
ORT_VARIANTS = ("ort_fp32", "ort_int8")
VARIANTS = TORCH_VARIANTS + ORT_VARIANTS
# what fastest_variant tries unless told otherwise: the variants that build in seconds
DEFAULT_VARIANTS = ("eager", "channels_last", "bf16", "channels_last_bf16", "ort_fp32", "ort_int8")


def _logits(out) -> torch.Tensor:
    from vidcat.models.inputs import split_output

    return split_output(out)[0]


def _channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """A copy with every 5-D parameter in channels_last_3d (2-D/4-D ones are left as they are)."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        if p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def _cl_input(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d) if x.dim() == 5 else x


class TorchVariant:
    """``model`` run under ``torch.inference_mode`` with an optional layout change, bf16 autocast and
    torch.compile (inductor with ``freezing``, which needs grad mode off)."""

    def __init__(self, model: torch.nn.Module, channels_last: bool = False, bf16: bool = False,
                 compiled: bool = False):
        model = model.eval()
        self.channels_last, self.bf16, self.compiled = channels_last, bf16, compiled
        self.model = _channels_last(model) if channels_last else model
        if compiled:
            self.model = torch.compile(copy.deepcopy(self.model), dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = _cl_input(x)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            if self.compiled:
                import torch._inductor.config as inductor

                with inductor.patch(freezing=True):  # weights as constants: conv+BN folding, prepacking
                    return _logits(self.model(x)).float()
            return _logits(self.model(x)).float()


def _export(model, example: torch.Tensor, path: Path, input_name: str) -> None:
    from vidcat.inference.export import _logits_module, _require_onnx, _torch_to_onnx

    _require_onnx()
    _torch_to_onnx(_logits_module(copy.deepcopy(model), [input_name]), {input_name: example[:1].float().contiguous().numpy()},
                   path, 17)


class OrtModel:
    """An ONNX Runtime session that behaves like a vidcat model in :func:`predict_scores`: called with
    the input tensor, returns a logits tensor; ``input_key`` names its batch entry."""

    def __init__(self, session, input_key: str):
        self.session, self.input_key = session, input_key
        self.input_name = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from vidcat.inference.onnx_predictor import run_logits

        x = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(run_logits(self.session, {self.input_name: x}))


def ort_variant(model, example: torch.Tensor, int8: bool = False, calib: list | None = None, threads: int = 0):
    """``model`` exported to ONNX (and, with ``int8``, statically quantized on ``calib`` clips) and
    loaded in ONNX Runtime; returns an :class:`OrtModel`."""
    from vidcat.inference.export import _quantize, _session

    key = getattr(model, "input_key", "video")
    with tempfile.TemporaryDirectory(prefix="vidcat-fast-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export(model, example, fp32, key)
        path = fp32
        if int8:
            arrays = [c[None].numpy() if c.dim() == 4 else c.numpy() for c in (calib if calib is not None else example)]
            path = Path(tmp) / "model.int8.onnx"
            _quantize(fp32, path, [{key: np.ascontiguousarray(a, dtype=np.float32)} for a in arrays])
        session = _session(path, threads or torch.get_num_threads())  # loaded in memory: the files can go
    return OrtModel(session, key)


def build_variant(model, name: str, example: torch.Tensor, calib=None, threads: int = 0) -> Callable:
    """A callable ``x -> logits (B, K) float32`` for variant ``name`` of ``model``.

    ``example``: a batch of real clips (ONNX export traces it; int8 calibrates on ``calib`` or on it).
    """
    if name not in VARIANTS:
        raise VidcatError(f"unknown inference variant {name!r}; known: {', '.join(VARIANTS)}")
    if getattr(model, "input_key", "video") == MULTI_STREAM and name != "eager":
        raise VidcatError(f"variant {name} needs a single-stream model (this one reads several streams)")
    if name in ORT_VARIANTS:
        return ort_variant(model, example, int8=name == "ort_int8", calib=calib, threads=threads)
    return TorchVariant(model, channels_last="channels_last" in name, bf16=name.endswith("bf16"),
                        compiled=name.startswith("compile"))


class FastModel:
    """A model replacement for :func:`vidcat.models.inputs.predict_scores`: called with the input tensor,
    returns logits; ``input_key`` names its batch entry; ``variant`` and ``report`` say what was chosen."""

    def __init__(self, model, variant: str = "eager", example: torch.Tensor | None = None, calib=None,
                 threads: int = 0, report: dict | None = None):
        if variant in ORT_VARIANTS and example is None:
            raise VidcatError(f"variant {variant} needs example clips (for the ONNX export / calibration)")
        self.variant = variant
        self.input_key = getattr(model, "input_key", "video")
        self.fn = build_variant(model, variant, example, calib, threads)
        self.report = report or {"variant": variant}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def eval(self):
        return self


# -- measuring ----------------------------------------------------------------------------------------
def resolve_clock(clock: str = "auto") -> str:
    """``auto``: ``cpu`` (this thread's CPU time) when torch runs on one thread, else ``wall``.

    With one intra-op thread, torch, inductor's code and ONNX Runtime (``intra_op_num_threads=1``) all
    compute on the calling thread, so its CPU time is the run's cost without the time other processes
    took the core away: stable figures on a shared, overloaded machine. With several threads only
    wall time counts what the user waits for."""
    if clock not in ("auto", "cpu", "wall"):
        raise VidcatError(f"clock must be auto, cpu or wall, not {clock!r}")
    return ("cpu" if torch.get_num_threads() == 1 else "wall") if clock == "auto" else clock


def time_ms_per_clip(fn: Callable, x: torch.Tensor, repeat: int = 3, warm: bool = True, clock: str = "wall") -> float:
    """Best of ``repeat`` timed runs (after one warm-up run unless ``warm`` is False), in ms per clip: the
    best run is the one least disturbed by other processes on a shared machine. ``clock``: ``wall``
    or ``cpu`` (this thread's CPU time, see :func:`resolve_clock`)."""
    now = time.thread_time if clock == "cpu" else time.perf_counter
    if warm:
        fn(x)
    best = float("inf")
    for _ in range(max(repeat, 1)):
        t = now()
        fn(x)
        best = min(best, now() - t)
    return best * 1e3 / len(x)


def _batch_of(clips: torch.Tensor, b: int) -> torch.Tensor:
    reps = -(-b // len(clips))
    return clips.repeat(reps, *([1] * (clips.dim() - 1)))[:b].contiguous()


def run_all(fn: Callable, clips: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    return torch.cat([fn(clips[i:i + chunk].contiguous()) for i in range(0, len(clips), chunk)])


@dataclass
class VariantResult:
    """One variant's speed and accuracy, against eager fp32 on the same clips."""

    name: str
    ms_per_clip: dict = field(default_factory=dict)     # batch size -> ms
    speedup: dict = field(default_factory=dict)          # batch size -> eager ms / this ms
    top1: float | None = None                            # on the labelled clips, if any
    agreement: float | None = None                       # top-1 agreement with eager
    max_abs_diff: float | None = None                    # largest |logit - eager logit|
    build_s: float = 0.0                                 # export / quantize / compile time
    error: str | None = None                             # why it could not be built or run

    def as_dict(self) -> dict:
        r = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
        return {"name": self.name, "ms_per_clip": {str(k): round(v, 3) for k, v in self.ms_per_clip.items()},
                "speedup_vs_eager": {str(k): round(v, 2) for k, v in self.speedup.items()},
                "top1": r(self.top1), "agreement": r(self.agreement), "max_abs_diff": r(self.max_abs_diff),
                "build_s": round(self.build_s, 2), **({"error": self.error} if self.error else {})}


def measure_variants(model, clips: torch.Tensor, labels=None, variants=DEFAULT_VARIANTS, batches=(1, 8),
                     calib=None, repeat: int = 3, threads: int = 0, log=None, clock: str = "auto") -> list:
    """Score every variant on ``clips`` (top-1 with ``labels``, agreement with eager) and time it at each
    batch size. A variant that fails to build or run gets ``error`` instead of numbers.

    Timing is interleaved: ``repeat`` rounds, each timing every variant once per batch size, best kept,
    so a burst of load from other processes hits all variants alike rather than one of them;
    ``clock``: see :func:`resolve_clock`.
    """
    clock = resolve_clock(clock)
    model = model.eval()
    names = ["eager"] + [v for v in variants if v != "eager"]
    y = torch.as_tensor(labels) if labels is not None else None
    results, fns, ref = [], [], None
    inputs = {b: _batch_of(clips, b) for b in batches}
    for name in names:
        res = VariantResult(name)
        try:
            t0 = time.perf_counter()
            fn = build_variant(model, name, clips[:max(batches)], calib, threads)
            out = run_all(fn, clips)  # also the first (compiling) call of a compiled variant
            for x in inputs.values():
                fn(x)  # warm-up (and compile) at every timed shape
            res.build_s = time.perf_counter() - t0
            if not torch.isfinite(out).all():
                raise VidcatError("non-finite logits")
        except Exception as e:  # noqa: BLE001 - an exporter/compiler failure is a result, not a crash
            if name == "eager":
                raise
            res.error = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
            results.append(res)
            if log:
                log(f"{name}: skipped ({res.error})")
            continue
        ref = out if ref is None else ref
        res.agreement = float((out.argmax(1) == ref.argmax(1)).float().mean())
        res.max_abs_diff = float((out - ref).abs().max())
        if y is not None:
            res.top1 = float((out.argmax(1) == y).float().mean())
        results.append(res)
        fns.append((res, fn))
    for _ in range(max(repeat, 1)):
        for res, fn in fns:
            for b, x in inputs.items():
                res.ms_per_clip[b] = min(res.ms_per_clip.get(b, float("inf")), time_ms_per_clip(fn, x, 1, warm=False, clock=clock))
    eager = results[0].ms_per_clip
    for res, _ in fns:
        res.speedup = {b: eager[b] / res.ms_per_clip[b] for b in batches}
        if log:
            log(f"{res.name}: " + ", ".join(f"b{b} {res.ms_per_clip[b]:.2f} ms/clip" for b in batches)
                + f", agreement {res.agreement:.3f}" + (f", top1 {res.top1:.3f}" if res.top1 is not None else ""))
    return results


def acceptable(res: VariantResult, eager: VariantResult, max_top1_drop: float = 0.01,
               min_agreement: float = 0.99) -> bool:
    """Accurate enough to replace eager: top-1 within ``max_top1_drop`` of eager's when labelled,
    else top-1 agreement with eager >= ``min_agreement``."""
    if res.error:
        return False
    if res.top1 is not None and eager.top1 is not None:
        return eager.top1 - res.top1 <= max_top1_drop + 1e-9
    return res.agreement is not None and res.agreement >= min_agreement


def pick_best(results: list, batch: int, max_top1_drop: float = 0.01, min_agreement: float = 0.99) -> VariantResult:
    """The fastest acceptable variant at ``batch`` (eager when none beats it)."""
    eager = results[0]
    ok = [r for r in results if r.name == "eager" or acceptable(r, eager, max_top1_drop, min_agreement)]
    return min(ok, key=lambda r: r.ms_per_clip[batch])


def fastest_variant(model, example_batch: torch.Tensor, labels=None, variants=DEFAULT_VARIANTS, batch: int = 1,
                    max_top1_drop: float = 0.01, min_agreement: float = 0.99, repeat: int = 3,
                    threads: int = 0) -> FastModel:
    """Measure ``variants`` on ``example_batch`` (real clips, (N, C, T, H, W)) and return the fastest
    acceptable one at batch size ``batch`` as a :class:`FastModel` (``report`` holds every variant's numbers).
    The int8 variant is calibrated on ``example_batch``."""
    if example_batch.dim() < 2 or len(example_batch) == 0:
        raise VidcatError("fastest_variant needs a non-empty batch of example clips")
    batches = tuple(sorted({1, batch}))
    results = measure_variants(model, example_batch, labels, variants, batches, calib=None, repeat=repeat,
                               threads=threads)
    best = pick_best(results, batch, max_top1_drop, min_agreement)
    report = {"variant": best.name, "batch": batch, "speedup_vs_eager": round(best.speedup[batch], 2),
              "clips": len(example_batch), "variants": [r.as_dict() for r in results]}
    return FastModel(model, best.name, example=example_batch[:max(batches)], calib=example_batch,
                     threads=threads, report=report)


def accelerate(predictor, videos=(), variant: str = "auto", batch: int | None = None, limit: int = 4,
               variants=DEFAULT_VARIANTS) -> dict:
    """Swap ``predictor.model`` (a :class:`vidcat.inference.predictor.Predictor`) for a :class:`FastModel`.

    ``variant="auto"`` measures ``variants`` on up to ``limit`` clips read from ``videos`` (the files
    about to be predicted, or a few of a validation set) and keeps the fastest that agrees with eager;
    a variant name forces it. Without ``videos`` (``serve``) the choice is made on random clips of the
    model's input shape and int8 (which needs real clips to calibrate) is not tried. ``batch``: the
    batch size the caller runs (default: the predictor's views). Returns the choice report.
    Unreadable videos are skipped; none readable -> :class:`VidcatError`.
    """
    from vidcat.errors import VideoError
    from vidcat.inference.predictor import video_batch
    from vidcat.io.video import find_videos

    if not isinstance(predictor.model, torch.nn.Module):  # a FastModel already, or an ONNX predictor
        return {"variant": getattr(predictor.model, "variant", "onnx"), "note": "already accelerated"}
    key = getattr(predictor.model, "input_key", "video")
    files = [f for v in videos for f in (find_videos(v) if Path(v).is_dir() else [Path(v)])]
    clips = []
    for f in files:
        if len(clips) >= limit:
            break
        try:
            b, _ = video_batch(f, predictor.data_cfg, predictor.classes, predictor.multilabel)
        except VideoError:
            continue
        clips.append(b[key])
    note = None
    if not clips and files:
        raise VidcatError(f"--fast: none of {len(files)} video(s) could be read to choose a variant")
    if not clips:
        cfg = predictor.data_cfg
        channels = getattr(predictor.ckpt, "get", lambda *_: {})("model_kwargs", {}).get("in_channels", 3)
        clips = [torch.randn(limit, channels, cfg.frames, cfg.size, cfg.size, generator=torch.Generator().manual_seed(0))]
        variants = tuple(v for v in variants if v != "ort_int8")
        if variant == "ort_int8":
            raise VidcatError("--fast ort_int8 needs example videos to calibrate on")
        note = "no example videos: chosen on random clips (agreement with eager), int8 not tried"
    x = torch.cat(clips)
    batch = batch or predictor.clips * predictor.crops
    if variant == "auto":
        fast = fastest_variant(predictor.model, x, variants=variants, batch=batch)
    else:
        fast = FastModel(predictor.model, variant, example=x, calib=x)
    if note:
        fast.report["note"] = note
    predictor.model = fast
    return fast.report
