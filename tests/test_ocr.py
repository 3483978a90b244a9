"""On-screen text (PP-OCRv4 via rapidocr-onnxruntime, bundled models): a word burned into the frames of a
real H.264 file is read, text-free and unreadable files give "" / False, results are cached per file
content, and a missing extra is one error line."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidcat.data.synth_media import mux_av
from vidcat.errors import VidcatError
from vidcat.config.extras import has

needs_ocr = pytest.mark.skipif(not has("ocr"), reason="pip install 'vidcat[ocr]' not installed")


def word_frames(word: str | None, rng, frames: int = 12, h: int = 120, w: int = 160) -> np.ndarray:
    """A dark background, a grey block sliding across it, and ``word`` in white at a random place
    (wholly inside the frame)."""
    base = rng.integers(0, 90, 3)
    (tw, _), _ = cv2.getTextSize(word or "", cv2.FONT_HERSHEY_SIMPLEX, 0.9, 2)
    assert tw < w - 8, f"{word!r} does not fit in {w} pixels"
    x0, y0 = int(rng.integers(4, w - tw - 3)), int(rng.integers(60, 100))
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        img = np.full((h, w, 3), base, np.uint8)
        cv2.rectangle(img, (t * 8 % w, 10), (t * 8 % w + 30, 40), (140, 140, 140), -1)
        if word:
            cv2.putText(img, word, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        out[t] = img
    return out


@needs_ocr
def test_burned_in_word_is_read_and_cached(tmp_path, cache):
    from vidcat.io import ocr

    rng = np.random.default_rng(0)
    clip = mux_av(tmp_path / "clip.mp4", word_frames("BASKETBALL", rng, w=224), 12)
    before = dict(ocr.COUNTERS)
    assert ocr.on_screen_text(clip) == "BASKETBALL"  # read on 4 frames, one line after de-duplication
    assert ocr.on_screen_text(clip) == "BASKETBALL"
    assert ocr.COUNTERS["computed"] == before["computed"] + 1 and ocr.COUNTERS["cached"] == before["cached"] + 1
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(clip.read_bytes())
    assert ocr.on_screen_text(copy) == "BASKETBALL" and ocr.COUNTERS["computed"] == before["computed"] + 1
    assert ocr.has_text(clip) is True and ocr.has_text(clip, cache=False) is True


@needs_ocr
def test_no_text_and_unreadable_files_give_empty(tmp_path, cache, bad_files):
    from vidcat.io import ocr

    plain = mux_av(tmp_path / "plain.mp4", word_frames(None, np.random.default_rng(1)), 12)
    assert ocr.on_screen_text(plain) == "" and ocr.has_text(plain) is False
    for name in ("empty", "truncated", "text", "garbage"):
        assert ocr.on_screen_text(bad_files[name]) == "", name
        assert ocr.has_text(bad_files[name]) is False, name
    assert ocr.on_screen_text(tmp_path / "missing.mp4") == "" and ocr.has_text(tmp_path / "missing.mp4") is False


def test_distinct_lines_and_frame_positions():
    from vidcat.io.ocr import distinct_lines, frame_positions

    lines = [("GOAL  now", 0.95), ("goal now", 0.9), ("x", 0.99), ("..", 0.99), ("blurry", 0.79), ("12", 0.8),
             ("Tor", 0.81)]
    assert distinct_lines(lines) == ["GOAL now", "12", "Tor"]
    assert frame_positions(100, 4) == [12, 37, 62, 87]
    assert frame_positions(3, 4) == [0, 1, 2] and frame_positions(0, 4) == [] and frame_positions(1, 2) == [0]


@needs_ocr
def test_bundled_ocr_models_are_listed_and_verified():
    from vidcat.weights import weight_rows

    rows = {r["name"]: r for r in weight_rows()}
    for name in ("ppocr_v4:det", "ppocr_v4:rec", "ppocr_v2:cls"):
        assert rows[name]["available"] and rows[name]["verified"] and rows[name]["licence"] == "Apache-2.0", name


def test_missing_extra_is_one_line(monkeypatch):
    import importlib.util

    from vidcat.config import DataConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "rapidocr_onnxruntime" else real(n, *a))
    with pytest.raises(VidcatError, match=r"^on-screen text needs: pip install 'vidcat\[ocr\]'$"):
        DataConfig(modalities=("text",), ocr=True)
    DataConfig(modalities=("video",), ocr=True)  # the text stream is not read: nothing is needed
