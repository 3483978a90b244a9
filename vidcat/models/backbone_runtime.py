"""Faster runtimes for a frozen frame encoder (:func:`vidcat.models.frame_encoder.load_backbone`).

``FrameEncoder(module, runtime)`` is a callable: ``(N, 3, H, W)`` normalised frames -> ``(N, D)`` float32
features, computed by

- ``eager``: PyTorch in channels_last (the reference);
- ``ort_fp32``: ONNX Runtime on the module exported whole (its pooling, e.g. PositionPool, included);
- ``ort_int8``: ONNX Runtime on a static int8 copy (QDQ, per-tensor scales, MinMax calibration on real
  frames); the first blocks and the pooling stay float because int8 there wrecks the features (see
  :data:`INT8`). Its features differ from eager, so it is part of a feature cache key (:func:`runtime_spec`);
- ``openvino``: OpenVINO's CPU plugin in f32 on the same graph, where that wheel is installed;
- ``auto``: the first of :data:`AUTO_ORDER` that is installed and whose features agree with eager
  (cosine >= :data:`AGREEMENT_COS` on the first frames it is given), else eager.

The float32 runtimes differ from eager by rounding only: no farther from a float64 forward pass than eager
itself (whose oneDNN and reference kernels differ from each other as much), so they share feature cache
entries (:func:`runtime_spec`).

The graphs are store entries (:class:`vidcat.io.store.Store` namespace :data:`NAMESPACE`) keyed by the
sha256 of the module's weights, the frame size and the runtime settings: the export (and the int8
calibration) runs once per machine, and a damaged entry is rebuilt. A graph is fixed to one frame size:
EfficientNet-Lite's TensorFlow "SAME" padding depends on it, and constant pads let ONNX Runtime fold each
Pad into its Conv.
"""
from __future__ import annotations

import copy
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.errors import VidcatError
from vidcat.io.store import Store
from vidcat.models.efficientnet_lite import SameConv2d, same_padding
from vidcat.models.frame_encoder import state_sha

RUNTIMES = ("auto", "eager", "ort_fp32", "ort_int8", "openvino")
AUTO_ORDER = ("openvino", "ort_fp32")    # fastest first (benchmarks/backbone_runtime.py); int8 fails the bar
AGREEMENT_COS = 0.999                    # min per-frame cosine to eager that `auto` asks of a runtime
AGREEMENT_FRAMES = 8                     # frames of the first call that `auto` checks
SAME_FEATURES = ("eager", "ort_fp32", "openvino")   # float32 runtimes: eager's features up to rounding
NAMESPACE = "frame_encoder_onnx"
EXPORT_VERSION = 1                       # bump when the exported graph changes
OPSET = 17
# Per-tensor int8 of this net's first convolutions alone drops feature cosine to 0.65-0.95 (stem and
# block 0 depthwise worst), so the first `float_convs` convolutions (stem .. block 4) stay float.
INT8 = {"format": "qdq", "per_channel": False, "calibration": "minmax", "activations": "uint8",
        "weights": "int8", "float_convs": 15}
CALIBRATION_BATCH = 8


def check_runtime(runtime: str) -> str:
    """``runtime`` if it names one of :data:`RUNTIMES` that can run here, else VidcatError."""
    if runtime not in RUNTIMES:
        raise VidcatError(f"unknown frame encoder runtime {runtime!r} ({' | '.join(RUNTIMES)})")
    if runtime in ("ort_fp32", "ort_int8") and not have_onnxruntime():
        raise VidcatError(f"runtime {runtime} needs onnx and onnxruntime: pip install 'vidcat[serve]'")
    if runtime == "openvino" and not have_openvino():
        raise VidcatError("runtime openvino needs onnx and openvino: pip install onnx openvino")
    return runtime


def runtime_spec(runtime: str) -> dict:
    """What a feature cache key must add for ``runtime``: nothing for the float32 runtimes (their features
    are eager's up to rounding, so they share entries), the int8 settings for ``ort_int8``."""
    return {} if runtime in SAME_FEATURES + ("auto",) else {"runtime": runtime, "int8": dict(INT8)}


def _importable(*names: str) -> bool:
    import importlib

    try:
        for name in names:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


def have_onnxruntime() -> bool:
    """onnx (the export) and onnxruntime are installed."""
    return _importable("onnx", "onnxruntime")


def have_openvino() -> bool:
    """onnx (the export) and openvino are installed."""
    return _importable("onnx", "openvino")


def available_runtimes() -> list[str]:
    """The concrete runtimes that can run here."""
    ort = ["ort_fp32", "ort_int8"] if have_onnxruntime() else []
    return ["eager"] + ort + (["openvino"] if have_openvino() else [])


class FixedPadConv(nn.Module):
    """A :class:`SameConv2d` with its padding fixed for one input size (a constant Pad in the graph)."""

    def __init__(self, conv: nn.Conv2d, pads: list[int]):
        super().__init__()
        self.pads = [int(p) for p in pads]
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                              conv.dilation, conv.groups, conv.bias is not None)
        self.conv.load_state_dict(conv.state_dict())

    def forward(self, x):
        return self.conv(F.pad(x, self.pads) if any(self.pads) else x)


