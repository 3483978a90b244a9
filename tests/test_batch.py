"""``vidcat batch`` on a local 2-CPU Ray: 32 real H.264 files + 4 unreadable ones → one row each, the
predictions equal :class:`Predictor`'s; ONNX + Parquet + CSV manifest; resume skips done rows."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="vidcat batch needs ray: pip install 'vidcat[ray]'")
pytest.importorskip("pyarrow")

from vidcat.errors import VidcatError  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    from vidcat.io.ray_cluster import init_ray

    init_ray(None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """36 inputs: 32 synthetic videos (32 px, 12 frames) and 4 files that cannot be decoded."""
    from vidcat.data.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("batch")
    generate(root / "videos", SynthConfig(per_class=4, size=32, frames=12, seed=5), progress=False)
    for name in ("train.csv", "val.csv", "test.csv"):
        (root / "videos" / name).unlink()
    good = sorted((root / "videos").rglob("*.mp4"))
    data = good[0].read_bytes()
    bad = root / "videos" / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (bad / "notes.mp4").write_text("this is not a video\n" * 20)
    (bad / "garbage.avi").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return root


@pytest.fixture(scope="module")
def ckpt(videos, make_checkpoint):
    return make_checkpoint(videos / "tiny3d.pt", "tiny3d", seed=2, frames=8, size=32)


def _check(records, paths, pred):
    assert [r["path"] for r in records] == [str(p) for p in paths]
    for r in records:
        if "/bad/" in r["path"]:
            assert set(r) == {"path", "error"} and r["error"], r
            continue
        ref = pred(r["path"])
        assert r["labels"] == ref["labels"], (r, ref)
        assert np.allclose(r["scores"], ref["scores"], atol=2e-6)


def test_batch_torch_folder_jsonl(local_ray, videos, ckpt, capsys):
    from vidcat.inference.batch import BatchConfig, read_records, run_batch
    from vidcat.inference.predictor import Predictor
    from vidcat.io.video import find_videos

    out = videos / "out" / "results.jsonl"
    assert run_batch(BatchConfig(checkpoint=str(ckpt), data=str(videos / "videos"), out=str(out), topk=3,
                                 batch_size=4)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    paths = find_videos(videos / "videos")
    assert len(paths) == 36 and summary == {"out": str(out), "inputs": 36, "done_before": 0, "predicted": 36,
                                            "errors": 4}
    records = read_records(out)
    # the same records as `vidcat predict` (Predictor.predict_many), line for line
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    _check(records, paths, Predictor(ckpt, topk=3))
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.jsonl"]  # no journal / temp left
    with pytest.raises(VidcatError, match="exists: pass --resume"):
        BatchConfig(checkpoint=str(ckpt), data=str(videos / "videos"), out=str(out))
    fast = videos / "out_fast" / "results.jsonl"   # --fast: the actors' model is a faster variant, same answers
    assert run_batch(BatchConfig(checkpoint=str(ckpt), data=str(videos / "videos"), out=str(fast), topk=3,
                                 batch_size=4, fast="channels_last")) == 0
    assert [r.get("labels") for r in read_records(fast)] == [r.get("labels") for r in records]


def test_batch_onnx_manifest_parquet_resume(local_ray, videos, ckpt):
    from vidcat.inference.batch import BatchConfig, batch_predict, read_records, write_records
    from vidcat.inference.export import export_onnx
    from vidcat.inference.onnx_predictor import OnnxPredictor
    from vidcat.io.video import find_videos

    onnx_path = videos / "tiny3d.onnx"
    export_onnx(ckpt, onnx_path, latency=False)
    paths = find_videos(videos / "videos")[::2]  # 18 rows, incl. bad ones
    manifest = videos / "list.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path"])
        w.writerows([[str(p)] for p in paths])
    out = videos / "out2" / "results.parquet"
    cfg = dict(checkpoint=str(onnx_path), data=str(manifest), out=str(out), topk=2)
    first = batch_predict(BatchConfig(**cfg))
    assert first["predicted"] == len(paths) == 18
    full = read_records(out)
    _check(full, paths, OnnxPredictor(onnx_path, topk=2))

    # a job killed after 7 rows: the output holds them; --resume predicts only the other 11
    write_records(out, full[:7])
    again = batch_predict(BatchConfig(**cfg, resume=True))
    assert (again["done_before"], again["predicted"]) == (7, 11)
    assert read_records(out) == full
    shutil.rmtree(out.parent)


def test_batch_config_errors(tmp_path, ckpt, videos, monkeypatch):
    from vidcat.inference.batch import BatchConfig, batch_predict

    with pytest.raises(VidcatError, match=r"\.parquet or \.jsonl"):
        BatchConfig(checkpoint=str(ckpt), data=str(tmp_path), out=str(tmp_path / "r.csv"))
    with pytest.raises(VidcatError, match="checkpoint not found"):
        BatchConfig(checkpoint=str(tmp_path / "nope.pt"), data=str(tmp_path), out=str(tmp_path / "r.jsonl"))
    with pytest.raises(VidcatError, match=r"^--crops must be one of 1, 3, not 2$"):
        BatchConfig(checkpoint=str(ckpt), data=str(tmp_path), out=str(tmp_path / "r.jsonl"), crops=2)
    # a local Ray whose actors would take every CPU and starve the decode tasks: refused before it starts
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(VidcatError, match="must leave one for decoding"):
        batch_predict(BatchConfig(checkpoint=str(ckpt), data=str(videos / "videos"), out=str(tmp_path / "r.jsonl"),
                                  num_cpus=2))
