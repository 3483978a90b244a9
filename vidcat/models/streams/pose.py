"""The pose stream: MediaPipe Holistic keypoints (33 body + 2 x 21 hand landmarks) of a clip's frames turned
into one fixed-length vector for a linear classifier, the hand-crafted skeleton features that published
pose-based gesture and sign classifiers use.

Design, in the order :meth:`PoseFeatures.forward` applies it:

* **Body frame.** Joints are centred on each frame's shoulder midpoint and divided by the clip's median
  shoulder width (x and y in one unit: the loader's ``pose_raw`` has x times width / height). A person
  turned sideways or whose shoulders are unsure uses 0.7 x the shoulder-to-hip length when larger, so the
  scale follows body size, not distance to the camera or frame shape. Head, arms and the body model's own
  coarse hand points carry sign and command gestures (the latter also for people too far away for the hand
  model); hips, knees and ankles are kept for full-body gestures.
* **Dominant hand.** The hand that is found more often, moves more and is raised higher is the dominant
  one; a clip whose dominant hand is the person's left is mirrored (x -> -x, left and right swapped), so a
  left-handed signer matches a right-handed one. What that removes (which side moved) comes back in a small
  *lateral* block at the end of the vector (un-mirrored wrists and elbows, the handedness flag), so
  "point left" and "point right" stay apart.
* **Hand shape.** Each hand's 21 points relative to its wrist and divided by its size (wrist to
  middle-finger knuckle, in 3-D), the cosines of its 15 finger-joint angles, fingertip-to-fingertip and
  fingertip-to-wrist distances, the palm's normal, its wrist's place in the body frame, and whether it was
  found: invariant to where the hand is and how large it appears.
* **Hands without a body.** First-person footage (a camera on the head or in the other hand) shows hands
  and no body: the loader's ``pose_hand_frames`` marks the frames with a hand, found there by the
  whole-frame hand detector. Such frames count as present; their body values are masked (not seen), their
  hand shapes are used, and each hand's place comes from the image -- wrist and palm centre relative to the
  frame's centre, and size, in frame heights (``pose_aspect`` locates the centre) -- in a block of its own
  (with the share of such frames), mirrored with the clip (the wrists also un-mirrored in the lateral block),
  so it never poses as the body frame.
* **Time.** Each per-frame value is averaged in ``bins`` equal parts of the present frames (the gesture's
  temporal shape, whatever the video's length) and summarised by mean, std, min, max and the mean absolute
  and std of its frame-to-frame change. A value counts only in the frames where it was seen (a hand only
  where it was found; a bin without it takes the clip's mean), so detection gaps are not read as motion.

Frames with neither a body nor a hand are left out; a clip with none gives ``present`` 0 and zeros. Every
division is guarded and the per-frame values are clipped, so no input (all zeros, one frame, no hands) gives
NaN or inf. Parameter-free torch ops: runs wherever the batch is (CPU or CUDA). 2620 numbers with the
defaults; a clip with bodies only gives version 1's 2499 numbers in their places and zeros in the new ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vidcat.io.pose import BODY_MIRROR, N_BODY, N_HAND
from vidcat.models.streams.base import StreamFeatures, batch_size, present_of

EPS = 1e-6
MIN_SCALE = 1e-3          # frame heights: below this a body or hand size is noise
RANGE = 10.0              # frame heights: raw coordinates beyond this are broken input
CLIP = 30.0               # per-frame values are clipped to +- this (body or hand sizes)
L_SH, R_SH, L_EL, R_EL, L_WR, R_WR, L_HIP, R_HIP, NOSE = 11, 12, 13, 14, 15, 16, 23, 24, 0
# nose, eyes, ears (where the head turns), shoulders, elbows, wrists, the body model's coarse hand points (a
# hand's pose where the hand model finds no hand: people far away), hips, knees, ankles
BODY_JOINTS = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28)
LATERAL_JOINTS = (13, 14, 15, 16)                                   # elbows, wrists: which side moved
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
TIPS = (4, 8, 12, 16, 20)
TIP_PAIRS = tuple((a, b) for i, a in enumerate(TIPS) for b in TIPS[i + 1:])
ANGLES = tuple(t for f in FINGERS for t in zip((0,) + f[:2], f[:3], f[1:]))  # (previous, joint, next) x 15
VISIBLE = 0.5             # a body landmark counts as seen above this visibility
BODY_DIM = 2 * len(BODY_JOINTS) + 5           # positions, 2 elbow angles, 2 wrist-nose, wrist-wrist
HAND_DIM = 20 * 3 + len(ANGLES) + len(TIP_PAIRS) + len(TIPS) + 3 + 2 + 1
FRAME_DIM = BODY_DIM + 2 * HAND_DIM
PALM = (0, 5, 9, 13, 17)                      # wrist and knuckles: the palm
IMAGE_DIM = 2 * 5                             # per hand, in frames without a body: image wrist, palm centre, size
LATERAL_IMAGE_DIM = 2 * 2                     # both image wrists, un-mirrored


class PoseFeatures(StreamFeatures):
    """Skeleton features of ``batch["pose_raw"]`` (B, T, K, 4) (``batch["pose"]`` when absent), K = 33 or
    75, with ``batch["pose_frames"]`` (B, T) (body found), ``batch["pose_hand_frames"]`` (B, T) (hand found;
    none when absent), ``batch["pose_aspect"]`` (B,) (1 when absent) and ``batch["pose_mask"]`` (B,); see
    the module doc.

    Layout: ``[(bins + 6) x FRAME_DIM pooled per-frame values | person fraction, 2 hand fractions,
    body-joint visibilities | (bins + 6) x IMAGE_DIM pooled image places of hands without a body, their
    share | lateral block]``; the last :attr:`lateral_dim` entries change under mirroring (un-mirrored
    wrists and elbows, the handedness flag, 2 hand fractions, un-mirrored image wrists)."""

    name = "pose"
    reads = ("pose",)
    version = 2
    data_settings = {"pose_frames": 32, "pose_hands": True}   # 32 frames over the clip; Holistic's hands
    data_keys = ("pose_frames", "pose_hands")

    def __init__(self, bins: int = 4, lateral: bool = True):
        super().__init__()
        if int(bins) < 1:
            raise ValueError(f"bins must be >= 1, not {bins}")
        self.bins, self.lateral = int(bins), bool(lateral)
        self.lateral_dim = (self.bins + 1) * (2 * len(LATERAL_JOINTS) + LATERAL_IMAGE_DIM) + 3 if self.lateral else 0
        self.canonical_dim = (self.bins + 6) * (FRAME_DIM + IMAGE_DIM) + 4 + len(BODY_JOINTS)
        self.feat_dim = self.canonical_dim + self.lateral_dim

    def spec(self) -> dict:
        return {**super().spec(), "bins": self.bins, "lateral": self.lateral}

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        key = "pose_raw" if "pose_raw" in batch else "pose"
        n = batch_size(batch, key)
        kp = torch.nan_to_num(torch.as_tensor(batch[key]).float())
        kp = torch.cat([kp[..., :3].clamp(-RANGE, RANGE), kp[..., 3:]], -1)
        known = (present_of(batch, "pose", n).to(kp.device) > 0).float()[:, None]
        body = _frame_mask(batch.get("pose_frames"), kp, 1.0) * known
        hand = _frame_mask(batch.get("pose_hand_frames"), kp, 0.0) * known
        m = torch.maximum(body, hand)
        present = (m.sum(1) > 0).float()
        aspect = batch.get("pose_aspect")
        aspect = torch.ones(n) if aspect is None else torch.as_tensor(aspect, dtype=torch.float32).reshape(n)
        kp = _with_hands(kp)
        feats = self._clip_features(kp, body, m, torch.nan_to_num(aspect.to(kp.device), 1.0, 1.0, 1.0))
        return torch.nan_to_num(feats * present[:, None], 0.0, 0.0, 0.0).float(), present

    def _clip_features(self, kp: torch.Tensor, b: torch.Tensor, m: torch.Tensor, aspect: torch.Tensor) -> torch.Tensor:
        """(B, T, 75, 4) raw keypoints, (B, T) body frames ``b`` within present frames ``m``, (B,) aspect."""
        body, hands = kp[:, :, :N_BODY], kp[:, :, N_BODY:].reshape(*kp.shape[:2], 2, N_HAND, 4)
        centre = (body[..., L_SH, :2] + body[..., R_SH, :2]) / 2 * b[..., None]    # (B, T, 2); 0 without a body
        scale = body_scale(body, b)                                                  # (B,)
        bxy = (body[..., :2] - centre[:, :, None]) / scale[:, None, None, None]     # (B, T, 33, 2)
        hpts = hands[..., :3].clone()
        hpts[..., :2] = (hpts[..., :2] - centre[:, :, None, None]) / scale[:, None, None, None, None]
        hpts[..., 2] = hpts[..., 2] / scale[:, None, None, None]
        hseen = (hands[..., 0, 3] > 0).float() * m[..., None]                      # (B, T, 2)
        image = image_places(hands, aspect)                                          # (B, T, 2, 5)
        iseen = hseen * (m - b)[..., None]                                           # hands of frames without a body
        vis = body[..., 3]
        mirror = left_dominant(bxy, hseen, b, m, image[..., :2], iseen)
        lateral = bxy[:, :, list(LATERAL_JOINTS)].flatten(2)
        c_bxy, c_vis, c_hpts, c_hseen = _mirrored(bxy, vis, hpts, hseen, mirror)
        x = torch.cat([_body_frame(c_bxy), _hand_frame(c_hpts[:, :, 0], c_hseen[..., 0]),
                       _hand_frame(c_hpts[:, :, 1], c_hseen[..., 1])], -1).clamp(-CLIP, CLIP)
        w = torch.cat([b[..., None].expand(*b.shape, BODY_DIM)] + [
            torch.cat([c_hseen[..., h:h + 1].expand(*m.shape, HAND_DIM - 3), (c_hseen[..., h] * b)[..., None].expand(
                *m.shape, 2), m[..., None]], -1) for h in (0, 1)], -1)
        count = m.sum(1).clamp(min=1)
        clip = torch.cat([b.mean(1, keepdim=True), c_hseen.sum(1) / count[:, None],
                          (c_vis[:, :, list(BODY_JOINTS)] * b[..., None]).sum(1) / b.sum(1).clamp(min=1)[:, None]], -1)
        c_image, c_iseen = _mirrored_image(image, iseen, mirror)
        out = [pool(x, w, m, self.bins), clip, pool(c_image.flatten(2), c_iseen.repeat_interleave(5, -1), m, self.bins),
               ((m - b).sum(1) / count)[:, None]]
        if self.lateral:
            lw = b[..., None].expand_as(lateral)
            flag = 1 - 2 * mirror.float()
            wrists, ww = image[..., :2].flatten(2), iseen.repeat_interleave(2, -1)    # un-mirrored image wrists
            out += [binned(lateral.clamp(-CLIP, CLIP), lw, b, self.bins).flatten(1),
                    (lateral.clamp(-CLIP, CLIP) * lw).sum(1) / b.sum(1).clamp(min=1)[:, None], flag[:, None],
                    hseen.sum(1) / count[:, None], binned(wrists, ww, m, self.bins).flatten(1),
                    (wrists * ww).sum(1) / ww.sum(1).clamp(min=1)]
        return torch.cat(out, -1)


def _frame_mask(frames, kp: torch.Tensor, default: float) -> torch.Tensor:
    """(B, T) 0/1 per-frame mask from a batch entry (``default`` everywhere when absent)."""
    frames = torch.full(kp.shape[:2], default) if frames is None else torch.as_tensor(frames).float()
    return (frames.to(kp.device).reshape(kp.shape[:2]) > 0).float()


def image_places(hands: torch.Tensor, aspect: torch.Tensor) -> torch.Tensor:
    """(B, T, 2, 21, 4) raw hand points (x in frame heights), (B,) width / height -> (B, T, 2, 5): each hand's
    wrist and palm centre relative to the frame's centre and its size (wrist to middle-finger knuckle), in
    frame heights: where the hand is, and how near, when there is no body to place it against."""
    centre = torch.stack([aspect / 2, torch.full_like(aspect, 0.5)], -1)[:, None, None]   # (B, 1, 1, 2)
    wrist = hands[..., 0, :2] - centre
    palm = hands[..., list(PALM), :2].mean(-2) - centre
    size = (hands[..., 9, :2] - hands[..., 0, :2]).norm(dim=-1, keepdim=True)
    return torch.cat([wrist, palm, size], -1).clamp(-CLIP, CLIP)


def _mirrored_image(image: torch.Tensor, iseen: torch.Tensor, mirror: torch.Tensor):
    """:func:`image_places` and their weights of the clips flagged in ``mirror`` reflected (x -> -x, hands
    swapped)."""
    flipped = image.flip(2) * torch.tensor([-1.0, 1.0, -1.0, 1.0, 1.0], device=image.device)
    return (torch.where(mirror[:, None, None, None], flipped, image),
            torch.where(mirror[:, None, None], iseen.flip(2), iseen))


def _with_hands(kp: torch.Tensor) -> torch.Tensor:
    """(B, T, K, >=4) with K = 33 (body only) or 75 -> (B, T, 75, 4), absent hands as zeros."""
    kp = kp[..., :4]
    if kp.shape[2] >= N_BODY + 2 * N_HAND:
        return kp[:, :, :N_BODY + 2 * N_HAND]
    return F.pad(kp[:, :, :N_BODY], (0, 0, 0, 2 * N_HAND))


def body_scale(body: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per clip: median over person frames of the shoulder width, or 0.7 x the shoulder-to-hip length
    where that is larger and the hips are seen (turned bodies); hips alone when the shoulders are unsure."""
    sh = body[..., R_SH, :2] - body[..., L_SH, :2]
    torso = (body[..., L_SH, :2] + body[..., R_SH, :2] - body[..., L_HIP, :2] - body[..., R_HIP, :2]) / 2
    width, length = sh.norm(dim=-1), 0.7 * torso.norm(dim=-1)
    sh_ok = body[..., [L_SH, R_SH], 3].amin(-1) > VISIBLE
    hip_ok = body[..., [L_HIP, R_HIP], 3].amin(-1) > VISIBLE
    s = torch.where(hip_ok, torch.maximum(width, length), width)
    s = torch.where(sh_ok, s, length)
    ok = (sh_ok | hip_ok) & (m > 0)
    rough = torch.where(m > 0, torch.maximum(width, length), torch.full_like(width, float("nan")))
    s = torch.where(ok, s, torch.full_like(s, float("nan")))
    med = torch.nanmedian(s, dim=1).values
    med = torch.where(torch.isnan(med), torch.nanmedian(rough, dim=1).values, med)
    return torch.nan_to_num(med, nan=1.0).clamp(min=MIN_SCALE)


