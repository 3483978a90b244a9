"""The pose stream's features: planted gesture signals (a wrist's trajectory, a hand's shape) separated
person-held-out by a linear classifier across body sizes, places and handedness -- with a body, and with hands
only (first-person footage); mirror and scale invariance; missing people; degenerate input; bodies give
version 1's features; the loader and module on real encoded clips."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vidcat.data.modalities.pose import pad_frames, raw_keypoints
from vidcat.errors import VidcatError
from vidcat.config.extras import has
from vidcat.io.pose import N_BODY, N_HAND, mirror_index
from vidcat.models.streams.pose import BODY_JOINTS, FRAME_DIM, IMAGE_DIM, LATERAL_IMAGE_DIM, PoseFeatures

needs_pose = pytest.mark.skipif(not has("pose"), reason="pip install 'vidcat[pose]' (mediapipe) not installed")
ASPECT = 16 / 9
T = 32

# A standing person facing the camera in body units (shoulder width 1, y down, origin between the shoulders);
# the person's left is the image's +x. Unlisted landmarks sit on the listed one named after them.
BODY = {0: (0, -1.1), 2: (0.15, -1.25), 5: (-0.15, -1.25), 7: (0.3, -1.15), 8: (-0.3, -1.15), 9: (0.08, -0.95),
        10: (-0.08, -0.95), 11: (0.5, 0), 12: (-0.5, 0), 13: (0.65, 0.9), 14: (-0.65, 0.9), 15: (0.7, 1.7),
        16: (-0.7, 1.7), 23: (0.3, 1.6), 24: (-0.3, 1.6), 25: (0.3, 2.6), 26: (-0.3, 2.6), 27: (0.3, 3.5),
        28: (-0.3, 3.5)}
SAME_AS = {1: 2, 3: 2, 4: 5, 6: 5, 17: 15, 19: 15, 21: 15, 18: 16, 20: 16, 22: 16, 29: 27, 31: 27, 30: 28, 32: 28}
# A right hand in hand units (wrist at 0, middle-finger knuckle about 1 above it): open, and a fist.
KNUCKLES = {5: 0.35, 9: 0.1, 13: -0.12, 17: -0.32}


def _hand(shape: str) -> np.ndarray:
    h = np.zeros((21, 3), np.float32)
    thumb = [(0.3, -0.3), (0.55, -0.5), (0.75, -0.65), (0.9, -0.8)] if shape == "open" else \
        [(0.3, -0.3), (0.45, -0.5), (0.35, -0.65), (0.1, -0.7)]
    h[1:5, :2] = thumb
    for k, x in KNUCKLES.items():
        h[k, :2] = (x, -1.0)
        if shape == "open":
            h[k + 1:k + 4, :2] = [(x * 1.15, -1.45), (x * 1.25, -1.75), (x * 1.35, -2.0)]
        else:  # curled back to the palm, towards the camera
            h[k + 1:k + 4] = [(x, -1.35, 0), (x, -1.1, 0), (x, -0.8, 0)]
    return h


def _person(rng) -> dict:
    """Where one person stands and how large and how proportioned they are."""
    return {"scale": rng.uniform(0.08, 0.3), "cx": rng.uniform(0.35, 0.65) * ASPECT, "cy": rng.uniform(0.25, 0.5),
            "arm": rng.uniform(0.85, 1.15), "hand": rng.uniform(0.35, 0.5), "left": False}


def _clip(rng, person: dict, wrist: np.ndarray, shape: str = "open", angle: float = 0.0) -> tuple:
    """Raw landmarks (T, 75, 4) in image-normalised coordinates and the (T,) person mask of one clip whose
    dominant (right, or for a left-handed person left) wrist follows ``wrist`` (T, 2) in body units."""
    body = np.zeros((T, N_BODY, 2), np.float32)
    for j in range(N_BODY):
        body[:, j] = BODY[SAME_AS.get(j, j)]
    body[:, 16] = wrist
    body[:, 14] = (body[:, 12] + wrist) / 2 + [-0.25 * person["arm"], 0.3]
    body += rng.normal(0, 0.02, body.shape)
    c, s = np.cos(angle), np.sin(angle)
    hand = _hand(shape) @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float32) * person["hand"]
    hands = np.zeros((T, 2, N_HAND, 4), np.float32)
    hands[:, 1, :, :3] = hand + rng.normal(0, 0.02, (T, N_HAND, 3))
    hands[:, 1, :, :2] += body[:, 16, None]
    hands[:, 1, :, 3] = (rng.random(T) < 0.9)[:, None]           # the raised hand: found most of the time
    hands[:, 0, :, :3] = hands[:, 1, :, :3] * [-1, 1, 1] + [0, 1.5, 0]  # the resting one: rarely found
    hands[:, 0, :, 3] = (rng.random(T) < 0.1)[:, None]
    pts = np.concatenate([body, hands[..., :2].reshape(T, -1, 2)], 1)
    z = np.concatenate([np.zeros((T, N_BODY)), hands[..., 2].reshape(T, -1)], 1)
    if person["left"]:  # a left-handed person: the same movement, mirrored
        idx = mirror_index(hands=True)
        pts, z = pts[:, idx] * [-1, 1], z[:, idx]
        hands = hands[:, ::-1]
    kp = np.zeros((T, N_BODY + 2 * N_HAND, 4), np.float32)
    kp[..., 0] = (person["cx"] + person["scale"] * pts[..., 0]) / ASPECT
    kp[..., 1] = person["cy"] + person["scale"] * pts[..., 1]
    kp[..., 2] = person["scale"] * z / ASPECT
    kp[:, :N_BODY, 3] = 1.0
    kp[:, N_BODY:, 3] = hands[..., 3].reshape(T, -1)
    kp[:, N_BODY:] *= kp[:, N_BODY:, 3:4] > 0
    mask = (rng.random(T) < 0.9).astype(np.float32)              # some frames without a person
    return kp * mask[:, None, None], mask


def _trajectory(rng, label: int) -> np.ndarray:
    """The raised right wrist going up and down (0) or left and right (1) about the same place."""
    wave = 0.5 * np.sin(2 * np.pi * rng.uniform(1.5, 3) * np.linspace(0, 1, T) + rng.uniform(0, 2 * np.pi))
    w = np.tile([-0.6, 0.3], (T, 1))
    w[:, 1 - label] += wave
    return w


def _rise_or_fall(rng, label: int) -> np.ndarray:
    """The right wrist rising (0) or falling (1) over the clip at a varying pace: the same places, the
    same speeds, only their order differs."""
    pace = np.sort(rng.random(T))
    pace = (pace - pace[0]) / max(pace[-1] - pace[0], 1e-6)
    w = np.tile([-0.6, 0.0], (T, 1)) + rng.normal(0, 0.03, (T, 2))
    w[:, 1] += 0.8 * (pace if label else -pace) + (0.4 if not label else -0.4)
    return w


def _dataset(kind: str, persons: int = 6, per_class: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    clips, y, g = [], [], []
    for p in range(persons):
        person = {**_person(rng), "left": p % 2 == 1}
        for label in (0, 1):
            for _ in range(per_class):
                if kind in ("trajectory", "rise"):
                    path = (_trajectory if kind == "trajectory" else _rise_or_fall)(rng, label)
                    clips.append(_clip(rng, person, path))
                else:  # a still hand anywhere near the face, turned any way in the picture
                    still = rng.uniform([-0.6, -1.0], [0.2, 0.0]) + rng.normal(0, 0.03, (T, 2))
                    clips.append(_clip(rng, person, still, ("open", "fist")[label], rng.uniform(-np.pi, np.pi)))
                y.append(label)
                g.append(p)
    return clips, np.array(y), np.array(g)


def _batch(clips, flip: bool = False) -> dict:
    raw = np.stack([raw_keypoints(kp, m, ASPECT, flip, True) for kp, m in clips])
    frames = np.stack([m for _, m in clips])
    return {"pose_raw": torch.from_numpy(raw), "pose_frames": torch.from_numpy(frames),
            "pose_mask": torch.from_numpy((frames.max(1) > 0).astype(np.float32))}


def _person_held_out(X, y, g) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    return float((cross_val_predict(clf, X, y, groups=g, cv=LeaveOneGroupOut()) == y).mean())


# -- planted signals --------------------------------------------------------------------------------
def test_wrist_trajectory_separates_held_out_persons_where_pooled_keypoints_cannot():
    clips, y, g = _dataset("trajectory")
    feats, present = PoseFeatures()(_batch(clips))
    assert present.tolist() == [1.0] * len(y) and feats.shape == (len(y), PoseFeatures().feat_dim)
    assert _person_held_out(feats.numpy(), y, g) >= 0.9
    # the mean keypoints over time are the same for both movements: chance
    naive = np.stack([(kp[m > 0, :, :2]).mean(0).ravel() for kp, m in clips])
    assert _person_held_out(naive, y, g) <= 0.7


def test_order_of_a_movement_separates_held_out_persons_where_pooled_statistics_cannot():
    from vidcat.io.pose import feature_vector, normalise

    clips, y, g = _dataset("rise", per_class=10)
    feats, _ = PoseFeatures()(_batch(clips))
    assert _person_held_out(feats.numpy(), y, g) >= 0.9
    # mean, std and mean |change| of each keypoint are the same for a rise and a fall: chance
    pooled = np.stack([feature_vector(normalise(kp, m), m) for kp, m in clips])
    assert _person_held_out(pooled, y, g) <= 0.7


def test_hand_shape_separates_held_out_persons():
    clips, y, g = _dataset("shape")
    feats, _ = PoseFeatures()(_batch(clips))
    assert _person_held_out(feats.numpy(), y, g) >= 0.9


# -- hands without a body (first-person footage) ---------------------------------------------------
def _first_person(rng, left: bool) -> dict:
    """How one person's camera (on the head, or in the other hand) sees their hands: size, resting place."""
    return {"hand": rng.uniform(0.1, 0.3), "cx": rng.uniform(0.35, 0.65) * ASPECT, "cy": rng.uniform(0.45, 0.7),
            "left": left}


