"""Torch-free ONNX inference and multi-stream export, on real clips from ../shared/data/media.

Checkpoints are built straight from the registry (random weights, saved like ``vidcat train`` does):
export parity and predictor agreement do not depend on what the weights learned.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def clip(media_files) -> Path:
    return next(p for p in media_files if p.name == "mmaction2_test.avi")  # mpeg4 video + mp3 audio


def test_graph_views_equal_dataset_views(clip, tmp_path):
    """The frames the torch-free predictor decodes, cropped, resized and normalised by FrameViews -- in torch
    and exported to ONNX Runtime -- are the dataset's tensors (3 clips x 3 crops, a 4:3 clip)."""
    import onnxruntime as ort
    import torch

    from vidcat.config import DataConfig
    from vidcat.data.transforms import FrameViews
    from vidcat.data.views import graph_views
    from vidcat.inference.export import _torch_to_onnx
    from vidcat.inference.predictor import video_batch

    cfg = DataConfig(frames=4, size=40, sampler="tsn").filled()
    batch, views = video_batch(clip, cfg, CLASSES, clips=3, crops=3)
    ref = batch["video"][0].numpy()
    feeds = graph_views(clip, cfg, clips=3, crops=3)
    assert views == 9 and feeds["frames"].dtype == np.uint8 and feeds["crop"].tolist() == [0, 1, 2] * 3
    assert feeds["frames"].shape[2] == cfg.decode_short_side < feeds["frames"].shape[3]
    module = FrameViews(cfg.size, cfg.mean, cfg.std)
    with torch.no_grad():
        got = module(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    assert got.shape == ref.shape == (9, 3, 4, 40, 40) and np.abs(got - ref).max() < 1e-5
    path = tmp_path / "views.onnx"
    _torch_to_onnx(module, {k: v[:1] for k, v in feeds.items()}, path, 18, axes={"frames": {2: "h", 3: "w"}})
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(ref[0] - ref[2]).max() > 0.5  # the start and end crops see different pixels


def test_an_export_from_before_the_frames_input_is_refused(tmp_path, clip, capsys):
    """A graph that takes normalised views (input ``video``) is one error line asking for a re-export."""
    import onnx
    from onnx import TensorProto, helper

    from vidcat.cli import main
    from vidcat.inference.onnx_predictor import OnnxPredictor
    from vidcat.errors import VidcatError

    video = helper.make_tensor_value_info("video", TensorProto.FLOAT, [None, 3, 4, 8, 8])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3, 4, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["video"], ["logits"])], "old",
                                                 [video], [logits]), opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (("vidcat.classes", '["a", "b"]'), ("vidcat.data", "{}")):
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "old.onnx"
    onnx.save(model, str(path))
    with pytest.raises(VidcatError, match="exported by an older vidcat .* export the checkpoint again"):
        OnnxPredictor(path)
    assert main(["predict", "--onnx", str(path), str(clip)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("vidcat: error: ") and "older vidcat" in err[0], err


def test_onnx_predictor_without_torch(tmp_path, clip, make_checkpoint):
    """A process where ``import torch`` fails predicts a real clip, equal to the torch Predictor."""
    from vidcat.inference.export import export_onnx
    from vidcat.inference.predictor import Predictor

    ckpt = make_checkpoint(tmp_path / "tiny.pt", "tiny3d", frames=8, size=48)
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(ckpt, onnx_path, latency=False)
    code = f"""
import json, sys
sys.modules["torch"] = None  # any "import torch" now raises ImportError
from vidcat.inference.onnx_predictor import load_predictor
from vidcat.inference.server import create_app
p = load_predictor({str(onnx_path)!r}, topk=3, clips=2, crops=3)
create_app(p)
record = p({str(clip)!r})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "cv2", "librosa", "sklearn")
               and sys.modules[m] is not None)
print(json.dumps({{"record": record, "heavy": heavy}}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    ref = Predictor(ckpt, topk=3, clips=2, crops=3)(clip)
    assert out["record"]["labels"] == ref["labels"] and out["record"]["path"] == str(clip)
    assert np.allclose(out["record"]["scores"], ref["scores"], atol=1e-4)


MULTI = {
    "two_stream_late": ("two_stream", dict(modalities=("video", "mv"), frames=4, size=32, sampler="clip",
                                           model_kwargs=dict(rgb="tiny3d", temporal="tiny3d", fusion="late",
                                                             motion="mv"))),
    "two_stream_conv": ("two_stream", dict(modalities=("video", "mv"), frames=4, size=32, sampler="clip",
                                           model_kwargs=dict(rgb="tiny3d", temporal="tiny3d", fusion="conv",
                                                             motion="mv"))),
    "fusion_video_audio": ("fusion", dict(frames=4, size=32, model_kwargs=dict(modalities=["video", "audio"],
                                                                                fusion="gated"))),
}


@pytest.mark.parametrize("name", list(MULTI))
def test_multi_stream_export_parity(tmp_path, clip, name, make_checkpoint):
    """two_stream (RGB + motion vectors, late and conv fusion) and video+audio fusion export: ONNX Runtime
    equals torch within 1e-4 on random and real inputs, and OnnxPredictor equals Predictor on a real clip."""
    from vidcat.inference.export import export_onnx, read_metadata
    from vidcat.inference.onnx_predictor import OnnxPredictor
    from vidcat.inference.predictor import Predictor

    model, data = MULTI[name]
    ckpt = make_checkpoint(tmp_path / f"{name}.pt", model, seed=1, **data)
    out = tmp_path / f"{name}.onnx"
    report = export_onnx(ckpt, out, eval_data=clip, latency=False)
    streams = ["video", "mv"] if model == "two_stream" else ["video", "audio"]
    assert report["inputs"] == streams + [f"{s}_mask" for s in streams]
    assert report["max_abs_diff"] < 1e-4, report
    assert read_metadata(out)["input"] == "multi"
    ref = Predictor(ckpt, topk=5, clips=2)
    got = OnnxPredictor(out, topk=5, clips=2)
    a, b = ref.scores(clip).numpy(), got.scores(clip)
    assert np.abs(a - b).max() < 1e-4
    assert got(clip)["labels"] == ref(clip)["labels"]


def test_cli_predict_onnx_flag(clip, tmp_path, capsys, make_checkpoint):
    """`vidcat predict --onnx model.onnx CLIP` gives the records `--checkpoint model.pt` gives."""
    from vidcat.cli import main
    from vidcat.inference.export import export_onnx

    ckpt = make_checkpoint(tmp_path / "m.pt", "tiny3d", frames=4, size=32)
    export_onnx(ckpt, tmp_path / "m.onnx")
    assert main(["predict", "--onnx", str(tmp_path / "m.onnx"), str(clip), "--topk", "2"]) == 0
    onnx_rec = json.loads(capsys.readouterr().out)
    assert main(["predict", "--checkpoint", str(ckpt), str(clip), "--topk", "2"]) == 0
    torch_rec = json.loads(capsys.readouterr().out)
    assert onnx_rec["labels"] == torch_rec["labels"]
    assert np.allclose(onnx_rec["scores"], torch_rec["scores"], atol=1e-4)
    assert main(["predict", "--onnx", str(ckpt), str(clip)]) == 2
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o17.onnx"), "--opset", "17"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "antialiased Resize of opset 18 or later" in err[0], err
