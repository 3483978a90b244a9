"""Choosing the ``frame_head`` head on the user's own clips, and saying how sure we are.

Given cached per-frame features, every candidate of a small fixed family (:data:`CANDIDATES`: pooling
over time x global or positional appearance features x motion descriptor x regularisation) is scored by
**grouped, stratified k-fold** on the training clips: no group (source video, person, session -- or an
automatically found cluster of near-duplicate clips, :func:`auto_groups`) is ever on both sides of a
split, and training folds also use the clips' augmented views while test folds see only the centre view.
The simplest candidate within one standard error of the best is kept (Breiman's 1-SE rule), refitted on
every clip, and its out-of-fold accuracy -- re-selected inside each outer fold when that is affordable,
so the estimate does not profit from the selection -- is reported with a Wilson 95 % interval.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vidcat.models.frame_head import MOTION_DIM, POOL_WIDTH, PooledHead


@dataclass(frozen=True)
class Candidate:
    pool: str = "absdiff"        # mean | meanstd | absdiff | trend
    app: str = "global"          # global (average features) | positional (+ activation centroids)
    motion: bool = False         # + the frame-difference motion descriptor
    C: float = 0.1               # inverse L2 strength of the logistic regression (standardised features)

    @property
    def name(self) -> str:
        return f"{self.pool}/{self.app}{'+motion' if self.motion else ''}/C={self.C:g}"

    def complexity(self, d: int) -> tuple:
        """Smaller is simpler: fewer features first, then stronger regularisation."""
        width = POOL_WIDTH[self.pool] * (d if self.app == "global" else 3 * d) + (2 * MOTION_DIM if self.motion else 0)
        return width, self.C

    def head_kwargs(self) -> dict:
        return {"pool": self.pool, "app": self.app, "motion": self.motion}


def _family(pools, apps, motions, cs) -> tuple:
    return tuple(Candidate(p, a, m, c) for p in pools for a in apps for m in motions for c in cs)


# Chosen on the development corpus (benchmarks/results/real_data.md): of 24 candidates (mean | absdiff | trend
# pooling x global | positional features x motion descriptor or not x C 0.01 | 0.1), trend pooling of
# positional features ranked first on every set with a spread between candidates, and mean pooling last;
# the family keeps trend pooling and lets each data set choose features, motion and regularisation.
CANDIDATES = (_family(("trend",), ("global",), (True,), (0.01, 0.1))
              + _family(("trend",), ("positional",), (False, True), (0.01, 0.1)))
FALLBACK = Candidate("trend", "positional", True, 0.1)   # too few clips or groups to compare: the corpus's best


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def make_head(c: Candidate, num_classes: int, feat_dim: int) -> PooledHead:
    d = (feat_dim - MOTION_DIM) // 3
    return PooledHead(num_classes, c.pool, d if c.app == "global" else 3 * d, c.motion, feat_dim)


def pooled(feats: np.ndarray, c: Candidate) -> np.ndarray:
    """(N, V, T, F) per-frame features → (N, V, W) what candidate ``c``'s regression sees."""
    n, v, t, f = feats.shape
    head = make_head(c, 2, f)
    with torch.no_grad():
        x = head.pooled(torch.from_numpy(np.ascontiguousarray(feats.reshape(n * v, t, f))))
    return x.numpy().reshape(n, v, -1).astype(np.float64)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, sigma, keep)``: features whose spread is below 1e-4 x the median spread are masked out, so a
    near-constant feature (an exact-zero channel recomputed as ~1e-8) can never get a huge weight."""
    mu, sd = x.mean(0), x.std(0)
    floor = 1e-4 * float(np.median(sd[sd > 0])) if (sd > 0).any() else 1.0
    keep = (sd > floor).astype(np.float64)
    return mu, np.where(keep > 0, sd, 1.0), keep


class Projection:
    """Training-set standardisation (:func:`standardiser`), then -- when there are more features than
    samples -- the samples' coordinates in their own row space, fitted once per fold and feature block
    and shared by every C.

    With n samples of W ≫ n features an L2-penalised linear model's weights lie in the span of the
    samples (representer theorem), so fitting on the n coordinates and mapping the weights back gives
    the same model as fitting on all W features, at a fraction of the cost. The coordinates come from
    the eigendecomposition of the Gram matrix ``z zᵀ``: no W-wide basis is formed unless the weights
    are wanted (:meth:`weights`)."""

    def __init__(self, x: np.ndarray, rel_tol: float = 1e-9):
        self.mu, self.sigma, self.keep = standardiser(x)
        self.z = self.standardise(x)
        self.kernel = self.z.shape[1] > self.z.shape[0]
        if self.kernel:
            evals, evecs = np.linalg.eigh(self.z @ self.z.T)
            ok = evals > rel_tol * max(float(evals.max()), 1e-30)
            self.s, self.u = np.sqrt(evals[ok]), evecs[:, ok]

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mu) / self.sigma * self.keep

    def train_coords(self) -> np.ndarray:
        return self.u * self.s if self.kernel else self.z

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = self.standardise(x)
        return (z @ self.z.T) @ (self.u / self.s) if self.kernel else z

    def weights(self, w: np.ndarray) -> np.ndarray:
        """Weights over the standardised features from weights over the coordinates."""
        return (w @ (self.u / self.s).T) @ self.z if self.kernel else w


def logreg(z: np.ndarray, y: np.ndarray, C: float, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on ``z``: ``(W (K, dim), b (K,))``; absent classes never win."""
    from sklearn.linear_model import LogisticRegression

    w, b = np.zeros((num_classes, z.shape[1])), np.full(num_classes, -1e4)
    present = np.unique(y)
    if len(present) == 1:
        b[present[0]] = 0.0
        return w, b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # lbfgs' ConvergenceWarning: the 1-SE choice is what counts
        clf = LogisticRegression(C=C, max_iter=300, tol=1e-3).fit(z, y)
    coef, icpt = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:                                 # binary: sklearn keeps one row
        coef, icpt = np.concatenate([-coef / 2, coef / 2]), np.array([-icpt[0] / 2, icpt[0] / 2])
    w[clf.classes_], b[clf.classes_] = coef, icpt
    return w, b


