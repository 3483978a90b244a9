"""Every grouped split in vidcat, and where groups come from.

A *group* is what clips share when they are not independent: a source video, a person, a recording
session or device. No split here ever puts one group on both sides: the training/validation split, the
k-fold and leave-one-group-out cross-validation, the inner folds of a model selection and the learning
curve's subsets all come from this module.

Groups come from one place, :func:`given_groups`: the manifest's ``group`` column or ``--group-regex``.
With neither, :func:`auto_groups` finds them from the clips themselves (near-duplicate clips, and
recording sessions told by container metadata), never from file names, which can carry the label.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from vidcat.errors import VidcatError

Folds = list  # [(train_idx, test_idx), ...] of int arrays


def natural_key(s: str) -> list:
    """Sort key that puts ``P2`` before ``P10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def given_groups(ds, group_regex: str | None) -> list | None:
    """Groups from ``--group-regex`` (on the file name, else the path) or the manifest's ``group`` column;
    None when neither is given."""
    from vidcat.data.manifest import compile_regex, regex_field

    if group_regex:
        rx = compile_regex(group_regex, "--group-regex")
        groups = [regex_field(rx, it.path) for it in ds.items]
        bad = [it.path for it, g in zip(ds.items, groups) if g is None]
        if bad:
            raise VidcatError(f"--group-regex {group_regex!r} matches neither the file name nor the path of "
                              f"{len(bad)} video(s), e.g. {bad[0]}")
        return groups
    if ds.items and all(it.meta.get("group") not in (None, "") for it in ds.items):
        return [str(it.meta["group"]) for it in ds.items]
    return None


def codes(groups) -> np.ndarray:
    """Integer group ids, numbered in natural order of the group names."""
    names = sorted({str(g) for g in groups}, key=natural_key)
    index = {g: i for i, g in enumerate(names)}
    return np.array([index[str(g)] for g in groups], dtype=np.int64)


