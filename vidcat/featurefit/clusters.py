"""A first look at an unlabelled folder: clusters of clip features, a contact sheet, a manifest to rename.

Features are standardised and reduced by PCA to at most 32 dimensions, then clustered by k-means for every
k in a range; the k with the highest mean silhouette is kept. On planted Gaussian groups (2-8 groups,
8-256 dimensions, uneven sizes) the silhouette found the planted k more often than the Calinski-Harabasz
and Davies-Bouldin indices or the BIC of diagonal / spherical Gaussian mixtures. The silhouette never
picks one cluster, so a folder of one kind of clip still comes out as two or more clusters.
Clusters are numbered by size, largest first (``cluster_00``); a clip without features is ``unclustered``.
"""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidcat.data.manifest import write_manifest
from vidcat.errors import VidcatError
from vidcat.featurefit._common import as_matrix, manifest_path, positive_int
from vidcat.io.store import atomic_path, atomic_write
from vidcat.io.video import VideoReader

PCA_DIMS = 32
SILHOUETTE_SAMPLE = 3000                       # silhouette is O(N^2): estimated on a sample beyond this
UNCLUSTERED = "unclustered"
MARGIN, LABEL_WIDTH, GAP = 8, 120, 4          # contact-sheet layout, pixels
BACKGROUND, MISSING = 255, 128                 # white page, grey tile for a clip that cannot be decoded


@dataclass
class Clustering:
    """Cluster index per clip (-1: no features), the chosen k, and the criterion's value per k tried."""

    labels: np.ndarray
    k: int
    silhouette: dict[int, float] = field(default_factory=dict)
    distance: np.ndarray | None = None     # distance of each clip to its cluster's centre (PCA space)
    criterion: str = "silhouette of k-means on standardised PCA features"

    def name(self, cluster: int) -> str:
        return UNCLUSTERED if cluster < 0 else f"cluster_{cluster:02d}"

    def names(self) -> list[str]:
        """The cluster name of every clip."""
        return [self.name(int(c)) for c in self.labels]

    def members(self, cluster: int) -> np.ndarray:
        """The clips of ``cluster``, the most typical (nearest its centre) first."""
        idx = np.flatnonzero(self.labels == cluster)
        return idx if self.distance is None else idx[np.argsort(self.distance[idx], kind="stable")]


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters largest first (ties: the cluster whose first clip comes first)."""
    ids = np.unique(labels)
    order = sorted(ids, key=lambda c: (-(labels == c).sum(), np.flatnonzero(labels == c)[0]))
    remap = {int(c): i for i, c in enumerate(order)}
    return np.array([remap[int(c)] for c in labels], dtype=np.int64)


def cluster_clips(features, present=None, k_min: int = 2, k_max: int = 12, seed: int = 0,
                  standardise: bool = True) -> Clustering:
    """Cluster clip ``features`` (N, D); ``present`` (N,) marks the clips that have features (the rest
    get -1). k runs over ``k_min..k_max`` (capped at clips - 1) and the best mean silhouette wins.
    ``standardise=False`` keeps the features' own scale (features already weighted, e.g. per stream)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    k_min, k_max = positive_int(k_min, "k_min", 2), positive_int(k_max, "k_max", 2)
    if k_max < k_min:
        raise VidcatError(f"k_max must be >= k_min ({k_min}), not {k_max}")
    mask = np.ones(len(features), bool) if present is None else np.asarray(present, bool).reshape(-1)
    if mask.shape != (len(features),):
        raise VidcatError(f"present has {mask.size} values, features {len(features)} rows")
    x = as_matrix(np.asarray(features)[mask], "features")
    labels, distance = np.full(len(mask), -1, np.int64), np.zeros(len(mask))
    if len(x) < 3:   # nothing to choose between: one cluster
        labels[mask] = 0
        return Clustering(labels, 1, {}, distance)
    if min(k_max, len(x) - 1) < k_min:
        raise VidcatError(f"k_min {k_min} needs at least {k_min + 1} clips with features, found {len(x)}")
    z = StandardScaler().fit_transform(x) if standardise else x - x.mean(0)
    z = PCA(n_components=min(PCA_DIMS, len(z) - 1, z.shape[1]), random_state=seed).fit_transform(z)
    fits, scores = {}, {}
    for k in range(k_min, min(k_max, len(z) - 1) + 1):
        fits[k] = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z)
        scores[k] = (float(silhouette_score(z, fits[k].labels_, sample_size=min(len(z), SILHOUETTE_SAMPLE),
                                            random_state=seed)) if len(set(fits[k].labels_)) > 1 else -1.0)
    best = max(scores, key=lambda k: (round(scores[k], 9), -k))
    km = fits[best]
    labels[mask] = _by_size(km.labels_)
    distance[mask] = np.linalg.norm(z - km.cluster_centers_[km.labels_], axis=1)
    criterion = "silhouette of k-means on " + ("standardised " if standardise else "") + "PCA features"
    return Clustering(labels, best, scores, distance, criterion)