def left_dominant(bxy: torch.Tensor, hseen: torch.Tensor, b: torch.Tensor, m: torch.Tensor | None = None,
                  image: torch.Tensor | None = None, iseen: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) True where the person's left hand is the more active one: found more often (over the present
    frames ``m``), moving more (std of the wrist's place) and raised higher (above the shoulders), over the
    body frames ``b``; in frames without a body (``iseen``), moving more in the ``image``."""
    count = (b if m is None else m).sum(1).clamp(min=1)[:, None]
    bcount = b.sum(1).clamp(min=1)[:, None]
    wr = bxy[:, :, [L_WR, R_WR]]                                                   # (B, T, 2, 2)
    spread = _spread(wr, b[:, :, None].expand(*b.shape, 2), bcount)
    raised = (-wr[..., 1] * b[..., None]).sum(1) / bcount                          # y grows downwards
    score = hseen.sum(1) / count + spread.clamp(max=CLIP) + 0.25 * raised.clamp(-CLIP, CLIP)
    if image is not None:
        score = score + _spread(image, iseen, iseen.sum(1).clamp(min=1)).clamp(max=CLIP)
    return score[:, 0] > score[:, 1]


def _spread(xy: torch.Tensor, w: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B, T, 2, 2) places, (B, T, 2) 0/1 weights, (B, 2 or 1) counts -> (B, 2): each hand's std of x plus y."""
    w = w[..., None]
    mean = (xy * w).sum(1) / count[..., None]
    return (((xy - mean[:, None]) ** 2 * w).sum(1) / count[..., None]).clamp(min=0).sqrt().sum(-1)


def _mirrored(bxy, vis, hpts, hseen, mirror):
    """The body and hands of the clips flagged in ``mirror`` reflected (x -> -x, left and right swapped)."""
    idx = list(BODY_MIRROR)
    sel = mirror[:, None, None, None]
    bx = bxy[:, :, idx] * torch.tensor([-1.0, 1.0], device=bxy.device)
    hx = hpts.flip(2) * torch.tensor([-1.0, 1.0, 1.0], device=hpts.device)
    return (torch.where(sel, bx, bxy), torch.where(sel[..., 0], vis[:, :, idx], vis),
            torch.where(sel[..., None], hx, hpts), torch.where(sel[..., 0], hseen.flip(2), hseen))


def _cos(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1)).clamp(min=EPS)


