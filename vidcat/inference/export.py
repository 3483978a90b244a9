"""Export a checkpoint to a self-contained ONNX file: ``vidcat export``.

    report = export_onnx("runs/demo/best.pt", "model.onnx")                       # fp32
    report = export_onnx("runs/demo/best.pt", "model.int8.onnx", int8=True,
                         calib="data/motion/val.csv")                              # static int8 (QDQ)

A video model's graph takes the decoded frames and makes the test views itself: ``frames`` uint8
(B, T, H, W, 3) at any decoded size and ``crop`` int64 (B,), each row's crop position (0 start, 1 centre,
2 end); :class:`vidcat.data.transforms.FrameViews` -- the dataset's crop, torchvision's antialiased resize
and normalisation -- runs inside the graph (opset 18: ONNX's antialiased ``Resize``), so the torch-free
predictor only decodes. It returns ``logits`` (B, K). A model reading flow, motion vectors or audio
(``two_stream``, ``fusion`` over video + audio, ...) takes one input per stream (``video``: normalised
views, ``flow``/``mv``, ``audio``) plus its presence mask (``video_mask``, ``audio_mask``: float (B,),
1 present / 0 missing), with a fixed batch of 1 (the fusion code sizes its masks with ``len(x)``, which
the tracer freezes; :func:`vidcat.inference.onnx_predictor.run_logits` runs such a graph clip by clip);
text streams (strings) cannot be exported. The class names and the data config (frames,
size, mean, std, sampler, ...) travel in the file's ``metadata_props``, so
:class:`vidcat.inference.onnx_predictor.OnnxPredictor` needs nothing else. The file is checked
with ONNX Runtime against torch before it is renamed into place (temp file + rename): an export
that does not match never lands. A file from before the frames input (a ``video`` float input) is refused
by :func:`vidcat.inference.onnx_predictor.metadata_of`, asking for a re-export.

``int8``: with ``calib`` (a dataset) the weights *and* activations are quantized statically (QDQ,
per-channel int8 weights, activation ranges from a few calibration clips): the right choice for
conv nets; ONNX Runtime fuses the QDQ pairs into QLinearConv (2D and 3D), so it runs about as fast
as fp32 (small 3D nets) or faster (2D backbones). Without ``calib`` it falls back to ONNX Runtime's
dynamic quantization, which turns Conv into ConvInteger and MatMul into MatMulInteger: the file is
as small, but activations are quantized at run time and ConvInteger has no fast kernel, so a CNN
runs *slower* than fp32. The report gives the size ratio, the latency of both, and the top-1
agreement with fp32 on the calibration (or ``eval_data``) clips.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from vidcat.errors import VidcatError

# metadata_props keys (strings; JSON values)
from vidcat.inference.onnx_predictor import (  # noqa: E402,F401  (the reading side owns the keys)
    FRAME_INPUTS, META_CLASSES, META_DATA, META_INPUT, META_MODEL, META_MULTILABEL, META_QUANT, META_VERSION,
    metadata_of)
from vidcat.config import MULTI_STREAM
from vidcat.io.store import atomic_path

EXPORTABLE_INPUTS = ("video", "flow", "mv", "audio")
VIEWS_OPSET = 18  # ONNX's Resize takes antialias from opset 18: the frame views need it
PARITY_TOL = 1e-3  # max |logit difference| (scaled by the logit range) that an fp32 export may show


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise VidcatError(f"ONNX export needs onnx and onnxruntime ({e.name} is missing): "
                          "pip install 'vidcat[serve]'") from None


def _input_shape(ckpt: dict, key: str) -> tuple:
    """Per-sample shape of the batch entry ``key`` for this checkpoint's data config."""
    from vidcat.config import DataConfig

    cfg = DataConfig.from_dict(ckpt["data"])
    single_channels = ckpt.get("model_kwargs", {}).get("in_channels") if ckpt["model"] != "two_stream" else None
    if key.endswith("_mask"):
        return ()
    if key == "audio":
        from vidcat.io.audio import mel_frames

        return (1, cfg.n_mels, cfg.audio_frames or mel_frames(cfg.audio_seconds or 1.0))  # as the audio modality
    default = 3 if key == "video" else 2 * cfg.flow_length  # flow / mv: (2L, T, S, S)
    return (single_channels or default, cfg.frames, cfg.size, cfg.size)


