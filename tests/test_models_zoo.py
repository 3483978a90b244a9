"""The model zoo: every registered video model trains one step, parameter counts match the published
figures, I3D inflation keeps a 2D network's answer on a still clip, and weight files load or fail in one line."""
from __future__ import annotations

import json
import logging
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from vidcat.errors import VidcatError
from vidcat.models.registry import count_parameters, create_model, get_spec, list_models
from vidcat.models.surgery import freeze_backbone, get_classifier, load_weights, param_groups

# (frames, size) small enough for a CPU test where the architecture allows; None = the registry size
SMALL = {"tiny3d": (8, 32), "tsn": (8, 32), "tsm": (8, 32), "lrcn": (8, 32), "r3d_18": (8, 32), "mc3_18": (8, 32),
         "r2plus1d_18": (8, 32), "s3d": (8, 32), "swin3d_t": (8, 64), "i3d_r18": (8, 32), "i3d_r50": (8, 32),
         "x3d_xs": (4, 64), "x3d_s": (8, 64), "x3d_m": (8, 64),
         "mvit_v2_s": None, "c3d": None}  # fixed-size: positional tables / fc6 tie them to 16x224 and 16x112
SLOW = {"mvit_v2_s"}  # > 20 s for one step of a 2-clip batch on one core (c3d: ~8 s)


pytestmark = pytest.mark.usefixtures("one_thread", "seeded")  # conftest


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [], id=n) for n in list_models()])
def test_model_trains_one_step(name):
    spec = get_spec(name)
    if spec.modality != "video":
        pytest.skip(f"{spec.modality} input is built by its own family's tests")
    t, s = SMALL.get(name) or (spec.frames, spec.size)
    model = create_model(name, num_classes=3)
    x = torch.randn(2, len(spec.mean), t, s, s)
    out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]  # frozen: by design
    assert not no_grad, f"unused parameters: {no_grad[:5]}"
    head_name, head = get_classifier(model)  # the uniform head convention (see surgery.py)
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 3, head_name


# --- numeric regression fixtures (as torchvision's test/expect) ----------------------------------------------

EXPECT = Path(__file__).resolve().parent / "expect"
REGEN = os.environ.get("VIDCAT_REGEN_EXPECT") == "1"   # VIDCAT_REGEN_EXPECT=1 pytest tests/test_models_zoo.py -k expect
NO_FIXTURE = {"mvit_v2_s": "one forward of its fixed 16x224 clip takes about 5 s on one CPU core"}
TEXTS = ["a dog runs in the park", "cooking pasta, boiling water"]


def fixed_input(model: nn.Module, name: str):
    """A seeded input of the shape ``name`` expects: 2 samples (1 for the fixed-size ones), small where allowed."""
    spec = get_spec(name)
    t, s = SMALL.get(name) or ((spec.frames, spec.size) if spec.fixed_input else (4, 32))
    b = 1 if spec.fixed_input else 2
    g = torch.Generator().manual_seed(0)
    shapes = {"video": (b, 3, t, s, s), "flow": (b, 2, t, s, s), "mv": (b, 2, t, s, s), "audio": (b, 1, 64, 101),
              "pose": (b, t, 33, 4)}

    def stream(key):
        return list(TEXTS[:b]) if key == "text" else torch.randn(*shapes[key], generator=g)

    key = getattr(model, "input_key", "video")
    if key != "multi":
        return stream(key)
    from vidcat.models.fusion import batch_key, mask_key

    if hasattr(model, "reads"):               # the streams model: the modalities its streams read
        return {**{k: stream(k) for k in model.reads}, **{mask_key(k): torch.ones(b) for k in model.reads}}
    keys = [batch_key(n) for n in model.names]
    return {**{k: stream(k) for k in keys}, **{mask_key(n): torch.ones(b) for n in model.names}}


