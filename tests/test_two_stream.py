"""Two-stream recognition: flow/mv loaders, the motion cache, two_stream fusion modes, joint training,
``vidcat train`` on a temporal stream alone, ``vidcat fuse`` -> ``vidcat eval``."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import vidcat.data.modalities.motion as mm
from vidcat.cli import main
from vidcat.config import DataConfig
from vidcat.data import transforms as T
from vidcat.data.dataset import VideoClips, collate
from vidcat.data.manifest import Dataset, Item
from vidcat.models.build import Checkpoint
from vidcat.models.registry import create_model
from vidcat.engine.fusion_weights import tune_fusion_weights
from vidcat.models.fusion.two_stream import FUSION_MODES

SMALL = {"backbone": "mobilenet_v3_small"}  # light 2D streams keep these tests fast


# one torch thread (conftest): two spinning OpenMP threads per process were measured 10-17x slower under load
pytestmark = pytest.mark.usefixtures("one_thread")


def one(small_motion, label="right") -> Dataset:
    path = sorted((small_motion / "train" / label).glob("*.mp4"))[0]
    return Dataset([Item(str(path), [label])], ["down", "left", "right", "up"])


def direction(x: torch.Tensor) -> tuple[float, float]:
    """Summed (x, y) motion over all fields, on the pixels that move (robust to sparse MV fields)."""
    fx, fy = x[0::2], x[1::2]
    moving = (fx.abs() + fy.abs()) > 0.01
    return float(fx[moving].sum()), float(fy[moving].sum())


def test_loaders_shapes_ranges_and_direction(small_motion):
    for sampler, L, frames in (("tsn", 2, 8), ("clip", 1, 4)):
        cfg = DataConfig(frames=frames, size=48, sampler=sampler, modalities=("rgb", "flow", "mv"), flow_length=L)
        for train in (False, True):
            s = VideoClips(one(small_motion), cfg, train=train)[0]
            assert s["video"].shape == (3, frames, 48, 48)
            for key in ("flow", "mv"):
                x = s[key]
                assert x.shape == (2 * L, frames, 48, 48) and x.dtype == torch.float32 and s[f"{key}_mask"] == 1.0
                assert -1 <= float(x.min()) and float(x.max()) <= 1 and float(x.abs().max()) > 0
                if sampler == "tsn":  # the whole video: a rightward object gives x > 0, y about 0
                    sx, sy = direction(x)
                    assert sx > 0 and abs(sy) < sx / 2, (key, train, sx, sy)
    up = VideoClips(one(small_motion, "up"), DataConfig(frames=8, size=48, sampler="tsn", modalities=("flow", "mv")))[0]
    for key in ("flow", "mv"):
        sx, sy = direction(up[key])
        assert sy < 0 and abs(sx) < -sy / 2, (key, sx, sy)


def test_flow_and_rgb_share_the_training_crop(small_motion, monkeypatch):
    boxes = []
    real = T.crop_resize
    monkeypatch.setattr(T, "crop_resize", lambda x, box, size: boxes.append(tuple(box)) or real(x, box, size))
    cfg = DataConfig(frames=2, size=32, sampler="tsn", modalities=("video", "flow"), crop_scale=(0.5, 0.6))
    VideoClips(one(small_motion), cfg, train=True)[0]
    assert len(boxes) == 2 and boxes[0] == boxes[1] and boxes[0][2] < 40


def test_cache_used_when_present_and_miss_warns_once(small_motion, tmp_path, monkeypatch, caplog):
    from vidcat.io.motion.cache import build_cache

    ds = one(small_motion)
    cfg = DataConfig(frames=4, size=32, sampler="tsn", modalities=("flow", "mv"), flow_length=2)
    fresh = VideoClips(ds, cfg)[0]
    build_cache([ds.items[0].path], tmp_path / "c", "dis_fast", size=cfg.decode_short_side, progress=False)
    build_cache([ds.items[0].path], tmp_path / "c", "mv", size=cfg.decode_short_side, progress=False)
    build_cache([ds.items[0].path], tmp_path / "native", "dis_fast", progress=False)  # no --size

    def boom(*a, **k):
        raise AssertionError("computed although cached")

    monkeypatch.setattr(mm, "compute_flow", boom)
    monkeypatch.setattr(mm, "read_motion_vectors", boom)
    cached = VideoClips(ds, DataConfig(**{**cfg.as_dict(), "motion_cache": str(tmp_path / "c")}))[0]
    for key in ("flow", "mv"):
        # the cache decodes the whole file in one stream, the fresh path seeks: within two quantization steps
        assert torch.allclose(cached[key], fresh[key], atol=0.01)
    native = VideoClips(ds, DataConfig(**{**cfg.as_dict(), "modalities": ("flow",),
                                          "motion_cache": str(tmp_path / "native")}))[0]
    assert direction(native["flow"])[0] > 0  # a native-size cache is resized, not recomputed

    monkeypatch.undo()
    monkeypatch.setattr(mm, "_warned", set())
    (tmp_path / "empty").mkdir()
    miss = VideoClips(ds, DataConfig(**{**cfg.as_dict(), "modalities": ("flow",), "motion_cache": str(tmp_path / "empty")}))
    with caplog.at_level(logging.WARNING, logger="vidcat.io.motion"):
        a, b = miss[0], miss[0]
    assert torch.allclose(a["flow"], fresh["flow"], atol=0.01)  # built by a whole-file stream: see above
    assert sum("has no dis_fast entries at short side" in r.getMessage() for r in caplog.records) == 1
    assert list((tmp_path / "empty").rglob("*.vca")), \
        "a cache miss builds this size's entry, so the next epoch hits"


@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_two_stream_forward_backward(fusion):
    torch.manual_seed(0)
    model = create_model("two_stream", 4, fusion=fusion, modalities=["video", "flow"], flow_length=2,
                         rgb_kw=SMALL, motion_kw=SMALL).train()
    assert model.input_key == "multi"
    batch = {"video": torch.randn(2, 3, 2, 32, 32), "flow": torch.randn(2, 4, 2, 32, 32) * 0.1, "flow_mask": torch.ones(2)}
    out = model(batch)
    assert out["logits"].shape == (2, 4) and set(out["stream_logits"]) == {"rgb", "flow"}
    (out["logits"].logsumexp(1).mean() + sum(s.logsumexp(1).mean() for s in out["stream_logits"].values())).backward()
    first_convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels in (3, 4)]
    assert {c.shape[1] for c in first_convs} == {3, 4}  # RGB stream 3 channels, flow stream 2L = 4
    assert all(c.grad is not None and torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0 for c in first_convs)


def test_conv_fusion_3d_streams_and_bad_modalities():
    from vidcat.errors import VidcatError

    model = create_model("two_stream", 3, fusion="conv", rgb="tiny3d", temporal="tiny3d", conv_kernel=3,
                         modalities=["rgb", "mv"])
    out = model({"video": torch.randn(2, 3, 8, 32, 32), "mv": torch.randn(2, 2, 8, 32, 32)})
    assert out["logits"].shape == (2, 3) and set(out["stream_logits"]) == {"rgb", "mv"}
    with pytest.raises(VidcatError, match="motion modality"):
        create_model("two_stream", 3, modalities=["video"])


def test_joint_training_loss_falls_and_weights_tune(small_motion):
    from vidcat.data.manifest import load_dataset

    torch.manual_seed(0)
    ds = load_dataset(str(small_motion / "train.csv"))
    cfg = DataConfig(frames=2, size=32, sampler="tsn", modalities=("video", "flow"))
    batch = collate([VideoClips(ds, cfg)[i] for i in range(0, 16, 2)])
    model = create_model("two_stream", 4, fusion="weighted", modalities=["video", "flow"], rgb_kw=SMALL, motion_kw=SMALL)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        out = model({k: batch[k] for k in ("video", "flow", "flow_mask")})
        ce = torch.nn.functional.cross_entropy
        loss = ce(out["logits"], batch["label"]) + 0.5 * sum(ce(s, batch["label"]) for s in out["stream_logits"].values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses
    res = tune_fusion_weights(model, [batch], steps=11)
    assert 0 <= res["w_rgb"] <= 1 and res["score"] >= max(res["score_equal"], res["score_before"])
    assert np.allclose(model.fusion_weights(), [res["w_rgb"], 1 - res["w_rgb"]], atol=1e-4)


def test_cli_temporal_stream_then_fuse_then_eval(small_motion, tmp_path, capsys):
    common = ["--data", str(small_motion / "train.csv"), "--val", str(small_motion / "val.csv"), "--frames", "2", "--size", "32",
              "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--workers", "0", "--quiet",
              "--model-arg", "backbone=mobilenet_v3_small"]
    assert main(["train", "--model", "tsn", "--out", str(tmp_path / "rgb"), *common]) == 0
    assert main(["train", "--model", "tsn", "--modalities", "flow", "--flow-length", "2", "--out", str(tmp_path / "flow"),
                 *common]) == 0
    ck = Checkpoint.load(tmp_path / "flow" / "best.pt").to_dict()
    assert ck["model_kwargs"]["input_key"] == "flow" and ck["model_kwargs"]["in_channels"] == 4
    assert ck["data"]["flow_length"] == 2
    capsys.readouterr()
    fused = tmp_path / "fused.pt"
    assert main(["fuse", "--checkpoints", str(tmp_path / "rgb" / "best.pt"), str(tmp_path / "flow" / "best.pt"),
                 "--data", str(small_motion / "val.csv"), "--out", str(fused), "--workers", "0", "--steps", "5"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res["weights"]) == {"rgb", "flow"} and 0 <= res["w_rgb"] <= 1
    ck = Checkpoint.load(fused).to_dict()
    assert ck["model"] == "two_stream" and ck["model_kwargs"]["fusion"] == "late" and list(ck["data"]["modalities"]) == ["video", "flow"]
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(fused), "--data", str(small_motion / "test.csv"), "--json", str(out),
                 "--workers", "0", "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 8 and set(result["streams"]) == {"rgb", "flow"}
    # the fused model keeps each stream's trained weights: its flow stream scores like the flow checkpoint
    assert main(["eval", "--checkpoint", str(tmp_path / "flow" / "best.pt"), "--data", str(small_motion / "test.csv"),
                 "--json", str(tmp_path / "f.json"), "--workers", "0", "--quiet"]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["top1"] == pytest.approx(result["streams"]["flow"])


def test_cli_two_stream_weighted_tunes_at_end_of_training(small_motion, tmp_path):
    run = tmp_path / "ts"
    assert main(["train", "--data", str(small_motion / "train.csv"), "--val", str(small_motion / "val.csv"), "--model", "two_stream",
                 "--modalities", "rgb,mv", "--frames", "2", "--size", "32", "--epochs", "1", "--max-steps", "1",
                 "--batch-size", "8", "--workers", "0", "--quiet", "--model-arg", "fusion=weighted",
                 "--model-arg", f"rgb_kw={json.dumps(SMALL)}", "--model-arg", f"motion_kw={json.dumps(SMALL)}",
                 "--out", str(run)]) == 0
    ck = Checkpoint.load(run / "best.pt").to_dict()
    assert list(ck["model_kwargs"]["modalities"]) == ["video", "mv"] and ck["fusion_tuning"]["n"] == 8
    model = Checkpoint.from_dict(ck).build()
    assert model.fusion_weights()[0] == pytest.approx(ck["fusion_tuning"]["w_rgb"], abs=1e-4)
    assert json.loads((run / "config.json").read_text())["fusion_tuning"]["w_rgb"] == ck["fusion_tuning"]["w_rgb"]
