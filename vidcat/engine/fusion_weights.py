"""``vidcat fuse``: two separately trained streams -> one late-fusion checkpoint, weights tuned on val.

"Train the streams separately, then fuse" (Simonyan & Zisserman 2014)::

    vidcat train --data D --model tsn --out runs/rgb
    vidcat train --data D --model tsn --modalities flow --out runs/flow
    vidcat fuse --checkpoints runs/rgb/best.pt runs/flow/best.pt --data D/val.csv --out runs/fused.pt
    vidcat eval --checkpoint runs/fused.pt --data D/test.csv

The result is an ordinary ``two_stream`` (``fusion=late``) checkpoint: ``vidcat eval`` / ``predict``
read it like any other, and report each stream's top-1 next to the fused one. Given a single
late/weighted fusion checkpoint, ``vidcat fuse`` re-tunes its weights instead. The validation-set
weight search (:func:`tune_fusion_weights`) is also what ``vidcat train`` runs after training a
``weighted`` fusion model.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import torch
import torch.nn.functional as F

from vidcat.config import DataConfig, FuseConfig
from vidcat.metrics import compute_metrics
from vidcat.models.inputs import fold_views, model_input, to_device
from vidcat.errors import VidcatError
from vidcat.models.build import Checkpoint, build_model, setup_model

log = logging.getLogger("vidcat")
MOTION_FLAGS = ("flow_method", "flow_length", "motion_cache")


def _two_stream_from(cks: list, paths) -> tuple:
    """(model, setup) of a late two_stream model whose streams carry two single-stream checkpoints' weights."""
    from vidcat.models.fusion import as_stream
    from vidcat.models.fusion.two_stream import MOTIONS, RGB

    keys = [c.setup.input_key for c in cks]
    if sorted(k in MOTIONS for k in keys) != [False, True] or "video" not in keys:
        raise VidcatError(f"vidcat fuse wants one RGB (video) and one flow/mv checkpoint; got streams {keys}")
    i_rgb = keys.index("video")
    ck_rgb, ck_mot = cks[i_rgb], cks[1 - i_rgb]
    motion = keys[1 - i_rgb]
    if ck_rgb.classes != ck_mot.classes or ck_rgb.multilabel != ck_mot.multilabel:
        raise VidcatError("the two checkpoints were trained on different classes")
    d_rgb, d_mot = ck_rgb.data, ck_mot.data
    diff = [k for k in ("frames", "stride", "sampler", "size", "short_side") if getattr(d_rgb, k) != getattr(d_mot, k)]
    if diff:
        raise VidcatError("the two streams were trained on different clips (" + ", ".join(
            f"{k}: {getattr(d_rgb, k)} vs {getattr(d_mot, k)}" for k in diff) + "); both need the same sampling")
    data = DataConfig.from_dict({**d_rgb.as_dict(), "modalities": ["video", motion],
                                 **{k: getattr(d_mot, k) for k in MOTION_FLAGS}})
    strip = lambda kw: {k: v for k, v in kw.items() if k not in ("input_key", "pretrained")}  # noqa: E731
    kwargs = {"motion": motion, "fusion": "late", "rgb": ck_rgb.setup.name, "temporal": ck_mot.setup.name,
              "rgb_kw": strip(ck_rgb.setup.kwargs), "motion_kw": strip(ck_mot.setup.kwargs)}
    setup = setup_model("two_stream", data, ck_rgb.classes, ck_rgb.multilabel, kwargs)
    model = build_model(setup)
    for name, c in ((RGB, ck_rgb), (motion, ck_mot)):
        model.streams[name].load_state_dict(as_stream(c.build()).state_dict())
    return model, setup


def fuse_checkpoints(cfg: FuseConfig) -> dict:
    """Build (two single-stream checkpoints) or re-tune (one late/weighted fusion checkpoint) a
    late-fusion checkpoint at ``cfg.out``; returns the tuning summary."""
    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.data.manifest import load_dataset

    paths = cfg.checkpoints
    cks = [Checkpoint.load(p) for p in paths]
    if len(cks) == 1:
        ck = cks[0]
        model = ck.build()
        if not getattr(model, "tunable", False):
            raise VidcatError(f"{paths[0]}: give two single-stream checkpoints (RGB + flow/mv), or one "
                              "checkpoint with late/weighted fusion to re-tune")
        setup, sources = ck.setup, ck.extra.get("sources", [str(paths[0])])
    else:
        model, setup = _two_stream_from(cks, paths)
        sources = [str(p) for p in paths]
    model = model.to(cfg.device)
    result = {"weights": dict(zip(model.names, model.fusion_weights()))}
    if cfg.tune:
        ds = load_dataset(cfg.source, classes=setup.classes)
        loader = make_loader(VideoClips(ds, setup.data), cfg.batch_size, False, cfg.workers)
        result = tune_fusion_weights(model, loader, cfg.device, steps=cfg.steps)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    Checkpoint(setup, state, {"sources": sources, "fusion_tuning": result if cfg.tune else None,
                              "epoch": None, "score": result.get("score")}).save(cfg.out)
    return {"out": str(cfg.out), "sources": sources, **result}