def graph_inputs(model, ckpt: dict) -> list[str]:
    """The batch entries the exported graph takes: the model's stream, or every stream then every mask."""
    from vidcat.models.fusion import batch_key, mask_key

    key = getattr(model, "input_key", "video")
    if key != MULTI_STREAM:
        if key not in EXPORTABLE_INPUTS:
            raise VidcatError(f"{ckpt['model']} reads '{key}': export supports {', '.join(EXPORTABLE_INPUTS)}")
        return [key]
    names = list(getattr(model, "names", []))
    bad = [batch_key(n) for n in names if batch_key(n) not in EXPORTABLE_INPUTS]
    if not names or bad:
        raise VidcatError(f"{ckpt['model']}: export supports video / flow / mv / audio streams, not "
                          f"{', '.join(bad) or 'an unnamed stream set'} (text streams take strings)")
    return [batch_key(n) for n in names] + [mask_key(n) for n in names]


def _logits_module(model, keys: list[str], views=None):
    """``model`` wrapped so that the exported graph takes ``keys`` as positional inputs and returns logits;
    with ``views`` (a :class:`FrameViews`) it takes ``frames`` and ``crop`` and makes the model's input."""
    import torch.nn as nn

    from vidcat.models.inputs import split_output

    class Logits(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m, self.keys, self.views = m, list(keys), views
            self.multi = getattr(m, "input_key", "video") == MULTI_STREAM

        def forward(self, *xs):
            if self.views is not None:
                xs = (self.views(*xs),)
            return split_output(self.m(dict(zip(self.keys, xs)) if self.multi else xs[0]))[0]

    return Logits(model).eval()


def _antialiased_resize(g, x, output_size, align_corners, scale_factors):
    """torch's antialiased bilinear resize as ONNX's ``Resize`` (opset 18): ``exclude_outside`` renormalises the
    filter at the borders as torch does, so ONNX Runtime matches it to float rounding."""
    import torch

    def const(values, dtype=torch.int64):
        return g.op("Constant", value_t=torch.tensor(values, dtype=dtype))

    batch_channels = g.op("Slice", g.op("Shape", x), const([0]), const([2]))
    sizes = g.op("Concat", batch_channels, output_size, axis_i=0)
    empty = const([], torch.float32)
    return g.op("Resize", x, empty, empty, sizes, mode_s="linear", antialias_i=1, exclude_outside_i=1,
                coordinate_transformation_mode_s="half_pixel")


def _torch_to_onnx(model, example: dict, path: Path, opset: int, dynamic: bool = True, axes: dict | None = None):
    """The TorchScript exporter: no onnxscript needed, one self-contained file, BN folded into Conv.
    ``dynamic``: every input's (and the logits') first axis is the batch; ``axes``: more named axes per input."""
    import inspect
    import warnings

    import torch

    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.9 defaults to the torch.export-based exporter (needs onnxscript)
    dynamic_axes = {k: {0: "batch", **(axes or {}).get(k, {})} for k in [*example, "logits"]} if dynamic else None
    if opset >= VIEWS_OPSET:
        torch.onnx.register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", _antialiased_resize, VIEWS_OPSET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(model, tuple(torch.from_numpy(v) for v in example.values()), str(path),
                          input_names=list(example), output_names=["logits"], dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True, **kwargs)


