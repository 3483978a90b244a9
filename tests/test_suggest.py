"""What to label next: uncertain clips first, no two near-duplicates at the top, and a CSV that reads
back as a training manifest with the suggested labels."""
from __future__ import annotations

import numpy as np
import pytest

from vidcat.data.manifest import load_dataset
from vidcat.errors import VidcatError
from vidcat.featurefit.suggest import Suggestion, suggest_clips, uncertainty, write_suggestions


def _two_clusters_and_a_boundary(seed=0):
    """Two classes around x = -3 and x = +3, and four clips on the boundary x ~ 0: a near-identical
    pair at the very centre (the two most uncertain clips) and two further out along y."""
    rng = np.random.default_rng(seed)
    left = rng.normal([-3, 0], 0.5, size=(40, 2))
    right = rng.normal([3, 0], 0.5, size=(40, 2))
    boundary = np.array([[0.0, 0.0], [0.01, 0.0], [0.15, 3.0], [-0.15, -3.0]])
    x = np.concatenate([left, right, boundary])
    p_right = 1 / (1 + np.exp(-2 * x[:, 0]))                     # a planted head: the boundary is x = 0
    return np.stack([1 - p_right, p_right], 1), x, {80, 81, 82, 83}, {80, 81}


def test_uncertain_boundary_clips_come_first_and_near_duplicates_are_not_both_on_top():
    probs, x, boundary, pair = _two_clusters_and_a_boundary()
    plain = [s.index for s in suggest_clips(probs, x, n=4, diversity=False)]
    assert set(plain[:2]) == pair                                  # by uncertainty alone: the pair is the top 2
    picks = suggest_clips(probs, x, n=6, classes=["left", "right"])
    top = [s.index for s in picks]
    assert set(top[:3]) <= boundary and len(set(top[:2]) & pair) == 1
    assert set(top[:3]) == (boundary - pair) | {top[0]}           # the fresh boundary clips beat the twin
    assert picks[0].reason.startswith("margin 0.00: left 0.50 vs right 0.50")
    assert "spacings from earlier picks" in picks[1].reason


def test_entropy_also_ranks_the_boundary_first():
    probs, x, boundary, _ = _two_clusters_and_a_boundary(seed=1)
    u = uncertainty(probs, "entropy")
    assert u.max() == pytest.approx(1.0) and 0 <= u.min()
    assert {s.index for s in suggest_clips(probs, x, n=3, kind="entropy")} <= boundary
    assert uncertainty([[0.2, 0.3, 0.5]], "margin")[0] == pytest.approx(0.8)


def test_suggestions_csv_reads_back_as_a_manifest(tmp_path):
    probs = np.array([[0.55, 0.45, 0.0], [0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    clips = [tmp_path / "clips" / f"c{i}.mp4" for i in range(3)] + [tmp_path.parent / "elsewhere.mp4"]
    picks = suggest_clips(probs, n=4)
    out = write_suggestions(tmp_path / "next.csv", clips, picks, ["walk", "run", "jump"])
    text = out.read_text().splitlines()
    assert text[0] == "path,label,confidence,rank,reason" and text[1].startswith("clips/c1.mp4,run,0.500,1,")
    ds = load_dataset(out)
    assert ds.classes == ["jump", "run", "walk"] and not ds.multilabel
    got = [(it.path, it.labels, it.meta["confidence"]) for it in ds.items]
    want = [(str(clips[s.index].resolve()), [["walk", "run", "jump"][s.label]], f"{s.confidence:.3f}") for s in picks]
    assert got == want


@pytest.mark.parametrize("call,message", [
    (lambda: suggest_clips([[0.5, 0.5]], n=0), "n must be an integer >= 1, not 0"),
    (lambda: suggest_clips([[0.5, 0.5]], kind="random"), "uncertainty must be one of margin, entropy, not 'random'"),
    (lambda: suggest_clips([[0.5, 0.5]], features=np.zeros((2, 3))), "features has 2 rows, want 1 (one per clip)"),
    (lambda: write_suggestions("x.csv", ["a.mp4"], [Suggestion(3, 0, 0.5, 0.5, "")], ["a"]),
     "suggestion 1 points at clip 3 / class 0, outside the 1 clips / 1 classes given"),
])
def test_suggest_input_errors_are_one_line(call, message):
    with pytest.raises(VidcatError) as e:
        call()
    assert str(e.value) == message
