"""Which streams a data set has, found cheaply before anything expensive runs over every clip.

A sample of clips (spread over the classes) is probed: is there a sound track that is not silent, a
body or a hand (first-person footage shows hands only) in a few frames, a voice, text on screen, subtitles or
other words? A costly stream (pose, speech, on-screen text) is computed over the whole set only when the probe
found it in enough of the sample; ``--streams`` forces or limits the set. Appearance is always on: it is the
strongest single stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidcat.config import STREAMS as STREAM_NAMES
from vidcat.errors import VidcatError, VideoError

PROBE_CLIPS = 12
MIN_SHARE = 0.25      # a stream is planned when at least this share of the probed clips has it
SILENT_RMS = 1e-3     # a sound track quieter than this is silence


@dataclass
class StreamPlan:
    """The streams to compute, the data settings they need, and why each was (not) planned."""

    streams: list
    data: dict = field(default_factory=dict)        # DataConfig fields the planned streams need
    reasons: dict = field(default_factory=dict)     # stream -> one line

    def lines(self) -> list[str]:
        return [f"{n}: {'on' if n in self.streams else 'off'} ({self.reasons.get(n, '')})" for n in STREAM_NAMES
                if n in self.reasons or n in self.streams]


def probe_sample(items, n: int = PROBE_CLIPS) -> list:
    """Up to ``n`` items spread over the classes (round robin), deterministic."""
    by_class: dict = {}
    for it in items:
        by_class.setdefault(it.labels[0] if it.labels else "", []).append(it)
    queues, out = [list(v) for _, v in sorted(by_class.items())], []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(len(q) // 2))
    return out


def _safe(fn, default):
    try:
        return fn()
    except (VideoError, VidcatError, OSError, ValueError, RuntimeError):
        return default


def has_sound(path) -> bool:
    """A sound track whose level is above silence."""
    from vidcat.io.audio import load_audio

    clip = load_audio(path, 0.0, 20.0)
    return bool(clip.present and len(clip.waveform) and np.sqrt(np.mean(clip.waveform ** 2)) > SILENT_RMS)


def has_body_or_hand(path, frames: int = 3) -> bool:
    """MediaPipe finds a body or a hand (Holistic, then the whole-frame hand detector where it finds no body)
    in at least one of ``frames`` frames spread over the video, each looked at on its own."""
    from vidcat.io.pose import PoseEstimator
    from vidcat.io.video import probe, read_frames

    n = max(int(probe(path).num_frames or 1), 1)
    rgb = read_frames(path, [int(i) for i in np.linspace(0, n - 1, frames + 2)[1:-1].round()], short_side=360)
    est = PoseEstimator(hands=True, video=False)
    try:
        for img in rgb:
            found = est(img)
            if found.body or found.hands:
                return True
        return False
    finally:
        est.close()


def has_words(item, data) -> bool:
    """Subtitles, metadata or manifest text (never the file name) for this clip."""
    from vidcat.data.modalities.text import clip_text
    from vidcat.data.modalities.base import ClipContext

    ctx = ClipContext(item, None, 0.0, 1e9, [], data, False)
    return bool(clip_text(ctx).strip())


def _share(sample, test) -> tuple[int, int]:
    hits = sum(bool(_safe(lambda it=it: test(it), False)) for it in sample)
    return hits, len(sample)


def _forced(forced: tuple, available: dict) -> list:
    unknown = [s for s in forced if s not in STREAM_NAMES]
    if unknown:
        raise VidcatError(f"--streams: unknown stream {unknown[0]!r} ({', '.join(STREAM_NAMES)}, or auto)")
    missing = [s for s in forced if s not in available]
    if missing:
        raise VidcatError(f"--streams {missing[0]}: {available.get('_why_' + missing[0], 'not available here')}")
    return list(forced)


def _extras() -> dict:
    from vidcat.config.extras import has

    return {"pose": has("pose"), "speech": has("speech"), "ocr": has("ocr")}


def _probe_text(sample, data, extras: dict, hits_of) -> tuple[dict, str]:
    """DataConfig settings of the text stream (words, voice, on-screen text found) and why."""
    words, n = hits_of(lambda it: has_words(it, data))
    settings, why = {}, [f"words in {words}/{n}"]
    if extras["speech"]:
        from vidcat.io.speech import has_speech

        voiced, _ = hits_of(lambda it: has_speech(it.path))
        settings["speech"] = voiced >= MIN_SHARE * n
        why.append(f"a voice in {voiced}/{n}")
    if extras["ocr"]:     # words read, not just boxes found (a logo or texture gives boxes); cached for later
        from vidcat.io.ocr import on_screen_text

        shown, _ = hits_of(lambda it: bool(on_screen_text(it.path).strip()))
        settings["ocr"] = shown >= MIN_SHARE * n
        why.append(f"text on screen in {shown}/{n}")
    settings["_on"] = words > 0 or settings.get("speech", False) or settings.get("ocr", False)
    return settings, ", ".join(why)


def plan_streams(items, data, forced: tuple | None = None, log=None) -> StreamPlan:
    """Probe a sample of ``items`` and plan the streams (``forced``: ``--streams`` names, no probing of
    whether they are worth it, only of what they need)."""
    from vidcat.models.streams import STREAMS

    sample, extras = probe_sample(items), _extras()
    plan = StreamPlan([], {}, {})

    def hits_of(test):
        return _share(sample, test)

    available = {s: True for s in ("appearance", "motion", "audio", "text") if s in STREAMS}
    if "pose" in STREAMS and extras["pose"]:
        available["pose"] = True
    else:
        available["_why_pose"] = "needs pip install 'vidcat[pose]'"
    plan.reasons["appearance"], plan.reasons["motion"] = "always", "always"
    if forced:
        plan.streams = _forced(forced, available)
    else:
        plan.streams = [s for s in ("appearance", "motion") if s in available]
    want = set(plan.streams) if forced else set(available)
    if "pose" in want and "pose" in available:
        people, n = hits_of(lambda it: has_body_or_hand(it.path))
        plan.reasons["pose"] = f"a body or a hand in {people}/{n} probed clips"
        if not forced and people >= MIN_SHARE * n:
            plan.streams.append("pose")
    if "audio" in want and "audio" in available:
        sound, n = hits_of(lambda it: has_sound(it.path))
        plan.reasons["audio"] = f"sound in {sound}/{n} probed clips"
        if not forced and sound > 0:
            plan.streams.append("audio")
    if "text" in want and "text" in available:
        settings, plan.reasons["text"] = _probe_text(sample, data, extras, hits_of)
        plan.data.update({k: v for k, v in settings.items() if not k.startswith("_")})
        if not forced and settings["_on"]:
            plan.streams.append("text")
    plan.streams = [s for s in STREAM_NAMES if s in plan.streams]
    if log:
        log("streams " + "; ".join(plan.lines()))
    return plan
