"""Body (and hand) keypoints of a video's frames, from the MediaPipe models that ship in the
``mediapipe==0.10.21`` wheel (``pip install 'vidcat[pose]'``); torch-free.

* :func:`pose_keypoints` -- raw landmarks of chosen frames, ``(T, K, 4)`` float32 (image-normalised
  x, y in [0, 1], z, visibility) plus a ``(T,)`` missing-person mask (1 = a body was found). K is
  33 body landmarks, or 33 + 2 x 21 with ``hands=True`` (hand points carry x, y, z and 1/0 presence
  in the 4th channel). :func:`pose_record` also gives the ``(T,)`` hands-found mask: with ``hands=True``
  a frame without a body (first-person footage: hands, no body) gets its hands from the whole-frame
  hand detector. Cached per (file content, frame indices, options) in ``Store("pose", 1)``, so a
  second run -- or a resumed batch -- reads instead of running the models.
* :func:`normalise` -- centred on the hip midpoint, scaled by the torso length (shoulder midpoint to
  hip midpoint), so keypoints are independent of where the person stands and how large they appear.
* :func:`pose_features` -- one fixed-length vector per video (mean, std and mean |frame-to-frame
  change| of the normalised keypoints over time, plus mean visibility and the fraction of frames with
  a person): the pooled-keypoint-statistics feature for a linear classifier.
* :func:`extract_many` -- fills the cache for many files in worker processes (one entry per file, so
  an interrupted run resumes where it stopped).
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from vidcat.errors import VidcatError
from vidcat.io.store import Store, atomic_path, content_key

NEEDS = "the pose modality needs: pip install 'vidcat[pose]'"
N_BODY, N_HAND = 33, 21
STORE_VERSION = 1
# mediapipe BlazePose landmark indices
L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 11, 12, 23, 24
BODY_EDGES = ((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
              (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22),
              (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30),
              (29, 31), (30, 32), (27, 31), (28, 32))
HAND_EDGES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))
# left/right mirror of the body landmarks (for horizontal flips)
BODY_MIRROR = (0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25,
               28, 27, 30, 29, 32, 31)
BODY_WRIST_L, BODY_WRIST_R = 15, 16


def num_joints(hands: bool = False) -> int:
    return N_BODY + (2 * N_HAND if hands else 0)


def edges(hands: bool = False) -> list[tuple[int, int]]:
    """Skeleton edges over :func:`num_joints` joints; hands hang off the body's wrists."""
    out = list(BODY_EDGES)
    if hands:
        for h, wrist in ((0, BODY_WRIST_L), (1, BODY_WRIST_R)):
            base = N_BODY + h * N_HAND
            out += [(base + a, base + b) for a, b in HAND_EDGES] + [(wrist, base)]
    return out


def mirror_index(hands: bool = False) -> list[int]:
    idx = list(BODY_MIRROR)
    if hands:
        idx += list(range(N_BODY + N_HAND, N_BODY + 2 * N_HAND)) + list(range(N_BODY, N_BODY + N_HAND))
    return idx


def available() -> bool:
    try:
        _mediapipe()
        return True
    except VidcatError:
        return False


@lru_cache(maxsize=1)
def _mediapipe():
    """Import the legacy ``mediapipe.solutions`` API, patched for newer protobuf runtimes.

    mediapipe 0.10.21 was built against protobuf 4; with protobuf >= 5 two Python-level calls it makes
    are gone (``MessageFactory.GetPrototype``, ``FieldDescriptor.label``). Both are restored here for
    mediapipe only (``GetMessageClass``, ``is_repeated``) instead of downgrading protobuf for the whole
    environment.
    """
    try:
        import inspect
        import textwrap

        from google.protobuf import message_factory

        if not hasattr(message_factory.MessageFactory, "GetPrototype"):  # before mediapipe's bindings load
            message_factory.MessageFactory.GetPrototype = lambda self, d: message_factory.GetMessageClass(d)
        from mediapipe.python import solution_base as sb
        from mediapipe.python.solutions import hands as mp_hands
        from mediapipe.python.solutions import holistic as mp_holistic
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError:
        raise VidcatError(NEEDS) from None
    if not getattr(sb.SolutionBase, "_vidcat_patched", False):
        from google.protobuf import descriptor

        if not hasattr(descriptor.FieldDescriptor, "label") or _needs_label_patch():
            src = textwrap.dedent(inspect.getsource(sb.SolutionBase._modify_calculator_options))
            src = src.replace("field_name].label", "field_name].is_repeated").replace(
                "field_label == descriptor.FieldDescriptor.LABEL_REPEATED", "field_label")
            ns: dict = {}
            exec(compile(src, sb.__file__, "exec"), sb.__dict__, ns)  # noqa: S102 (mediapipe's own code)
            sb.SolutionBase._modify_calculator_options = ns["_modify_calculator_options"]
        sb.SolutionBase._vidcat_patched = True
    return mp_pose, mp_holistic, mp_hands


