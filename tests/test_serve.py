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
def tiny(small_motion, tmp_path_factory):
    """conftest's 4-class small_motion set and tiny3d trained on it for 2 steps; ``root``: this module's folder."""
    import vidcat

    root = tmp_path_factory.mktemp("serve")
    data = small_motion
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
    from vidcat.models.build import Checkpoint
    from vidcat.inference.export import read_metadata

    out, report = exported
    assert report["max_abs_diff"] < 1e-4, report
    assert [p.name for p in out.parent.iterdir() if ".tmp-" in p.name] == []  # temp file renamed away
    ckpt = Checkpoint.load(tiny["ckpt"]).to_dict()
    meta = read_metadata(out)
    assert meta["classes"] == ckpt["classes"] and meta["input"] == "video" and meta["quantization"] == "none"
    for key in ("frames", "size", "mean", "std", "sampler"):
        assert meta["data"][key] == json.loads(json.dumps(ckpt["data"][key]))
    # dynamic batch and frame size: 3 views of landscape, then portrait frames, same logits as torch on the
    # dataset's views of them
    from vidcat.data.transforms import FrameViews

    model = Checkpoint.from_dict(ckpt).build()
    d = ckpt["data"]
    views = FrameViews(d["size"], d["mean"], d["std"])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["frames", "crop"]
    g = torch.Generator().manual_seed(0)
    for h, w in ((72, 96), (90, 50)):
        frames = torch.randint(0, 256, (3, d["frames"], h, w, 3), dtype=torch.uint8, generator=g)
        crop = torch.tensor([0, 1, 2])
        got = sess.run(None, {"frames": frames.numpy(), "crop": crop.numpy()})[0]
        with torch.no_grad():
            ref = model(views(frames, crop)).numpy()
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
    from vidcat.models.build import Checkpoint

    real = Checkpoint.build

    def multi(ck, device="cpu"):
        m = real(ck, device)
        m.input_key, m.names = "multi", ["video", "text"]  # a text stream takes strings: no ONNX input
        return m

    monkeypatch.setattr(Checkpoint, "build", multi)
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

    import cv2

    png = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))[1].tobytes()
    for name, data in (("empty.mp4", b""), ("notes.mp4", bad_files["text"].read_bytes()), ("image.mp4", png),
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


# -- limits: streamed uploads, concurrency, no torch (issue 13) ------------------------------------
class FakePredictor:
    """Stands in for a model: records calls, optionally blocks until released."""

    backend, ckpt, topk, multilabel = "fake", {"model": "fake"}, 2, False
    classes = ["a", "b", "c"]

    def __init__(self, gate=None):
        import threading

        self.gate, self.inside, self.lock = gate, 0, threading.Lock()
        self.peak = 0

    def __call__(self, path):
        with self.lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            if self.gate is not None:
                assert self.gate.wait(20), "never released"
            return {"path": path, "labels": ["b", "a"], "scores": [0.7, 0.2], "warning": "truncated: test"}
        finally:
            with self.lock:
                self.inside -= 1


def _asgi_post(app, chunks, headers):
    """POST /predict straight through ASGI, feeding ``chunks`` one by one (no Content-Length unless
    given). Returns (status, json body, bytes the app pulled from the client)."""
    import asyncio

    pulled, out = [0], {"status": None, "body": b""}
    it = iter(chunks)

    async def receive():
        chunk = next(it, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(msg):
        if msg["type"] == "http.response.start":
            out["status"] = msg["status"]
        elif msg["type"] == "http.response.body":
            out["body"] += msg.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return out["status"], json.loads(out["body"]), pulled[0]


def _multipart(payload_chunks, name="clip.mp4", boundary="vidcatboundary"):
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
           "Content-Type: video/mp4\r\n\r\n").encode()
    yield from payload_chunks
    yield f"\r\n--{boundary}--\r\n".encode()


def test_chunked_upload_stops_at_limit():
    """A chunked upload (no Content-Length) is cut off at the limit, not spooled to disk in full."""
    from vidcat.inference.server import create_app

    app = create_app(FakePredictor(), max_upload_bytes=1 << 20)
    before = _uploads_left()
    headers = {"content-type": "multipart/form-data; boundary=vidcatboundary", "transfer-encoding": "chunked"}
    sent = 20 << 20
    status, body, pulled = _asgi_post(app, _multipart(b"\0" * 65536 for _ in range(sent // 65536)), headers)
    assert status == 413 and "larger than 1 MiB" in body["error"], body
    assert pulled < (1 << 20) + 4 * 65536, f"read {pulled} of {sent} bytes before refusing"
    assert _uploads_left() == before
    # within the limit: the file part arrives intact and is predicted; the warning travels along
    status, body, _ = _asgi_post(app, _multipart([b"x" * 1000, b"y" * 1000], name="a b.mp4"), headers)
    assert status == 200 and body == {"path": "a b.mp4", "labels": ["b", "a"], "scores": [0.7, 0.2],
                                      "warning": "truncated: test"}
    status, body, _ = _asgi_post(app, [b"--x\r\nnot multipart"], {"content-type": "text/plain"})
    assert status == 400 and "multipart" in body["error"]
    assert _uploads_left() == before


def test_concurrency_limit_503():
    """N requests infer at the same time (no global lock); request N+1 gets 503 at once."""
    import threading
    import time

    from fastapi.testclient import TestClient

    from vidcat.inference.server import create_app

    gate = threading.Event()
    pred = FakePredictor(gate)
    results = []
    with TestClient(create_app(pred, max_concurrent=2)) as client:
        def post():
            results.append(client.post("/predict", files={"file": ("v.mp4", b"data", "video/mp4")}).status_code)

        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while pred.inside < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pred.inside == 2, "two requests should be inferring concurrently"
        r = client.post("/predict", files={"file": ("v.mp4", b"data", "video/mp4")})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
        assert client.get("/health").json()["in_flight"] == 2
        gate.set()
        for t in threads:
            t.join(20)
        assert results == [200, 200] and pred.peak == 2
        assert client.post("/predict", files={"file": ("v.mp4", b"data", "video/mp4")}).status_code == 200
    from vidcat.errors import VidcatError as E
    from vidcat.inference.server import ServeConfig

    with pytest.raises(E, match="--port must be <= 65535"):
        ServeConfig(checkpoint="m.onnx", port=99999)
    with pytest.raises(E, match="--max-concurrent must be >= 0"):
        ServeConfig(checkpoint="m.onnx", max_concurrent=-1)


def test_server_module_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\n"
            "from fastapi.testclient import TestClient\n"
            "from vidcat.inference.server import create_app\n"
            "class P: backend='onnxruntime'; ckpt=None; meta={'model': 'm'}; classes=['a']; multilabel=False; topk=1\n"
            "TestClient(create_app(P())).get('/health'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