def fit_logreg(x: np.ndarray, y: np.ndarray, C: float, num_classes: int):
    """Standardise and fit (in the row space, mapped back exactly): ``(mu, sigma, keep, W (K, W), b (K,))``."""
    proj = Projection(x)
    w, b = logreg(proj.train_coords(), y, C, num_classes)
    return proj.mu, proj.sigma, proj.keep, proj.weights(w), b


def fit_head(feats: np.ndarray, labels: np.ndarray, c: Candidate, num_classes: int) -> PooledHead:
    """The candidate fitted on every view of every clip, as the model's head module."""
    x = pooled(feats, c)
    n, v, w = x.shape
    mu, sigma, keep, coef, icpt = fit_logreg(x.reshape(n * v, w), np.repeat(labels, v), c.C, num_classes)
    head = make_head(c, num_classes, feats.shape[-1])
    with torch.no_grad():
        for name, val in (("mu", mu), ("sigma", sigma), ("keep", keep)):
            getattr(head, name).copy_(torch.from_numpy(val).float())
        head.fc.weight.copy_(torch.from_numpy(coef).float())
        head.fc.bias.copy_(torch.from_numpy(icpt).float())
    return head.requires_grad_(False).eval()


def grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0) -> list:
    """Stratified grouped k-fold ``[(train_idx, test_idx)]`` with k capped by the number of groups; [] when
    fewer than 2 groups or a split would leave a training fold with one class."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    k = min(k, len(np.unique(groups)))
    if k < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "least populated class has fewer members than n_splits"
        try:
            folds = list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(labels, labels, groups))
        except ValueError:                   # every class smaller than k: grouped, unstratified
            folds = list(GroupKFold(k).split(labels, labels, groups))
    return [(tr, te) for tr, te in folds if len(np.unique(labels[tr])) >= 2 and len(te)]


@dataclass
class Selection:
    """The kept candidate, every candidate's grouped-CV score, and the estimate of the kept recipe."""

    best: Candidate
    table: list[dict]
    estimate: dict

    def line(self) -> str:
        e = self.estimate
        if e.get("top1") is None:
            return f"expected top-1 unknown ({e.get('note', 'too few clips to cross-validate')})"
        return (f"expected top-1 {e['top1']:.2f} (95% CI {e['lo']:.2f}-{e['hi']:.2f}; {e['folds']}-fold grouped CV, "
                f"{e['n']} clips, {e['groups']} groups)")

    def as_dict(self) -> dict:
        return {"best": self.best.name, "best_args": asdict(self.best), "table": self.table,
                "estimate": self.estimate, "line": self.line()}


