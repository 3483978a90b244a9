"""Fine-tune backbone + head end to end from a cached-feature head (warm start).

:class:`ClipClassifier` runs the frame backbone on every frame of a ``(B, C, T, H, W)`` clip (TSN-style,
shared weights) and the :class:`~vidcat.transfer.heads.FeatureHead` on the ``(B, T, D)`` result. Only the
top ``blocks`` blocks of the backbone train, with layer-wise learning-rate decay (each block further
down gets ``decay`` x the rate of the one above); BatchNorm layers stay in eval mode, since batch
statistics of a few clips are noise. Sized for a few hundred clips on a CPU: small frames, few epochs.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidcat.errors import VideoError
from vidcat.io.video import VideoReader
from vidcat.models.frame_head import FrameHead
from vidcat.transfer.backbone import BackboneInfo
from vidcat.transfer.features import Sampling, content_fingerprint, normalise, view_frames
from vidcat.transfer.heads import FeatureHead


class ClipClassifier(FrameHead):
    """The ``frame_head`` model being fine-tuned: BatchNorm of the backbone always in eval mode."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_features(x)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def backbone_blocks(module: nn.Module) -> list[list[nn.Module]]:
    """The backbone's blocks, input side first; each is a list of modules.

    The first container with ≥ 4 parameterised children is expanded into its children; runs of
    bare layers around it (stem conv + BN, head conv + BN) are grouped into one block each.
    """
    units: list[nn.Module] = []
    for child in module.children():
        if not _has_params(child):
            continue
        kids = [k for k in child.children() if _has_params(k)]
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(kids) >= 4:
            units += kids
        else:
            units.append(child)
    if len(units) == 1 and list(units[0].children()):
        return backbone_blocks(units[0])
    blocks: list[list[nn.Module]] = []
    for u in units:
        bare = not list(u.children())
        if bare and blocks and not list(blocks[-1][-1].children()):
            blocks[-1].append(u)
        else:
            blocks.append([u])
    return blocks


def param_groups(model: ClipClassifier, blocks: int, lr: float, head_lr: float, decay: float) -> list[dict]:
    """Freeze all but the top ``blocks`` blocks; per-block learning rates lr·decay^depth; the head at head_lr."""
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    groups = [{"params": list(model.head.parameters()), "lr": head_lr}]
    for depth, block in enumerate(reversed(backbone_blocks(model.backbone)[-blocks:] if blocks else [])):
        params = [p for m in block for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        groups.append({"params": params, "lr": lr * decay ** depth})
    return groups


def _clip(path: str, sampling: Sampling, info: BackboneInfo, view: int) -> torch.Tensor:
    with VideoReader(path, threads=1) as reader:
        frames = view_frames(reader, content_fingerprint(path), sampling, view)    # (T, 3, H, W)
    return normalise(frames, info).transpose(0, 1)                                  # (3, T, H, W)


def finetune(backbone: nn.Module, info: BackboneInfo, head: FeatureHead, paths, labels, sampling: Sampling,
             blocks: int = 2, epochs: int = 3, lr: float = 1e-4, head_lr: float = 1e-4, decay: float = 0.5,
             weight_decay: float = 1e-2, batch_size: int = 4, seed: int = 0, log=None) -> ClipClassifier:
    """Train the top ``blocks`` backbone blocks + the warm-started head on fresh augmented views.

    Each epoch decodes a new augmented view of every clip (view index 1 + epoch·1000 + seed: random
    TSN positions and crop). Unreadable clips are skipped with one line. Returns the model in eval mode.
    """
    log = log or (lambda s: print(s, file=sys.stderr))
    torch.manual_seed(seed)
    model = ClipClassifier(backbone, head)
    opt = torch.optim.AdamW(param_groups(model, blocks, lr, head_lr, decay), weight_decay=weight_decay)
    paths, labels = [str(p) for p in paths], torch.as_tensor(labels, dtype=torch.long)
    nb = max(len(paths) // batch_size, 1)
    steps = epochs * nb
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=max(steps, 1), pct_start=0.2)
    rng, bad = np.random.default_rng(seed), set()
    for epoch in range(epochs):
        model.train()
        t0, losses = time.perf_counter(), []
        for batch in np.array_split(rng.permutation(len(paths)), nb):
            clips, ys = [], []
            for i in batch:
                if i in bad:
                    continue
                try:
                    clips.append(_clip(paths[i], sampling, info, view=1 + epoch * 1000 + seed))
                    ys.append(labels[i])
                except VideoError as e:
                    bad.add(i)
                    log(f"vidcat: skipped {paths[i]}: {e.reason}")
            if not clips:
                continue
            feats = torch.cat([model.features(c[None]) for c in clips])   # clips may differ in shape
            loss = F.cross_entropy(model.head(feats), torch.stack(ys))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        log(f"finetune epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f} ({time.perf_counter() - t0:.0f}s)")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