def _square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (and pad, if short) (T, H, W, 3) frames to (T, size, size, 3)."""
    t, h, w, _ = frames.shape
    y, x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    out = np.full((t, size, size, 3), BACKGROUND, np.uint8)
    crop = frames[:, y:y + size, x:x + size]
    out[:, :crop.shape[1], :crop.shape[2]] = crop
    return out


def clip_thumbnail(path, frames: int = 3, size: int = 64) -> np.ndarray | None:
    """``frames`` frames spread over the clip, each centre-cropped to size x size, side by side:
    (size, frames * size, 3) uint8; None when the file cannot be decoded."""
    try:
        with VideoReader(path, threads=1) as r:
            n = r.info.num_frames
            idx = ((np.arange(frames) + 0.5) * n / frames).astype(np.int64)
            imgs = r.frames(np.minimum(idx, n - 1), short_side=size)
    except (VidcatError, OSError, ValueError, RuntimeError):
        return None
    return np.concatenate(list(_square(np.asarray(imgs, np.uint8), size)), axis=1)


def clip_thumbnails(paths, frames: int = 3, size: int = 64) -> list[np.ndarray | None]:
    """:func:`clip_thumbnail` of every path (None for a file that cannot be decoded)."""
    frames, size = positive_int(frames, "frames"), positive_int(size, "size", 8)
    return [clip_thumbnail(p, frames, size) for p in paths]


def _tile_shape(thumbnails) -> tuple[int, int]:
    shapes = {t.shape for t in thumbnails if t is not None}
    if len(shapes) > 1:
        raise VidcatError(f"thumbnails differ in shape ({sorted(shapes)[:3]}); make them with one frames/size")
    return shapes.pop()[:2] if shapes else (64, 64)


def sheet_rows(clustering: Clustering, thumbnails, per_cluster: int = 8) -> tuple[np.ndarray, list]:
    """The contact sheet's pixels: one strip per cluster (largest first, unclustered last) of its
    ``per_cluster`` most typical clips; returns (image (H, W, 3) uint8, [(name, clips, strip top y)])."""
    per_cluster = positive_int(per_cluster, "per_cluster")
    th, tw = _tile_shape(thumbnails)
    ids = [c for c in range(clustering.k) if (clustering.labels == c).any()]
    ids += [-1] if (clustering.labels < 0).any() else []
    width = LABEL_WIDTH + per_cluster * (tw + GAP) - GAP + MARGIN
    sheet = np.full((MARGIN + len(ids) * (th + MARGIN), width, 3), BACKGROUND, np.uint8)
    rows = []
    for r, c in enumerate(ids):
        top = MARGIN + r * (th + MARGIN)
        members = clustering.members(c)
        for j, i in enumerate(members[:per_cluster]):
            x0 = LABEL_WIDTH + j * (tw + GAP)
            thumb = thumbnails[i]
            sheet[top:top + th, x0:x0 + tw] = MISSING if thumb is None else thumb
        rows.append((clustering.name(c), len(members), top))
    return sheet, rows


def write_contact_sheet(path, clustering: Clustering, thumbnails, per_cluster: int = 8, dpi: int = 100) -> Path:
    """A PNG with one thumbnail strip per cluster, its name and size at the left (pixel-exact layout:
    :func:`sheet_rows`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sheet, rows = sheet_rows(clustering, thumbnails, per_cluster)
    h, w = sheet.shape[:2]
    fig = plt.figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    try:
        fig.figimage(sheet, 0, 0, origin="upper")
        th = _tile_shape(thumbnails)[0]
        for name, count, top in rows:
            fig.text(4 / w, 1 - (top + th / 2) / h, f"{name}\n{count} clip{'s' * (count != 1)}",
                     va="center", ha="left", fontsize=8, family="monospace")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def _png_data_uri(img: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    plt.imsave(buf, img, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def write_cluster_page(path, clustering: Clustering, clip_paths, thumbnails, per_cluster: int = 8) -> Path:
    """One self-contained HTML page: per cluster its name, size, thumbnail strip and every clip's file."""
    sheet, rows = sheet_rows(clustering, thumbnails, per_cluster)
    th = _tile_shape(thumbnails)[0]
    ids = {clustering.name(c): c for c in set(clustering.labels.tolist())}
    parts = ["<!doctype html><meta charset='utf-8'><title>clusters</title>",
             "<style>body{font-family:sans-serif} li{font-family:monospace}</style>",
             f"<h1>{clustering.k} clusters ({html.escape(clustering.criterion)})</h1>"]
    for name, count, top in rows:
        strip = sheet[top:top + th, LABEL_WIDTH:]
        files = "".join(f"<li>{html.escape(os.fspath(clip_paths[i]))}</li>" for i in clustering.members(ids[name]))
        parts.append(f"<h2>{html.escape(name)} ({count} clips)</h2><img alt='{html.escape(name)}' "
                     f"src='{_png_data_uri(strip)}'><details><summary>files</summary><ul>{files}</ul></details>")
    return atomic_write(path, "\n".join(parts) + "\n")


def write_cluster_manifest(path, clustering: Clustering, clip_paths) -> Path:
    """A CSV manifest ``path,label`` with the cluster name as label: rename the labels (or delete rows)
    and train on it. Paths below the manifest's folder are written relative to it."""
    if len(clip_paths) != len(clustering.labels):
        raise VidcatError(f"{len(clip_paths)} clip paths for {len(clustering.labels)} clustered clips")
    rows = [{"path": manifest_path(p, path), "label": name} for p, name in zip(clip_paths, clustering.names())]
    return write_manifest(path, rows, ["path", "label"])