def run_fuse(cfg: FuseConfig) -> int:
    res = fuse_checkpoints(cfg)
    res.pop("grid", None)
    print(json.dumps(res))
    return 0


@torch.no_grad()
def collect_stream_logits(model, loader, device="cpu") -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``loader`` -> ({stream: logits (N, K)}, mask (N, S), labels); test views averaged."""
    model.eval()
    views = getattr(getattr(loader, "dataset", None), "num_views", 1)  # any iterable of batches works
    logits: dict[str, list] = {n: [] for n in model.names}
    masks, labels = [], []
    for batch in loader:
        if not batch["size"]:
            continue
        out = model(model_input(model, to_device(fold_views(batch, views), device)))
        for n in model.names:
            s = out["stream_logits"][n].float().cpu()
            logits[n].append(s.view(-1, views, s.shape[-1]).mean(1))
        masks.append(out["mask"].float().cpu().view(-1, views, len(model.names)).amax(1))
        labels.append(batch["label"])
    if not labels:
        raise VidcatError("no readable videos to tune the fusion weights on")
    return {n: torch.cat(v) for n, v in logits.items()}, torch.cat(masks), torch.cat(labels)


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Cross-entropy (single-label) or binary cross-entropy (multi-label) of fused logits."""
    if labels.dim() == 1:
        return float(F.cross_entropy(logits, labels))
    return float(F.binary_cross_entropy_with_logits(logits, labels.float()))


def _score(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """top-1 (single-label) or mean AP (multi-label, labels multi-hot)."""
    if labels.dim() == 1:
        return float((logits.argmax(1) == labels).float().mean())
    k = labels.shape[1]
    return float(compute_metrics(torch.sigmoid(logits).numpy(), labels.numpy(), [str(i) for i in range(k)], True)["mAP"])


def fuse_logits(logits: dict, mask: torch.Tensor, weights) -> torch.Tensor:
    """What late/weighted fusion computes: sum_i w_i m_i l_i / sum_i w_i m_i per sample."""
    w = torch.as_tensor(weights, dtype=torch.float32).view(1, -1) * mask
    w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    return sum(w[:, i:i + 1] * l for i, l in enumerate(logits.values()))


def tune_fusion_weights(model, val_loader, device="cpu", steps: int = 21, apply: bool = True) -> dict:
    """Grid-search the RGB weight ``w`` in [0, 1] (motion gets ``1 - w``) for the best validation
    top-1 (mAP when multi-label) of the late/weighted fused scores; sets it on ``model`` (``apply``).

    Ties (a small validation set often scores many ``w`` alike) go to the lowest validation
    cross-entropy of the fused scores, which favours the stream that is confidently right.
    Returns ``{"w_rgb", "weights", "score", "loss", "score_before", "score_equal", "streams", "grid"}``.
    """
    if not getattr(model, "tunable", False):
        raise VidcatError("only late/weighted fusion has weights to tune "
                          f"(this model: {getattr(model, 'fusion', type(model).__name__)})")
    logits, mask, labels = collect_stream_logits(model, val_loader, device)
    grid = np.linspace(0.0, 1.0, steps)
    fused = [fuse_logits(logits, mask, [w, 1 - w]) for w in grid]
    scores = [_score(f, labels) for f in fused]
    losses = [_loss(f, labels) for f in fused]
    i = max(range(len(grid)), key=lambda k: (round(scores[k], 9), -losses[k]))
    w, best = float(grid[i]), scores[i]
    before = model.fusion_weights()
    result = {"w_rgb": round(w, 4), "weights": dict(zip(model.names, [round(w, 4), round(1 - w, 4)])),
              "score": best, "loss": round(losses[i], 5),
              "score_before": _score(fuse_logits(logits, mask, before), labels),
              "score_equal": _score(fuse_logits(logits, mask, [0.5, 0.5]), labels),
              "streams": {n: _score(l, labels) for n, l in logits.items()},
              "grid": [[round(float(g), 4), s, round(c, 5)] for g, s, c in zip(grid, scores, losses)],
              "n": int(len(labels))}
    if apply:
        model.set_fusion_weights([w, 1 - w])
    return result


def tune_checkpoint(path, model, val_loader, device="cpu") -> dict:
    """Load ``path``'s weights into ``model``, tune its fusion weights on ``val_loader`` and rewrite
    the checkpoint (``fusion_tuning`` records the result)."""
    ck = Checkpoint.load(path)
    model.load_state_dict(ck.state_dict)
    result = tune_fusion_weights(model, val_loader, device)
    ck.state_dict = model.state_dict()
    ck.extra["fusion_tuning"] = result
    ck.save(path)
    log.info("fusion weights tuned on validation: w_rgb=%.2f (score %.4f; was %.4f)",
             result["w_rgb"], result["score"], result["score_before"])
    return result