def _blocks(feats: np.ndarray, cands) -> dict:
    """Pooled features per (pool, app, motion), computed once for every C."""
    out = {}
    for c in cands:
        k = (c.pool, c.app, c.motion)
        if k not in out:
            out[k] = pooled(feats, c)
    return out


def _fold_correct(x: np.ndarray, labels, tr, te, Cs, num_classes: int) -> list[np.ndarray]:
    """Correctness on the ``te`` centre views of one feature block fitted on every view of ``tr``, per C."""
    n, v, w = x[tr].shape
    proj = Projection(x[tr].reshape(n * v, w))
    ztr, zte, y = proj.train_coords(), proj(x[te, 0]), np.repeat(labels[tr], v)
    out = []
    for C in Cs:
        wts, b = logreg(ztr, y, C, num_classes)
        out.append((zte @ wts.T + b).argmax(1) == labels[te])
    return out


def score(blocks: dict, labels, folds, cands, num_classes: int) -> dict:
    """``{candidate: (per-fold accuracies, out-of-fold correct (N,) bool)}``."""
    res = {c: ([], np.zeros(len(labels), bool)) for c in cands}
    for key in dict.fromkeys((c.pool, c.app, c.motion) for c in cands):
        group = [c for c in cands if (c.pool, c.app, c.motion) == key]
        for tr, te in folds:
            for c, ok in zip(group, _fold_correct(blocks[key], labels, tr, te, [c.C for c in group], num_classes)):
                res[c][1][te] = ok
                res[c][0].append(float(ok.mean()))
    return res


def one_se_choice(scores: dict, d: int) -> Candidate:
    """The simplest candidate whose mean fold accuracy is within one standard error of the best's."""
    means = {c: float(np.mean(a)) for c, (a, _) in scores.items()}
    top = max(means, key=lambda c: (means[c], [-x for x in c.complexity(d)]))
    accs = scores[top][0]
    se = float(np.std(accs, ddof=1) / math.sqrt(len(accs))) if len(accs) > 1 else 0.0
    ok = [c for c in scores if means[c] >= means[top] - se - 1e-12]
    return min(ok, key=lambda c: (c.complexity(d), -means[c]))


