"""Frozen frame encoder runtimes (vidcat.models.backbone_runtime) on real decoded frames: agreement with
eager, the store-cached graphs (reused, rebuilt when damaged), `auto` and its fallbacks, and the appearance
stream's `runtime` keyword and cache key."""
from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import torch

from vidcat.errors import VidcatError
from vidcat.models import backbone_runtime as BR

FLOAT_RUNTIMES = [r for r in ("ort_fp32", "openvino") if r in BR.available_runtimes()]
needs_ort = pytest.mark.skipif(not BR.have_onnxruntime(), reason="onnx / onnxruntime not installed")
# int8 vs eager, measured on these 16 frames (calibrated on the two other clips): cosine mean 0.913, min 0.871;
# average part mean 0.974. Per-tensor int8 of the whole net gives ~0.54 (benchmarks/backbone_runtime.py).
INT8_COS_MEAN, INT8_AVG_COS_MEAN = 0.85, 0.93


def decoded(paths) -> torch.Tensor:
    """(N, 3, 160, 160) frames of ``paths`` through the default model's data path (8 TSN frames a clip)."""
    from vidcat.config import DataConfig
    from vidcat.data.dataset import VideoClips
    from vidcat.data.manifest import Dataset, Item
    from vidcat.models.registry import get_spec

    data = DataConfig(modalities=("video",)).resolved(get_spec("streams"))
    clips = VideoClips(Dataset([Item(str(p), ["x"]) for p in paths], ["x"]), data)
    return torch.cat([clips[i]["video"].transpose(0, 1) for i in range(len(paths))]).contiguous()


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: one torch thread, the fast setting on a busy box


@pytest.fixture(scope="module")
def frames(shared_data):
    """(evaluation frames, calibration frames): a lab clip and a dark clip each, disjoint."""
    ud, dark = sorted((shared_data / "ud810-actions").glob("*.avi")), sorted((shared_data / "arid-dark").glob("*.mp4"))
    return decoded([ud[4], dark[4]]), decoded([ud[13], dark[12]])


