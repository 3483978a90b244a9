"""Deterministic corpus of damaged and hostile inputs made from the real clips in ../shared/data.

    python -m tests.fuzz.generate OUT_DIR [--seed 0] [--limit N]      # prints a JSON summary

Each entry is a file system path: truncations at many offsets, byte flips in the header and the
body, a zeroed block, zero-byte and tiny files, text / ANSI art / PNG / JPEG / random bytes under a
video extension, directories and symlink loops named like videos, a dangling link, and odd names
(spaces, unicode, a leading dash, shell characters). The same ``seed`` and sources give byte-identical
files. ``corpus.json`` in OUT_DIR lists every entry with its kind and the records a command must
give for it (``expect``: 1 for a file, 0 for an empty directory, n for a folder holding n videos).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SOURCE_DIRS = ("media", "ud810-actions", "arid-dark")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}
# fraction of the file kept by a truncation: tiny (header only) to nearly whole
TRUNCATIONS = (0.002, 0.01, 0.05, 0.15, 0.35, 0.6, 0.85, 0.99)
ODD_NAMES = ("clip with spaces {i}", "-leading-dash-{i}", "ünïcødé 视频 {i}", "semi;colon $(x) 'q' {i}",
             "#hash %20 {i}", "     {i}")


@dataclass
class Entry:
    """One fuzz input: ``name`` under the corpus folder, how it was made, records expected for it."""

    name: str
    kind: str
    source: str = ""
    detail: str = ""
    expect: int = 1


def source_clips(shared: Path = SHARED) -> list[Path]:
    """The real clips, sorted (the order fixes the corpus)."""
    files = []
    for d in SOURCE_DIRS:
        if (shared / d).is_dir():
            files += sorted(p for p in (shared / d).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return files


def _rng(seed: int, *key) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``key`` (never on the order of calls)."""
    h = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def _flip(data: bytes, positions, values) -> bytes:
    b = bytearray(data)
    for p, v in zip(positions, values):
        b[int(p)] = int(v) if b[int(p)] != int(v) else (int(v) ^ 0xFF)
    return bytes(b)


def damaged_variants(data: bytes, suffix: str, seed: int, src: str):
    """``(kind, detail, bytes)`` for every damage applied to one clip, most informative first."""
    n = len(data)
    rng = _rng(seed, src)
    out = []
    if suffix == ".avi" and n > 143:  # issue 13: the header then claims 536,871,076 frames
        out.append(("header_flip", "byte 143 -> 0x20", _flip(data, [143], [0x20])))
    fracs = list(TRUNCATIONS)
    rng.shuffle(fracs)
    for f in fracs:
        cut = max(1, min(n - 1, int(n * f) + int(rng.integers(0, 97))))
        out.append(("truncate", f"first {cut} of {n} bytes", data[:cut]))
        if len(out) == 1 + (suffix == ".avi"):  # the other kinds early: a small limit sees each
            pos = rng.integers(0, min(n, 1024), 6)
            out.append(("header_flip", f"6 bytes in the first KiB at {sorted(pos.tolist())}",
                        _flip(data, pos, rng.integers(0, 256, 6))))
            pos = rng.integers(min(n - 1, 1024), n, 64)
            out.append(("body_flip", "64 random bytes past the first KiB",
                        _flip(data, pos, rng.integers(0, 256, 64))))
            start = int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))
            z = bytearray(data)
            z[start:start + 8192] = bytes(len(z[start:start + 8192]))
            out.append(("zero_block", f"8 KiB zeroed at {start}", bytes(z)))
    return out