def fixed_size_copy(module: nn.Module, size: tuple[int, int]) -> nn.Module:
    """A copy of ``module`` whose "SAME" convolutions pad by constants for ``size`` (H, W) frames."""
    module = copy.deepcopy(module).eval().to(memory_format=torch.contiguous_format)
    seen: dict[str, tuple] = {}

    def record(name):
        def hook(_module, args):
            seen[name] = tuple(args[0].shape[-2:])     # returns None: the input is left as it is
        return hook

    hooks = [m.register_forward_pre_hook(record(n)) for n, m in module.named_modules() if isinstance(m, SameConv2d)]
    with torch.no_grad():
        module(torch.zeros(1, 3, *size))
    for h in hooks:
        h.remove()
    for name, hw in seen.items():
        parent, _, leaf = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        conv = getattr(owner, leaf)
        setattr(owner, leaf, FixedPadConv(conv, same_padding(hw, conv.kernel_size, conv.stride, conv.dilation)))
    return module


def export_onnx(module: nn.Module, size: tuple[int, int], opset: int = OPSET) -> bytes:
    """``module`` as an ONNX graph ``frames (n, 3, H, W) -> features (n, D)`` (TorchScript exporter: one
    self-contained file, BatchNorm folded into the convolutions)."""
    import inspect

    fixed = fixed_size_copy(module, size)
    kw = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(fixed, (torch.zeros(2, 3, *size),), buf, input_names=["frames"],
                          output_names=["features"], opset_version=opset, do_constant_folding=True,
                          dynamic_axes={"frames": {0: "n"}, "features": {0: "n"}}, **kw)
    return buf.getvalue()


def trunk_nodes(model) -> list[str]:
    """Names of the Conv and Add nodes that compute the feature map the pooling reads (the input of the
    graph's ReduceMean): what int8 may quantise; the pooling arithmetic after it stays float."""
    made_by = {o: n for n in model.graph.node for o in n.output}
    means = [n for n in model.graph.node if n.op_type == "ReduceMean"]
    if not means:
        raise VidcatError("int8: the exported encoder has no ReduceMean (pooled feature map) to quantise up to")
    found, todo = set(), [means[0].input[0]]
    while todo:
        node = made_by.get(todo.pop())
        if node is not None and node.name not in found:
            found.add(node.name)
            todo.extend(node.input)
    return [n.name for n in model.graph.node if n.name in found and n.op_type in ("Conv", "Add")]


def _int8_nodes(model, float_convs: int) -> list[str]:
    """Trunk nodes to quantise: those after the first ``float_convs`` convolutions (graph order)."""
    names = trunk_nodes(model)
    convs = [n for n in names if next(x for x in model.graph.node if x.name == n).op_type == "Conv"]
    if float_convs >= len(convs):
        return []
    first = names.index(convs[float_convs])
    return names[first:]


def _calibration_reader(frames: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    batches = [{"frames": frames[i:i + CALIBRATION_BATCH]} for i in range(0, len(frames), CALIBRATION_BATCH)]

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

        def rewind(self):
            self.it = iter(batches)

    return Frames()


def quantize_int8(fp32: bytes, frames: np.ndarray, settings: dict | None = None) -> bytes:
    """Static int8 copy of the graph ``fp32`` calibrated on ``frames`` (N, 3, H, W) float32: QDQ (or
    QOperator), per-tensor (or per-channel) scales, MinMax / Percentile / Entropy calibration, uint8
    activations and int8 weights, the first ``float_convs`` convolutions and the pooling left float."""
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    s = {**INT8, **(settings or {})}
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[s["calibration"]]
    kinds = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)     # the quantiser's notices go to the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
            src.write_bytes(fp32)
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            nodes = _int8_nodes(onnx.load(str(pre)), int(s["float_convs"]))
            quantize_static(str(pre), str(out), _calibration_reader(np.ascontiguousarray(frames, np.float32)),
                            quant_format=QuantFormat.QDQ if s["format"] == "qdq" else QuantFormat.QOperator,
                            per_channel=bool(s["per_channel"]), activation_type=kinds[s["activations"]],
                            weight_type=kinds[s["weights"]], nodes_to_quantize=nodes, calibrate_method=method,
                            extra_options={"CalibPercentile": 99.999} if s["calibration"] == "percentile" else None)
            return out.read_bytes()
    finally:
        root.setLevel(level)


def graph_key(weights: str, size: tuple[int, int], kind: str, settings: dict | None = None) -> dict:
    """The store spec of one graph: weights, frame size, opset and (int8) quantisation settings."""
    return {"weights": weights, "size": [int(size[0]), int(size[1])], "opset": OPSET, "graph": kind,
            **({"int8": settings} if kind == "int8" else {})}