def _needs_label_patch() -> bool:
    try:
        from mediapipe.framework import calculator_pb2

        calculator_pb2.CalculatorGraphConfig.DESCRIPTOR.fields_by_name["node"].label  # noqa: B018
        return False
    except AttributeError:
        return True


class Landmarks(NamedTuple):
    """One frame's landmarks ``(K, 4)``, whether a body was found and whether a hand was found."""

    kp: np.ndarray
    body: bool
    hands: bool


# MediaPipe Hands names handedness as if the image were mirrored (a selfie camera); video is not mirrored,
# so its "Right" is the person's left hand (slot 0, as Holistic's left_hand_landmarks). Checked against
# Holistic, whose hands hang off the body's own wrists: on frontal signers the swapped label named the same
# hand in 20 of 21 cases, and on hand crops with no body in view in 13 of 14. First-person footage has no
# body to check against: there the label comes from the hand's appearance alone.
HANDS_LABEL_SLOT = {"Right": 0, "Left": 1}


@contextmanager
def _native_logs_silenced():
    """File descriptor 2 to the null device inside the block: MediaPipe's C++ side logs from its own threads
    (XNNPACK delegate and feedback tensors at set-up, ROI projection notes on later frames) -- lines that tell
    a user nothing, and that Python cannot turn off."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _Quiet:
    """A MediaPipe solution made by ``make()``, built and run with its native logs silenced (each call waits
    for the graph's threads, so their lines fall inside the block)."""

    def __init__(self, make):
        with _native_logs_silenced():
            self.model = make()
            self.model.process(np.zeros((64, 64, 3), np.uint8))    # the graph opens its models in its threads

    def process(self, rgb: np.ndarray):
        with _native_logs_silenced():
            return self.model.process(rgb)

    def close(self) -> None:
        with _native_logs_silenced():
            self.model.close()


class PoseEstimator:
    """MediaPipe Pose -- or, with ``hands``, MediaPipe Holistic -- on RGB uint8 frames: :class:`Landmarks`.

    Holistic crops each hand around the wrist that the body model found and runs the hand model on the
    crop, so it finds the small hands of a person a few metres away that a whole-frame hand detector
    misses -- and finds no hand where it finds no body. So with ``hands``, a frame without a body goes to
    MediaPipe Hands (whole-frame palm detector + hand landmarks; first-person footage shows hands, no body),
    and only such frames: the cost is bounded by one hand-model pass per frame. ``video=True`` tracks
    across consecutive calls (faster, steadier); unrelated frames are detected afresh either way."""

    def __init__(self, hands: bool = False, complexity: int = 1, video: bool = True, min_confidence: float = 0.5):
        mp_pose, mp_holistic, _ = _mediapipe()
        self.hands, self.video, self.complexity, self.min_confidence = hands, video, complexity, min_confidence
        make = mp_holistic.Holistic if hands else mp_pose.Pose
        self.model = _Quiet(lambda: make(
            static_image_mode=not video, model_complexity=complexity, smooth_landmarks=False,
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence))
        self._hand_model = None   # made on the first frame without a body

    def __call__(self, rgb: np.ndarray) -> Landmarks:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        out = np.zeros((num_joints(self.hands), 4), np.float32)
        r = self.model.process(rgb)
        found = r.pose_landmarks is not None
        if found:
            out[:N_BODY] = [(p.x, p.y, p.z, p.visibility) for p in r.pose_landmarks.landmark]
        if self.hands:   # Holistic's left/right are the person's, as the body landmarks' are
            for slot, lm in enumerate((r.left_hand_landmarks, r.right_hand_landmarks)):
                if lm is not None:
                    _fill_hand(out, slot, lm)
            if not found:
                self._hands_without_body(rgb, out)
        return Landmarks(out, found, bool(self.hands and out[N_BODY:, 3].any()))

    def _hands_without_body(self, rgb: np.ndarray, out: np.ndarray) -> None:
        """The whole-frame hand detector's hands in ``out``'s hand slots (made on the first call)."""
        if self._hand_model is None:
            self._hand_model = HandDetector(self.complexity, self.video, self.min_confidence)
        self._hand_model.fill(rgb, out)

    def close(self) -> None:
        self.model.close()
        if self._hand_model is not None:
            self._hand_model.close()


class HandDetector:
    """MediaPipe Hands on whole RGB uint8 frames (palm detector, then the hand landmark model): the hands of
    frames where no body was found. ``video=True`` tracks across consecutive calls."""

    def __init__(self, complexity: int = 1, video: bool = True, min_confidence: float = 0.5):
        mp_hands = _mediapipe()[2]
        self.model = _Quiet(lambda: mp_hands.Hands(
            static_image_mode=not video, max_num_hands=2, model_complexity=min(int(complexity), 1),
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence))

    def fill(self, rgb: np.ndarray, out: np.ndarray) -> None:
        """Fill the empty hand slots of ``out`` (K, 4) with the hands found in ``rgb``: the slot of each
        hand's label (:data:`HANDS_LABEL_SLOT`); two hands with one label, the less sure one takes the other."""
        r = self.model.process(np.ascontiguousarray(rgb, dtype=np.uint8))
        found = [(h.classification[0], lm) for h, lm in zip(r.multi_handedness or (), r.multi_hand_landmarks or ())]
        for label, lm in sorted(found, key=lambda f: -f[0].score):
            slot = HANDS_LABEL_SLOT.get(label.label, 1)
            free = [s for s in (slot, 1 - slot) if out[N_BODY + s * N_HAND, 3] == 0]
            if free:
                _fill_hand(out, free[0], lm)

    def close(self) -> None:
        self.model.close()


def _fill_hand(out: np.ndarray, slot: int, landmarks) -> None:
    base = N_BODY + slot * N_HAND
    out[base:base + N_HAND] = [(p.x, p.y, p.z, 1.0) for p in landmarks.landmark]


def _frame_indices(path, frames) -> list[int]:
    """``frames``: an int (that many frames evenly spread over the video), a sequence of indices, or
    None (every frame)."""
    from vidcat.io.video import probe

    if frames is None or isinstance(frames, (int, np.integer)):
        n = max(int(probe(path).num_frames or 0), 1)
        if frames is None or int(frames) >= n:
            return list(range(n))
        return [int(i) for i in np.linspace(0, n - 1, int(frames)).round().astype(int)]
    return [int(i) for i in frames]


def _store(root=None) -> Store:
    return Store("pose", version=STORE_VERSION, root=root)


MODEL_BODY = "mediapipe-0.10.21"
MODEL_HOLISTIC = "mediapipe-0.10.21-holistic"              # entries from before the hand fallback
MODEL_HOLISTIC_HANDS = "mediapipe-0.10.21-holistic+hands"  # rows: [body found, hands found, K x 4]


def cache_key(path, indices, hands: bool = False, complexity: int = 1, store: Store | None = None,
              model: str | None = None) -> str:
    model = model or (MODEL_HOLISTIC_HANDS if hands else MODEL_BODY)
    return (store or _store()).key({"content": content_key(path), "indices": list(indices), "hands": bool(hands),
                                    "complexity": int(complexity), "model": model})


COUNTERS = {"computed": 0, "cached": 0, "upgraded": 0}   # per process: entries computed, read, completed
_CHUNK = 32                                              # frames decoded at once


class PoseRecord(NamedTuple):
    """Landmarks ``(T, K, 4)`` of a video's frames and two ``(T,)`` float32 masks: body found, hand found
    (by Holistic next to the body, or by the whole-frame hand detector where there is no body)."""

    kp: np.ndarray
    body: np.ndarray
    hands: np.ndarray


def pose_record(path, frames=None, hands: bool = False, complexity: int = 1, cache: bool = True,
                root=None) -> PoseRecord:
    """The landmarks and both masks of ``frames`` of ``path`` (see :func:`pose_keypoints`); the hands mask
    is all zeros without ``hands``."""
    indices = _frame_indices(path, frames)
    store = _store(root)
    key = cache_key(path, indices, hands, complexity, store) if cache else None
    if key is not None:
        hit = store.get(key)
        if hit is None and hands:
            hit = _upgraded(path, indices, complexity, store)
            if hit is not None:
                store.put(key, hit, meta={"indices": len(indices), "hands": True})
        if hit is not None:
            COUNTERS["cached"] += 1
            return _split(hit, hands)
    packed = _compute(path, indices, hands, complexity)
    COUNTERS["computed"] += 1
    if key is not None:
        store.put(key, packed, meta={"indices": len(indices), "hands": bool(hands)})
    return _split(packed, hands)


def pose_keypoints(path, frames=None, hands: bool = False, complexity: int = 1, cache: bool = True,
                   root=None) -> tuple[np.ndarray, np.ndarray]:
    """Raw landmarks ``(T, K, 4)`` and body mask ``(T,)`` of ``frames`` of ``path`` (see module doc).

    ``frames``: None (all), an int (evenly spread) or explicit indices. Unreadable frames count as
    missing (mask 0); an unreadable file raises :class:`~vidcat.errors.VideoError`."""
    rec = pose_record(path, frames, hands, complexity, cache, root)
    return rec.kp, rec.body


def _compute(path, indices, hands: bool, complexity: int) -> np.ndarray:
    """Rows ``[body found, (hands found,) K x 4 landmarks]`` of ``indices``, a chunk of frames decoded at a time
    (memory independent of length)."""
    from vidcat.io.video import read_frames

    est = PoseEstimator(hands=hands, complexity=complexity, video=_consecutive(indices))
    flags = 2 if hands else 1
    packed = np.zeros((len(indices), flags + num_joints(hands) * 4), np.float32)
    try:
        for c0 in range(0, len(indices), _CHUNK):
            rgb = read_frames(path, indices[c0:c0 + _CHUNK])
            for t, img in enumerate(rgb[:_CHUNK], c0):
                lm = est(img)
                packed[t, :flags] = (lm.body, lm.hands)[:flags]
                packed[t, flags:] = lm.kp.reshape(-1)
    finally:
        est.close()
    return packed


def _upgraded(path, indices, complexity: int, store: Store) -> np.ndarray | None:
    """A cached Holistic entry from before the hand fallback, completed: the same Holistic rows, plus the
    whole-frame hand detector on its frames without a body (in the same order and mode as a fresh run, so the
    same result without running Holistic again). None when there is no such entry."""
    old = store.get(cache_key(path, indices, True, complexity, store, model=MODEL_HOLISTIC))
    K4 = num_joints(True) * 4
    if old is None or old.shape != (len(indices), 1 + K4):
        return None
    from vidcat.io.video import read_frames

    packed = np.zeros((len(old), 2 + K4), np.float32)
    packed[:, 0], packed[:, 2:] = old[:, 0], old[:, 1:]
    todo = [t for t in range(len(old)) if old[t, 0] == 0]
    if todo:
        detector = HandDetector(complexity, video=_consecutive(indices))
        try:
            for c0 in range(0, len(todo), _CHUNK):
                rows = todo[c0:c0 + _CHUNK]
                for t, img in zip(rows, read_frames(path, [indices[t] for t in rows])):
                    kp = packed[t, 2:].reshape(-1, 4)
                    detector.fill(img, kp)
        finally:
            detector.close()
    packed[:, 1] = packed[:, 2:].reshape(len(old), -1, 4)[:, N_BODY:, 3].max(1) > 0
    COUNTERS["upgraded"] += 1
    return packed


def _consecutive(indices) -> bool:
    return len(indices) > 1 and max(np.diff(indices)) <= 2


def _split(packed: np.ndarray, hands: bool) -> PoseRecord:
    """Rows of one or two flags (older entries and body-only ones: one) then ``K x 4`` landmarks."""
    K = num_joints(hands)
    flags = packed.shape[1] - K * 4
    kp = packed[:, flags:].reshape(len(packed), K, 4).copy()
    hand = packed[:, 1].copy() if flags > 1 else np.zeros(len(packed), np.float32)
    return PoseRecord(kp, packed[:, 0].copy(), hand)


def normalise(kp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Centre each frame on its hip midpoint and divide x, y, z by the torso length (shoulder midpoint to
    hip midpoint, in x-y); missing frames (mask 0) become all zeros. Visibility is kept as it is."""
    kp = np.asarray(kp, np.float32).copy()
    mask = np.asarray(mask, np.float32)
    hip = (kp[:, L_HIP, :3] + kp[:, R_HIP, :3]) / 2
    shoulder = (kp[:, L_SHOULDER, :3] + kp[:, R_SHOULDER, :3]) / 2
    torso = np.linalg.norm((shoulder - hip)[:, :2], axis=1)
    torso = np.where(torso > 1e-4, torso, 1.0)[:, None, None]
    xyz = (kp[..., :3] - hip[:, None, :]) / torso
    if kp.shape[1] > N_BODY:  # absent hands stay 0 rather than jumping to minus the hip
        xyz[:, N_BODY:] *= (kp[:, N_BODY:, 3:4] > 0)
    kp[..., :3] = xyz
    kp *= (mask > 0)[:, None, None]
    return kp


def feature_vector(kp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pooled statistics of already-normalised keypoints ``(T, K, 4)`` with mask ``(T,)``:
    ``[mean xyz (K*3), std xyz (K*3), mean |Δxyz| between consecutive present frames (K*3),
    mean visibility (K), fraction of frames with a person (1)]`` -> float32 ``(10K + 1,)``.
    No person in any frame gives all zeros."""
    K = kp.shape[1]
    present = np.asarray(mask) > 0
    out = np.zeros(10 * K + 1, np.float32)
    if not present.any():
        return out
    x = kp[present]
    xyz = x[..., :3].reshape(len(x), -1)
    out[:3 * K] = xyz.mean(0)
    out[3 * K:6 * K] = xyz.std(0)
    if len(x) > 1:
        out[6 * K:9 * K] = np.abs(np.diff(xyz, axis=0)).mean(0)
    out[9 * K:10 * K] = x[..., 3].mean(0)
    out[-1] = present.mean()
    return out


def pose_features(path, frames=32, hands: bool = False, cache: bool = True, root=None) -> np.ndarray:
    """One float32 vector per video for a linear classifier: :func:`feature_vector` of the
    :func:`normalise`-d keypoints of ``frames`` (int: that many evenly spread frames; or indices;
    None: all). Length ``10 * K + 1`` (331 body-only, 751 with hands). Torch-free, cached."""
    kp, mask = pose_keypoints(path, frames=frames, hands=hands, cache=cache, root=root)
    return feature_vector(normalise(kp, mask), mask)


def _extract_one(args):
    path, frames, hands, root = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        rec = pose_record(path, frames=frames, hands=hands, root=root)
        found = np.maximum(rec.body, rec.hands)
        return str(path), float(found.mean()) if len(found) else 0.0, None
    except Exception as e:  # one bad file never stops the batch
        return str(path), None, f"{type(e).__name__}: {e}"


def extract_many(paths, frames=32, hands: bool = False, workers: int | None = None, root=None,
                 progress=None) -> dict[str, float | str]:
    """Fill the pose cache for ``paths`` in ``workers`` processes (default: every core). Returns
    ``{path: fraction of frames with a body or a hand, or an error line}``. Entries already cached are only
    read, so re-running after an interruption continues where it stopped."""
    from vidcat.config.extras import require

    require("pose")
    paths = [str(p) for p in paths]
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    results: dict[str, float | str] = {}
    jobs = [(p, frames, hands, root) for p in paths]
    if workers == 1:
        outs = map(_extract_one, jobs)
    else:
        import multiprocessing

        # spawn: a forked child of a process that already ran mediapipe's graphs crashes (malloc)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        outs = (f.result() for f in as_completed([pool.submit(_extract_one, j) for j in jobs]))
    try:
        for i, (p, frac, err) in enumerate(outs, 1):
            results[p] = err if err else frac
            if progress:
                progress(i, len(paths), p)
    finally:
        if workers > 1:
            pool.shutdown()
    return results


# -- drawing ----------------------------------------------------------------------------------------
def draw_skeleton(rgb: np.ndarray, kp: np.ndarray, found: bool, hands: bool = False,
                  min_visibility: float = 0.3) -> np.ndarray:
    """A copy of ``rgb`` with the raw landmarks ``kp`` (K, 4) drawn (cv2): bones green, joints red,
    hands blue; a 'no person' label when nothing was found (``found``: a body or a hand)."""
    import cv2

    img = np.ascontiguousarray(rgb).copy()
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 160))
    if not found:
        cv2.putText(img, "no person", (8, 8 + 12 * thick), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (255, 64, 64),
                    thick, cv2.LINE_AA)
        return img
    pts = [(int(round(x * w)), int(round(y * h))) for x, y in kp[:, :2]]
    vis = kp[:, 3]
    for a, b in edges(hands and kp.shape[0] > N_BODY):
        if vis[a] >= min_visibility and vis[b] >= min_visibility:
            colour = (64, 128, 255) if a >= N_BODY or b >= N_BODY else (0, 255, 0)
            cv2.line(img, pts[a], pts[b], colour, thick, cv2.LINE_AA)
    for i, p in enumerate(pts):
        if vis[i] >= min_visibility:
            cv2.circle(img, p, thick + 1, (255, 0, 0) if i < N_BODY else (64, 128, 255), -1, cv2.LINE_AA)
    return img


