"""The ``text`` modality: the words that go with a clip -- subtitles overlapping it (sidecar or
embedded), the container's title/description/..., and the manifest's ``text`` column.

``{"text": str, "text_mask": 1.0 | 0.0}``; mask 0 when all of that is empty.
"""
from __future__ import annotations

from vidcat.data.modalities.base import ClipContext, register_modality
from vidcat.errors import VideoError
from vidcat.io.text import read_metadata_text, read_subtitles, text_for_span


def clip_text(ctx: ClipContext) -> str:
    """Subtitles in the clip's span, then container metadata, then the manifest's text column."""
    parts = []
    for get in (lambda: text_for_span(read_subtitles(ctx.item.path), ctx.start, ctx.end),
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