def _hands_only_clip(rng, person: dict, label: int, kind: str) -> tuple:
    """Raw landmarks (T, 75, 4) with no body and the (T,) hand-found mask of one first-person clip: the
    gesturing hand (found in most frames) has an open or fist shape turned any way (``shape``), or moves
    side to side or up and down (``movement``); the other hand shows up now and then, resting lower."""
    turn = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(turn), np.sin(turn)
    shape = ("open", "fist")[label] if kind == "shape" else ("open", "fist")[int(rng.integers(2))]
    hand = _hand(shape) @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float32) * person["hand"]
    wrist = np.tile([person["cx"], person["cy"]], (T, 1)) + rng.normal(0, 0.01, (T, 2))
    if kind == "movement":
        cycles, phase = rng.uniform(1.5, 3), rng.uniform(0, 2 * np.pi)
        wrist[:, label] += rng.uniform(0.1, 0.2) * np.sin(2 * np.pi * cycles * np.linspace(0, 1, T) + phase)
    hands = np.zeros((T, 2, N_HAND, 4), np.float32)
    hands[:, 1, :, :3] = hand + rng.normal(0, 0.01, (T, N_HAND, 3))
    hands[:, 1, :, :2] += wrist[:, None]
    hands[:, 1, :, 3] = (rng.random(T) < 0.9)[:, None]
    hands[:, 0, :, :3] = _hand("open") * [-1, 1, 1] * person["hand"] + [person["cx"] - 0.4, 0.9, 0]
    hands[:, 0, :, 3] = (rng.random(T) < 0.2)[:, None]
    if person["left"]:  # the left hand gestures: the same, mirrored about the frame's centre
        hands = hands[:, ::-1].copy()
        hands[..., 0] = ASPECT - hands[..., 0]
    kp = np.zeros((T, N_BODY + 2 * N_HAND, 4), np.float32)
    kp[:, N_BODY:, 0] = hands[..., 0].reshape(T, -1) / ASPECT
    kp[:, N_BODY:, 1] = hands[..., 1].reshape(T, -1)
    kp[:, N_BODY:, 2] = hands[..., 2].reshape(T, -1) / ASPECT
    kp[:, N_BODY:, 3] = hands[..., 3].reshape(T, -1)
    kp[:, N_BODY:] *= kp[:, N_BODY:, 3:4] > 0
    return kp, (kp[:, N_BODY:, 3].max(1) > 0).astype(np.float32)


