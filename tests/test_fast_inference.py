"""Fast inference variants: outputs agree with eager fp32; static int8 keeps the top-1 of a trained model;
``--fast`` swaps a predictor's model and keeps its answers."""
from __future__ import annotations

import pytest
import torch

from benchmarks.speed.model import _clips
from benchmarks.speed.train import Stepper, quick_train
from vidcat.config import DataConfig
from vidcat.data.manifest import load_dataset
from vidcat.errors import VidcatError
from vidcat.inference.fast import (FastModel, build_variant, fastest_variant, measure_variants, pick_best,
                                   run_all)
from vidcat.models.registry import create_model

pytest.importorskip("onnxruntime")

CFG = dict(frames=8, size=32, sampler="clip", modalities=("video",))


@pytest.fixture(scope="module")
def trained(motion_data):
    """tiny3d at 8x32², trained on the motion set's clips (decoded once, then in-memory steps: the real
    loader is :func:`quick_train`'s test below); its test and val clips."""
    torch.manual_seed(0)
    cfg = DataConfig(**CFG)
    train = load_dataset(motion_data / "train.csv")
    model = create_model("tiny3d", num_classes=len(train.classes))
    xt, yt = _clips(train, cfg, 200)
    step = Stepper(model, lr=5e-3)
    for _ in range(8):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 8):
            step({"video": xt[order[i:i + 8]], "label": yt[order[i:i + 8]]})
    test = load_dataset(motion_data / "test.csv", classes=train.classes)
    val = load_dataset(motion_data / "val.csv", classes=train.classes)
    x, y = _clips(test, cfg, 64)
    calib, _ = _clips(val, cfg, 8)
    return model.eval(), x, y, calib, cfg, train.classes


def test_quick_train_learns(motion_data, tmp_path):
    from vidcat.data.manifest import Dataset

    torch.manual_seed(0)
    train = load_dataset(motion_data / "train.csv")
    small = Dataset(train.items[::6], train.classes)  # 16 clips, 4 per class
    model = create_model("tiny3d", num_classes=len(train.classes))
    losses = quick_train(model, small, DataConfig(**CFG), epochs=4, batch_size=8, lr=5e-3, cache=tmp_path / "cc")
    assert losses[-1] < losses[0] * 0.9, losses
    assert len(list((tmp_path / "cc").rglob("*.vca"))) == len(small.items)  # epochs 2-4 read the clip cache


@pytest.mark.parametrize("name,tol", [("channels_last", 1e-4), ("ort_fp32", 1e-4), ("bf16", 0.05),
                                      ("channels_last_bf16", 0.05),
                                      pytest.param("compile", 1e-4, marks=pytest.mark.slow)])  # ~20 s to compile
def test_variant_outputs_agree_with_eager(trained, name, tol):
    model, x, _, _, _, _ = trained
    with torch.no_grad():
        ref = model(x)
    got = run_all(build_variant(model, name, x[:4]), x)
    scale = float(ref.abs().max())
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert float((got - ref).abs().max()) <= tol * max(scale, 1.0), (name, float((got - ref).abs().max()))


def test_static_int8_keeps_top1_of_trained_model(trained):
    model, x, y, calib, _, _ = trained
    results = measure_variants(model, x, y, variants=("ort_fp32", "ort_int8"), batches=(1,), calib=list(calib),
                               repeat=1)
    fp32, int8 = results[1], results[2]
    assert fp32.error is None and int8.error is None, (fp32.error, int8.error)
    assert len(x) >= 20
    assert int8.agreement >= 0.95, int8.as_dict()
    assert abs(int8.top1 - fp32.top1) <= 0.05 + 1e-9
    with torch.no_grad():
        assert len(model(x).argmax(1).unique()) >= 2  # not one class for every clip: agreement means something


def test_pick_best_rejects_inaccurate_variants(trained):
    model, x, y, _, _, _ = trained
    results = measure_variants(model, x[:8], y[:8], variants=("channels_last",), batches=(1,), repeat=1)
    eager, cl = results
    cl.ms_per_clip[1] = eager.ms_per_clip[1] / 10  # pretend it is 10x faster ...
    assert pick_best(results, 1).name == "channels_last"
    cl.top1 = eager.top1 - 0.02                      # ... but 2 points less accurate
    assert pick_best(results, 1).name == "eager"


def test_fastest_variant_returns_a_working_model(trained):
    model, x, _, _, _, _ = trained
    fast = fastest_variant(model, x[:4], variants=("eager", "channels_last", "ort_fp32"), repeat=1)
    assert isinstance(fast, FastModel) and fast.variant in ("eager", "channels_last", "ort_fp32")
    assert {v["name"] for v in fast.report["variants"]} == {"eager", "channels_last", "ort_fp32"}
    with torch.no_grad():
        assert torch.equal(fast(x).argmax(1), model(x).argmax(1))


def test_accelerate_predictor_keeps_predictions(trained, motion_data, tmp_path):
    from vidcat.models.build import Checkpoint
    from vidcat.inference.fast import accelerate
    from vidcat.inference.predictor import Predictor

    model, _, _, _, cfg, classes = trained
    ckpt = tmp_path / "best.pt"
    Checkpoint.from_dict({"model": "tiny3d", "model_kwargs": {}, "classes": classes, "multilabel": False,
                           "data": cfg.as_dict(), "state_dict": model.state_dict()}).save(ckpt)
    videos = sorted((motion_data / "test").rglob("*.mp4"))[:3]
    eager, fast = Predictor(ckpt), Predictor(ckpt)
    report = accelerate(fast, videos, variant="channels_last")
    assert report["variant"] == "channels_last" and isinstance(fast.model, FastModel)
    for v in videos:
        a, b = eager(v), fast(v)
        assert a["labels"] == b["labels"]
        assert max(abs(s - t) for s, t in zip(a["scores"], b["scores"])) < 1e-4
    assert accelerate(fast, videos)["note"] == "already accelerated"
    with pytest.raises(VidcatError, match="none of 1 video"):
        accelerate(Predictor(ckpt), [tmp_path / "best.pt"])


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(VidcatError, match="unknown inference variant 'fp8'"):
        build_variant(torch.nn.Linear(2, 2), "fp8", torch.zeros(1, 2))


def test_accelerate_without_videos_uses_random_clips(trained, tmp_path):
    from vidcat.models.build import Checkpoint
    from vidcat.inference.fast import accelerate
    from vidcat.inference.predictor import Predictor

    model, _, _, _, cfg, classes = trained
    ckpt = tmp_path / "best.pt"
    Checkpoint.from_dict({"model": "tiny3d", "model_kwargs": {}, "classes": classes, "multilabel": False,
                           "data": cfg.as_dict(), "state_dict": model.state_dict()}).save(ckpt)
    pred = Predictor(ckpt)
    report = accelerate(pred, variants=("eager", "ort_fp32", "ort_int8"))
    assert "random clips" in report["note"]
    assert {v["name"] for v in report["variants"]} == {"eager", "ort_fp32"}
    with pytest.raises(VidcatError, match="needs example videos"):
        accelerate(Predictor(ckpt), variant="ort_int8")