def select(feats: np.ndarray, labels: np.ndarray, groups: np.ndarray, num_classes: int, cands=CANDIDATES,
           k: int = 5, seed: int = 0, nested: bool | None = None) -> Selection:
    """Grouped-CV selection among ``cands`` (the 1-SE rule) and the estimate of the whole procedure."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    d = (feats.shape[-1] - MOTION_DIM) // 3
    folds = grouped_folds(labels, groups, k, seed)
    n_groups = len(np.unique(groups))
    if not folds:
        return Selection(FALLBACK, [], {"top1": None, "n": len(labels), "groups": n_groups,
                                        "note": f"{n_groups} group(s): nothing to cross-validate"})
    blocks = _blocks(feats, cands)
    scores = score(blocks, labels, folds, cands, num_classes)
    best = one_se_choice(scores, d)
    table = [{"candidate": c.name, "top1": round(float(np.mean(a)), 4),
              "se": round(float(np.std(a, ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0, 4),
              "folds": [round(x, 3) for x in a]} for c, (a, _) in scores.items()]
    table.sort(key=lambda r: -r["top1"])
    if nested is None:
        nested = len(labels) * len(cands) <= 2000     # a few hundred clips: affordable, and where it matters
    oof = _nested_oof(blocks, labels, groups, folds, cands, num_classes, d, seed) if nested else scores[best][1]
    covered = np.zeros(len(labels), bool)
    for _, te in folds:
        covered[te] = True
    kk, n = int(oof[covered].sum()), int(covered.sum())
    lo, hi = wilson(kk, n)
    est = {"top1": round(kk / n, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": n, "groups": n_groups,
           "folds": len(folds), "protocol": "stratified grouped k-fold", "nested": bool(nested),
           "note": "selection repeated inside each outer fold" if nested else
           "out-of-fold accuracy of the selected candidate (slightly optimistic: it was selected on these folds)"}
    return Selection(best, table, est)


def _nested_oof(blocks, labels, groups, folds, cands, num_classes, d, seed) -> np.ndarray:
    """Out-of-fold correctness when each outer fold picks its own candidate on its training clips."""
    oof = np.zeros(len(labels), bool)
    for tr, te in folds:
        inner = [(tr[a], tr[b]) for a, b in grouped_folds(labels[tr], groups[tr], 4, seed + 1)]
        c = one_se_choice(score(blocks, labels, inner, cands, num_classes), d) if inner else FALLBACK
        oof[te] = _fold_correct(blocks[(c.pool, c.app, c.motion)], labels, tr, te, [c.C], num_classes)[0]
    return oof


def learning_curve(feats: np.ndarray, labels: np.ndarray, groups: np.ndarray, c: Candidate, num_classes: int,
                   fractions=(0.25, 0.5, 0.75, 1.0), k: int = 5, seed: int = 0) -> list[dict]:
    """Grouped-CV top-1 of candidate ``c`` trained on a fraction of each training fold's groups."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    folds, x = grouped_folds(labels, groups, k, seed), pooled(feats, c)
    rng, rows = np.random.default_rng(seed), []
    for f in fractions:
        kk = n = 0
        for tr, te in folds:
            g = np.unique(groups[tr])
            keep = rng.permutation(g)[: max(2, int(round(f * len(g))))]
            sub = tr[np.isin(groups[tr], keep)]
            if len(np.unique(labels[sub])) < 2:
                continue
            (ok,) = _fold_correct(x, labels, sub, te, [c.C], num_classes)
            kk, n = kk + int(ok.sum()), n + len(te)
        lo, hi = wilson(kk, n)
        rows.append({"fraction": f, "top1": round(kk / n, 4) if n else None, "lo": round(lo, 4), "hi": round(hi, 4),
                     "n": n})
    return rows


def auto_groups(feats: np.ndarray, k: int = 5, threshold: float = 0.4) -> np.ndarray:
    """Group ids that merge near-duplicate clips (e.g. consecutive pieces of one recording): average-linkage
    clusters of the clips' centred mean global features at cosine distance ``threshold``; tightened until
    no group holds more than 1/k of the clips, so k grouped folds stay possible.

    The threshold was set on the corpus' known groups (``benchmarks/results/auto_groups.md``): at 0.4
    the clusters recover 63 % of UCF101's same-source-video pairs and 92 % of MLR511's same-signer pairs
    (0.3: 56 % / 71 %); merging too much only makes the estimate cautious, merging too little lets
    near-duplicates leak across folds, so the looser setting wins."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(feats)
    if n < 3:
        return np.arange(n)
    d = (feats.shape[-1] - MOTION_DIM) // 3
    x = feats[:, 0, :, :d].mean(1)
    x = x - x.mean(0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    t = threshold
    for _ in range(12):
        lab = AgglomerativeClustering(n_clusters=None, distance_threshold=t, metric="cosine",
                                      linkage="average").fit_predict(x)
        if np.bincount(lab).max() <= max(1, n // k):
            return lab
        t /= 2
    return np.arange(n)
