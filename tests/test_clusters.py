"""A first look at an unlabelled folder: planted groups are found with their number, and the contact sheet,
page and manifest are built from real encoded clips (one strip per cluster, a manifest to rename)."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from vidcat.data.manifest import load_dataset
from vidcat.data.synth_media import mux_av
from vidcat.errors import VidcatError
from vidcat.featurefit.clusters import (BACKGROUND, LABEL_WIDTH, MISSING, clip_thumbnails, cluster_clips,
                                        sheet_rows, write_cluster_manifest, write_cluster_page, write_contact_sheet)
from vidcat.io.video import read_frames


def test_planted_groups_are_recovered_with_their_number():
    rng = np.random.default_rng(0)
    sizes, dim = [30, 20, 15, 10], 24
    centres = rng.normal(size=(4, dim)) * 1.5
    x = np.concatenate([c + rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(4), sizes)
    got = cluster_clips(x)
    assert got.k == 4 and sorted(got.silhouette) == list(range(2, 13))
    assert max(got.silhouette, key=got.silhouette.get) == 4
    assert adjusted_rand_score(truth, got.labels) >= 0.9
    assert np.bincount(got.labels).tolist() == sorted(np.bincount(got.labels).tolist(), reverse=True)  # largest first
    present = np.ones(len(x), bool)
    present[[0, 40]] = False
    masked = cluster_clips(x, present)
    assert masked.k == 4 and masked.labels[0] == masked.labels[40] == -1
    assert masked.names()[0] == "unclustered" and masked.names()[1] == "cluster_00"


COLOURS = {"red": (200, 30, 30), "green": (30, 190, 40), "blue": (40, 40, 210)}


@pytest.fixture(scope="module")
def coloured_clips(tmp_path_factory):
    """Seven real H.264 clips (3 red, 2 green, 2 blue; 40x56, 6 frames, a moving bar) and one broken file."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    paths = []
    for name, n in (("red", 3), ("green", 2), ("blue", 2)):
        for i in range(n):
            frames = np.tile(np.array(COLOURS[name], np.uint8), (6, 40, 56, 1))
            frames = np.clip(frames.astype(int) + rng.integers(-12, 12), 0, 255).astype(np.uint8)
            for t in range(6):
                frames[t, :, 8 * t:8 * t + 4] //= 2               # a darker bar moving right
            paths.append(mux_av(root / f"{name}_{i}.mp4", frames, fps=6, crf=18))
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return paths + [broken]


def _mean_colours(paths):
    """Real features: the mean RGB of each decoded clip (present False where it cannot be decoded)."""
    feats, present = np.zeros((len(paths), 3)), np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        try:
            feats[i], present[i] = read_frames(p, short_side=16).reshape(-1, 3).mean(0), True
        except VidcatError:
            pass
    return feats, present


def _strips(img: np.ndarray) -> list[tuple[int, int]]:
    """(top, bottom) of every run of pixel rows with anything but page background right of the labels."""
    inked = (np.abs(img[:, LABEL_WIDTH:].astype(int) - BACKGROUND) > 24).any(axis=(1, 2))
    edges = np.flatnonzero(np.diff(np.r_[0, inked.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2]))


def test_contact_sheet_has_one_strip_per_cluster_from_decoded_clips(tmp_path, coloured_clips):
    feats, present = _mean_colours(coloured_clips)
    assert present.tolist() == [True] * 7 + [False]
    clustering = cluster_clips(feats, present, k_max=5)
    assert clustering.k == 3
    thumbs = clip_thumbnails(coloured_clips, frames=3, size=32)
    assert thumbs[-1] is None and all(t.shape == (32, 96, 3) for t in thumbs[:-1])
    out = write_contact_sheet(tmp_path / "sheet.png", clustering, thumbs, per_cluster=4)
    with Image.open(out) as im:
        assert im.format == "PNG"
        img = np.asarray(im.convert("RGB"))
    expected, rows = sheet_rows(clustering, thumbs, per_cluster=4)
    assert img.shape == expected.shape
    strips = _strips(img)
    assert len(strips) == 4 and all(b - a == 32 for a, b in strips)          # 3 clusters + unclustered
    assert [r[:2] for r in rows] == [("cluster_00", 3), ("cluster_01", 2), ("cluster_02", 2), ("unclustered", 1)]
    colour_of = [np.median(img[a:b, LABEL_WIDTH:LABEL_WIDTH + 8].reshape(-1, 3), axis=0) for a, b in strips]
    want = [COLOURS["red"], None, None, (MISSING,) * 3]
    assert np.abs(colour_of[0] - want[0]).max() < 30 and np.abs(colour_of[3] - want[3]).max() < 2
    assert {int(np.argmax(c)) for c in colour_of[1:3]} == {1, 2}              # green and blue strips
    for a, b in strips:                                                       # each strip is named at its left
        assert (img[a:b, :LABEL_WIDTH] < 128).any()


def test_cluster_page_and_manifest(tmp_path, coloured_clips):
    feats, present = _mean_colours(coloured_clips)
    clustering = cluster_clips(feats, present, k_max=5)
    thumbs = clip_thumbnails(coloured_clips, frames=2, size=24)
    page = write_cluster_page(tmp_path / "clusters.html", clustering, coloured_clips, thumbs).read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 4 and page.count("<h2>") == 4 and "broken.mp4" in page
    with Image.open(io.BytesIO(base64.b64decode(images[0]))) as strip:
        assert strip.size[1] == 24
    folder = coloured_clips[0].parent
    manifest = write_cluster_manifest(folder / "clusters.csv", clustering, coloured_clips)
    assert manifest.read_text().splitlines()[1] == "red_0.mp4,cluster_00"
    ds = load_dataset(manifest)
    assert ds.classes == ["cluster_00", "cluster_01", "cluster_02", "unclustered"]
    by_name = {it.path.rsplit("/", 1)[1]: it.labels[0] for it in ds.items}
    assert by_name["red_2.mp4"] == "cluster_00" and by_name["broken.mp4"] == "unclustered"
    assert by_name["green_0.mp4"] == by_name["green_1.mp4"] != by_name["blue_0.mp4"] == by_name["blue_1.mp4"]


@pytest.mark.parametrize("call,message", [
    (lambda: cluster_clips(np.zeros((5, 2)), k_min=1), "k_min must be an integer >= 2, not 1"),
    (lambda: cluster_clips(np.zeros((5, 2)), k_min=4, k_max=3), "k_max must be >= k_min (4), not 3"),
    (lambda: cluster_clips(np.zeros((5, 2)), present=[True]), "present has 1 values, features 5 rows"),
    (lambda: cluster_clips(np.zeros((4, 2)), k_min=4), "k_min 4 needs at least 5 clips with features, found 4"),
])
def test_cluster_input_errors_are_one_line(call, message):
    with pytest.raises(VidcatError) as e:
        call()
    assert str(e.value) == message
