"""ONNX export (fp32 parity, int8), OnnxPredictor and the HTTP server, on a tiny3d trained for 2 steps."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")        # fastapi.testclient
pytest.importorskip("multipart")    # python-multipart: form uploads

import torch  # noqa: E402

from vidcat.errors import VidcatError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 4-class synthetic set (16 train / 8 val / 8 test videos) and tiny3d trained on it for 2 steps."""
    import vidcat
    from vidcat.data.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("serve")
    data = root / "data"
    generate(data, SynthConfig(per_class=4, seed=3), progress=False)
    torch.manual_seed(0)
    vidcat.train(data / "train.csv", root / "run", model="tiny3d", epochs=1, batch_size=8, max_steps=2,
                 workers=0, progress=False, val=str(data / "val.csv"))
    return {"data": data, "ckpt": root / "run" / "last.pt", "root": root}


@pytest.fixture(scope="module")
def exported(tiny):
    """``vidcat export`` through the CLI: the fp32 file and the JSON report it prints."""
    import contextlib
    import io

    from vidcat.cli import main

    out = tiny["root"] / "model.onnx"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["export", "--checkpoint", str(tiny["ckpt"]), "--out", str(out),
                   "--eval", str(tiny["data"] / "test.csv"), "--clips", "8"])
    assert rc == 0 and out.is_file()
    return out, json.loads(buf.getvalue())


def test_export_parity_and_metadata(tiny, exported):
    from vidcat.engine import checkpoint
    from vidcat.inference.export import read_metadata

    out, report = exported
    assert report["max_abs_diff"] < 1e-4, report
    assert [p.name for p in out.parent.iterdir() if ".tmp-" in p.name] == []  # temp file renamed away
    ckpt = checkpoint.load(tiny["ckpt"])
    meta = read_metadata(out)
    assert meta["classes"] == ckpt["classes"] and meta["input"] == "video" and meta["quantization"] == "none"
    for key in ("frames", "size", "mean", "std", "sampler"):
        assert meta["data"][key] == json.loads(json.dumps(ckpt["data"][key]))
    # dynamic batch: 3 clips at once, same logits as torch
    model = checkpoint.build_model(ckpt)
    x = torch.randn(3, 3, ckpt["data"]["frames"], ckpt["data"]["size"], ckpt["data"]["size"])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"video": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == (3, len(ckpt["classes"])) and np.abs(got - ref).max() < 1e-4


def test_export_int8(tiny):
    from vidcat.inference.export import export_onnx, read_metadata

    out = tiny["root"] / "model.int8.onnx"
    report = export_onnx(tiny["ckpt"], out, int8=True, calib=tiny["data"] / "val.csv",
                         eval_data=tiny["data"] / "test.csv", clips=8)
    q = report["int8"]
    assert q["method"] == "static-int8-qdq" and q["calibration_clips"] == 8 and q["agreement_clips"] == 8
    assert q["size_ratio"] < 0.4 and q["latency_ms"]["int8"] > 0, q
    assert q["top1_agreement"] >= 0.75, q
    assert read_metadata(out)["quantization"] == "static-int8-qdq"
    # without calibration data: onnxruntime's dynamic quantization (ConvInteger), still a working file
    dyn = export_onnx(tiny["ckpt"], tiny["root"] / "model.dyn.onnx", int8=True, latency=False)
    assert dyn["int8"]["method"] == "dynamic-int8" and dyn["int8"]["size_ratio"] < 0.4
    assert dyn["int8"]["top1_agreement"] is None


def test_export_refuses_text_stream(tiny, monkeypatch, capsys):
    from vidcat.cli import main
    from vidcat.engine import checkpoint

    real = checkpoint.build_model

    def multi(ck):
        m = real(ck)
        m.input_key, m.names = "multi", ["video", "text"]  # a text stream takes strings: no ONNX input
        return m

    monkeypatch.setattr(checkpoint, "build_model", multi)
    out = tiny["root"] / "multi.onnx"
    assert main(["export", "--checkpoint", str(tiny["ckpt"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not text (text streams take strings)" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_onnx_predictor_matches_predictor(tiny, exported, bad_files):
    from vidcat.inference.onnx_predictor import OnnxPredictor, load_predictor
    from vidcat.inference.predictor import Predictor

    out, _ = exported
    torch_pred, onnx_pred = Predictor(tiny["ckpt"], topk=3), load_predictor(out, topk=3)
    assert isinstance(onnx_pred, OnnxPredictor) and onnx_pred.classes == torch_pred.classes
    videos = sorted((tiny["data"] / "test").rglob("*.mp4"))[::3]
    for v in videos:
        a, b = torch_pred(v), onnx_pred(v)
        assert a["labels"][0] == b["labels"][0] and set(b) == {"path", "labels", "scores"}
        assert np.allclose(a["scores"], b["scores"], atol=1e-4)
    records = list(onnx_pred.predict_many([videos[0], bad_files["text"]]))
    assert "labels" in records[0] and "error" in records[1]
    with pytest.raises(VidcatError):
        OnnxPredictor(tiny["root"] / "missing.onnx")


def _uploads_left() -> set:
    return set(Path(tempfile.gettempdir()).glob("vidcat-upload-*"))


def test_server(tiny, exported, bad_files):
    from fastapi.testclient import TestClient

    from vidcat.inference.onnx_predictor import OnnxPredictor
    from vidcat.inference.server import create_app

    out, _ = exported
    pred = OnnxPredictor(out, topk=3)
    client = TestClient(create_app(pred))
    before = _uploads_left()

    health = client.get("/health").json()
    assert health["status"] == "ok" and health["backend"] == "onnxruntime" and health["classes"] == 4
    assert client.get("/classes").json()["classes"] == pred.classes
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and 'type="file"' in page.text

    video = sorted((tiny["data"] / "test").rglob("*.mp4"))[0]
    r = client.post("/predict", files={"file": (video.name, video.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["path"] == video.name and len(body["labels"]) == 3 and set(body["labels"]) <= set(pred.classes)
    assert body["labels"][0] == pred(video)["labels"][0]
    r = client.post("/predict?topk=1", files={"file": (video.name, video.read_bytes(), "video/mp4")})
    assert len(r.json()["labels"]) == 1

    for name, data in (("empty.mp4", b""), ("notes.mp4", bad_files["text"].read_bytes()),
                       ("garbage.avi", bad_files["garbage"].read_bytes()),
                       ("cut.mp4", bad_files["truncated"].read_bytes())):
        r = client.post("/predict", files={"file": (name, data, "video/mp4")})
        assert r.status_code == 400, (name, r.status_code, r.text)
        msg = r.json()["error"]
        assert isinstance(msg, str) and msg.startswith(name) and "\n" not in msg
    assert client.post("/predict", data={"x": "1"}).status_code == 400            # no file field
    assert client.post("/predict", content=b"raw", headers={"content-type": "video/mp4"}).status_code == 400
    assert _uploads_left() == before  # every temp upload deleted


def test_server_torch_checkpoint(tiny):
    from fastapi.testclient import TestClient

    from vidcat.inference.predictor import Predictor
    from vidcat.inference.server import create_app

    client = TestClient(create_app(Predictor(tiny["ckpt"])))
    assert client.get("/health").json()["backend"] == "torch"
    assert client.get("/health").json()["model"] == "tiny3d"
