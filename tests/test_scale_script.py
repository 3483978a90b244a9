"""benchmarks/scale.py: a copy decodes exactly like its source but is a new file to every cache; the growth
line reads the runs' numbers."""
from __future__ import annotations

import numpy as np

from benchmarks import scale
from vidcat.data.synth_media import mux_av, tone
from vidcat.io.store import content_key
from vidcat.io.video import read_frames


def test_a_copy_decodes_like_its_source_under_a_key_of_its_own(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (30, 48, 64, 3), dtype=np.uint8)
    src = mux_av(tmp_path / "src.mp4", frames, 12, audio=tone(300, 2.5))
    rows = scale.with_copies([{"path": str(src), "label": "s/a", "group": "s/g1"}], 3, tmp_path / "work")
    assert [r["label"] for r in rows] == ["s/a"] * 3 and [r["group"] for r in rows] == ["s/g1"] * 3
    keys = {content_key(r["path"]) for r in rows}
    assert len(keys) == 3
    for r in rows[1:]:
        assert np.array_equal(read_frames(r["path"]), read_frames(src))


def test_growth_says_linear_when_the_runs_lie_on_a_line():
    runs = [{"clips": n, "extraction_s": 0.5 * n + 3, "rest_s": 0.002 * n * n ** 0.2, "candidates": 7}
            for n in (500, 1000, 2000)]
    line = scale.growth(runs)
    assert line.startswith("extraction: 0.500 s per clip + 3.0 s (runs within 0 % of the line: linear in clips)")
    assert "clips^1.20" in line