def cached_graph(module: nn.Module, size: tuple[int, int], int8: bool = False, frames: np.ndarray | None = None,
                 weights: str | None = None, root=None, log=None) -> bytes:
    """The ONNX graph of ``module`` for ``size`` frames (int8: calibrated on ``frames`` the first time),
    from the store when there, else built and stored (atomically) for the next run."""
    store = Store(NAMESPACE, version=EXPORT_VERSION, root=root, log=log)
    weights = weights or state_sha(module)
    key = store.key(graph_key(weights, size, "int8" if int8 else "fp32", dict(INT8)))
    got = store.get(key)
    if got is not None:
        return got.tobytes()
    if int8:
        if frames is None or not len(frames):
            raise VidcatError("runtime ort_int8 needs calibration frames the first time it runs")
        graph = quantize_int8(cached_graph(module, size, weights=weights, root=root, log=log), frames)
    else:
        graph = export_onnx(module, size)
    store.put(key, np.frombuffer(graph, np.uint8), meta={"size": list(size), "int8": int8})
    return graph


def ort_runner(graph: bytes, threads: int, spinning: bool = False):
    """``frames (n, 3, H, W) float32 -> features`` by an ONNX Runtime CPU session on ``graph``; without
    ``spinning`` its worker threads sleep between calls, so loader processes keep their cores."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"frames": x})[0]


def openvino_runner(graph: bytes, threads: int, precision: str = "f32"):
    """The same by OpenVINO's CPU plugin in ``precision`` (f32: its default on CPUs with bf16 units is
    bf16, whose features are eager's only to cosine ~0.9)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(graph), "CPU", {
        "INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
    request, out = compiled.create_infer_request(), compiled.output(0)
    return lambda x: np.array(request.infer({0: x})[out], copy=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity of two (N, D) arrays (1 where both rows are zero)."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a.astype(np.float64) * b).sum(1)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-30))


class FrameEncoder:
    """Callable: ``(N, 3, H, W)`` normalised frames -> ``(N, D)`` float32 features by one runtime.

    ``auto`` resolves on the first call (``resolved`` then names the runtime in use, ``agreement`` each
    tried runtime's min cosine to eager). ``ort_int8`` calibrates on ``calibration`` frames, default those
    of its first call, the first time a machine builds it. Frames on a GPU always run eager. ``threads``:
    the runtime's threads (default: torch's). ``root``: the cache root (default: ``$VIDCAT_CACHE`` ...)."""

    def __init__(self, module: nn.Module, runtime: str = "auto", threads: int | None = None, root=None,
                 calibration: torch.Tensor | None = None, log=None):
        self.module = module.eval().to(memory_format=torch.channels_last)
        self.runtime = check_runtime(runtime)
        self.threads, self.root, self.log, self.calibration = threads, root, log, calibration
        self.resolved = None if runtime == "auto" else runtime
        if runtime == "auto" and not have_onnxruntime():
            self.resolved = "eager"
        self.agreement: dict = {}
        self._runners: dict = {}
        self._weights: str | None = None

    def __getstate__(self):              # sessions do not pickle: a copy rebuilds them (from the store)
        return {**self.__dict__, "_runners": {}}

    @torch.no_grad()
    def eager(self, frames: torch.Tensor) -> torch.Tensor:
        return self.module(frames.contiguous(memory_format=torch.channels_last)).float()

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.device.type != "cpu" or self.resolved == "eager" or not len(frames):
            return self.eager(frames)
        x = frames.detach().float().contiguous().numpy()
        if self.resolved is None:
            self.resolved = self._choose(frames, x)
            if self.resolved == "eager":
                return self.eager(frames)
        return torch.from_numpy(self.runner(self.resolved, x)(x))

    def runner(self, runtime: str, x: np.ndarray):
        """The callable of ``runtime`` for frames of ``x``'s size (built on first use)."""
        size = tuple(int(n) for n in x.shape[-2:])
        if (runtime, size) not in self._runners:
            if self._weights is None:
                self._weights = state_sha(self.module)
            calib = self.calibration.float().contiguous().numpy() if self.calibration is not None else x
            graph = cached_graph(self.module, size, int8=runtime == "ort_int8", frames=calib,
                                 weights=self._weights, root=self.root, log=self.log)
            make = openvino_runner if runtime == "openvino" else ort_runner
            self._runners[runtime, size] = make(graph, self.threads or torch.get_num_threads())
        return self._runners[runtime, size]

    def _choose(self, frames: torch.Tensor, x: np.ndarray) -> str:
        """The first runtime of AUTO_ORDER here whose features on the first frames agree with eager."""
        probe = x[:AGREEMENT_FRAMES]
        ref = self.eager(frames[:AGREEMENT_FRAMES]).numpy()
        for runtime in AUTO_ORDER:
            if runtime == "openvino" and not have_openvino():
                continue
            try:
                got = self.runner(runtime, probe)(probe)
            except Exception as e:  # noqa: BLE001 - an export or a session that fails leaves eager, never a crash
                self.agreement[runtime] = f"failed ({type(e).__name__}: {e})"[:200]
                continue
            self.agreement[runtime] = float(cosines(ref, got).min())
            if self.agreement[runtime] >= AGREEMENT_COS:
                return runtime
        return "eager"