def _set_metadata(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "vidcat"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def read_metadata(path) -> dict:
    """The vidcat metadata of an exported file: classes, multilabel, data (dict), model, input, quantization."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return metadata_of(sess, path)


def _session(path: Path, threads: int = 0):
    from vidcat.inference.onnx_predictor import ort_session

    return ort_session(path, threads)


def _dataset_clips(source, ckpt: dict, keys: list[str], limit: int) -> tuple[list, list]:
    """Up to ``limit`` model-ready clips spread evenly over ``source`` as graph feeds {key: (1, ...)},
    and their labels."""
    import numpy as np

    from vidcat.config import DataConfig
    from vidcat.data.manifest import load_dataset
    from vidcat.data.views import graph_views
    from vidcat.errors import VideoError
    from vidcat.inference.onnx_predictor import batch_feeds
    from vidcat.inference.predictor import video_batch
    from vidcat.io.video import VIDEO_EXTENSIONS

    src = Path(source)
    if src.is_file() and src.suffix.lower() in VIDEO_EXTENSIONS:
        items = [(str(src), None)]
    else:
        ds = load_dataset(src)
        items = [(it.path, it.labels[0] if len(it.labels) == 1 else None) for it in ds.items]
    picks = sorted({int(round(i)) for i in np.linspace(0, len(items) - 1, min(limit, len(items)))})
    cfg = DataConfig.from_dict(ckpt["data"])
    feeds, labels = [], []
    for i in picks:
        path, label = items[i]
        try:
            if tuple(keys) == FRAME_INPUTS:
                feeds.append(graph_views(path, cfg))
            else:
                feeds.append(batch_feeds(video_batch(path, cfg, ckpt["classes"], ckpt["multilabel"])[0], keys))
        except VideoError:
            continue  # unreadable: use the others
        labels.append(label)
    if not feeds:
        raise VidcatError(f"{source}: none of the {len(picks)} videos tried could be read")
    return feeds, labels


def random_feeds(ckpt: dict, keys: list[str], batch: int, seed: int, side: int | None = None) -> dict:
    """Random graph inputs of ``batch`` rows: uint8 ``frames`` ``side`` pixels high (default: the decode
    size) and 4:3, every crop position in turn, ones for the masks, standard normal streams."""
    import numpy as np

    from vidcat.config import DataConfig

    g = np.random.default_rng(seed)
    cfg = DataConfig.from_dict(ckpt["data"])
    h = side or cfg.decode_short_side
    feeds = {}
    for k in keys:
        if k == "frames":
            feeds[k] = g.integers(0, 256, (batch, cfg.frames, h, h * 4 // 6 * 2, 3), dtype=np.uint8)
        elif k == "crop":
            feeds[k] = np.arange(batch, dtype=np.int64) % 3
        elif k.endswith("_mask"):
            feeds[k] = np.ones(batch, np.float32)
        else:
            feeds[k] = g.standard_normal((batch, *_input_shape(ckpt, k))).astype(np.float32)
    return feeds


def _calibration_reader(feeds: list):
    """An onnxruntime ``CalibrationDataReader`` over in-memory clips (graph feeds)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

        def rewind(self):
            self.it = iter(feeds)

    return Reader()


def _quantize(src: Path, dst: Path, calib_feeds: list | None) -> str:
    import logging

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" notices on the root logger
    try:
        if calib_feeds:
            quantize_static(str(src), str(dst), _calibration_reader(calib_feeds),
                            quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8)
            return "static-int8-qdq"
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return "dynamic-int8"
    finally:
        root.setLevel(level)


def _latency_ms(sess, feeds: dict, repeat: int = 5) -> float:
    """Median wall time of one run on ``feeds`` (after a warm-up run)."""
    sess.run(None, feeds)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    return round(sorted(times)[len(times) // 2] * 1000, 2)


def export_onnx(checkpoint_path, out, opset: int = VIEWS_OPSET, int8: bool = False, calib=None, eval_data=None,
                clips: int = 16, threads: int = 0, latency: bool = True) -> dict:
    """Export ``checkpoint_path`` to ``out`` (atomic); returns a report (parity, sizes, int8 agreement).

    ``calib``: dataset whose clips calibrate static int8 (and, without ``eval_data``, measure agreement);
    ``eval_data``: dataset for parity/agreement; ``clips``: at most this many clips read from each;
    ``latency``: time fp32 and int8 on one clip (median of 5 runs) for the report.
    """
    _require_onnx()
    from vidcat.config import __version__
    from vidcat.models.build import Checkpoint

    out = Path(out)
    ck = Checkpoint.load(checkpoint_path)
    ckpt, model = ck.to_dict(), ck.build()
    if hasattr(model, "feature_shapes"):  # the streams model (a gated fusion model has a fused_head layer)
        return export_fused_head(model, ckpt, checkpoint_path, out, opset, int8, threads)
    try:
        keys = graph_inputs(model, ckpt)
    except VidcatError as e:
        raise VidcatError(f"{checkpoint_path}: {e}") from None
    net, keys, axes = _graph_module(model, ckpt, keys, opset, checkpoint_path)
    calib_feeds, calib_labels = _dataset_clips(calib, ckpt, keys, clips) if calib else (None, None)
    eval_feeds, eval_labels = _dataset_clips(eval_data, ckpt, keys, clips) if eval_data else (calib_feeds, calib_labels)

    input_key = getattr(model, "input_key", "video")
    meta = {META_CLASSES: json.dumps(ckpt["classes"]), META_MULTILABEL: json.dumps(bool(ckpt["multilabel"])),
            META_DATA: json.dumps(ckpt["data"], default=list), META_MODEL: ckpt["model"],
            META_INPUT: input_key, META_QUANT: "none", META_VERSION: __version__}
    report: dict = {"checkpoint": str(checkpoint_path), "out": str(out), "model": ckpt["model"], "opset": opset,
                    "input": input_key, "inputs": keys}

    # the fp32 graph goes straight to the output's temp file, or (int8) to a scratch folder beside it
    with atomic_path(out) as final, tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        fp32 = Path(scratch) / "fp32.onnx" if int8 else final
        # traced on frames whose crop is not already the model's size, so that the resize is in the graph
        example = random_feeds(ckpt, keys, 1, 1, side=ckpt["data"]["size"] + 2)
        try:
            _torch_to_onnx(net, example, fp32, opset, dynamic=input_key != MULTI_STREAM, axes=axes)
            _set_metadata(fp32, meta)  # also runs the ONNX checker
        except Exception as e:  # an op the exporter cannot translate, an unusable opset, ...
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise VidcatError(f"{checkpoint_path}: ONNX export of {ckpt['model']} at opset {opset} failed "
                              f"({type(e).__name__}: {first})") from None

        # parity: a random batch of 3 (the dynamic batch axis, every crop position) plus the real clips if any
        checks = [random_feeds(ckpt, keys, 3, 0)] + list(eval_feeds or [])[:8]
        sess = _session(fp32, threads)
        diff, scale = _parity(net, sess, checks, keys)
        report["max_abs_diff"] = diff
        if diff > PARITY_TOL * scale:
            raise VidcatError(f"{checkpoint_path}: ONNX Runtime output differs from torch by {diff:.3g} "
                              f"(logits up to {scale:.3g}); not written")
        report["fp32_bytes"] = fp32.stat().st_size
        if int8:
            report["int8"] = _int8_report(fp32, final, meta, sess, checks[0], calib_feeds, eval_feeds, eval_labels,
                                          ckpt["classes"], threads, latency, "eval" if eval_data else "calibration")
    report["bytes"] = out.stat().st_size
    return report


def _graph_module(model, ckpt: dict, keys: list[str], opset: int, checkpoint_path):
    """The module to export, its inputs and their named axes beyond the batch: a video model's graph takes
    ``frames`` and ``crop`` and makes the test views itself; a multi-stream model's takes its streams."""
    if keys != ["video"]:
        return _logits_module(model, keys), keys, None
    if opset < VIEWS_OPSET:
        raise VidcatError(f"{checkpoint_path}: --opset {opset}: a video model's graph resizes the frames with the "
                          f"antialiased Resize of opset {VIEWS_OPSET} or later")
    from vidcat.config import DataConfig
    from vidcat.data.transforms import FrameViews

    cfg = DataConfig.from_dict(ckpt["data"])
    views = FrameViews(cfg.size, cfg.mean, cfg.std)
    return _logits_module(model, keys, views), list(FRAME_INPUTS), {"frames": {2: "height", 3: "width"}}


STREAM_FEATURES = "stream_features"   # META_INPUT of an exported fused head


def export_fused_head(model, ckpt: dict, checkpoint_path, out: Path, opset: int, int8: bool, threads: int) -> dict:
    """The ``streams`` model's fused head -- every stream's head and the stacker -- as ONNX. Its inputs are the
    streams' features and presence flags: the feature modules themselves (MediaPipe, optical flow, sentence
    encoders) stay with vidcat, which computes the features."""
    import numpy as np

    from vidcat.config import __version__

    if int8:
        raise VidcatError(f"{checkpoint_path}: --int8 is for conv nets; the streams model's fused head is a few "
                          "linear layers (export it in fp32)")
    shapes = model.feature_shapes()
    keys = [f"{n}_features" for n in shapes] + [f"{n}_present" for n in shapes]
    g = np.random.default_rng(0)

    def feeds(batch: int) -> dict:
        return {**{f"{n}_features": g.standard_normal((batch, *sh)).astype(np.float32) for n, sh in shapes.items()},
                **{f"{n}_present": np.ones(batch, np.float32) for n in shapes}}

    net = model.fused_head().eval()
    meta = {META_CLASSES: json.dumps(ckpt["classes"]), META_MULTILABEL: json.dumps(bool(ckpt["multilabel"])),
            META_DATA: json.dumps(ckpt["data"], default=list), META_MODEL: ckpt["model"],
            META_INPUT: STREAM_FEATURES, META_QUANT: "none", META_VERSION: __version__}
    with atomic_path(out) as final:
        _torch_to_onnx(net, feeds(1), final, opset)
        _set_metadata(final, meta)
        diff, scale = _parity(net, _session(final, threads), [feeds(3)], keys)
        if diff > PARITY_TOL * scale:
            raise VidcatError(f"{checkpoint_path}: ONNX Runtime output differs from torch by {diff:.3g}; not written")
    return {"checkpoint": str(checkpoint_path), "out": str(out), "model": ckpt["model"], "opset": opset,
            "input": STREAM_FEATURES, "inputs": keys, "max_abs_diff": diff, "bytes": out.stat().st_size,
            "exports": "the fused head (each stream's head and the stacker); inputs are the streams' features, "
                       "which vidcat computes (predict --checkpoint runs the whole model)"}


def _parity(net, sess, checks: list[dict], keys: list[str]) -> tuple[float, float]:
    """Largest |torch - ONNX Runtime| logit over ``checks``, and the largest |logit| (the scale)."""
    import numpy as np
    import torch

    from vidcat.inference.onnx_predictor import run_logits

    diff, scale = 0.0, 1.0
    with torch.no_grad():
        for feeds in checks:
            ref = net(*(torch.from_numpy(feeds[k]) for k in keys)).numpy()
            got = run_logits(sess, feeds)
            diff = max(diff, float(np.abs(ref - got).max()))
            scale = max(scale, float(np.abs(ref).max()))
    return diff, scale


def _int8_report(fp32: Path, dst: Path, meta: dict, sess, check: dict, calib_feeds, eval_feeds, eval_labels,
                 classes: list, threads: int, latency: bool, agreement_on: str) -> dict:
    """Quantize ``fp32`` into ``dst``; -> the int8 part of the report (sizes, latency, agreement with fp32)."""
    import numpy as np

    method = _quantize(fp32, dst, calib_feeds)
    _set_metadata(dst, {**meta, META_QUANT: method})
    qsess = _session(dst, threads)
    one = {k: v[:1] for k, v in check.items()}
    fp32_bytes = fp32.stat().st_size
    rep = {"method": method, "bytes": dst.stat().st_size, "size_ratio": round(dst.stat().st_size / fp32_bytes, 4),
           "calibration_clips": len(calib_feeds or [])}
    if latency:
        rep["latency_ms"] = {"fp32": _latency_ms(sess, one), "int8": _latency_ms(qsess, one)}
    if not eval_feeds:
        rep["top1_agreement"] = None  # no clips to compare on: pass --calib or --eval
        return rep
    a = np.concatenate([sess.run(None, f)[0] for f in eval_feeds])
    b = np.concatenate([qsess.run(None, f)[0] for f in eval_feeds])
    agree = float((a.argmax(1) == b.argmax(1)).mean())
    rep.update(top1_agreement=round(agree, 4), agreement_clips=len(eval_feeds), agreement_on=agreement_on,
               max_abs_logit_diff=round(float(np.abs(a - b).max()), 5))
    if eval_labels and all(lab in classes for lab in eval_labels):
        y = np.array([classes.index(lab) for lab in eval_labels])
        rep["accuracy"] = {"fp32": round(float((a.argmax(1) == y).mean()), 4),
                           "int8": round(float((b.argmax(1) == y).mean()), 4)}
    return rep


def export_main(a) -> int:
    report = export_onnx(a.checkpoint, a.out, opset=a.opset, int8=a.int8, calib=a.calib, eval_data=a.eval,
                         clips=a.clips, threads=a.threads)
    print(json.dumps(report, indent=1))
    return 0
