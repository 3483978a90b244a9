"""Probe and decode video files with PyAV, decoding as few frames as possible and trusting no header.

Frame *index* ``i`` means "the frame shown at time ``start + i / fps``" with ``fps`` the stream's
average rate. Decoding by time rather than by packet count keeps indices meaningful for
variable-frame-rate files, and lets us seek: to fetch a clip we seek to the keyframe before its
first frame, decode forward (skipping non-reference frames far from any wanted frame), convert only
the wanted frames (RGB + resize in one cached libswscale pass) and stop after the last one.

Untrusted input: frame counts are verified when the header is implausible, whole-file reads count
frames while decoding (:func:`iter_frames` streams them), every read runs under
:class:`~vidcat.io.limits.DecodeLimits`, text and still images are refused, and damage (a file that
ends early, undecodable packets) is reported in ``VideoReader.warning``.
"""
from __future__ import annotations

import heapq
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidcat.errors import VideoError
from vidcat.io import limits as _limits
from vidcat.io.limits import DecodeLimits, Deadline, set_default_limits  # noqa: F401 (re-exported)

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".gif"}
# Seek only when the next wanted frame is at least this many frames ahead and the keyframe before it lies past
# the current frame (asked of the container's index, ~15 us): over a shorter gap decoding forward costs no more
# than the seek. A read whose wanted frames are never that far apart -- every short clip -- is decoded straight
# through, on from the frame its probe decoded. Measured on the corpus: benchmarks/results/decode_views.md.
SEEK_GAP_FRAMES = 16
# Packets shown more than this many frame intervals before the next wanted frame are decoded with
# skip_frame=NONREF (nobody needs a non-reference frame that is not shown at a wanted time).
SKIP_MARGIN_FRAMES = 3
# Resize to RGB through libswscale's RGBA output (SIMD) rather than packed RGB24 (plain C).
RESIZE_VIA_RGBA = True
# A header whose frame count needs fewer bytes per frame than this is checked by counting packets.
MIN_BYTES_PER_FRAME = 2
# Frames missing at the end beyond max(this, 2 % of the count) make a read "truncated".
TRUNCATION_TOLERANCE = 3
# A decoded frame is held back (to put timestamps in order, see display_times) by at most this many frames.
REORDER_WINDOW = 4

TEXT_FORMATS = {"tty", "bin", "xbin", "idf", "adf"}          # FFmpeg renders these as pictures
TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
IMAGE_FORMATS = {"image2", "ico"}                           # plus every "*_pipe" demuxer
STILL_CODECS = {"png", "apng", "mjpeg", "jpegls", "jpeg2000", "jpegxl", "bmp", "gif", "tiff", "webp",
                "pam", "pbm", "pgm", "pgmyuv", "ppm", "pcx", "sgi", "sunrast", "targa", "xbm", "xpm",
                "xwd", "dds", "exr", "hdr", "qoi", "psd", "photocd", "pictor", "ljpeg", "dpx", "svg"}


@dataclass
class VideoInfo:
    """What a file holds, as read from its container and first video frame."""

    path: str
    duration: float          # seconds
    fps: float               # average frame rate (frames shown / duration)
    real_fps: float          # the stream's base ("real") rate; differs from fps for VFR files
    num_frames: int          # frames at `fps` over `duration` (header count, verified when implausible)
    width: int               # display size, after rotation
    height: int
    rotation: int            # degrees the decoded picture is turned to display it upright
    codec: str
    start_time: float = 0.0
    has_audio: bool = False
    has_subtitles: bool = False
    streams: list = field(default_factory=list)
    header_frames: int = 0   # the frame count the container claimed (0 = none)

    @property
    def variable_frame_rate(self) -> bool:
        return abs(self.fps - self.real_fps) > 0.01 * max(self.fps, 1e-6)

    def as_dict(self) -> dict:
        return asdict(self)


def _as_float(x, default=0.0) -> float:
    return float(x) if x else default


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or type(e).__name__