def _hands_only_dataset(kind: str, persons: int = 6, per_class: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    clips, y, g = [], [], []
    for p in range(persons):
        person = _first_person(rng, left=p % 2 == 1)
        for label in (0, 1):
            for _ in range(per_class):
                clips.append(_hands_only_clip(rng, person, label, kind))
                y.append(label)
                g.append(p)
    return clips, np.array(y), np.array(g)


def _hands_batch(clips, flip: bool = False) -> dict:
    """What the loader gives for hands found without a body: no body frame, the hand frames, the frame's shape."""
    none = np.zeros(T, np.float32)
    raw = np.stack([raw_keypoints(kp, none, ASPECT, flip, True, hand) for kp, hand in clips])
    hand = np.stack([h for _, h in clips])
    return {"pose_raw": torch.from_numpy(raw), "pose_frames": torch.zeros(len(clips), T),
            "pose_hand_frames": torch.from_numpy(hand), "pose_mask": torch.ones(len(clips)),
            "pose_aspect": torch.full((len(clips),), ASPECT)}


def _image_blocks(module: PoseFeatures) -> torch.Tensor:
    """Which entries are the image places of hands seen without a body (pooled; the wrists un-mirrored in the
    lateral block)."""
    at = torch.zeros(module.feat_dim, dtype=torch.bool)
    start = (module.bins + 6) * FRAME_DIM + 3 + len(BODY_JOINTS)
    at[start:start + (module.bins + 6) * IMAGE_DIM] = True
    at[module.feat_dim - (module.bins + 1) * LATERAL_IMAGE_DIM:] = True
    return at


@pytest.mark.parametrize("kind", ["shape", "movement"])
def test_hands_without_a_body_separate_held_out_persons(kind):
    clips, y, g = _hands_only_dataset(kind)
    batch = _hands_batch(clips)
    feats, present = PoseFeatures()(batch)
    assert present.tolist() == [1.0] * len(y) and torch.isfinite(feats).all()
    assert _person_held_out(feats.numpy(), y, g) >= 0.9
    # without the hand mask these frames have no person: nothing to classify
    _, none = PoseFeatures()({k: v for k, v in batch.items() if k != "pose_hand_frames"})
    assert not none.any()


def test_hands_only_present_and_their_body_values_masked():
    clips, _, _ = _hands_only_dataset("movement", persons=2, per_class=1, seed=5)
    b = _hands_batch(clips)
    module = PoseFeatures()
    f, present = module(b)
    assert present.tolist() == [1.0] * 4
    one = {**b, "pose_hand_frames": torch.zeros(4, T)}
    one["pose_hand_frames"][0, 7] = 1                     # clip 0: one frame with a hand, the others: nothing
    _, p1 = module(one)
    assert p1.tolist() == [1.0, 0.0, 0.0, 0.0]
    # body landmarks in frames without a body are not seen: garbage there changes nothing
    junk = b["pose_raw"].clone()
    junk[:, :, :N_BODY] = torch.rand(4, T, N_BODY, 4) * 3
    g, _ = module({**b, "pose_raw": junk})
    assert torch.equal(f, g)
    # the wrists' places come from the image, in their own blocks: a hand moved in the picture changes only them
    moved = b["pose_raw"].clone()
    moved[:, :, N_BODY:, :2] += torch.tensor([0.3, -0.2]) * (moved[:, :, N_BODY:, 3:] > 0)
    h, _ = module({**b, "pose_raw": moved})
    at = _image_blocks(module)
    assert torch.allclose(f[:, ~at], h[:, ~at], atol=1e-5) and not torch.allclose(f[:, at], h[:, at], atol=1e-2)
    # a left hand doing it is the right hand's mirror image: the same canonical features
    c = module.canonical_dim
    mirrored, _ = module(_hands_batch(clips, flip=True))
    assert torch.allclose(f[:, :c], mirrored[:, :c], atol=1e-4)


def _v1_projections(feats: torch.Tensor) -> torch.Tensor:
    """(B, 2499) -> (B, 16): projections on fixed directions (a compact fingerprint of version 1's features)."""
    i = torch.arange(feats.shape[1], dtype=torch.float64)
    dirs = torch.stack([torch.cos(0.37 * (k + 1) * i + k) for k in range(16)], 1)
    return feats.double() @ dirs


def _as_v1(module: PoseFeatures, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Version 2's features split into version 1's entries (in their order) and the new ones."""
    old = torch.zeros(module.feat_dim, dtype=torch.bool)
    old[:(module.bins + 6) * FRAME_DIM + 3 + len(BODY_JOINTS)] = True
    old[module.canonical_dim:module.canonical_dim + (module.bins + 1) * 8 + 3] = True
    return feats[:, old], feats[:, ~old]


def test_bodies_give_version_1_features():
    """Planted body clips (hands next to the body, as Holistic finds them) give version 1's features in their
    places -- with or without the loader's hand mask -- and zeros in the new entries."""
    import json
    from pathlib import Path

    expect = json.loads((Path(__file__).parent / "expect" / "pose_stream_v1.json").read_text())
    clips = _dataset("trajectory", persons=2, per_class=1, seed=21)[0] + _dataset("shape", persons=2, per_class=1,
                                                                                   seed=22)[0]
    b = _batch(clips)
    hand = (b["pose_raw"][:, :, N_BODY:, 3].amax(-1) > 0).float() * b["pose_frames"]
    module = PoseFeatures()
    for batch in (b, {**b, "pose_hand_frames": hand, "pose_aspect": torch.full((len(clips),), ASPECT)}):
        f, present = module(batch)
        v1, new = _as_v1(module, f)
        assert present.tolist() == [1.0] * len(clips) and v1.shape[1] == expect["feat_dim"] and not new.any()
        got = _v1_projections(v1)
        want = torch.tensor(expect["projections"], dtype=torch.float64)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-3), (got - want).abs().max()
        assert torch.allclose(v1.abs().sum(1).double(), torch.tensor(expect["l1"], dtype=torch.float64), rtol=1e-5)


# -- invariances ------------------------------------------------------------------------------------
def test_left_handed_mirror_image_gives_the_right_handed_features():
    clips, y, _ = _dataset("trajectory", persons=2, per_class=2, seed=3)
    module = PoseFeatures()
    f, _ = module(_batch(clips))
    mirrored, _ = module(_batch(clips, flip=True))  # the horizontally flipped video: a left-handed person
    c = module.canonical_dim
    assert torch.allclose(f[:, :c], mirrored[:, :c], atol=1e-4)
    flag = c + (module.bins + 1) * 8  # handedness, in the lateral block
    assert torch.equal(f[:, flag], -mirrored[:, flag]) and set(f[:, flag].tolist()) == {-1.0, 1.0}
    assert module.lateral_dim > 0 and not torch.allclose(f[:, c:], mirrored[:, c:])


def test_features_ignore_where_the_person_stands_and_how_large():
    clips, _, _ = _dataset("shape", persons=1, per_class=2, seed=4)
    b = _batch(clips)
    moved = b["pose_raw"].clone()
    seen = moved[..., 3:] > 0
    moved[..., :3] *= 1.7
    moved[..., :2] += torch.tensor([-0.3, 0.2])
    moved[..., :3] *= seen | (torch.arange(moved.shape[2]) < N_BODY)[:, None]
    moved *= b["pose_frames"][:, :, None, None]
    f, _ = PoseFeatures()(b)
    g, _ = PoseFeatures()({**b, "pose_raw": moved})
    assert torch.allclose(f, g, atol=1e-3)


# -- missing and degenerate input -------------------------------------------------------------------
def test_no_person_gives_present_zero_and_zeros():
    kp = torch.rand(3, T, 75, 4)
    frames = torch.ones(3, T)
    frames[0] = 0                                       # no frame with a person
    f, present = PoseFeatures()({"pose_raw": kp, "pose_frames": frames,
                                 "pose_mask": torch.tensor([1.0, 0.0, 1.0])})  # 1: the loader found nobody
    assert present.tolist() == [0.0, 0.0, 1.0]
    assert not f[:2].any() and f[2].any() and f.dtype == torch.float32


@pytest.mark.parametrize("case", ["all_zero", "one_frame", "no_hands", "one_person_frame", "body_only", "nan",
                                  "huge", "no_frames_key", "hands_only"])
def test_degenerate_input_is_finite(case):
    kp, frames = torch.rand(2, T, 75, 4), torch.ones(2, T)
    if case == "all_zero":
        kp = torch.zeros_like(kp)
    elif case == "one_frame":
        kp, frames = kp[:, :1], frames[:, :1]
    elif case == "no_hands":
        kp[:, :, N_BODY:] = 0
    elif case == "one_person_frame":
        frames = torch.zeros(2, T)
        frames[:, 5] = 1
    elif case == "body_only":
        kp = kp[:, :, :N_BODY]
    elif case == "nan":
        kp[0, 3] = float("nan")
        kp[1, :, 11:13, :2] = float("inf")
    elif case == "huge":
        kp[:, :, :N_BODY, :2] = 0.5
        kp[:, :, 15, 1] = 1e30
    module = PoseFeatures()
    batch = {"pose_raw": kp, "pose_mask": torch.ones(2)}
    if case == "hands_only":   # no body anywhere, hands in every frame, NaN and huge values among them
        kp[0, 3, N_BODY:] = float("nan")
        kp[1, :, N_BODY + 9, :2] = 1e30
        frames, batch["pose_hand_frames"], batch["pose_aspect"] = torch.zeros(2, T), torch.ones(2, T), torch.zeros(2)
    if case != "no_frames_key":
        batch["pose_frames"] = frames
    f, present = module(batch)
    assert f.shape == (2, module.feat_dim) and torch.isfinite(f).all() and present.tolist() == [1.0, 1.0]


def test_reads_the_normalised_pose_when_raw_is_absent_and_validates_bins():
    clips, _, _ = _dataset("trajectory", persons=1, per_class=1)
    b = _batch(clips)
    f, present = PoseFeatures(bins=6, lateral=False)({"pose": b["pose_raw"], "pose_frames": b["pose_frames"]})
    assert f.shape == (2, PoseFeatures(bins=6, lateral=False).feat_dim) and present.tolist() == [1.0, 1.0]
    assert PoseFeatures(bins=6).spec() == {"name": "pose", "version": 2, "feat_dim": PoseFeatures(bins=6).feat_dim,
                                           "bins": 6, "lateral": True}
    with pytest.raises(ValueError, match="bins must be >= 1, not 0"):
        PoseFeatures(bins=0)


def test_pad_frames_and_pose_frames_option():
    from vidcat.config import DataConfig

    kp, mask = pad_frames(np.ones((3, 75, 4), np.float32), np.ones(3, np.float32), 5)
    assert kp.shape == (5, 75, 4) and mask.tolist() == [1, 1, 1, 0, 0] and not kp[3:].any()
    assert DataConfig(pose_frames=32).pose_frames == 32
    with pytest.raises(VidcatError, match=r"^--pose-frames must be >= 0, not -1$"):
        DataConfig(pose_frames=-1)


# -- real encoded clips -----------------------------------------------------------------------------
@needs_pose
def test_loader_and_module_on_an_encoded_clip_hit_the_spread_frames_cache(tmp_path, cache):
    from vidcat.config import DataConfig
    from vidcat.data.dataset import VideoClips, collate
    from vidcat.data.manifest import Dataset, Item
    from vidcat.data.synth_media import mux_av
    from vidcat.io import pose

    rng = np.random.default_rng(0)
    paths = [mux_av(tmp_path / f"noise{n}.mp4", rng.integers(0, 256, (n, 72, 96, 3), dtype=np.uint8), fps=12)
             for n in (20, 5)]
    cfg = DataConfig(modalities=("pose",), pose_hands=True, pose_frames=8)
    clips = VideoClips(Dataset([Item(str(p), ["a"]) for p in paths], ["a"]), cfg)
    batch = collate([clips[0], clips[1]])
    assert batch["pose_raw"].shape == (2, 8, 75, 4) and batch["pose_frames"].shape == (2, 8)
    assert batch["pose"].shape == (2, 8, 75, 4) and batch["pose_mask"].tolist() == [0.0, 0.0]
    assert batch["pose_hand_frames"].tolist() == [[0.0] * 8] * 2 and batch["pose_aspect"].tolist() == pytest.approx([96 / 72] * 2)
    before = dict(pose.COUNTERS)
    pose.pose_keypoints(paths[0], frames=8, hands=True)   # what the pose cache holds for 8 spread frames
    assert pose.COUNTERS["computed"] == before["computed"] and pose.COUNTERS["cached"] == before["cached"] + 1
    f, present = PoseFeatures()(batch)
    assert present.tolist() == [0.0, 0.0] and not f.any()


@needs_pose
def test_loader_on_a_person_clip(shared_data, cache):
    from vidcat.config import DataConfig
    from vidcat.data.modalities import get_modality
    from vidcat.io.pose import pose_keypoints
    from vidcat.io.video import probe

    clip = sorted((shared_data / "ud810-actions").glob("*.avi"))[0]
    info = probe(clip)
    cfg = DataConfig(modalities=("pose",), pose_hands=True, pose_frames=6)
    ctx = SimpleNamespace(item=SimpleNamespace(path=str(clip)), info=info, indices=[0, 1], cfg=cfg, flip=False)
    load = get_modality("pose").load
    s, flipped = load(ctx), load(SimpleNamespace(**{**vars(ctx), "flip": True}))
    kp, mask = pose_keypoints(clip, frames=6, hands=True)
    aspect = info.width / info.height
    assert s["pose_raw"].shape == (6, 75, 4) and s["pose_mask"] == 1.0 and mask.sum() >= 5
    body = torch.from_numpy(kp[mask > 0, :N_BODY])
    assert torch.allclose(s["pose_raw"][mask > 0, :N_BODY, 0], body[..., 0] * aspect)
    assert torch.allclose(s["pose_raw"][mask > 0, :N_BODY, 1], body[..., 1])
    batch = {k: torch.stack([v[k] for v in (s, flipped)]) if k != "pose_mask" else torch.ones(2)
             for k in ("pose_raw", "pose_frames", "pose_mask")}
    module = PoseFeatures()
    f, present = module(batch)
    assert present.tolist() == [1.0, 1.0] and torch.isfinite(f).all()
    assert torch.allclose(f[0, :module.canonical_dim], f[1, :module.canonical_dim], atol=1e-4)


HANDS_JOB = '''
import numpy as np


def hands(module, seed):
    from vidcat.io.pose import HandDetector
    out, detector = np.zeros((75, 4), np.float32), HandDetector(video=False)
    detector.fill(np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8), out)
    detector.close()
    return seed
'''

HANDS_RUN = '''
import torch
from hands_job import hands
from vidcat.featurefit.pool import ClipPool

if __name__ == "__main__":
    hands(None, 7)      # MediaPipe has run here, as the plan's probe runs it before the streams are extracted
    with ClipPool(1, {"x": torch.nn.Identity()}) as pool:
        print(sorted(pool.map(hands, "x", [(0,), (1,)], lost=lambda task: "lost")))
'''


@needs_pose
def test_clip_workers_run_mediapipe_after_their_parent_did(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "hands_job.py").write_text(HANDS_JOB)
    (tmp_path / "run.py").write_text(HANDS_RUN)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), root])}
    out = subprocess.run([sys.executable, str(tmp_path / "run.py")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[0, 1]"      # a forked worker aborted in malloc: ['lost', 'lost']
