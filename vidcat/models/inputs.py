"""The model-input convention: how a batch dict becomes a model's input (its ``input_key`` modality,
or the whole dict for a multi-stream model), how test views are folded into the batch, how a model's
output splits into logits and per-stream logits, and how those become class probabilities. Used by
training, evaluation, prediction, export, embeddings and the benchmarks alike."""
from __future__ import annotations

import torch

from vidcat.config import MULTI_STREAM
from vidcat.errors import VidcatError

# Keys of a batch that are model inputs (tensors or lists of strings) rather than targets/info.
NON_INPUT_KEYS = {"label", "path", "index", "skipped", "warnings", "size", "meta"}


def to_device(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def model_input(model, batch: dict):
    """A single-stream model gets its modality's tensor; a multi-stream model gets the whole dict."""
    modality = getattr(model, "input_key", "video")
    if modality == MULTI_STREAM:
        return {k: v for k, v in batch.items() if k not in NON_INPUT_KEYS}
    if modality not in batch:
        raise VidcatError(f"the model needs the '{modality}' modality; add it with --modalities")
    return batch[modality]


def split_output(out) -> tuple[torch.Tensor, dict]:
    """Models return logits, or a dict with ``logits`` and optional per-stream ``stream_logits``."""
    if isinstance(out, dict):
        return out["logits"], out.get("stream_logits", {})
    return out, {}


def fold_views(batch: dict, views: int) -> dict:
    """(B, V, ...) tensors and nested lists → (B*V, ...) so a model sees ordinary batches."""
    if views == 1:
        return batch
    folded = {}
    for k, v in batch.items():
        if k in NON_INPUT_KEYS:
            folded[k] = v
        elif isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[1] == views:
            folded[k] = v.flatten(0, 1)
        elif isinstance(v, list) and v and isinstance(v[0], list):
            folded[k] = [x for per_video in v for x in per_video]
        else:
            folded[k] = v
    return folded


def drop_modalities(batch: dict, names) -> dict:
    """A copy of ``batch`` with the modalities ``names`` marked absent in every sample (``<name>_mask`` = 0),
    which a fusion model reads as a missing stream: accuracy without a modality, on the same clips."""
    from vidcat.models.fusion import batch_key, mask_key

    out = dict(batch)
    for name in names:
        x = batch.get(batch_key(name))
        if x is not None:
            out[mask_key(name)] = torch.zeros(len(x), device=x.device if isinstance(x, torch.Tensor) else None)
    return out


@torch.no_grad()
def predict_outputs(model, batch: dict, views: int, multilabel: bool, device, amp: str = "none",
                    drop=()) -> tuple:
    """Class probabilities averaged over test views (B, K), per-stream ones {name: (B, K)}, and the
    "none of these" evidence of each clip averaged over its views: ``{"energy": (B,) -logsumexp(logits)}``,
    plus ``"space"`` (B, D), the heads' pooled inputs, and ``"present"`` (B, S), which of its streams each clip
    has, for a streams model. ``drop``: modalities to treat as missing (see :func:`drop_modalities`)."""
    from vidcat.models.stream_space import is_streams_model, logits_and_space

    batch = to_device(fold_views(batch, views), device)
    if drop:
        batch = drop_modalities(batch, drop)
    space = None
    with autocast(device, amp):
        if is_streams_model(model) and not drop:
            logits, space, present = logits_and_space(model, model_input(model, batch))
            streams = {}
        else:
            logits, streams = split_output(model(model_input(model, batch)))
    evidence = {"energy": -torch.logsumexp(logits.float(), dim=-1).view(-1, views).mean(1)}
    if space is not None:
        evidence["space"] = space.float().view(-1, views, space.shape[-1]).mean(1)
        evidence["present"] = present.float().view(-1, views, present.shape[-1]).mean(1)
    return (view_probs(logits, views, multilabel), {n: view_probs(s, views, multilabel) for n, s in streams.items()},
            evidence)


def view_probs(x: torch.Tensor, views: int, multilabel: bool) -> torch.Tensor:
    """(B*V, K) logits -> (B, K) probabilities (sigmoid or softmax) averaged over the views."""
    p = torch.sigmoid(x.float()) if multilabel else torch.softmax(x.float(), dim=-1)
    return p.view(-1, views, p.shape[-1]).mean(1)


@torch.no_grad()
def predict_scores(model, batch: dict, views: int, multilabel: bool, device, amp: str = "none",
                   drop=()) -> tuple:
    """Class probabilities averaged over test views: (B, K), plus per-stream ones {name: (B, K)};
    ``drop``: modalities to treat as missing (see :func:`drop_modalities`)."""
    batch = to_device(fold_views(batch, views), device)
    if drop:
        batch = drop_modalities(batch, drop)
    with autocast(device, amp):
        logits, streams = split_output(model(model_input(model, batch)))

    def prob(x):
        p = torch.sigmoid(x.float()) if multilabel else torch.softmax(x.float(), dim=-1)
        return p.view(-1, views, p.shape[-1]).mean(1)

    return prob(logits), {name: prob(s) for name, s in streams.items()}


def autocast(device, amp: str):
    dev = torch.device(device).type
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=amp == "bf16")