@pytest.mark.parametrize("name", list_models())
def test_logits_match_the_expect_fixture(name):
    """Seed 0, 3 classes, a seeded input: the logits equal tests/expect/<name>.json (CPU float32)."""
    if name in NO_FIXTURE:
        pytest.skip(NO_FIXTURE[name])
    torch.manual_seed(0)
    try:
        model = create_model(name, num_classes=3).eval()
    except VidcatError as e:
        if "pip install" not in str(e):
            raise
        pytest.skip(f"{name} needs an optional package: {e}")
    x = fixed_input(model, name)
    with torch.no_grad():
        out = model(x)
    logits = (out["logits"] if isinstance(out, dict) else out).float()
    path = EXPECT / f"{name}.json"
    shape = "texts" if isinstance(x, list) else {k: list(v.shape) if torch.is_tensor(v) else "texts" for k, v in
                                                 x.items()} if isinstance(x, dict) else list(x.shape)
    if REGEN:
        EXPECT.mkdir(exist_ok=True)
        path.write_text(json.dumps({"model": name, "seed": 0, "input": shape, "logits": logits.tolist()}) + "\n")
    assert path.is_file(), f"no {path.name}: VIDCAT_REGEN_EXPECT=1 pytest tests/test_models_zoo.py -k {name} writes it"
    expected = json.loads(path.read_text())
    assert expected["input"] == shape
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=1e-3, atol=1e-5)


# --- learning on a planted signal (the frame models) ----------------------------------------------------------

def _planted(kind: str, n: int, g: torch.Generator, t: int = 4, s: int = 32):
    """Noise clips with a bright square: ``static`` top-left (class 0) or bottom-right (1); ``motion`` moving
    right (0) or left (1) -- the same frames in opposite orders, so only the order tells the class."""
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.randn(n, 3, t, s, s, generator=g)
    cols = [2, 10, 18, 24]
    for i in range(n):
        if kind == "static":
            r = 4 if y[i] == 0 else 20
            x[i, :, :, r:r + 8, r:r + 8] += 2.0
        else:
            for k in range(t):
                c = cols[k] if y[i] == 0 else cols[t - 1 - k]
                x[i, :, k, 12:20, c:c + 6] += 2.0
    return x, y


@pytest.mark.parametrize("name,kind,steps", [("tsn", "static", 8), ("lrcn", "motion", 12)])
def test_frame_models_learn_a_planted_signal(name, kind, steps):
    """A fresh batch each step: the loss on clips the model has not seen falls (lrcn: from frame order alone)."""
    g = torch.Generator().manual_seed(1)
    model = create_model(name, 2).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        x, y = _planted(kind, 8, g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses
    if kind == "motion":  # held out, eval mode
        x, y = _planted(kind, 64, g)
        with torch.no_grad():
            assert (model.eval()(x).argmax(1) == y).float().mean() >= 0.9


# --- parameter counts against published figures -------------------------------------------------------------

def _c3d_sports1m() -> int:
    # C3D layer table (Tran et al. 2015): 3x3x3 convs 3-64, 64-128, 128-256, 256-256, 256-512, then 3x 512-512,
    # each weights + bias; pool5 gives 512x1x4x4 = 8192 features; fc6 8192-4096, fc7 4096-4096, fc8 4096-487.
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    n = sum(i * o * 27 + o for i, o in convs)                         # 27,655,936
    return n + 8192 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 487 + 487


@pytest.mark.parametrize("name,classes,expected", [
    ("r3d_18", 400, 33_371_472),        # torchvision R3D_18_Weights num_params
    ("mc3_18", 400, 11_695_440),        # torchvision MC3_18_Weights num_params
    ("r2plus1d_18", 400, 31_505_325),   # torchvision R2Plus1D_18_Weights num_params
    ("s3d", 400, 8_320_048),            # torchvision S3D_Weights
    ("mvit_v2_s", 400, 34_537_744),     # torchvision MViT_V2_S_Weights
    ("swin3d_t", 400, 28_158_070),      # torchvision Swin3D_T_Weights
    ("c3d", 487, 79_991_015),           # the paper's layer table, see _c3d_sports1m (~80 M)
    ("x3d_xs", 400, 3_794_274),         # PyTorchVideo create_x3d: 3.79 M (paper: 3.76 M) for XS, S and M alike
    ("x3d_s", 400, 3_794_274),
    ("x3d_m", 400, 3_794_274),
    ("tiny3d", 10, 293_370),      # convs 291,600 + BN 480 + fc 1,290
])
def test_parameter_counts(name, classes, expected):
    assert count_parameters(create_model(name, classes)) == expected
    if name == "c3d":
        assert _c3d_sports1m() == expected


@pytest.mark.parametrize("name,depth", [("i3d_r18", 18), ("i3d_r50", 50)])
def test_i3d_params_are_2d_params_plus_inflated_taps(name, depth):
    import torchvision.models as tvm

    net2d = getattr(tvm, f"resnet{depth}")()
    extra = 0
    for n, m in net2d.named_modules():
        if isinstance(m, nn.Conv2d):
            tk = 5 if n == "conv1" else 3 if n.endswith(".conv1") else 1
            extra += (tk - 1) * m.weight.numel()
    assert count_parameters(create_model(name, 1000)) == count_parameters(net2d) + extra


# --- I3D inflation ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth,center", [(18, False), (18, True), (50, False)])
def test_inflated_resnet_answers_a_boring_video_like_the_2d_net(depth, center):
    """Carreira & Zisserman's check: a clip repeating one frame gives the 2D network's output on that frame."""
    import torchvision.models as tvm

    from vidcat.models.video_resnet import inflate_resnet

    net2d = getattr(tvm, f"resnet{depth}")(num_classes=7)
    for m in net2d.modules():  # non-trivial BN statistics, as a trained network has
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    net2d.eval()
    net3d = inflate_resnet(net2d, center=center).eval()
    frame = torch.randn(2, 3, 48, 48)
    clip = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1).contiguous()
    with torch.no_grad():
        torch.testing.assert_close(net3d(clip), net2d(frame), rtol=1e-4, atol=1e-4)
        # a clip that moves gets a different answer: the network really is 3D
        assert not torch.allclose(net3d(torch.randn_like(clip)), net3d(clip), atol=1e-3)


