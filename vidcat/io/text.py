"""Text that comes with a video: subtitles (sidecar files or embedded streams) and container metadata.

Subtitles are read once per file (cached on size and mtime) and cut to a clip's time span, so a
text model sees what is said during the clip. Sidecar files (``video.srt``, ``video.vtt``,
``video.<lang>.srt``, ``.ass``) win over embedded streams; of embedded ones, the first text stream
(mov_text, subrip, ass, webvtt) is used. Bitmap subtitles (DVD, PGS) are skipped: no OCR here.
"""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av

from vidcat.errors import VideoError
from vidcat.io.video import open_container

SIDECAR_EXTENSIONS = (".srt", ".vtt", ".ass", ".ssa")
DEFAULT_CUE_S = 2.0  # how long a cue without an end time stays up when nothing follows it
METADATA_KEYS = ("title", "description", "synopsis", "comment", "keywords", "tags", "genre", "subject")
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(_TIME + r"\s*-->\s*" + _TIME)
_MARKUP = re.compile(r"\{[^}]*\}|<[^>]*>")  # ASS override blocks, HTML-ish tags of SRT/VTT


@dataclass(frozen=True)
class Cue:
    """One subtitle line shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def clean_text(s: str) -> str:
    """Drop ASS/HTML markup and ASS line breaks, collapse whitespace."""
    s = _MARKUP.sub("", s).replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")
    return " ".join(s.split())


def _seconds(h, m, s, ms) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_srt(text: str) -> list[Cue]:
    """Cues of SubRip or WebVTT text (one parser: blocks of a timing line followed by text lines)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        for i, line in enumerate(lines):
            m = _TIMING.search(line)
            if m:
                body = clean_text(" ".join(lines[i + 1:]))
                if body:
                    cues.append(Cue(_seconds(*m.groups()[:4]), _seconds(*m.groups()[4:]), body))
                break
    return sorted(cues, key=lambda c: (c.start, c.end))


def write_srt(cues, path) -> Path:
    """Write cues as a SubRip file (UTF-8): the sidecar form every player reads."""
    def stamp(t):
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = [f"{i}\n{stamp(c.start)} --> {stamp(c.end)}\n{c.text}\n" for i, c in enumerate(cues, 1)]
    Path(path).write_text("\n".join(blocks), encoding="utf-8")
    return Path(path)


def sidecar_files(path) -> list[Path]:
    """Subtitle files next to the video: exact stem first (``a.srt``), then ``a.<lang>.srt`` sorted."""
    p = Path(path)
    exact = [p.with_suffix(e) for e in SIDECAR_EXTENSIONS if p.with_suffix(e).is_file()]
    tagged = sorted(q for q in p.parent.glob(f"{glob.escape(p.stem)}.*.*")
                    if q.suffix.lower() in SIDECAR_EXTENSIONS and q.stem.rsplit(".", 1)[0] == p.stem)
    return exact + tagged


def read_embedded_subtitles(path, stream: int | None = None) -> list[Cue]:
    """Cues from the file's own text subtitle stream (``stream``: n-th subtitle stream, default first text one).

    Timing comes from each packet: start = pts * time_base, end = start + duration (or the decoder's
    end display time when the packet has no duration).
    """
    cues = []
    with open_container(path) as container:
        subs = list(container.streams.subtitles)
        if stream is not None and not 0 <= stream < len(subs):
            raise VideoError(path, f"subtitle stream {stream} requested but the file has {len(subs)}")
        subs = [subs[stream]] if stream is not None else [s for s in subs if _is_text(s)][:1]
        if not subs:
            return []
        s, tb = subs[0], subs[0].time_base
        try:
            for pkt in container.demux(s):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                sset = s.decode2(pkt) if hasattr(s, "decode2") else None
                text = clean_text(" ".join(_rect_text(r) for r in (sset if sset is not None else s.decode(pkt))))
                if text:
                    start = pkt.pts * tb  # exact Fractions until the end, so 12.47 stays 12.47
                    shown = pkt.duration * tb if pkt.duration else Fraction(sset.end_display_time if sset else 0, 1000)
                    cues.append(Cue(float(start), float(start + shown), text))
        except av.error.FFmpegError as e:
            raise VideoError(path, f"cannot read subtitles ({e.strerror or type(e).__name__})") from None
    cues.sort(key=lambda c: (c.start, c.end))
    for i, c in enumerate(cues):  # a cue without a duration lasts until the next one (or a default)
        if c.end <= c.start:
            nxt = cues[i + 1].start if i + 1 < len(cues) else c.start + DEFAULT_CUE_S
            cues[i] = Cue(c.start, max(nxt, c.start + 0.001), c.text)
    return cues