@pytest.fixture(scope="module")
def encoder_module():
    from vidcat.models.frame_encoder import load_backbone

    return load_backbone("efficientnet_lite0", pooling="avgpos")[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def eager_features(encoder_module, frames):
    return BR.FrameEncoder(encoder_module, "eager")(frames[0]).numpy()


@pytest.mark.parametrize("runtime", FLOAT_RUNTIMES)
def test_float_runtimes_agree_with_eager(runtime, encoder_module, frames, eager_features, root):
    enc = BR.FrameEncoder(encoder_module, runtime, root=root)
    got = enc(frames[0]).numpy()
    assert got.shape == eager_features.shape == (16, 3 * 1280) and got.dtype == np.float32
    assert BR.cosines(eager_features, got).min() >= BR.AGREEMENT_COS
    assert np.abs(got - eager_features)[:, :1280].max() < 1e-3      # the average part: rounding only
    assert enc(frames[0][:0]).shape == (0, 3 * 1280)                 # an empty batch is no error


@needs_ort
def test_ort_fp32_is_as_close_to_float64_as_eager(encoder_module, frames, eager_features, root):
    """Why ort_fp32 shares eager's feature cache entries: its error against a float64 forward pass is of
    eager's own size (rounding), on every feature including the ill-conditioned centroids."""
    import copy

    x = frames[0][:8]
    with torch.no_grad():
        exact = copy.deepcopy(encoder_module).double()(x.double()).numpy()
    ort = BR.FrameEncoder(encoder_module, "ort_fp32", root=root)(x).numpy()
    eager_err = np.quantile(np.abs(eager_features[:8] - exact), 0.999)
    ort_err = np.quantile(np.abs(ort - exact), 0.999)
    assert eager_err < 1e-3 and ort_err <= 3 * eager_err


@needs_ort
def test_int8_features_differ_by_the_measured_amount(encoder_module, frames, eager_features, root):
    enc = BR.FrameEncoder(encoder_module, "ort_int8", root=root, calibration=frames[1])
    got = enc(frames[0]).numpy()
    cos, avg_cos = BR.cosines(eager_features, got), BR.cosines(eager_features[:, :1280], got[:, :1280])
    assert cos.mean() >= INT8_COS_MEAN and avg_cos.mean() >= INT8_AVG_COS_MEAN
    assert cos.min() < BR.AGREEMENT_COS          # it fails the bar: `auto` never picks it, the cache key names it


@needs_ort
def test_cached_graph_is_reused_not_exported_again(encoder_module, frames, root, monkeypatch):
    first = BR.FrameEncoder(encoder_module, "ort_fp32", root=root)(frames[0][:4]).numpy()
    entries = sorted((root / BR.NAMESPACE).rglob("*.vca"))
    assert entries
    stamps = [p.stat().st_mtime_ns for p in entries]

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(BR, "export_onnx", no_export)
    again = BR.FrameEncoder(encoder_module, "ort_fp32", root=root)(frames[0][:4]).numpy()
    assert np.array_equal(first, again)
    assert [p.stat().st_mtime_ns for p in entries] == stamps


@needs_ort
def test_corrupt_cached_graph_is_rebuilt(encoder_module, frames, tmp_path, monkeypatch):
    BR.FrameEncoder(encoder_module, "ort_fp32", root=tmp_path)(frames[0][:2])
    (entry,) = (tmp_path / BR.NAMESPACE).rglob("*.vca")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64          # garbled weights, same size
    entry.write_bytes(bytes(data))
    exports, lines = [], []
    real_export = BR.export_onnx
    monkeypatch.setattr(BR, "export_onnx", lambda *a, **k: exports.append(1) or real_export(*a, **k))
    enc = BR.FrameEncoder(encoder_module, "ort_fp32", root=tmp_path, log=lines.append)
    got = enc(frames[0][:2]).numpy()
    assert exports == [1]
    assert len(lines) == 1 and "is bad (checksum mismatch (garbled)); recomputing it" in lines[0]
    ref = BR.FrameEncoder(encoder_module, "eager")(frames[0][:2]).numpy()
    assert BR.cosines(ref, got).min() >= BR.AGREEMENT_COS
    assert entry.read_bytes() != bytes(data)                       # the rebuilt graph replaced it


@needs_ort
def test_auto_picks_the_first_runtime_that_agrees(encoder_module, frames, eager_features, root, monkeypatch):
    monkeypatch.setattr(BR, "AUTO_ORDER", ("ort_fp32",))
    enc = BR.FrameEncoder(encoder_module, "auto", root=root)
    got = enc(frames[0]).numpy()
    assert enc.resolved == "ort_fp32" and enc.agreement["ort_fp32"] >= BR.AGREEMENT_COS
    assert BR.cosines(eager_features, got).min() >= BR.AGREEMENT_COS


@needs_ort
def test_auto_falls_back_to_eager_when_a_runtime_disagrees(encoder_module, frames, eager_features, root,
                                                            monkeypatch):
    real = BR.ort_runner
    monkeypatch.setattr(BR, "AUTO_ORDER", ("ort_fp32",))
    monkeypatch.setattr(BR, "ort_runner", lambda g, t: (lambda x, f=real(g, t): f(x)[:, ::-1].copy()))
    enc = BR.FrameEncoder(encoder_module, "auto", root=root)
    got = enc(frames[0]).numpy()
    assert enc.resolved == "eager" and enc.agreement["ort_fp32"] < 0.9
    assert np.array_equal(got, eager_features)


def test_auto_is_eager_without_onnxruntime(encoder_module, frames, eager_features, monkeypatch, tmp_path):
    from vidcat.models.streams.appearance import AppearanceFeatures

    monkeypatch.setitem(sys.modules, "onnxruntime", None)          # import onnxruntime -> ImportError
    assert not BR.have_onnxruntime() and BR.available_runtimes()[:1] == ["eager"]
    enc = BR.FrameEncoder(encoder_module, "auto", root=tmp_path)
    assert enc.resolved == "eager"
    assert np.array_equal(enc(frames[0]).numpy(), eager_features)
    assert not (tmp_path / BR.NAMESPACE).exists()
    with pytest.raises(VidcatError, match=r"^runtime ort_fp32 needs onnx and onnxruntime: pip install 'vidcat\[serve\]'$"):
        AppearanceFeatures(pretrained=False, runtime="ort_fp32")
    assert AppearanceFeatures(pretrained=False).encoder.resolved == "eager"


def test_unknown_runtime_is_one_error_line():
    with pytest.raises(VidcatError, match=r"^unknown frame encoder runtime 'tensorrt' "
                                          r"\(auto \| eager \| ort_fp32 \| ort_int8 \| openvino\)$"):
        BR.check_runtime("tensorrt")


@needs_ort
def test_appearance_stream_runtime_keyword_and_cache_key(frames, eager_features, root):
    from vidcat.models.streams.appearance import AppearanceFeatures

    specs = {r: AppearanceFeatures(pretrained=False, runtime=r).spec() for r in ["auto", "eager", "ort_fp32", "ort_int8"] + FLOAT_RUNTIMES}
    assert specs["auto"] == specs["eager"] == specs["ort_fp32"] == specs[FLOAT_RUNTIMES[-1]]
    assert specs["ort_int8"] == {**specs["eager"], "runtime": "ort_int8", "int8": BR.INT8}
    stream = AppearanceFeatures(runtime="ort_fp32")
    stream.runtime_root = root
    clips = frames[0].reshape(2, 8, 3, 160, 160).transpose(1, 2)     # (B, 3, T, H, W) as collate makes it
    feats, present = stream({"video": clips})
    assert feats.shape == (2, 8, 3840) and present.tolist() == [1.0, 1.0]
    assert BR.cosines(eager_features, feats.reshape(16, -1).numpy()).min() >= BR.AGREEMENT_COS
    copy = pickle.loads(pickle.dumps(stream))                         # sessions are not pickled: rebuilt
    assert copy._encoder is None and torch.equal(copy({"video": clips})[0], feats)