def _png(seed: int) -> bytes:
    import cv2

    img = _rng(seed, "png").integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def _jpeg(seed: int) -> bytes:
    import cv2

    img = _rng(seed, "jpg").integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _specials(out: Path, seed: int, good: Path | None, shared: Path) -> list[Entry]:
    """Inputs that are not damaged videos: empty, text, images, folders, links."""
    entries = []

    def write(name, data, kind, detail=""):
        (out / name).write_bytes(data)
        entries.append(Entry(name, kind, detail=detail))

    write("empty.mp4", b"", "zero_byte")
    write("notes.mp4", b"this is not a video\n" * 40, "text_as_video")
    write("readme.txt", b"plain text with a .txt name\n" * 10, "text")
    ansi = "".join(f"\x1b[3{i % 8}m{'#' * 40}\x1b[0m\n" for i in range(60)).encode()
    write("ansi_art.avi", ansi, "text_as_video", "ANSI escape art")
    write("image.mp4", _png(seed), "png_as_video")
    write("photo.mp4", _jpeg(seed), "jpeg_as_video")
    write("garbage.mkv", _rng(seed, "garbage").integers(0, 256, 20000, dtype=np.uint8).tobytes(), "random_bytes")
    (out / "dir.mp4").mkdir()
    entries.append(Entry("dir.mp4", "directory_named_video", expect=0))
    (out / "loop.mp4").symlink_to("loop.mp4")
    entries.append(Entry("loop.mp4", "symlink_loop"))
    (out / "loop_a.avi").symlink_to("loop_b.avi")
    (out / "loop_b.avi").symlink_to("loop_a.avi")
    entries.append(Entry("loop_a.avi", "symlink_loop", detail="a -> b -> a"))
    (out / "dangling.mp4").symlink_to("does-not-exist.mp4")
    entries.append(Entry("dangling.mp4", "dangling_symlink"))
    if good is not None:
        data = good.read_bytes()
        nested = out / "nested.avi"
        nested.mkdir()
        (nested / "inner.mp4").write_bytes(data[: len(data) // 2])
        entries.append(Entry("nested.avi", "directory_named_video", good.name, "holds one half-cut clip"))
        write(f"{good.stem}_as.mkv", data, "wrong_extension", f"{good.name} renamed .mkv")
        write(f"{good.stem}_intact{good.suffix}", data, "intact", good.name)
    avi = shared / "media" / "mmaction2_test.avi"
    if avi.is_file():  # issue 13's reproduction: the header then claims 536,871,076 frames
        write("mmaction2_test_byte143.avi", _flip(avi.read_bytes(), [143], [0x20]), "header_flip", "byte 143 -> 0x20")
    return entries


def make_corpus(out_dir, seed: int = 0, limit: int | None = None, shared: Path = SHARED) -> list[Entry]:
    """Write the corpus into ``out_dir`` (must be empty or missing); returns its entries.

    ``limit`` caps the number of entries: the special inputs first, then damaged clips round-robin
    over the sources (smallest sources first under a limit, so a small corpus stays fast).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise ValueError(f"{out} is not empty")
    clips = source_clips(shared)
    if not clips:
        raise FileNotFoundError(f"no source clips under {shared}")
    if limit is not None:  # the smallest clips, about 4 variants each
        clips = sorted(clips, key=lambda p: (p.stat().st_size, p.name))
    entries = _specials(out, seed, clips[0], shared)
    if limit is not None:
        clips = clips[:max(1, -(-(limit - len(entries)) // 4))]
    per_clip = [damaged_variants(c.read_bytes(), c.suffix.lower(), seed, c.name) for c in clips]
    odd = 0
    for round_ in range(max(len(v) for v in per_clip)):
        for clip, variants in zip(clips, per_clip):
            if limit is not None and len(entries) >= limit:
                break
            if round_ >= len(variants):
                continue
            kind, detail, data = variants[round_]
            stem = f"{clip.stem}_{kind}{round_}"
            if round_ % 3 == 2:  # every third variant gets a hostile name
                stem = ODD_NAMES[odd % len(ODD_NAMES)].format(i=odd) + f"_{clip.stem}"
                odd += 1
            name = f"{stem}{clip.suffix.lower()}"
            (out / name).write_bytes(data)
            entries.append(Entry(name, kind, clip.name, detail))
    if limit is not None:
        entries = entries[:limit]
    (out / "corpus.json").write_text(json.dumps([asdict(e) for e in entries], indent=1, ensure_ascii=False))
    return entries


def load_corpus(out_dir) -> list[Entry]:
    return [Entry(**e) for e in json.loads((Path(out_dir) / "corpus.json").read_text())]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.generate", description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    a = p.parse_args(argv)
    entries = make_corpus(a.out, a.seed, a.limit)
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(json.dumps({"out": a.out, "entries": len(entries), "kinds": kinds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