_TEXT_SUBTITLE_CODECS = {"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text", "microdvd", "sami",
                         "realtext", "subviewer", "subviewer1", "jacosub", "mpl2", "pjs", "stl", "vplayer"}


def _is_text(s) -> bool:
    return s.codec_context.name in _TEXT_SUBTITLE_CODECS


def _rect_text(r) -> str:
    """Plain text of a decoded subtitle rect (PyAV >= 13: ``dialogue``; older: the ASS event line)."""
    if not hasattr(r, "dialogue") and not hasattr(r, "ass") and hasattr(r, "__iter__"):
        return " ".join(_rect_text(x) for x in r)  # PyAV < 14 returned SubtitleSets from decode()
    raw = getattr(r, "dialogue", None)
    if raw is None and getattr(r, "ass", None):
        raw = r.ass.split(b",", 8)[-1] if isinstance(r.ass, bytes) else r.ass.split(",", 8)[-1]
    raw = raw or getattr(r, "text", None) or b""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


@lru_cache(maxsize=256)
def _read_subtitles_cached(path: str, stream, _stamp) -> tuple[Cue, ...]:
    for side in sidecar_files(path):
        if side.suffix.lower() in (".srt", ".vtt"):
            cues = parse_srt(side.read_text(encoding="utf-8-sig", errors="replace"))
        else:  # ASS/SSA: FFmpeg's demuxer parses the script, our stream reader strips the markup
            cues = read_embedded_subtitles(side)
        if cues:
            return tuple(cues)
    return tuple(read_embedded_subtitles(path, stream))


def read_subtitles(path, stream: int | None = None) -> list[Cue]:
    """All cues of a video, sorted by start: sidecar files first, else the embedded text stream.

    Cached per file; the cache key holds size and mtime of the video and of its sidecars, so an
    edited or newly added sidecar is picked up.
    """
    try:
        stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in [Path(path), *sidecar_files(path)])
    except OSError:
        raise VideoError(path, "file not found") from None
    return list(_read_subtitles_cached(str(path), stream, stamp))


def read_metadata_text(path) -> str:
    """Container title, description, comment, keywords/tags (any key case), joined by newlines."""
    with open_container(path) as container:
        meta = {k.lower(): v for k, v in container.metadata.items()}
    return "\n".join(dict.fromkeys(meta[k].strip() for k in METADATA_KEYS if meta.get(k, "").strip()))


def text_for_span(cues, start: float | None = None, end: float | None = None) -> str:
    """Texts of the cues overlapping ``[start, end)`` (None: open end), in order, repeats dropped."""
    lo = float("-inf") if start is None else start
    hi = float("inf") if end is None else end
    picked = [c.text for c in cues if c.end > lo and c.start < hi]
    return " ".join(t for i, t in enumerate(picked) if i == 0 or t != picked[i - 1])


def video_text(path, start: float | None = None, end: float | None = None, extra: str | None = None) -> str:
    """Everything textual about a clip: subtitles in its span, then metadata, then ``extra`` (manifest text)."""
    parts = [text_for_span(read_subtitles(path), start, end), read_metadata_text(path), extra or ""]
    return "\n".join(p.strip() for p in parts if p and p.strip())