def grouped_folds(labels, groups, k: int | None = 5, seed: int = 0, stratify: bool = True,
                  min_classes: int = 2) -> Folds:
    """``[(train_idx, test_idx)]``: leave-one-group-out when ``k`` is None, else ``k`` grouped folds
    (stratified by label where the classes allow, ``k`` capped by the number of groups). Folds whose
    training side holds fewer than ``min_classes`` classes are dropped; fewer than 2 groups gives []."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    labels, g = np.asarray(labels), codes(groups)
    n_groups, idx = len(np.unique(g)), np.arange(len(g))
    if n_groups < 2:
        return []
    if k is None:
        folds = [(idx[g != j], idx[g == j]) for j in np.unique(g)]
    else:
        k = min(int(k), n_groups)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # "least populated class has fewer members than n_splits"
            try:
                splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed) if stratify else GroupKFold(k)
                folds = list(splitter.split(idx, labels if stratify else None, g))
            except ValueError:                   # every class smaller than k: grouped, unstratified
                folds = list(GroupKFold(k).split(idx, None, g))
    return [(tr, te) for tr, te in folds if len(te) and len(np.unique(labels[tr])) >= min_classes]


def inner_folds(labels, groups, train_idx, k: int = 4, seed: int = 0) -> Folds:
    """Grouped folds inside ``train_idx`` (a selection nested in an outer fold), as dataset positions."""
    train_idx = np.asarray(train_idx)
    labels, groups = np.asarray(labels), np.asarray(groups)
    return [(train_idx[a], train_idx[b]) for a, b in grouped_folds(labels[train_idx], groups[train_idx], k, seed)]


def train_val_split(labels, groups, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """About ``fraction`` of each class's groups held out for validation (each class keeps at least one
    group for training); a group that holds several classes goes wholly to one side."""
    labels, g = np.asarray(labels), codes(groups)
    rng = np.random.default_rng(seed)
    held: set = set()
    for c in np.unique(labels):
        own = np.unique(g[labels == c])
        n = max(1, int(round(len(own) * fraction))) if len(own) > 1 else 0
        held.update(int(x) for x in rng.permutation(own)[:n])
    val = np.isin(g, list(held))
    return np.flatnonzero(~val), np.flatnonzero(val)


def group_subset(train_idx, groups, fraction: float, rng: np.random.Generator, least: int = 2) -> np.ndarray:
    """A random ``fraction`` of the groups in ``train_idx`` (at least ``least``): the learning curve's
    smaller training sets."""
    train_idx, groups = np.asarray(train_idx), np.asarray(groups)
    own = np.unique(groups[train_idx])
    keep = rng.permutation(own)[: max(least, int(round(fraction * len(own))))]
    return train_idx[np.isin(groups[train_idx], keep)]


# -- automatic groups ------------------------------------------------------------------------------------
NEAR_DUPLICATE = 0.4   # cosine distance (average linkage) at which clips count as pieces of one recording


def near_duplicate_groups(embeddings: np.ndarray, k: int = 5, threshold: float = NEAR_DUPLICATE) -> np.ndarray:
    """Group ids merging near-duplicate clips (pieces of one recording): average-linkage clusters of the
    clips' centred, L2-normalised embeddings at cosine distance ``threshold``, tightened until no group
    holds more than 1/k of the clips, so k grouped folds stay possible.

    The threshold was set on the corpus' known groups (``benchmarks/results/auto_groups.md``); merging too
    much only makes an estimate cautious, merging too little lets near-duplicates leak across folds."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(embeddings)
    if n < 3:
        return np.arange(n)
    x = embeddings - embeddings.mean(0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    t = threshold
    for _ in range(12):
        lab = AgglomerativeClustering(n_clusters=None, distance_threshold=t, metric="cosine",
                                      linkage="average").fit_predict(x)
        if np.bincount(lab).max() <= max(1, n // k):
            return lab
        t /= 2
    return np.arange(n)


SESSION_KEYS = ("codec", "encoder", "size", "fps", "date", "device")


def session_signature(meta: dict) -> tuple:
    """What a recording session or device leaves in a file: codec, encoder tag, frame size, frame rate,
    creation day and device make/model (``meta`` from :func:`vidcat.io.video.recording_metadata`)."""
    return tuple(str(meta.get(k) or "") for k in SESSION_KEYS)


def session_groups(metas: list[dict], fine: np.ndarray) -> np.ndarray:
    """Recording sessions: clips with one :func:`session_signature` form a session, and a near-duplicate
    group that straddles two signatures joins them (connected components), so a session is never split
    across folds by its own near-duplicates."""
    sig = codes([repr(session_signature(m)) for m in metas])
    parent = list(range(int(sig.max()) + 1 if len(sig) else 0))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for f in np.unique(fine):
        members = np.unique(sig[fine == f])
        for s in members[1:]:
            parent[root(int(s))] = root(int(members[0]))
    return codes([root(int(s)) for s in sig])


@dataclass
class Groups:
    """The groups of a run: ``fine`` ids (what the selection's folds keep apart), ``sessions`` (coarser
    recording sessions or devices, or None when the files tell none apart) and where they came from."""

    fine: np.ndarray
    how: str                         # "given" | "auto"
    sessions: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(np.unique(self.fine))

    @property
    def n_sessions(self) -> int:
        return 0 if self.sessions is None else len(np.unique(self.sessions))

    def describe(self) -> str:
        if self.how == "given":
            return f"{self.n} groups given"
        extra = f", {self.n_sessions} recording sessions told apart by the files' metadata" \
            if self.n_sessions > 1 else ""
        return f"{self.n} groups of near-duplicate clips found automatically{extra}"


def resolve_groups(given: list | None, embeddings: np.ndarray, metas: list[dict] | None, k: int = 5) -> Groups:
    """The given groups when there are any; else near-duplicate groups from ``embeddings`` and, from the
    files' recording metadata, sessions (kept only when there are at least 2 of them)."""
    if given is not None:
        return Groups(codes(given), "given")
    fine = near_duplicate_groups(embeddings, k)
    sessions = session_groups(metas, fine) if metas else None
    if sessions is not None and len(np.unique(sessions)) < 2:
        sessions = None
    return Groups(fine, "auto", sessions)
