"""Fusion of video/audio/text streams: shapes, per-sample masks, modality dropout, adapters, learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from vidcat.engine.gradient import training_loss
from vidcat.errors import VidcatError
from vidcat.models.fusion import FUSIONS, FusionModel, as_stream, batch_key, build_fusion, mask_key
from vidcat.models.registry import create_model

K, B = 3, 4


class TinyVideo(nn.Module):
    """Stand-in video stream: (B, 3, T, H, W) -> 8 features."""

    feat_dim = 8

    def __init__(self, num_classes=K):
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Linear(8, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def make(fusion, **kw):
    torch.manual_seed(0)
    streams = {"video": TinyVideo(), "audio": create_model("audio_cnn", K), "text": create_model("text_hash", K)}
    return FusionModel(streams, K, fusion=fusion, **kw).eval()


def batch(n=B, audio_mask=None, text_mask=None):
    g = torch.Generator().manual_seed(1)
    return {"video": torch.randn(n, 3, 4, 16, 16, generator=g), "audio": torch.randn(n, 1, 32, 16, generator=g),
            "audio_mask": torch.ones(n) if audio_mask is None else torch.tensor(audio_mask, dtype=torch.float),
            "text": [f"word{i} filler" for i in range(n)],
            "text_mask": torch.ones(n) if text_mask is None else torch.tensor(text_mask, dtype=torch.float)}


def test_batch_keys_in_one_place():
    assert (batch_key("rgb"), batch_key("audio"), mask_key("text"), batch_key("depth")) == \
        ("video", "audio", "text_mask", "depth")


@pytest.mark.parametrize("fusion", FUSIONS)
def test_shapes_and_empty_samples(fusion):
    model = make(fusion)
    with torch.no_grad():
        out = model(batch())
        assert out["logits"].shape == (B, K) and set(out["stream_logits"]) == {"video", "audio", "text"}
        assert all(v.shape == (B, K) for v in out["stream_logits"].values())
        # Dropping every stream from the batch still runs and gives zero logits.
        none = model.forward_streams(batch(), drop={"video", "audio", "text"})
        assert torch.equal(none["logits"], torch.zeros(B, K))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_missing_modality_is_masked_per_sample(fusion):
    model = make(fusion)
    with torch.no_grad():
        masked = model(batch(audio_mask=[0, 1, 1, 1]))["logits"]
        dropped = model.forward_streams(batch(), drop={"audio"})["logits"]
    assert torch.allclose(masked[0], dropped[0], atol=1e-6)  # sample 0 as if audio did not exist
    assert not torch.allclose(masked[1], dropped[1])


def test_late_fusion_with_only_video_equals_video_stream():
    model = make("late")
    with torch.no_grad():
        out = model(batch(audio_mask=[0, 1, 0, 1], text_mask=[0, 0, 1, 1]))
    video, audio = out["stream_logits"]["video"], out["stream_logits"]["audio"]
    assert torch.allclose(out["logits"][0], video[0], atol=1e-6)
    assert torch.allclose(out["logits"][1], (video[1] + audio[1]) / 2, atol=1e-6)
    assert torch.allclose(out["weights"][3], torch.full((3,), 1 / 3))


def test_gated_weights_sum_to_one_over_present_streams():
    model = make("gated")
    with torch.no_grad():
        out = model(batch(audio_mask=[0, 1, 0, 1], text_mask=[1, 0, 0, 1]))
    w, m = out["weights"], out["mask"]
    assert torch.allclose(w.sum(1), torch.ones(B)) and torch.equal(w * (1 - m), torch.zeros_like(w))
    assert torch.equal(w[2], torch.tensor([1.0, 0.0, 0.0]))  # only video left


def test_modality_dropout_never_drops_all():
    model = make("weighted", modality_dropout=0.9).train()
    n = 64
    with torch.no_grad():
        out = model(batch(n, audio_mask=[i % 2 for i in range(n)]))
    m = out["mask"]
    assert m.sum(1).min() >= 1 and m.sum() < 0.6 * n * 2.5   # heavy dropping, but never a whole sample
    assert (m[0::2, 1] == 0).all()                            # absent audio is never brought back
    assert torch.allclose(out["weights"].sum(1), torch.ones(n))
    assert model.eval()(batch(n))["mask"].sum() == 3 * n      # no dropout at eval time


def test_as_stream_on_torchvision_r3d_18():
    from torchvision.models.video import r3d_18

    torch.manual_seed(0)
    net = r3d_18(num_classes=4).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        before = net(x)
        stream = as_stream(net)
        assert stream.feat_dim == 512 and stream.features(x).shape == (1, 512)
        assert torch.allclose(stream(x), before, atol=1e-5)
    fused = FusionModel({"video": stream, "text": create_model("text_hash", 4)}, 4, fusion="late")
    assert fused.heads["video"] is stream.head  # a head that already predicts the classes is reused
    assert as_stream(fused.streams["text"]) is fused.streams["text"]


def test_build_fusion_from_registry_names():
    model = build_fusion({"audio": "audio_cnn", "text": "text_hash"}, K, "concat", stream_kw={"text": {"dim": 16}})
    assert model.streams["text"].feat_dim == 16
    assert model({"audio": torch.randn(2, 1, 32, 16), "text": ["a", "b"]})["logits"].shape == (2, K)


def test_training_learns_label_carried_by_one_modality():
    """Label only in the text (a class word among filler); video and audio are noise."""
    model = make("gated", modality_dropout=0.2).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(2)

    def labelled(n):
        y = torch.randint(0, K, (n,), generator=g)
        b = batch(n)
        b["text"] = [f"filler{int(torch.randint(0, 50, (1,), generator=g))} class{int(c)} words" for c in y]
        return b, y

    losses = []
    for _ in range(40):
        b, y = labelled(16)
        out = model(b)
        loss, _ = training_loss(out, y, multilabel=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(nn.functional.cross_entropy(out["logits"], y).item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    b, y = labelled(32)
    with torch.no_grad():
        assert (model.eval()(b)["logits"].argmax(1) == y).float().mean() >= 0.9


def test_auxiliary_stream_loss_ignores_samples_whose_stream_is_missing():
    """The per-stream loss of the trainer only counts samples where that stream is present."""
    model = make("late").eval()
    b = batch(4)
    y = torch.tensor([0, 1, 2, 0])
    out = model(b)
    base, _ = training_loss(out, y, multilabel=False)
    # corrupt the audio logits of samples 2, 3 and mark audio missing there: the loss must not change
    b["audio_mask"] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    out = model(b)
    out["stream_logits"]["audio"] = out["stream_logits"]["audio"].clone()
    ref, _ = training_loss(out, y, multilabel=False)
    out["stream_logits"]["audio"][2:] = 1e3 * torch.randn(2, K)
    masked, _ = training_loss(out, y, multilabel=False)
    assert torch.isclose(masked, ref), (masked, ref)
    assert not torch.isclose(base, masked)  # the mask does change which samples count


def test_one_fusion_vocabulary():
    from vidcat.models.fusion.two_stream import FUSION_MODES

    assert FUSIONS == ("late", "weighted", "concat", "gated") and FUSION_MODES == (*FUSIONS, "conv")
    with pytest.raises(VidcatError, match="fusion must be one of late, weighted, concat, gated, not 'early'"):
        make("early")
    late, weighted = make("late"), make("weighted")
    assert "stream_weight" in dict(late.named_buffers()) and "stream_weight" in dict(weighted.named_parameters())
    late.set_fusion_weights([0.2, 0.3, 0.5])
    assert np.allclose(late.fusion_weights(), [0.2, 0.3, 0.5], atol=1e-5)
