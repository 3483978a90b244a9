"""Multi-modal synthetic benchmarks ``av`` and ``avt``: classes only the combination of streams can tell.

* ``av``  — 4 classes = motion axis (``h``: left/right, ``v``: up/down; the direction within the axis is
  random) x pitch of a tone in the AAC audio track (``low`` 300-500 Hz, ``high`` 900-1400 Hz). The
  video tells the axis only, the audio the pitch only: each alone tops out at 50%.
* ``avt`` — 8 classes = axis x pitch x the group of a keyword said in the subtitles (``fruit`` or
  ``tool``, each keyword hidden among random filler words). Any one stream alone tops out at 25%,
  any two at 50%; only all three tell the class.

Per video: random appearance and trajectory (:func:`render_motion`), random pitch inside its band,
loudness, fade and white noise; subtitles either embedded (mov_text) or as an SRT sidecar, at random.
``missing_audio`` / ``missing_text`` drop the audio track / the subtitles of that fraction of videos;
the decision is drawn after the content, so the same seed gives the same videos with and without
missing streams (a clean robustness comparison). Manifest columns ``audio`` (1/0) and ``subtitles``
(embedded / srt / none) record what each file holds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidcat.data.synth_media import mux_av, tone
from vidcat.data.synth_video import render_motion
from vidcat.io.text import Cue, write_srt

AXES = {"h": ("left", "right"), "v": ("up", "down")}
PITCH = {"low": (300.0, 500.0), "high": (900.0, 1400.0)}
KEYWORDS = {"fruit": ("apple", "cherry", "lemon", "melon", "peach"),
            "tool": ("hammer", "wrench", "drill", "chisel", "saw")}
FILLER = ("the", "a", "then", "look", "over", "there", "we", "see", "it", "now", "just", "some", "near",
          "this", "what", "was", "and", "under", "again", "quite", "maybe", "big", "small", "old", "new",
          "here", "very", "with", "on", "is", "very", "one", "two", "left", "right", "up", "down",
          "high", "low", "sound", "moving", "slowly", "fast")


def classes_for(cfg) -> list[str]:
    names = [f"{a}_{p}" for a in AXES for p in PITCH]
    if cfg.kind == "av":
        return names
    if cfg.kind == "avt":
        return [f"{n}_{g}" for n in names for g in KEYWORDS]
    raise ValueError(f"synth_multimodal has no kind {cfg.kind!r}")


def parse_label(label: str) -> tuple[str, str, str | None]:
    """``"h_low_fruit"`` -> ("h", "low", "fruit"); ``"v_high"`` -> ("v", "high", None)."""
    parts = label.split("_")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def make_audio(rng: np.random.Generator, pitch: str, seconds: float, sr: int = 16000) -> np.ndarray:
    """A tone at a random frequency of the ``pitch`` band, random loudness and fade, plus white noise."""

    lo, hi = PITCH[pitch]
    x = tone(rng.uniform(lo, hi), seconds, sr, noise=rng.uniform(0.01, 0.06), rng=rng,
             amp=rng.uniform(0.15, 0.5))
    fade = max(1, min(len(x) // 4, int(rng.uniform(0.02, 0.2) * sr)))
    env = np.ones(len(x), np.float32)
    env[:fade] = np.linspace(0, 1, fade)
    env[-fade:] = np.linspace(1, 0, fade)
    return np.clip(x * env, -1, 1).astype(np.float32)


def make_subtitles(rng: np.random.Generator, group: str, seconds: float) -> list[Cue]:
    """Two or three cues covering the whole video, each a keyword of ``group`` among 2-6 filler words
    (so any clip of the video, however short, overlaps a cue with a keyword)."""
    n = int(rng.integers(2, 4))
    edges = np.linspace(0.0, seconds, n + 1)
    cues = []
    for a, b in zip(edges[:-1], edges[1:]):
        words = list(rng.choice(FILLER, int(rng.integers(2, 7))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(KEYWORDS[group])))
        cues.append(Cue(round(float(a), 3), round(float(b), 3), " ".join(words)))
    return cues


def make_video(path: Path, rng: np.random.Generator, label: str, cfg) -> dict:
    """Write one ``av``/``avt`` video of class ``label``; returns the manifest columns ``audio``, ``subtitles``."""

    path = Path(path)
    axis, pitch, group = parse_label(label)
    seconds = cfg.frames / cfg.fps
    frames = render_motion(rng, str(rng.choice(AXES[axis])), cfg)
    audio = make_audio(rng, pitch, seconds)
    cues = make_subtitles(rng, group, seconds) if group else None
    sidecar = bool(rng.random() < 0.5)
    # drawn last and always, so the content above does not depend on the missing_* settings
    drop_audio = bool(rng.random() < cfg.missing_audio)
    drop_text = bool(rng.random() < cfg.missing_text)
    if drop_text:
        cues = None
    srt = path.with_suffix(".srt")
    srt.unlink(missing_ok=True)  # a stale sidecar from an earlier run would win over the embedded stream
    mux_av(path, frames, cfg.fps, audio=None if drop_audio else audio,
           subtitles=cues if cues and not sidecar else None, crf=cfg.crf, gop=12)
    if cues and sidecar:
        write_srt(cues, srt)
    subs = "none" if not cues else ("srt" if sidecar else "embedded")
    return {"audio": int(not drop_audio), "subtitles": subs}