def test_inflate_conv2d_spreads_or_centres_the_kernel():
    from vidcat.models.video_resnet import inflate_conv2d

    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    spread = inflate_conv2d(conv, time_kernel=3, time_stride=2)
    assert spread.weight.shape == (6, 4, 3, 3, 3) and spread.stride == (2, 2, 2) and spread.padding == (0, 1, 1)
    torch.testing.assert_close(spread.weight.sum(2), conv.weight)
    torch.testing.assert_close(spread.weight[:, :, 0], conv.weight / 3)
    centre = inflate_conv2d(conv, time_kernel=3, center=True)
    torch.testing.assert_close(centre.weight[:, :, 1], conv.weight)
    assert centre.weight[:, :, [0, 2]].abs().sum() == 0


# --- frame models -------------------------------------------------------------------------------------------

def test_tsn_ignores_frame_order_and_tsm_does_not():
    clip = torch.randn(1, 3, 8, 32, 32)
    perm = clip[:, :, torch.randperm(8, generator=torch.Generator().manual_seed(1))]
    for name, order_free in (("tsn", True), ("tsm", False)):
        model = create_model(name, 4).eval()
        assert get_spec(name).temporal is not order_free
        with torch.no_grad():
            assert torch.allclose(model(clip), model(perm), atol=1e-5) is order_free, name


def test_temporal_shift_moves_an_eighth_of_the_channels_each_way():
    from vidcat.models.tsn import TemporalShift

    shift = TemporalShift(nn.Identity())
    shift.n_segment = 4
    x = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 16, 1, 1).reshape(4, 16, 1, 1)  # value = frame index
    y = shift(x).view(4, 16)
    assert y[:, 0].tolist() == [1, 2, 3, 0] and y[:, 1].tolist() == [1, 2, 3, 0]    # from the next frame
    assert y[:, 2].tolist() == [0, 0, 1, 2] and y[:, 3].tolist() == [0, 0, 1, 2]    # from the previous frame
    assert y[:, 4:].tolist() == x.view(4, 16)[:, 4:].tolist()


@pytest.mark.parametrize("consensus", ["max", "attention"])
def test_tsn_consensus_options(consensus):
    out = create_model("tsn", 3, consensus=consensus)(torch.randn(2, 3, 4, 32, 32))
    assert out.shape == (2, 3)


@pytest.mark.parametrize("kw", [dict(rnn="gru"), dict(bidirectional=True, attention_pool=True), dict(layers=2)])
def test_lrcn_variants(kw):
    out = create_model("lrcn", 3, hidden=32, **kw)(torch.randn(2, 3, 4, 32, 32))
    assert out.shape == (2, 3)


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet50", 2048), ("mobilenet_v3_small", 1024),
                                      ("mobilenet_v3_large", 1280), ("efficientnet_b0", 1280)])
