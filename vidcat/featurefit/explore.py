"""``vidcat suggest`` and ``vidcat cluster``: the default model's features of unlabelled clips put to work.

* suggest: a default-model checkpoint's streams are extracted for the pool through the same extraction and
  store as training (:mod:`vidcat.featurefit.unlabelled`), its calibrated probabilities rank the clips by
  uncertainty, and its heads' pooled inputs spread the picks (:mod:`vidcat.featurefit.suggest`); the CSV
  (path, suggested label, confidence, ...) is a training manifest once the labels are checked.
* cluster: the default's appearance stream (the global, clip-averaged features) and, by default, its motion
  stream (optical flow costs about as much per clip as the appearance backbone) are extracted for a folder.
  Each stream's vectors are L2-normalised (cosine geometry, as CNN features are compared), centred and scaled
  to a mean squared norm of 1, so every stream has the same say whatever its width; then k-means for every k
  with the best mean silhouette (:mod:`vidcat.featurefit.clusters`, on these features' own scale). On planted
  kinds of real encoded clips, per-feature standardisation instead let a few rare activations split off
  single clips. A contact sheet (PNG + HTML, one strip per cluster) and a manifest whose label column the user
  renames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidcat.errors import VidcatError
from vidcat.featurefit.unlabelled import fused_outputs, pool_features, pooled, unlabelled_items


def suggest_next(cfg, log) -> dict:
    """Run ``vidcat suggest`` (a :class:`~vidcat.config.SuggestConfig`); returns its summary."""
    from scipy.special import logsumexp, softmax

    from vidcat.featurefit.suggest import suggest_clips, write_suggestions
    from vidcat.featurefit.rule import rule_from
    from vidcat.models.build import Checkpoint

    ck = Checkpoint.load(cfg.checkpoint)
    if ck.setup.name != "streams":
        raise VidcatError(f"vidcat suggest needs a default-model checkpoint (streams), not {ck.setup.name}")
    model = ck.build()
    pool = pool_features(unlabelled_items(cfg.pool), ck.data, {n: model.features[n] for n in model.names},
                         cfg.cache, cfg.strict, cfg.workers, log)
    logits, space, present = fused_outputs(model, pool)
    probs, flagged = softmax(logits, axis=1), None
    rule = rule_from(ck.extra.get("open_set"))
    if rule is not None:
        evidence = {"energy": -logsumexp(logits, axis=1), "space": space, "present": present}
        flagged = np.array([u for _, u in rule.judge(probs, evidence)])
    picks = suggest_clips(probs, space, cfg.n, cfg.uncertainty, cfg.diversity, ck.classes, flagged)
    out = write_suggestions(cfg.out, pool.paths, picks, ck.classes)
    return {"out": str(out), "pool": len(pool.paths) + len(pool.skipped), "scored": len(pool.paths),
            "suggested": len(picks), "skipped": len(pool.skipped),
            "flagged_unknown": None if flagged is None else int(flagged.sum()),
            "labels": {c: sum(ck.classes[s.label] == c for s in picks) for c in ck.classes}}


def stream_block(x: np.ndarray) -> np.ndarray:
    """One stream's clip vectors (N, D) L2-normalised, centred and scaled to a mean squared norm of 1."""
    z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    z = z - z.mean(0)
    return z / max(float(np.sqrt((z ** 2).sum(1).mean())), 1e-12)


def cluster_features(cfg, log) -> tuple:
    """``(clip paths, features (N, D), skipped)`` of the folder: each of ``cfg.streams`` as
    :func:`stream_block`, side by side."""
    from vidcat.config import DataConfig
    from vidcat.featurefit.plan import StreamPlan
    from vidcat.featurefit.recipe import planned_modules
    from vidcat.models.build import setup_model

    data = DataConfig() if cfg.size is None else DataConfig(size=cfg.size)
    setup = setup_model("streams", data, [])
    data, modules = planned_modules(setup, StreamPlan(list(cfg.streams)), cfg.cache)
    pool = pool_features(unlabelled_items(cfg.folder), data, modules, cfg.cache, cfg.strict, cfg.workers, log)
    blocks = [stream_block(pooled(pool, modules, [n], global_only=True)) for n in cfg.streams]
    return pool.paths, np.concatenate(blocks, 1), pool.skipped


def cluster_folder(cfg, log) -> dict:
    """Run ``vidcat cluster`` (a :class:`~vidcat.config.ClusterConfig`); returns its summary."""
    from vidcat.featurefit.clusters import (clip_thumbnails, cluster_clips, write_cluster_manifest,
                                            write_cluster_page, write_contact_sheet)
    from vidcat.io.store import atomic_write_json

    paths, x, skipped = cluster_features(cfg, log)
    paths += [p for p, _ in skipped]                    # unreadable clips: "unclustered" in the manifest
    present = np.r_[np.ones(len(x), bool), np.zeros(len(skipped), bool)]
    x = np.concatenate([x, np.zeros((len(skipped), x.shape[1]))])
    clustering = cluster_clips(x, present, cfg.k_min, cfg.k_max, standardise=False)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    thumbs = clip_thumbnails(paths)
    files = {"png": write_contact_sheet(out / "clusters.png", clustering, thumbs, cfg.per_cluster),
             "html": write_cluster_page(out / "clusters.html", clustering, paths, thumbs, cfg.per_cluster),
             "csv": write_cluster_manifest(out / "clusters.csv", clustering, paths)}
    summary = {"k": clustering.k, "criterion": clustering.criterion, "streams": list(cfg.streams),
               "silhouette": {str(k): round(v, 4) for k, v in clustering.silhouette.items()},
               "sizes": {clustering.name(c): int((clustering.labels == c).sum()) for c in range(clustering.k)},
               "clips": len(paths), "unclustered": len(skipped), **{k: str(v) for k, v in files.items()}}
    atomic_write_json(out / "clusters.json", {**summary, "clusters": dict(zip(map(str, paths), clustering.names()))})
    return summary
