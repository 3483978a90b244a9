"""Scoring a model over a loader, shared by training (validation), evaluation and cross-validation:
below both, so evaluation does not import the training driver."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vidcat.engine import distributed as D
from vidcat.errors import VidcatError
from vidcat.io.console import SkipReport
from vidcat.io.progress import progress as progress_bar
from vidcat.models.inputs import predict_outputs, predict_scores


class NoReadableVideos(VidcatError):
    """Every file of an evaluation set was unreadable."""


def setup_threads(threads: int) -> None:
    """Pin torch's intra-op threads (the 2-core default is already right; oversubscription hurts)."""
    if threads > 0:
        torch.set_num_threads(threads)


def evaluate_loader(model, loader, views: int, multilabel: bool, device, amp: str, skips: SkipReport,
                    progress: bool = False, desc: str = "eval", drop=(), evidence: dict | None = None):
    """Run ``model`` over ``loader`` -> (scores (N,K), labels, paths, per-stream scores, loss);
    ``drop``: modalities removed from every sample (mask 0), for ablations. Under torchrun each rank
    scores its share (``eval_sampler``) and the rows are gathered in dataset order, padding removed.
    ``evidence`` (a dict, single process only) is filled with each clip's "none of these" evidence
    (:func:`vidcat.models.inputs.predict_outputs`: ``energy``, ``space``) as numpy arrays. Unlabelled
    clips (label -1) count in no loss."""
    model.eval()
    scores, labels, paths, streams, index = [], [], [], {}, []
    for batch in progress_bar(loader, enabled=progress, desc=desc, leave=False, unit="batch"):
        skips(batch["skipped"])
        skips.warn(batch.get("warnings", ()))
        if not batch["size"]:
            continue
        if evidence is None:
            p, per_stream = predict_scores(model, batch, views, multilabel, device, amp, drop=drop)
        else:
            p, per_stream, ev = predict_outputs(model, batch, views, multilabel, device, amp, drop=drop)
            for k, v in ev.items():
                evidence.setdefault(k, []).append(v.cpu())
        scores.append(p.cpu())
        labels.append(batch["label"])
        paths += batch["path"]
        index += batch["index"].tolist() if "index" in batch else []
        for name, s in per_stream.items():
            streams.setdefault(name, []).append(s.cpu())
    if not scores and not D.is_distributed():
        raise NoReadableVideos("no readable videos to evaluate")
    s, y = (torch.cat(scores), torch.cat(labels)) if scores else (torch.zeros(0, 0), torch.zeros(0, dtype=torch.long))
    if D.is_distributed():  # per-stream scores stay local: the fused ones decide
        s, y = D.gather_eval(s, y, len(loader.dataset), index or None)
        streams = {}
        if not len(s):
            raise NoReadableVideos("no readable videos to evaluate")
    eps = 1e-7
    if multilabel:
        loss = float(F.binary_cross_entropy(s.clamp(eps, 1 - eps), y.float()))
    else:
        loss = float(F.nll_loss(torch.log(s.clamp_min(eps)), y, ignore_index=-1))
    if evidence is not None:
        evidence.update({k: torch.cat(v).numpy() for k, v in evidence.items()})
    return s.numpy(), y.numpy(), paths, {k: torch.cat(v).numpy() for k, v in streams.items()}, loss