def test_backbones_and_cross_modality_init(name, dim):
    from vidcat.models.tsn import build_backbone2d
    from vidcat.models.surgery import _first_conv, widen_first_conv

    net, feat_dim = build_backbone2d(name)
    assert feat_dim == dim
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, dim)
    rgb = _first_conv(net)[2].weight.detach().clone()
    widen_first_conv(net, 10)  # e.g. 5 stacked flow fields (x, y)
    new = _first_conv(net)[2].weight
    assert new.shape[1] == 10
    torch.testing.assert_close(new, rgb.mean(1, keepdim=True).expand_as(new))
    assert net(torch.randn(2, 10, 32, 32)).shape == (2, dim)
    flow_net, _ = build_backbone2d(name, in_channels=2)
    assert _first_conv(flow_net)[2].in_channels == 2


def test_frame_model_errors():
    with pytest.raises(VidcatError, match="unknown backbone 'vgg99'"):
        create_model("tsn", 3, backbone="vgg99")
    with pytest.raises(VidcatError, match="consensus must be"):
        create_model("tsn", 3, consensus="median")
    with pytest.raises(VidcatError, match="tsm needs a ResNet backbone"):
        create_model("tsm", 3, backbone="mobilenet_v3_small")
    with pytest.raises(VidcatError, match="rnn must be lstm or gru"):
        create_model("lrcn", 3, rnn="transformer")


def test_timm_backbone_without_timm_is_a_clear_error():
    try:
        import timm  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(VidcatError, match=r"needs timm: pip install 'vidcat\[timm\]'"):
            create_model("tsn", 3, backbone="timm:resnet18")
    else:
        assert create_model("tsn", 3, backbone="timm:resnet18")(torch.randn(1, 3, 2, 32, 32)).shape == (1, 3)


# --- fixed-size models and pretrained weights ---------------------------------------------------------------

def test_fixed_size_models_say_what_they_need():
    with pytest.raises(VidcatError, match="c3d needs 16x112x112 clips, got 8x64x64"):
        create_model("c3d", 2)(torch.randn(1, 3, 8, 64, 64))
    with pytest.raises(VidcatError, match="mvit_v2_s needs 16x224x224 clips, got 8x112x112"):
        create_model("mvit_v2_s", 2)(torch.randn(1, 3, 8, 112, 112))


@pytest.mark.parametrize("name,kw", [("r3d_18", {}), ("i3d_r18", {}), ("tsn", {}), ("lrcn", dict(backbone="mobilenet_v3_small"))])
def test_pretrained_without_network_says_pass_weights(monkeypatch, name, kw):
    import torchvision.models._api as api

    def offline(url, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(VidcatError, match=r"cannot download pretrained weights .*pass --weights FILE") as e:
        create_model(name, 3, pretrained=True, **kw)
    assert "\n" not in str(e.value) and "https://download.pytorch.org/models/" in str(e.value)


@pytest.mark.parametrize("name,tv_name,classes", [("r3d_18", "video.r3d_18", 400), ("s3d", "video.s3d", 400),
                                                  ("i3d_r18", "resnet18", 1000), ("tsn", "resnet18", 1000)])
def test_pretrained_weights_start_the_backbone_and_a_new_head(monkeypatch, name, tv_name, classes):
    """The download itself is faked: torchvision's own state dict stands in for the file."""
    import torchvision.models as tvm
    import torchvision.models._api as api

    mod, _, fn = tv_name.rpartition(".")
    fake = getattr(getattr(tvm, mod) if mod else tvm, fn)(num_classes=classes).state_dict()
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda url, *a, **k: fake)
    model = create_model(name, 5, pretrained=True)
    head_name, head = get_classifier(model)
    own = model.state_dict()
    loaded = [k for k in fake if not k.startswith(("fc.", "classifier.1."))]
    prefix = "backbone." if name == "tsn" else ""
    for k in loaded:  # I3D convs are inflated: their time taps add up to the 2D kernel
        w = own[prefix + k]
        torch.testing.assert_close(w.sum(2) if w.dim() == fake[k].dim() + 1 else w, fake[k])
    assert head.weight.shape[0] == 5
    kept = create_model(name, classes, pretrained=True) if name != "tsn" else None
    if kept is not None:  # the Kinetics / ImageNet head itself is kept when the class count matches
        torch.testing.assert_close(get_classifier(kept)[1].weight, fake[head_name + ".weight"])