def _body_frame(bxy: torch.Tensor) -> torch.Tensor:
    """(B, T, 33, 2) body-frame joints -> (B, T, BODY_DIM): chosen joints, elbow angles, hand distances."""
    j = lambda i: bxy[:, :, i]  # noqa: E731
    elbows = [_cos(j(s) - j(e), j(w) - j(e)) for s, e, w in ((L_SH, L_EL, L_WR), (R_SH, R_EL, R_WR))]
    dists = [(j(L_WR) - j(NOSE)).norm(dim=-1), (j(R_WR) - j(NOSE)).norm(dim=-1), (j(L_WR) - j(R_WR)).norm(dim=-1)]
    return torch.cat([bxy[:, :, list(BODY_JOINTS)].flatten(2), torch.stack(elbows + dists, -1)], -1)


def _hand_frame(p: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """(B, T, 21, 3) hand points in body units, (B, T) found -> (B, T, HAND_DIM): hand shape, orientation,
    the wrist's place in the body frame, found."""
    rel = p - p[:, :, :1]
    size = rel[:, :, 9].norm(dim=-1).clamp(min=MIN_SCALE)
    rel = rel / size[..., None, None]
    prev, joint, nxt = (list(k) for k in zip(*ANGLES))
    angles = _cos(rel[:, :, prev] - rel[:, :, joint], rel[:, :, nxt] - rel[:, :, joint])
    a, b = (list(k) for k in zip(*TIP_PAIRS))
    tips = (rel[:, :, a] - rel[:, :, b]).norm(dim=-1)
    to_wrist = rel[:, :, list(TIPS)].norm(dim=-1)
    normal = torch.linalg.cross(rel[:, :, 5], rel[:, :, 17])
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=EPS)
    return torch.cat([rel[:, :, 1:].flatten(2), angles, tips, to_wrist, normal, p[:, :, 0, :2], seen[..., None]], -1)


