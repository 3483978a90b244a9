"""The recommended recipe for real footage: cached frozen features → a light temporal head (→ fine-tune).

``fit_recipe(train_items, val_items, cfg)`` extracts and caches features (centre view + ``views``
augmented views per training clip), picks the head (fixed ``cfg.head`` or, with ``head="auto"``, the
best of ``cfg.candidates`` on ``val_items`` / by k-fold on the training clips), refits it on all
labelled clips, optionally fine-tunes, and returns a :class:`TransferModel`.

Checkpoint (``TransferModel.save``, one ``torch.save`` dict, written atomically)::

    format        "vidcat-transfer/1"
    classes       list[str]
    backbone      BackboneInfo as a dict (name, pretrained, feat_dim, mean, std, input_size,
                  weights_sha256, source)
    backbone_state  state_dict of the frame backbone (always stored: prediction needs no weight package)
    finetuned     bool (True: backbone_state differs from the published weights)
    sampling      {"frames", "size", "crop_scale", "sampler": "tsn", "version"}
    head          {"config": FeatureHead kwargs (kind, feat_dim, num_classes, frames, hidden, dropout),
                   "state": state_dict}
    recipe        RecipeConfig as a dict;  report  {"head", "selection", "seconds", ...}
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidcat.errors import VidcatError
from vidcat.models.safe_pickle import load_plain, plain
from vidcat.transfer.backbone import BackboneInfo, load_backbone
from vidcat.transfer.features import FeatureCache, Sampling, extract_features, normalise
from vidcat.transfer.heads import KINDS, FeatureHead, build_head, fit_head, predict_proba

FORMAT = "vidcat-transfer/1"


@dataclass
class RecipeConfig:
    """Options of the transfer recipe (defaults = the measured recommendation)."""

    backbone: str = field(default="efficientnet_lite0", metadata={"help": "frame backbone (ImageNet weights, offline)"})
    pretrained: bool = field(default=True, metadata={"help": "False: same pipeline on random weights (control)"})
    pooling: str = field(default="avgpos", metadata={"help": "avg | avgpos (adds per-channel activation centroids)"})
    frames: int = field(default=8, metadata={"help": "frames per clip (one per TSN segment)"})
    size: int = field(default=160, metadata={"help": "square frame side fed to the backbone"})
    crop: str = field(default="square", metadata={"help": "square (centre square) | full (whole frame)"})
    views: int = field(default=2, metadata={"help": "augmented training views per clip (plus the centre one)"})
    head: str = field(default="logreg_trend", metadata={"help": "head kind, or 'auto' to pick among candidates"})
    candidates: tuple = field(default=("logreg_trend", "trend", "gru", "tconv"),
                              metadata={"help": "heads compared when head='auto'"})
    finetune_epochs: int = field(default=0, metadata={"help": "end-to-end epochs after the head (0 = frozen)"})
    finetune_blocks: int = field(default=2, metadata={"help": "top backbone blocks unfrozen when fine-tuning"})
    cache: str | None = field(default=None, metadata={"help": "feature cache folder (default ~/.cache/vidcat/features)"})
    seed: int = 0
    strict: bool = field(default=False, metadata={"help": "fail on the first unreadable file"})

    def __post_init__(self):
        for kind in ([self.head] if self.head != "auto" else []) + list(self.candidates):
            if kind not in KINDS and not kind.startswith("logreg"):
                raise VidcatError(f"unknown head {kind!r} ({' | '.join(KINDS)} | logreg_<pool> | auto)")
        if self.pooling not in ("avg", "avgpos"):
            raise VidcatError(f"unknown pooling {self.pooling!r} (avg | avgpos)")
        if self.crop not in ("square", "full"):
            raise VidcatError(f"unknown crop {self.crop!r} (square | full)")
        if self.frames < 2:
            raise VidcatError("frames must be >= 2 (temporal heads compare frames)")
        if self.size < 32 or self.views < 0 or self.finetune_epochs < 0:
            raise VidcatError("size must be >= 32, views and finetune_epochs >= 0")

    @property
    def sampling(self) -> Sampling:
        return Sampling(frames=self.frames, size=self.size, crop=self.crop)


def _split_items(items, classes: list[str] | None):
    """Items (vidcat Item or (path, label)) → paths, label indices, classes."""
    paths, names = [], []
    for it in items:
        if isinstance(it, (tuple, list)):
            p, lab = it
        else:
            p, lab = it.path, (it.labels[0] if it.labels else None)
        paths.append(str(p))
        names.append(lab)
    classes = list(classes) if classes else sorted({n for n in names if n is not None})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({n for n in names if n not in index})
    if unknown:
        raise VidcatError(f"labels not in the class list: {', '.join(map(str, unknown[:5]))}")
    return paths, [index[n] for n in names], classes


def _accuracy(head, feats, labels) -> float:
    return float((predict_proba(head, feats).argmax(1) == labels).float().mean())


def select_head(fs, candidates, num_classes, seed=0, val=None, folds=3) -> tuple[str, dict]:
    """Best candidate by accuracy on ``val`` (a FeatureSet) or by stratified k-fold over training clips."""
    from sklearn.model_selection import StratifiedKFold

    scores = {}
    for kind in candidates:
        if val is not None:
            head = fit_head(fs.feats, fs.labels, kind, num_classes, seed=seed)
            scores[kind] = _accuracy(head, val.feats[:, 0], val.labels)
            continue
        k = min(folds, int(np.bincount(fs.labels.numpy()).min()))
        if k < 2:
            return candidates[0], {"note": "too few clips per class to compare heads"}
        accs = []
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(fs.labels, fs.labels):
            head = fit_head(fs.feats[tr], fs.labels[tr], kind, num_classes, seed=seed)
            accs.append(_accuracy(head, fs.feats[te, 0], fs.labels[te]))
        scores[kind] = float(np.mean(accs))
    best = max(candidates, key=lambda c: (scores[c], -candidates.index(c)))
    return best, scores


class TransferModel:
    """A fitted recipe: backbone (+ fine-tuned weights) and head; predicts class probabilities for files."""

    def __init__(self, backbone, info: BackboneInfo, head: FeatureHead, classes: list[str], sampling: Sampling,
                 recipe: RecipeConfig, finetuned: bool = False, report: dict | None = None):
        self.backbone, self.info, self.head, self.classes = backbone.eval(), info, head.eval(), classes
        self.sampling, self.recipe, self.finetuned, self.report = sampling, recipe, finetuned, report or {}

    def features(self, paths, cache: FeatureCache | None = None, log=None):
        """Centre-view features; cached unless the backbone was fine-tuned (its weights are new)."""
        if self.finetuned:                    # new weights: a throw-away cache, never the shared one
            with tempfile.TemporaryDirectory(prefix="vidcat-ft-") as tmp:
                return extract_features(paths, self.backbone, self.info, self.sampling, views=1,
                                        cache=FeatureCache(tmp), strict=self.recipe.strict, log=log)
        return extract_features(paths, self.backbone, self.info, self.sampling, views=1,
                                cache=cache or FeatureCache(self.recipe.cache), strict=self.recipe.strict, log=log)

    def predict(self, paths, cache: FeatureCache | None = None, log=None):
        """``(probs (N, C), kept paths, skipped [(path, reason)])`` for video files."""
        fs = self.features(list(paths), cache, log)
        probs = predict_proba(self.head, fs.feats[:, 0]) if len(fs.paths) else torch.zeros(0, len(self.classes))
        return probs, fs.paths, fs.skipped

    def predict_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """Probabilities for already-decoded 0..255 clips (B, 3, T, H, W) at ``sampling.size``."""
        b, c, t, h, w = clips.shape
        x = normalise(clips.transpose(1, 2).reshape(b * t, c, h, w).float(), self.info)
        with torch.no_grad():
            return predict_proba(self.head, self.backbone(x).reshape(b, t, -1))

    def state(self) -> dict:
        return plain({"format": FORMAT, "classes": self.classes, "backbone": self.info.as_dict(),
                      "backbone_state": self.backbone.state_dict(), "finetuned": self.finetuned,
                      "sampling": self.sampling.as_dict(),
                      "head": {"config": dict(self.head.config), "state": self.head.state_dict()},
                      "recipe": asdict(self.recipe), "report": self.report})

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(self.state(), tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path) -> "TransferModel":
        ck = load_plain(path)  # weights_only: a pickle that would run code is refused
        if not isinstance(ck, dict) or ck.get("format") != FORMAT:
            raise VidcatError(f"{path} is not a vidcat transfer checkpoint (format {FORMAT})")
        b = ck["backbone"]
        module, _ = load_backbone(b["name"], pretrained=False, pooling=b.get("pooling", "avg"))
        module.load_state_dict(ck["backbone_state"])
        info = BackboneInfo(**{**b, "mean": tuple(b["mean"]), "std": tuple(b["std"])})
        head = build_head(ck["head"]["config"])
        head.load_state_dict(ck["head"]["state"])
        s = ck["sampling"]
        recipe = ck["recipe"]
        recipe = RecipeConfig(**{**recipe, "candidates": tuple(recipe["candidates"])})
        return cls(module, info, head, ck["classes"],
                   Sampling(frames=s["frames"], size=s["size"], crop_scale=tuple(s["crop_scale"]),
                            crop=s.get("crop", "square")),
                   recipe, ck["finetuned"], ck.get("report"))


def recipe_unavailable(cfg: RecipeConfig | None = None) -> str | None:
    """None when the recipe can run here (its pretrained weights resolve offline), else the reason, for
    a one-line notice before falling back to a from-scratch model."""
    cfg = cfg or RecipeConfig()
    if not cfg.pretrained:
        return None
    try:
        from vidcat.models.pretrained import resolve_weights

        return None if resolve_weights(cfg.backbone) is not None else f"no weights for {cfg.backbone} on this machine"
    except (ImportError, VidcatError) as e:
        return f"pretrained weights unavailable ({e})"


def fit_recipe(train_items, val_items=None, cfg: RecipeConfig | None = None, classes: list[str] | None = None,
               log=None) -> TransferModel:
    """Fit the recipe on labelled items; ``val_items`` (optional) choose the head under ``head='auto'``
    and are then added to the training clips for the final fit."""
    cfg = cfg or RecipeConfig()
    log = log or (lambda s: print(s, file=sys.stderr))
    t0 = time.perf_counter()
    paths, labels, classes = _split_items(train_items, classes)
    if len(set(labels)) < 2:
        raise VidcatError("need labelled clips of at least 2 classes to train")
    backbone, info = load_backbone(cfg.backbone, cfg.pretrained, seed=cfg.seed, pooling=cfg.pooling)
    cache = FeatureCache(cfg.cache)
    ex = dict(cache=cache, strict=cfg.strict, log=log)
    fs = extract_features(paths, backbone, info, cfg.sampling, views=1 + cfg.views, labels=labels, **ex)
    val = None
    if val_items:
        vp, vl, _ = _split_items(val_items, classes)
        val = extract_features(vp, backbone, info, cfg.sampling, views=1 + cfg.views, labels=vl, **ex)
    report = {"extract_seconds": round(time.perf_counter() - t0, 1), "clips": len(fs.paths),
              "skipped": len(fs.skipped) + (len(val.skipped) if val else 0)}
    kind, selection = cfg.head, None
    if kind == "auto":
        kind, selection = select_head(fs, list(cfg.candidates), len(classes), cfg.seed, val)
    if val is not None:
        fs.feats, fs.labels = torch.cat([fs.feats, val.feats]), torch.cat([fs.labels, val.labels])
        fs.paths += val.paths
    head = fit_head(fs.feats, fs.labels, kind, len(classes), seed=cfg.seed)
    finetuned = False
    if cfg.finetune_epochs and cfg.finetune_blocks:
        from vidcat.transfer.finetune import finetune

        for p in head.parameters():
            p.requires_grad_(True)
        model = finetune(backbone, info, head, fs.paths, fs.labels, cfg.sampling, blocks=cfg.finetune_blocks,
                         epochs=cfg.finetune_epochs, seed=cfg.seed, log=log)
        backbone, head, finetuned = model.backbone, model.head, True
    report.update(head=kind, selection=selection, seconds=round(time.perf_counter() - t0, 1))
    log(f"transfer recipe: {info.name} ({'ImageNet' if info.pretrained else 'random-init'}) frozen features, "
        f"{cfg.frames}x{cfg.size}px, head {kind}" + (f", fine-tuned top {cfg.finetune_blocks} blocks" if finetuned else ""))
    return TransferModel(backbone, info, head, classes, cfg.sampling, cfg, finetuned, report)
