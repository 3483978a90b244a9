"""The ``text`` modality: the words that go with a clip, from the sources ``cfg.text_sources`` names --
subtitles overlapping the clip (sidecar or embedded), the container's title/description/..., the
manifest's ``text`` column -- and, when asked, the speech transcript (``--speech``: only when there are
no subtitles and a voice is heard) and the text shown on screen (``--ocr``).

Never the file's name or path: class names leak through them (``dribble/dribble_012.mp4``), so metadata
values that repeat the file's stem or its folder's name, or are a video file's name, are dropped (some
muxers write the source file's name as the ``title``). On-screen text is read from a few frames spread
over the whole video (cached per file), not only the clip's span: it is the costly source.

``{"text": str, "text_mask": 1.0 | 0.0}``; mask 0 when all of that is empty.
"""
from __future__ import annotations

import re
from pathlib import Path

from vidcat.config import TEXT_SOURCES
from vidcat.data.modalities.base import ClipContext, no_frames, register_modality
from vidcat.errors import VideoError
from vidcat.io.text import read_metadata_text, read_subtitles, text_for_span

_NON_WORD = re.compile(r"[\W_]+")


def _sources(ctx: ClipContext) -> tuple:
    return tuple(getattr(ctx.cfg, "text_sources", TEXT_SOURCES))


def clip_cues(ctx: ClipContext) -> list:
    """The video's subtitles (when a source); with ``cfg.speech`` and no subtitles, its speech
    transcript's segments (:mod:`vidcat.io.speech`, Whisper run only where a voice is heard)."""
    cues = []
    if "subtitles" in _sources(ctx):
        try:
            cues = read_subtitles(ctx.item.path)
        except VideoError:
            cues = []
    if not cues and getattr(ctx.cfg, "speech", False):
        from vidcat.io.speech import has_speech, transcript_cues

        cues = transcript_cues(ctx.item.path) if has_speech(ctx.item.path) else []
    return cues


def _words(s: str) -> str:
    """``"Dribble_012.MP4"`` -> ``" dribble 012 mp4 "``: case, punctuation and separators ignored."""
    return f" {_NON_WORD.sub(' ', s).casefold().strip()} "


def names_the_file(value: str, path) -> bool:
    """Whether metadata ``value`` equals or contains the file's stem or its folder's name (word-wise), or
    is itself a video file name (``v_Dribble_g01_c01.avi``: the name of the file it was converted from)."""
    from vidcat.io.video import VIDEO_EXTENSIONS

    p, v = Path(path), _words(value)
    if len(value.split()) == 1 and Path(value.strip()).suffix.lower() in VIDEO_EXTENSIONS:
        return True
    return any(n.strip() and n in v for n in (_words(p.stem), _words(p.parent.name)))


def metadata_text(path) -> str:
    """The container's text fields, without those that name the file (:func:`names_the_file`)."""
    lines = read_metadata_text(path).split("\n")
    return "\n".join(v for v in lines if v.strip() and not names_the_file(v, path))


def clip_text(ctx: ClipContext) -> str:
    """Subtitles (or the transcript) in the clip's span, on-screen text, container metadata, then the
    manifest's text column -- each only when its source is on."""
    sources, path, parts = _sources(ctx), ctx.item.path, []
    getters = [lambda: text_for_span(clip_cues(ctx), ctx.start, ctx.end)]
    if getattr(ctx.cfg, "ocr", False):
        from vidcat.io.ocr import on_screen_text

        getters.append(lambda: on_screen_text(path))
    if "metadata" in sources:
        getters.append(lambda: metadata_text(path))
    for get in getters:
        try:
            parts.append(get())
        except VideoError:  # an unreadable subtitle stream or file: the text is missing, the batch goes on
            pass
    if "manifest" in sources:
        parts.append(ctx.item.text or "")
    return "\n".join(p.strip() for p in parts if p and p.strip())


@register_modality("text", frames=no_frames)
def load_text_modality(ctx: ClipContext) -> dict:
    text = clip_text(ctx)
    return {"text": text, "text_mask": float(bool(text))}