def binned(x: torch.Tensor, w: torch.Tensor, m: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, T, D) values, (B, T, D) 0/1 weights -> (B, bins, D): the weighted mean in each of ``bins`` equal
    parts of the person frames (``m``, in order); a part where a value was never seen takes its clip mean."""
    rank = m.cumsum(1) - 1
    part = (rank * bins / m.sum(1, keepdim=True).clamp(min=1)).floor().clamp(0, bins - 1).long()
    onehot = F.one_hot(part, bins).float() * m[..., None]                         # (B, T, bins)
    wb = torch.einsum("btk,btd->bkd", onehot, w)
    sums = torch.einsum("btk,btd->bkd", onehot, w * x)
    mean = (w * x).sum(1) / w.sum(1).clamp(min=1)
    return torch.where(wb > 0, sums / wb.clamp(min=EPS), mean[:, None])


def pool(x: torch.Tensor, w: torch.Tensor, m: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, T, D) per-frame values with 0/1 weights -> (B, (bins + 6) * D): time bins, mean, std, min, max,
    mean |change| and std of change between consecutive frames where the value was seen."""
    n = w.sum(1)
    seen = n > 0
    mean = (w * x).sum(1) / n.clamp(min=1)
    std = ((w * (x - mean[:, None]) ** 2).sum(1) / n.clamp(min=1)).clamp(min=0).sqrt()
    inf = torch.tensor(float("inf"), device=x.device)
    hi = torch.where(seen, torch.where(w > 0, x, -inf).amax(1), torch.zeros_like(mean))
    lo = torch.where(seen, torch.where(w > 0, x, inf).amin(1), torch.zeros_like(mean))
    vw = w[:, 1:] * w[:, :-1]
    v = x[:, 1:] - x[:, :-1]
    nv = vw.sum(1).clamp(min=1)
    speed = (vw * v.abs()).sum(1) / nv
    vmean = (vw * v).sum(1) / nv
    vstd = ((vw * (v - vmean[:, None]) ** 2).sum(1) / nv).clamp(min=0).sqrt()
    return torch.cat([binned(x, w, m, bins).flatten(1), mean, std, lo, hi, speed, vstd], -1)