def open_container(path, limits: DecodeLimits | None = None) -> av.container.InputContainer:
    """Open a local media file, refusing missing, empty, unreadable and non-regular files clearly."""
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "broken or looping symlink" if p.is_symlink() else "file not found")
    if p.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if not p.is_file():
        raise VideoError(path, "not a regular file (device, pipe or socket)")
    if p.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise VideoError(path, "permission denied")
    limits = limits or _limits.DEFAULT_LIMITS
    try:
        return av.open(str(p), metadata_errors="ignore", timeout=limits.timeout_s)
    except av.error.FFmpegError as e:
        raise VideoError(path, f"not a readable media file ({_reason(e)})") from None


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(w, h) after resizing the short side to ``short_side`` (even sizes, at least 2); None = native."""
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded picture upright: FFmpeg's display rotation is counter-clockwise degrees."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k=k)) if k else img


def default_threads() -> int:
    """Decoder threads: 1 inside a DataLoader worker (the workers already fill the cores), else the
    cores this process may use."""
    try:
        import torch.utils.data as tud
        if tud.get_worker_info() is not None:
            return 1
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class VideoReader:
    """An open video file: ``info`` plus ``frames(indices)``; use as a context manager.

    ``short_side`` resizes while converting (one cached libswscale pass, no full-size copy);
    ``gray=True`` returns (T, H, W) luma. ``threads`` = 0 picks :func:`default_threads`.
    After a read, ``warning`` is None or one line saying how the file is damaged.
    """

    def __init__(self, path, threads: int = 0, limits: DecodeLimits | None = None):
        self.path = str(path)
        self.limits = limits or _limits.DEFAULT_LIMITS
        self.threads = int(threads) if threads and threads > 0 else default_threads()
        self.warnings: list[str] = []
        self.skip_nonref = True   # decode non-reference frames only where they may be shown
        self._sws = VideoReformatter()
        self._index = None        # demux-only handle to look where a seek would land
        self.container = open_container(path, self.limits)
        try:
            self._setup_stream()
            self.info = self._probe(Deadline(self.path, self.limits.timeout_s))
        except BaseException:
            self.container.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.container.close()
        if self._index is not None:
            self._index.close()

    @property
    def warning(self) -> str | None:
        """All damage found so far as one line, or None for a clean file."""
        return "; ".join(dict.fromkeys(self.warnings)) or None

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def _setup_stream(self) -> None:
        if not self.container.streams.video:
            raise VideoError(self.path, "no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.thread_count = self.threads
        self._stash: list = []   # frames decoded while probing, replayed by a whole-file read
        self._demux = None       # the demuxer generator they came from (None once we seek)

    def _reopen(self) -> None:
        self.container.close()
        self.container = open_container(self.path, self.limits)
        self._setup_stream()

    # -- probing ---------------------------------------------------------------------------
    def _refuse_non_video(self) -> None:
        fmt = self.container.format.name.split(",")[0]
        if self.stream.codec_context is None:  # a damaged header naming no codec FFmpeg knows
            raise VideoError(self.path, "no decodable video stream (unknown codec; damaged header?)")
        codec = self.stream.codec_context.name
        if fmt in TEXT_FORMATS or codec in TEXT_CODECS:
            raise VideoError(self.path, f"not a video: text rendered as pictures ({fmt}/{codec})")
        if fmt in IMAGE_FORMATS or fmt.endswith("_pipe"):
            raise VideoError(self.path, f"not a video: a still image ({codec})")

    def _check_pixels(self, w: int, h: int) -> None:
        if w * h > self.limits.max_pixels:
            raise VideoError(self.path, f"frame size {w}x{h} exceeds DecodeLimits.max_pixels "
                                        f"({self.limits.max_pixels})")

    def _probe_frames(self, want: int, deadline: Deadline) -> None:
        """Decode from the start until ``want`` frames are stashed (or the stream ends)."""
        if self._demux is None:
            self._demux = self.container.demux(self.stream)
        errors = 0
        for packet in self._demux:
            deadline.check()
            try:
                self._stash.extend(packet.decode())
            except av.error.FFmpegError as e:
                errors += 1
                if errors > 100:
                    raise VideoError(self.path, f"cannot decode video ({_reason(e)})") from None
            if len(self._stash) >= want:
                return
        self._demux = iter(())  # exhausted

    def _probe(self, deadline: Deadline) -> VideoInfo:
        s, c = self.stream, self.container
        self._refuse_non_video()
        self._check_pixels(s.codec_context.width or 0, s.codec_context.height or 0)
        tb = s.time_base
        start = float(s.start_time * tb) if s.start_time is not None else 0.0
        if s.duration:
            duration = float(s.duration * tb)
        elif c.duration:
            duration = c.duration / av.time_base - start
        else:
            duration = 0.0
        real_fps = _as_float(s.base_rate or s.guessed_rate, 0.0)
        fps = _as_float(s.average_rate, real_fps) or 25.0
        real_fps = real_fps or fps
        header = int(s.frames or 0)
        num = header or int(round(duration * fps))
        self._probe_frames(1, deadline)
        if not self._stash:
            raise VideoError(self.path, "no decodable video frames (truncated or corrupt)")
        first = self._stash[0]
        self._check_pixels(first.width, first.height)
        if s.codec_context.name in STILL_CODECS:
            self._probe_frames(2, deadline)
            if len(self._stash) < 2:
                raise VideoError(self.path, f"not a video: a single still image ({s.codec_context.name})")
        size = Path(self.path).stat().st_size
        if num <= 0 or num * MIN_BYTES_PER_FRAME > size or duration > self.limits.max_duration_s:
            # no count, or one the file is too small to hold: count the packets (demux only)
            counted, last = _count_packets(self.path, deadline, self.limits)
            if 0 < counted < num:
                self._warn(f"header claims {num} frames; file holds {counted}")
            if 0 < counted < num or num <= 0:
                num = counted
                real = max(last - start, 0.0) + 1 / fps if last is not None else counted / fps
                duration = min(duration, real) if duration > 0 else real
        if duration > self.limits.max_duration_s:
            raise VideoError(self.path, f"video lasts {duration:.0f} s, over DecodeLimits.max_duration_s "
                                        f"({self.limits.max_duration_s:g})")
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        if duration <= 0:
            duration = num / fps if num else 1.0 / fps
        return VideoInfo(
            path=self.path, duration=duration, fps=fps, real_fps=real_fps, num_frames=max(num, 1),
            width=w, height=h, rotation=rotation, codec=s.codec_context.name, start_time=start,
            has_audio=bool(c.streams.audio), has_subtitles=bool(c.streams.subtitles),
            streams=[f"{st.type}:{st.codec_context.name if st.codec_context else '?'}" for st in c.streams],
            header_frames=header,
        )

    # -- decoding --------------------------------------------------------------------------
    def _convert(self, frame, short_side, gray: bool) -> np.ndarray:
        """One cached libswscale pass to the output size. A resize goes through RGBA, whose SIMD
        path is ~2x faster than packed 24-bit RGB (within ±5 levels, PSNR > 40 dB of it)."""
        w, h = output_size(frame.width, frame.height, short_side)
        threads = 1 if self.threads == 1 or w * h < 640 * 480 else self.threads
        resize = (w, h) != (frame.width, frame.height)
        fmt = "gray" if gray else "rgba" if resize and RESIZE_VIA_RGBA else "rgb24"
        img = self._sws.reformat(frame, w, h, fmt, threads=threads).to_ndarray()
        if fmt == "rgba":
            img = np.ascontiguousarray(img[..., :3])
        return _rotate(img, int(frame.rotation or 0))

    def _resume_at(self, t: float) -> list:
        """Seek to ``t``; but at ``t`` = 0 on a reader its probe left at the start, keep the probe's place and
        return the frames it decoded (shown first): no seek, nothing decoded twice."""
        if t > 0 or self._demux is None:
            self._seek(t)
            return []
        stash, self._stash = self._stash, []
        return stash

    def _seek(self, t: float) -> None:
        self._demux, self._stash = None, []
        ts = int(max(t, 0.0) / self.stream.time_base)
        try:
            self.container.seek(ts, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            if t > 0:
                return self._seek(0.0)   # decode forward from the start instead
            self._reopen()               # cannot even seek to 0: start over

    def _seek_lands_behind(self, t: float, pos: float) -> bool:
        """Would seeking to ``t`` land on a keyframe at or before ``pos`` (long GOP)? Then decoding
        forward is cheaper. Asked of a second, demux-only handle so the decoder keeps its place."""
        try:
            if self._index is None:
                self._index = open_container(self.path, self.limits)
            c = self._index
            s = c.streams.video[0]
            c.seek(int(max(t, 0.0) / s.time_base), stream=s, backward=True, any_frame=False)
            for packet in c.demux(s):
                if packet.pts is not None:
                    return float(packet.pts * s.time_base) <= pos
        except (av.error.FFmpegError, VideoError):
            pass
        return False

    def _expected_end(self) -> int:
        n = self.info.num_frames
        return n - max(TRUNCATION_TOLERANCE, int(0.02 * n))

    def frames(self, indices=None, short_side: int | None = None, gray: bool = False) -> np.ndarray:
        """Decode frames at ``indices`` (any order, repeats allowed) → uint8 (T, H, W, 3).

        ``indices=None`` decodes the whole file (frames counted while decoding, never taken from
        the header; at most ``DecodeLimits.max_array_bytes``). Indices past the real end of a file
        (headers often overstate the count, truncated files end early) return the last decodable
        frame, so a clip always has the length asked for; ``warning`` says when that is damage.
        """
        if indices is None:
            return self._read_all(short_side, gray)
        info = self.info
        indices = np.asarray(list(indices), dtype=np.int64)
        return self.frames_at(info.start_time + indices / info.fps, short_side=short_side, gray=gray,
                              _relative=False)

    def _read_all(self, short_side, gray) -> np.ndarray:
        out, nbytes = [], 0
        for img in self.iter(short_side=short_side, gray=gray):
            nbytes += img.nbytes
            if nbytes > self.limits.max_array_bytes:
                raise VideoError(self.path, f"whole-file read exceeds DecodeLimits.max_array_bytes "
                                            f"({self.limits.max_array_bytes}); stream it with iter_frames")
            out.append(img)
        return np.stack(out)

    def iter(self, short_side: int | None = None, every: int = 1, max_frames: int | None = None,
             gray: bool = False):
        """Yield every ``every``-th decoded frame from the start, streaming (memory independent of
        the video's length); stops after ``max_frames`` yielded frames. Sets ``decoded``."""
        if every < 1:
            raise ValueError("every must be >= 1")
        deadline = Deadline(self.path, self.limits.timeout_s)
        if self._demux is None:   # not at the start any more: open the file again
            self._reopen()
            self._demux = self.container.demux(self.stream)
        # claim the probe's demuxer and frames, so that a later read never resumes mid-file
        demux, stash, self._demux, self._stash = self._demux, self._stash, None, []
        self.stream.codec_context.skip_frame = "DEFAULT"
        self.decoded = yielded = errors = 0

        def packets():
            nonlocal errors
            yield from ([f] for f in stash)
            for packet in demux:
                deadline.check()
                try:
                    yield packet.decode()
                except av.error.FFmpegError:
                    errors += 1

        for frames in packets():
            for frame in frames:
                self.decoded += 1
                if self.decoded > self.limits.max_frames:
                    raise VideoError(self.path, f"more than DecodeLimits.max_frames "
                                                f"({self.limits.max_frames}) frames")
                if (self.decoded - 1) % every:
                    continue
                yield self._convert(frame, short_side, gray)
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
        if errors:
            self._warn(f"undecodable: {errors} damaged packets skipped")
        if self.decoded < self._expected_end():
            self._warn(f"truncated: decoded {self.decoded} of {self.info.num_frames} frames")
        if self.decoded == 0:
            raise VideoError(self.path, "no decodable video frames (truncated or corrupt)")

    def frames_at(self, times, short_side: int | None = None, gray: bool = False,
                  _relative: bool = True) -> np.ndarray:
        """Decode the frames on screen at ``times`` (seconds from the start) → uint8 (T, H, W, 3).

        The frame on screen at ``t`` is the last one whose timestamp is ≤ ``t`` (+ a tiny
        tolerance for rounding), which is exact for variable-frame-rate files too.
        """
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            raise ValueError("no frame times requested")
        if _relative:
            times = times + self.info.start_time
        targets = np.unique(times)
        got = self._decode_targets(targets, short_side, gray, self.skip_nonref)
        return np.stack([got[float(t)] for t in times])

    def _packet_frames(self, deadline: Deadline, skip_before, skipped: list, errors: list, first=()):
        """``first`` (frames the probe decoded), then the frames decoded from the packets that follow, in the
        decoder's (display) order. A packet due before ``skip_before()`` (None: never) is decoded with
        skip_frame=NONREF and its time appended to ``skipped``; damaged packets are counted in ``errors[0]``
        and passed over."""
        cc, tb = self.stream.codec_context, self.stream.time_base
        demux, self._demux = self._demux or self.container.demux(self.stream), None
        self.decoded += len(first)
        yield from first
        for packet in demux:
            deadline.check()
            pt = float(packet.pts * tb) if packet.pts is not None else None
            if skip_before is not None and pt is not None and pt < skip_before():
                cc.skip_frame = "NONREF"
                skipped.append(pt)
            else:
                cc.skip_frame = "DEFAULT"
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                errors[0] += 1
                continue
            self.decoded += len(decoded)
            yield from decoded

    def _decode_targets(self, targets: np.ndarray, short_side, gray: bool, skip: bool) -> dict:
        info, cc = self.info, self.stream.codec_context
        deadline = Deadline(self.path, self.limits.timeout_s)
        eps = 0.01 / info.fps
        margin = SKIP_MARGIN_FRAMES / min(info.fps, info.real_fps)
        gap = SEEK_GAP_FRAMES / info.fps
        got: dict[float, np.ndarray] = {}
        cache: list = [None, None]  # (frame, its array): convert each decoded frame at most once

        def convert(frame) -> np.ndarray:
            if cache[0] is not frame:
                cache[0], cache[1] = frame, self._convert(frame, short_side, gray)
            return cache[1]

        k, n = 0, len(targets)
        self.decoded = 0   # frames the decoder produced for this read (skipped ones are not)
        prev = prev_t = None  # the last decoded frame at or before the current target, and its time
        errors, ended, from_start = [0], False, False  # errors: damaged packets, counted by _packet_frames
        while k < n and not ended:
            t0 = targets[k]
            seek_t = t0 if t0 - info.start_time >= gap and not from_start else 0.0
            first = self._resume_at(seek_t)
            prev, skipped = None, []   # times of packets fed while non-reference frames were skipped
            ended = True
            frames = self._packet_frames(deadline, (lambda: targets[k] - margin) if skip else None, skipped, errors,
                                         first)
            for frame, pos in display_times(frames, info.fps):
                assigned = False
                while k < n and pos >= targets[k] - eps:
                    # an exact hit is this frame; otherwise target k is before it, so the one on screen is `prev`
                    src = frame if pos <= targets[k] + eps or prev is None else prev
                    if src is prev and skipped and _maybe_skipped(skipped, prev_t, targets[k] + eps):
                        cc.skip_frame = "DEFAULT"   # a frame shown then may have been skipped:
                        n_before = self.decoded      # decode the rest without skipping
                        got.update(self._decode_targets(targets[k:], short_side, gray, False))
                        self.decoded += n_before
                        return got
                    got[float(targets[k])] = convert(src)
                    k += 1
                    assigned = True
                prev, prev_t = frame, pos
                if k >= n or (assigned and targets[k] - pos >= gap
                              and not self._seek_lands_behind(targets[k], pos + eps)):
                    ended = False
                    break
            if ended and prev is None and seek_t > 0:
                # the seek landed past the decodable data (a truncated file): find its real end
                ended, from_start = False, True
        cc.skip_frame = "DEFAULT"
        if errors[0]:
            self._warn(f"undecodable: {errors[0]} damaged packets skipped")
        if k < n:  # the stream ended: the rest get the last decodable frame
            if prev is None:
                raise VideoError(self.path, "no decodable video frames (truncated or corrupt)")
            last = int(round((prev_t - info.start_time) * info.fps)) + 1
            wanted = int(round((targets[k] - info.start_time) * info.fps)) + 1
            if last < self._expected_end() and wanted > last:
                self._warn(f"truncated: decodable frames end at {last} of {info.num_frames} expected")
            for t in targets[k:]:
                got[float(t)] = convert(prev)
        return got


def display_times(frames, fps: float, window: int = REORDER_WINDOW):
    """``(frame, time)`` for decoded ``frames``, times rising. A decoder emits frames in display order, but
    some files label them with timestamps that do not rise (DivX-style packed B-frames in an AVI: 1, 2, 4,
    3, 5, 7, 6 ...): there the labels are wrong, not the order, so each frame gets the smallest label not
    yet given out. A frame waits for a later one only while the next label in order (within 1.5 frame
    intervals of the last) has not been seen, and at most ``window`` frames wait: rising timestamps pass
    at once. After a decoding error the frames already decoded come out, then the error."""
    held, labels, last, pos = deque(), [], None, None
    step = 1.5 / fps

    def ready():
        return held and (last is None or labels[0] <= last + step or len(held) > window)

    try:
        for frame in frames:
            pos = frame.time if frame.time is not None else (pos or 0.0) + 1 / fps
            held.append(frame)
            heapq.heappush(labels, pos)
            while ready():
                last = heapq.heappop(labels)
                yield held.popleft(), last
    except av.error.FFmpegError:
        while held:
            yield held.popleft(), heapq.heappop(labels)
        raise
    while held:
        yield held.popleft(), heapq.heappop(labels)


def _maybe_skipped(skipped: list, after: float | None, until: float) -> bool:
    """Was a packet fed in skip mode due on screen in (after, until]?"""
    return after is None or any(after < p <= until for p in skipped)


def _count_packets(path, deadline: Deadline, limits: DecodeLimits) -> tuple[int, float | None]:
    """Video packets really in the file and the last one's time (demuxing only, no decoding)."""
    n, last = 0, None
    with open_container(path, limits) as c:
        s = c.streams.video[0]
        for packet in c.demux(s):
            deadline.check()
            if packet.size:
                n += 1
                if packet.pts is not None:
                    t = float(packet.pts * s.time_base)
                    last = t if last is None else max(last, t)
    return n, last


class FrameStream:
    """What :func:`iter_frames` returns: iterate for frames; ``info``, ``decoded`` and ``warning``
    describe the file (``warning`` is final once the iteration ended)."""

    def __init__(self, reader: VideoReader, **kwargs):
        self.reader, self.info, self.fps = reader, reader.info, reader.info.fps
        self._it = reader.iter(**kwargs)

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        try:
            return next(self._it)
        except BaseException:
            self.reader.close()
            raise

    @property
    def decoded(self) -> int:
        return getattr(self.reader, "decoded", 0)

    @property
    def warning(self) -> str | None:
        return self.reader.warning

    def close(self) -> None:
        self._it.close()
        self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def iter_frames(path, short_side: int | None = None, every: int = 1, max_frames: int | None = None, *,
                gray: bool = False, limits: DecodeLimits | None = None, threads: int = 0) -> FrameStream:
    """Stream the whole file's frames (every ``every``-th, at most ``max_frames``) as uint8
    (H, W, 3) RGB or (H, W) gray arrays, memory independent of the video's length. A bad file
    raises VideoError here; damage found while decoding is in ``.warning`` afterwards."""
    return FrameStream(VideoReader(path, threads=threads, limits=limits), short_side=short_side,
                       every=every, max_frames=max_frames, gray=gray)


def probe(path, limits: DecodeLimits | None = None) -> VideoInfo:
    """Read duration, frame rates, frame count, display size, rotation and streams of ``path``."""
    with VideoReader(path, limits=limits) as r:
        return r.info


def read_frames(path, indices=None, short_side: int | None = None, threads: int = 0,
                gray: bool = False, limits: DecodeLimits | None = None) -> np.ndarray:
    """Decode ``indices`` of ``path`` as uint8 (T, H, W, 3) RGB; all frames when ``indices`` is None."""
    with VideoReader(path, threads=threads, limits=limits) as r:
        return r.frames(indices, short_side=short_side, gray=gray)


def read_frames_at(path, times, short_side: int | None = None, threads: int = 0,
                   gray: bool = False, limits: DecodeLimits | None = None) -> np.ndarray:
    """Decode the frames shown at ``times`` (seconds from the start of the video)."""
    with VideoReader(path, threads=threads, limits=limits) as r:
        return r.frames_at(times, short_side=short_side, gray=gray)


def is_video_file(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(root) -> list[Path]:
    """Video files under ``root`` (recursively, sorted), or ``[root]`` for a file."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and is_video_file(p))


DEVICE_KEYS = ("com.apple.quicktime.make", "com.apple.quicktime.model", "make", "model", "com.android.manufacturer",
               "com.android.model", "device", "handler_name")


def recording_metadata(path) -> dict:
    """What a recording session or device leaves in a file: ``{"codec", "encoder", "size", "fps", "date",
    "device"}`` (empty strings where the container says nothing); {} when the file cannot be opened."""
    try:
        with open_container(path) as c:
            meta = {k.lower(): str(v) for k, v in c.metadata.items()}
            vs = c.streams.video[0] if c.streams.video else None
            smeta = {k.lower(): str(v) for k, v in (vs.metadata.items() if vs is not None else ())}
            size = f"{vs.codec_context.width}x{vs.codec_context.height}" if vs is not None else ""
            rate = float(vs.average_rate) if vs is not None and vs.average_rate else 0.0
            codec = vs.codec_context.name if vs is not None else ""
    except (VideoError, OSError, av.error.FFmpegError):
        return {}
    both = {**smeta, **meta}
    date = (both.get("creation_time") or both.get("date") or "")[:10]
    device = " ".join(both[k] for k in DEVICE_KEYS if both.get(k) and "handler" not in k) or both.get("handler_name", "")
    return {"codec": codec, "encoder": both.get("encoder") or both.get("software") or "", "size": size,
            "fps": f"{rate:.2f}" if rate else "", "date": date, "device": device}