@pytest.mark.parametrize("name", ["tiny3d", "c3d", "x3d_m"])
def test_models_without_downloads_refuse_pretrained(name):
    with pytest.raises(VidcatError, match="--weights FILE"):
        create_model(name, 3, pretrained=True)


# --- weight files ------------------------------------------------------------------------------------------

def _tiny(num_classes=5, **kw):
    return create_model("tiny3d", num_classes, **kw)


def _same(a: nn.Module, b: nn.Module, skip: str = "-") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "model_state", "module_prefix", "vidcat_ckpt"])
def test_weights_round_trip(tmp_path, wrap):
    src = _tiny()
    src.features[0][1].running_mean.uniform_()  # buffers travel too
    sd = src.state_dict()
    obj = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd},
           "model_state": {"model_state": sd, "cfg": {"arch": "x"}},
           "module_prefix": nn.DataParallel(src).state_dict(),
           "vidcat_ckpt": {"model": sd, "model_name": "tiny3d", "classes": ["a", "b"], "args": {"lr": 0.1}}}[wrap]
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    torch.manual_seed(1)
    dst = create_model("tiny3d", 5, weights=str(path))
    assert _same(src, dst)


def test_weights_with_another_head_size_keep_the_new_head(tmp_path, caplog):
    src = _tiny(10)
    path = tmp_path / "k400.pt"
    torch.save(src.state_dict(), path)
    dst = _tiny(5)
    head_before = dst.fc.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="vidcat.models.surgery"):
        load_weights(dst, path)
    assert _same(src, dst, skip="fc.") and torch.equal(dst.fc.weight, head_before)
    assert [r.getMessage() for r in caplog.records] == [
        f"weights {path}: its head has 10 classes; keeping a new 5-class head fc"]
    # a backbone-only file (no head at all) is fine too
    torch.save({k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}, path)
    load_weights(_tiny(5), path)


def test_weights_that_do_not_fit_fail_in_one_line(tmp_path):
    sd = _tiny(in_channels=2).state_dict()
    del sd["features.1.0.weight"]
    sd["extra.weight"] = torch.zeros(1)
    sd.pop("features.0.1.num_batches_tracked")  # files from older PyTorch lack these: tolerated
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    with pytest.raises(VidcatError) as e:
        create_model("tiny3d", 5, weights=str(path))
    assert str(e.value) == (f"weights file {path} does not fit tiny3d: shape mismatch in features.0.0.weight "
                            f"(file 16,2,3,3,3 vs model 16,3,3,3,3); 1 missing keys: features.1.0.weight; "
                            f"1 unexpected keys: extra.weight")


def test_unreadable_weight_files(tmp_path):
    with pytest.raises(VidcatError, match="weights file nope.pt not found"):
        load_weights(_tiny(), "nope.pt")
    path = tmp_path / "cfg.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(VidcatError, match=r"holds no state dict \(top-level keys: epoch, lr\)"):
        load_weights(_tiny(), path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(VidcatError, match="cannot read weights file"):
        load_weights(_tiny(), path)


def test_x3d_loads_a_pytorchvideo_style_checkpoint(tmp_path):
    src = create_model("x3d_xs", 400)
    path = tmp_path / "X3D_XS.pyth"
    torch.save({"model_state": src.state_dict(), "epoch": 300}, path)  # PyTorchVideo's layout and key names
    dst = create_model("x3d_xs", 7, weights=str(path))
    assert _same(src, dst, skip="blocks.5.proj.")


# --- fine-tuning helpers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny3d", "tsn", "r3d_18", "s3d", "x3d_xs", "c3d"])
def test_freeze_backbone_and_param_groups(name):
    model = create_model(name, 4)
    head_name, head = get_classifier(model)
    n_head = sum(p.numel() for p in head.parameters())
    groups = param_groups(model, lr=0.1, backbone_lr_mult=0.01)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 0.1 * 0.01), ("head", 0.1)]
    assert sum(p.numel() for p in groups[1]["params"]) == n_head
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model)
    assert freeze_backbone(model) > 0
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [f"{head_name}.{n}" for n, _ in head.named_parameters()]
    assert [g["name"] for g in param_groups(model, lr=0.1)] == ["head"]
    freeze_backbone(model, freeze=False)
    assert all(p.requires_grad for p in model.parameters())
