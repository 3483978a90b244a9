"""The pose stream: MediaPipe keypoints on real footage, the missing-person mask, the cache, the skeleton
models on a planted keypoint-motion task, fusion, the CLI and the missing-extra error line."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vidcat.errors import VidcatError
from vidcat.config.extras import has

needs_pose = pytest.mark.skipif(not has("pose"), reason="pip install 'vidcat[pose]' (mediapipe) not installed")


@pytest.fixture(scope="session")
def person_clip(shared_data):
    clips = sorted((shared_data / "ud810-actions").glob("*.avi"))
    if not clips:
        pytest.skip("no ud810-actions clips in ../shared/data")
    return clips[0]


@pytest.fixture(scope="session")
def noise_clip(tmp_path_factory):
    """Moving coloured noise: no person anywhere."""
    import av

    path = tmp_path_factory.mktemp("nop") / "noise.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for t in range(16):
            img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
            img[:, :, t % 3] = 255 * (t % 2)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# -- extraction -------------------------------------------------------------------------------------
@needs_pose
def test_person_found_and_stable_and_cached(person_clip, cache):
    from vidcat.io import pose

    frames = list(range(0, 24))
    t0 = time.perf_counter()
    kp, mask = pose.pose_keypoints(person_clip, frames=frames)
    first = time.perf_counter() - t0
    assert kp.shape == (24, 33, 4) and mask.shape == (24,)
    assert mask.mean() >= 0.8, mask
    x = pose.normalise(kp, mask)[mask > 0]
    torso = [pose.L_SHOULDER, pose.R_SHOULDER, pose.L_HIP, pose.R_HIP]
    step = np.abs(np.diff(x[:, torso, :2], axis=0)).max()
    assert step < 0.25, f"torso joints jump {step:.3f} torso lengths between consecutive frames"
    # normalised: hips at the origin, torso about 1 long
    hip = (x[:, pose.L_HIP, :2] + x[:, pose.R_HIP, :2]) / 2
    assert np.abs(hip).max() < 1e-4
    sh = (x[:, pose.L_SHOULDER, :2] + x[:, pose.R_SHOULDER, :2]) / 2
    assert np.allclose(np.linalg.norm(sh, axis=1), 1.0, atol=1e-3)
    # second run reads the cache entry
    before = dict(pose.COUNTERS)
    t0 = time.perf_counter()
    kp2, mask2 = pose.pose_keypoints(person_clip, frames=frames)
    again = time.perf_counter() - t0
    assert pose.COUNTERS["cached"] == before["cached"] + 1 and pose.COUNTERS["computed"] == before["computed"]
    assert np.array_equal(kp, kp2) and np.array_equal(mask, mask2)
    assert again < first / 3
    assert any((cache / "pose").rglob("*.vca"))
    f = pose.pose_features(person_clip, frames=frames)
    assert f.shape == (331,) and f.dtype == np.float32 and np.isfinite(f).all() and f[-1] >= 0.8


@needs_pose
def test_no_person_gives_zero_mask(noise_clip, cache):
    from vidcat.io import pose

    kp, mask = pose.pose_keypoints(noise_clip, frames=8)
    assert mask.shape == (8,) and mask.sum() == 0
    assert not pose.normalise(kp, mask).any()
    assert not pose.pose_features(noise_clip, frames=8).any()


@needs_pose
def test_modality_loader(person_clip, noise_clip, cache):
    from vidcat.config import DataConfig
    from vidcat.data.modalities import get_modality

    load = get_modality("pose").load
    cfg = DataConfig(modalities=("pose",))
    ctx = SimpleNamespace(item=SimpleNamespace(path=str(person_clip)), indices=list(range(0, 16, 2)), cfg=cfg,
                          flip=False)
    s = load(ctx)
    assert s["pose"].shape == (8, 33, 4) and s["pose"].dtype == torch.float32 and s["pose_mask"] == 1.0
    flipped = load(SimpleNamespace(**{**vars(ctx), "flip": True}))
    # mirrored: the left shoulder's x is minus the original right shoulder's x
    assert torch.allclose(flipped["pose"][:, 11, 0], -s["pose"][:, 12, 0])
    none = load(SimpleNamespace(**{**vars(ctx), "item": SimpleNamespace(path=str(noise_clip)),
                                   "indices": list(range(8))}))
    assert none["pose_mask"] == 0.0 and not none["pose"].any()
    # a short video: every frame once, then any clip of it is a cache read
    from vidcat.io import pose
    from vidcat.io.video import probe

    whole = SimpleNamespace(**{**vars(ctx), "info": probe(person_clip)})
    assert load(whole)["pose"].shape == (8, 33, 4)
    before = dict(pose.COUNTERS)
    other = load(SimpleNamespace(**{**vars(whole), "indices": [1, 5, 9, 13]}))
    assert other["pose"].shape == (4, 33, 4) and other["pose_mask"] == 1.0
    assert pose.COUNTERS["computed"] == before["computed"]


@needs_pose
def test_extract_many_resumes(person_clip, noise_clip, cache):
    from vidcat.io import pose

    r = pose.extract_many([noise_clip, person_clip], frames=4, workers=2)
    assert r[str(noise_clip)] == 0.0 and r[str(person_clip)] > 0.5
    before = dict(pose.COUNTERS)
    pose.extract_many([noise_clip, person_clip], frames=4, workers=1)  # all cached: nothing computed
    assert pose.COUNTERS["computed"] == before["computed"]


@needs_pose
def test_cli_overlay(person_clip, cache, tmp_path, capsys):
    from vidcat.cli import main

    png, mp4 = tmp_path / "o.png", tmp_path / "o.mp4"
    assert main(["pose", str(person_clip), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000 and "a person in 4/4 frames" in capsys.readouterr().out
    assert main(["pose", str(person_clip), "--out", str(mp4), "--frames", "6"]) == 0
    from vidcat.io.video import probe

    assert probe(mp4).num_frames == 6


def test_missing_extra_is_one_line(monkeypatch, capsys, tmp_path):
    import importlib.util

    from vidcat.cli import main
    from vidcat.config import DataConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mediapipe" else real(n, *a))
    with pytest.raises(VidcatError, match=r"the pose modality needs: pip install 'vidcat\[pose\]'"):
        DataConfig(modalities=("video", "pose"))
    assert main(["pose", str(tmp_path / "x.mp4"), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.strip() == "vidcat: error: the pose modality needs: pip install 'vidcat[pose]'"


# -- models -----------------------------------------------------------------------------------------
def _planted(n, rng, T=16, K=33):
    """A skeleton (one template, varied per sample) with noise; class 0: the left wrist rises over the clip,
    class 1: it falls."""
    template = np.random.default_rng(123).normal(0, 1, (1, 1, K, 4)).astype(np.float32)
    base = template + rng.normal(0, 0.3, (n, 1, K, 4)).astype(np.float32)
    x = np.repeat(base, T, 1) + rng.normal(0, 0.05, (n, T, K, 4)).astype(np.float32)
    y = rng.integers(0, 2, n)
    ramp = np.linspace(-1, 1, T, dtype=np.float32)
    x[:, :, 15, 1] += np.where(y[:, None] == 0, -ramp, ramp)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("name", ["stgcn", "pose_gru"])
def test_model_learns_planted_motion(name):
    from vidcat.models import create_model

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    xtr, ytr = _planted(128, rng)
    xte, yte = _planted(128, rng)
    model = create_model(name, num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(50):
        idx = torch.from_numpy(rng.integers(0, 128, 32))
        loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    assert acc >= 0.9, f"{name}: {acc:.2f}"
    assert model.features(xte[:2]).shape == (2, model.feat_dim)


def test_pose_joins_fusion():
    from vidcat.models import create_model

    m = create_model("fusion", num_classes=3, modalities=("video", "pose"))
    assert m.names == ["video", "pose"]
    batch = {"video": torch.randn(2, 3, 8, 32, 32), "pose": torch.randn(2, 8, 33, 4),
             "pose_mask": torch.tensor([1.0, 0.0])}
    out = m(batch)
    assert out["logits"].shape == (2, 3) and out["mask"][:, 1].tolist() == [1.0, 0.0]
    with pytest.raises(VidcatError, match="stgcn wants"):
        create_model("stgcn", num_classes=2)(torch.randn(1, 8, 20, 4))


@needs_pose
def test_hands_option(person_clip, cache):
    from vidcat.io import pose
    from vidcat.models import create_model

    kp, mask = pose.pose_keypoints(person_clip, frames=4, hands=True)
    assert kp.shape == (4, 75, 4) and mask.sum() >= 3
    x = pose.normalise(kp, mask)
    assert not x[:, 33:][kp[:, 33:, 3] == 0].any()          # absent hands stay zero
    assert pose.feature_vector(x, mask).shape == (751,)
    for name in ("stgcn", "pose_gru"):
        out = create_model(name, num_classes=3, hands=True)(torch.from_numpy(x[None]).repeat(2, 1, 1, 1))
        assert out.shape == (2, 3)


# -- hands without a body (first-person footage) ----------------------------------------------------
def _landmarks(points, visibility: float = 0.9):
    return SimpleNamespace(landmark=[SimpleNamespace(x=x, y=y, z=z, visibility=visibility) for x, y, z in points])


def _hand_at(x: float):
    return _landmarks([(x + 0.01 * i, 0.4 + 0.01 * i, -0.02) for i in range(21)])


@pytest.fixture()
def fake_mediapipe(monkeypatch):
    """MediaPipe replaced: Holistic finds a body (never a hand) in bright frames only; Hands finds the hands
    listed in ``log.found`` as (label, score, wrist x). ``log`` counts what was made and called."""
    from vidcat.io import pose

    log = SimpleNamespace(holistic=[], hands=[], holistic_calls=0, hands_calls=0, found=[("Left", 0.9, 0.6)],
                          holistic_allowed=True)

    class Holistic:
        def __init__(self, **kw):
            assert log.holistic_allowed, "Holistic made where only the hand detector should run"
            log.holistic.append(kw)

        def process(self, rgb):
            log.holistic_calls += not _warm_up(rgb)
            body = _landmarks([(0.5, 0.5, 0.0)] * 33) if rgb.mean() > 127 else None
            return SimpleNamespace(pose_landmarks=body, left_hand_landmarks=None, right_hand_landmarks=None)

        def close(self):
            pass

    class Hands:
        def __init__(self, **kw):
            log.hands.append(kw)

        def process(self, rgb):
            if _warm_up(rgb):
                return SimpleNamespace(multi_hand_landmarks=None, multi_handedness=None)
            log.hands_calls += 1
            return SimpleNamespace(
                multi_hand_landmarks=[_hand_at(x) for _, _, x in log.found] or None,
                multi_handedness=[SimpleNamespace(classification=[SimpleNamespace(label=lab, score=s)])
                                  for lab, s, _ in log.found] or None)

        def close(self):
            pass

    mods = (SimpleNamespace(Pose=Holistic), SimpleNamespace(Holistic=Holistic), SimpleNamespace(Hands=Hands))
    monkeypatch.setattr(pose, "_mediapipe", lambda: mods)
    return log


def _warm_up(rgb: np.ndarray) -> bool:
    """The blank frame a MediaPipe graph is opened with (``vidcat.io.pose._Quiet``), not a frame of the video."""
    return rgb.shape[:2] == (64, 64) and not rgb.any()


def _frame(bright: bool) -> np.ndarray:
    return np.full((48, 64, 3), 220 if bright else 30, np.uint8)


def test_hand_detector_runs_only_where_holistic_finds_no_body(fake_mediapipe):
    from vidcat.io.pose import N_BODY, N_HAND, PoseEstimator

    est = PoseEstimator(hands=True, video=True)
    lm = est(_frame(bright=False))
    assert (lm.body, lm.hands) == (False, True) and fake_mediapipe.hands_calls == 1
    # MediaPipe's "Left" is the mirrored image's left: the person's right hand, slot 1
    right = lm.kp[N_BODY + N_HAND:]
    assert right[:, 3].tolist() == [1.0] * N_HAND and np.allclose(right[0, :3], [0.6, 0.4, -0.02])
    assert not lm.kp[:N_BODY + N_HAND].any()
    assert fake_mediapipe.hands[0]["static_image_mode"] is False and fake_mediapipe.hands[0]["max_num_hands"] == 2
    lm = est(_frame(bright=True))                     # a body: Holistic's answer stands, no hand detector
    assert (lm.body, lm.hands) == (True, False) and fake_mediapipe.hands_calls == 1
    fake_mediapipe.found = [("Left", 0.6, 0.2), ("Left", 0.9, 0.7)]   # one label twice: the surer one keeps it
    lm = est(_frame(bright=False))
    assert np.isclose(lm.kp[N_BODY + N_HAND, 0], 0.7) and np.isclose(lm.kp[N_BODY, 0], 0.2)
    fake_mediapipe.found = []
    assert est(_frame(bright=False)).hands is False
    est.close()
    body_only = PoseEstimator(hands=False)(_frame(bright=False))       # the body-only path: unchanged
    assert body_only.kp.shape == (N_BODY, 4) and not body_only.body and len(fake_mediapipe.hands) == 1


def test_pose_record_keeps_both_flags_in_the_cache_and_completes_older_entries(fake_mediapipe, tmp_path, cache):
    from vidcat.data.synth_media import mux_av
    from vidcat.io import pose
    from vidcat.io.store import content_key

    frames = np.stack([_frame(bright=t % 2 == 0) for t in range(6)])
    path = mux_av(tmp_path / "alt.mp4", frames, fps=6)
    rec = pose.pose_record(path, hands=True)
    assert rec.body.tolist() == [1, 0] * 3 and rec.hands.tolist() == [0, 1] * 3
    assert fake_mediapipe.hands_calls == 3 and fake_mediapipe.hands[0]["static_image_mode"] is False
    before = dict(pose.COUNTERS)
    kp, body = pose.pose_keypoints(path, hands=True)
    assert pose.COUNTERS["cached"] == before["cached"] + 1 and fake_mediapipe.hands_calls == 3
    assert np.array_equal(kp, rec.kp) and np.array_equal(body, rec.body)
    # keys: the body-only one as before, the hands one renamed (entries of the old hands key are not misread)
    store, idx = pose._store(), list(range(6))
    assert pose.cache_key(path, idx) == store.key({"content": content_key(path), "indices": idx, "hands": False,
                                                   "complexity": 1, "model": "mediapipe-0.10.21"})
    assert pose.cache_key(path, idx, hands=True) == store.key({**{"content": content_key(path), "indices": idx,
                                                              "hands": True, "complexity": 1},
                                                              "model": "mediapipe-0.10.21-holistic+hands"})
    assert pose.pose_record(path, hands=False).hands.tolist() == [0] * 6 and fake_mediapipe.hands_calls == 3
    # an entry from before the hand detector (another clip): completed on its frames without a body by the hand
    # detector alone, in the same mode as a fresh run, and stored under the new key
    other = mux_av(tmp_path / "other.mp4", frames[::-1], fps=6)
    old = np.zeros((6, 1 + 75 * 4), np.float32)
    old[:, 0] = [1, 1, 0, 1, 0, 0]
    old[0, 1 + 33 * 4:1 + 54 * 4] = np.tile([0.3, 0.3, 0.0, 1.0], 21)   # Holistic's left hand in frame 0
    store.put(pose.cache_key(other, idx, hands=True, model=pose.MODEL_HOLISTIC), old)
    fake_mediapipe.holistic_allowed = False
    before = dict(pose.COUNTERS)
    rec = pose.pose_record(other, hands=True)
    assert pose.COUNTERS["upgraded"] == before["upgraded"] + 1 and pose.COUNTERS["computed"] == before["computed"]
    assert fake_mediapipe.hands_calls == 3 + 3 and fake_mediapipe.hands[-1]["static_image_mode"] is False
    assert rec.body.tolist() == [1, 1, 0, 1, 0, 0] and rec.hands.tolist() == [1, 0, 1, 0, 1, 1]
    assert np.array_equal(rec.kp[:, :33], old[:, 1:].reshape(6, 75, 4)[:, :33])
    assert rec.kp[2, 54:, 3].all() and not rec.kp[1, 33:].any()
    assert pose.pose_record(other, hands=True).hands.tolist() == rec.hands.tolist()
    assert pose.COUNTERS["upgraded"] == before["upgraded"] + 1 and fake_mediapipe.hands_calls == 6


@pytest.fixture(scope="session")
def hand_clip(shared_data, tmp_path_factory):
    """First-person-like footage: a person's left hand cropped (3 hand sizes around it) from 4 frames of a real
    clip and enlarged, so no body shows; encoded as H.264."""
    import cv2

    from vidcat.data.synth_media import mux_av
    from vidcat.io import pose
    from vidcat.io.video import probe, read_frames

    source = shared_data / "ud810-actions" / "PS7A3P2T1.avi"
    if not source.is_file() or not has("pose"):
        pytest.skip("needs ud810-actions/PS7A3P2T1.avi and vidcat[pose]")
    est = pose.PoseEstimator(hands=True, video=False)
    crops = []
    for img in read_frames(source, [int(i) for i in np.linspace(0, probe(source).num_frames - 1, 6).round()][2:]):
        hand = est(img).kp[pose.N_BODY:pose.N_BODY + pose.N_HAND]
        assert hand[0, 3] > 0, "Holistic found no left hand in the source frame"
        h, w = img.shape[:2]
        c = hand[:, :2].mean(0) * [w, h]
        half = 3 * np.linalg.norm((hand[9, :2] - hand[0, :2]) * [w, h])
        (x0, y0), (x1, y1) = np.maximum(c - half, 0).astype(int), (c + half).astype(int)
        crops.append(cv2.resize(img[y0:y1, x0:x1], (320, 320), interpolation=cv2.INTER_CUBIC))
    est.close()
    return mux_av(tmp_path_factory.mktemp("hand") / "left_hand.mp4", np.stack(crops), fps=8)


@needs_pose
def test_hands_without_a_body_on_real_footage(hand_clip, noise_clip, cache):
    from vidcat.config import DataConfig
    from vidcat.data.dataset import VideoClips, collate
    from vidcat.data.manifest import Dataset, Item
    from vidcat.featurefit.plan import has_body_or_hand
    from vidcat.io import pose
    from vidcat.models.streams.pose import PoseFeatures

    rec = pose.pose_record(hand_clip, hands=True)
    assert rec.body.tolist() == [0] * 4 and rec.hands.tolist() == [1] * 4
    left, right = rec.kp[:, 33:54], rec.kp[:, 54:]
    assert left[:, :, 3].all() and not right.any()        # the left hand, in the left hand's slot
    assert ((left[..., :2] > 0) & (left[..., :2] < 1)).all()
    assert not pose.pose_record(hand_clip, hands=False).body.any()    # the body model alone: nobody
    cfg = DataConfig(modalities=("pose",), pose_hands=True, pose_frames=4)
    clips = VideoClips(Dataset([Item(str(hand_clip), ["a"]), Item(str(noise_clip), ["a"])], ["a"]), cfg)
    batch = collate([clips[0], clips[1]])
    assert batch["pose_frames"].tolist() == [[0.0] * 4] * 2 and batch["pose_hand_frames"][0].tolist() == [1.0] * 4
    assert batch["pose_mask"].tolist() == [1.0, 0.0] and batch["pose_aspect"].tolist() == pytest.approx([1, 160 / 120])
    feats, present = PoseFeatures()(batch)
    assert present.tolist() == [1.0, 0.0] and feats[0].any() and not feats[1].any()
    assert has_body_or_hand(hand_clip) and not has_body_or_hand(noise_clip)


@needs_pose
def test_mediapipe_writes_nothing_to_the_terminal(shared_data):
    """MediaPipe's C++ side logs from its own threads (set-up on the first frame, hand ROI notes on later
    frames with a person); a user running ``vidcat train`` should not see them."""
    import subprocess
    import sys

    clip = sorted((shared_data / "ud810-actions").glob("*.avi"))[0]
    code = ("from vidcat.io.pose import PoseEstimator\nfrom vidcat.io.video import read_frames\n"
            "e = PoseEstimator(hands=True, video=True)\n"
            f"found = [e(f).body for f in read_frames({str(clip)!r}, list(range(0, 48, 3)))]\n"
            "e.close()\nprint(sum(found))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and int(out.stdout.strip()) > 0, out.stderr[-2000:]    # a person was found
    assert out.stderr == ""
