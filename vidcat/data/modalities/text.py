"""The ``text`` modality: the words that go with a clip -- subtitles overlapping it (sidecar or
embedded; with ``--speech`` and no subtitles, the speech transcript's segments), the container's
title/description/..., and the manifest's ``text`` column.

``{"text": str, "text_mask": 1.0 | 0.0}``; mask 0 when all of that is empty.
"""
from __future__ import annotations

from vidcat.data.modalities.base import ClipContext, register_modality
from vidcat.errors import VideoError
from vidcat.io.text import read_metadata_text, read_subtitles, text_for_span


def clip_cues(ctx: ClipContext) -> list:
    """The video's subtitles; with ``cfg.speech`` and no subtitles, its speech transcript's segments
    (:mod:`vidcat.io.speech`), read the same way."""
    try:
        cues = read_subtitles(ctx.item.path)
    except VideoError:
        cues = []
    if not cues and getattr(ctx.cfg, "speech", False):
        from vidcat.io.speech import transcript_cues

        cues = transcript_cues(ctx.item.path)
    return cues


def clip_text(ctx: ClipContext) -> str:
    """Subtitles (or, with ``--speech``, the transcript) in the clip's span, then container metadata,
    then the manifest's text column."""
    parts = []
    for get in (lambda: text_for_span(clip_cues(ctx), ctx.start, ctx.end),
                lambda: read_metadata_text(ctx.item.path)):
        try:
            parts.append(get())
        except VideoError:  # unreadable subtitle stream: the text is missing, the video is not
            pass
    parts.append(ctx.item.text or "")
    return "\n".join(p.strip() for p in parts if p and p.strip())


@register_modality("text")
def load_text_modality(ctx: ClipContext) -> dict:
    text = clip_text(ctx)
    return {"text": text, "text_mask": float(bool(text))}