def write_overlay(path, out, frames=None, hands: bool = False, max_frames: int = 300, tiles: int = 4) -> dict:
    """Draw the skeleton on ``path``'s frames and write ``out``: a video (.mp4/.avi/.mkv/.webm, the
    frames at the source rate) or an image (.png/.jpg: a row of ``tiles`` frames spread over the clip).
    Returns ``{"out", "frames", "found" (frames with a body), "hands_only" (with hands but no body)}``."""
    import av
    import cv2

    from vidcat.io.store import atomic_open
    from vidcat.io.video import probe, read_frames

    out = str(out)
    image = out.lower().endswith((".png", ".jpg", ".jpeg"))
    if frames is None:
        info = probe(path)
        n = max(int(info.num_frames or 0), 1)
        frames = min(n, tiles) if image else min(n, max_frames)
    indices = _frame_indices(path, frames)
    rec = pose_record(path, frames=indices, hands=hands)
    rgb = read_frames(path, indices)
    found = np.maximum(rec.body, rec.hands)
    drawn = [draw_skeleton(img, k, m > 0, hands) for img, k, m in zip(rgb, rec.kp, found)]
    if image:
        target_h = min(360, drawn[0].shape[0])
        row = np.concatenate([cv2.resize(d, (round(d.shape[1] * target_h / d.shape[0]), target_h)) for d in drawn], 1)
        ok, buf = cv2.imencode(os.path.splitext(out)[1], cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        if not ok:
            raise VidcatError(f"pose: cannot encode {out}")
        with atomic_open(out) as f:
            f.write(buf.tobytes())
    else:
        rate = probe(path).fps or 25
        step = max(1, int(np.median(np.diff(indices)))) if len(indices) > 1 else 1
        h, w = (d + d % 2 for d in drawn[0].shape[:2])
        suffix = os.path.splitext(out)[1]
        with atomic_path(out) as tmp, av.open(str(tmp), "w") as c:
            s = c.add_stream("libx264" if suffix != ".webm" else "libvpx-vp9", rate=max(1, round(rate / step)))
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for d in drawn:
                if d.shape[:2] != (h, w):
                    d = np.pad(d, ((0, h - d.shape[0]), (0, w - d.shape[1]), (0, 0)))
                for p in s.encode(av.VideoFrame.from_ndarray(d, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    return {"out": out, "frames": len(indices), "found": int((rec.body > 0).sum()),
            "hands_only": int(((rec.hands > 0) & (rec.body == 0)).sum())}
