"""Sliding-window scores over a long video: where in the video does each category happen?"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from vidcat.data.dataset import collate
from vidcat.data.manifest import Item
from vidcat.data.modalities import ClipContext
from vidcat.data.sampling import sample_indices
from vidcat.engine.plots import plot_timeline
from vidcat.engine.step import predict_scores
from vidcat.inference.predictor import Predictor
from vidcat.io.video import VideoReader


def timeline(ckpt_path, video, window: float = 2.0, stride: float = 1.0, out_dir=None, device: str = "cpu",
             batch_size: int = 8) -> dict:
    """Score windows of ``window`` seconds every ``stride`` seconds; writes CSV, JSON and PNG to ``out_dir``."""
    pred = Predictor(ckpt_path, device=device)
    cfg = pred.data_cfg
    from vidcat.data.dataset import VideoClips
    from vidcat.data.manifest import Dataset

    clips = VideoClips(Dataset([Item(str(video), [])], pred.classes, pred.multilabel), cfg)
    times, scores, pending = [], [], []
    with VideoReader(video) as reader:
        info = reader.info
        starts = np.arange(0.0, max(info.duration - window, 0.0) + 1e-6, stride)
        win_frames = max(1, int(round(window * info.fps)))
        for t in starts:
            first = int(round(t * info.fps))
            idx = first + sample_indices(win_frames, cfg.sampler_config, train=False)
            frames = reader.frames(idx, short_side=cfg.decode_short_side)
            ctx = ClipContext(Item(str(video), []), info, float(t), float(t + window), idx.tolist(), cfg, False,
                              frames=frames)
            pending.append({**clips.load_views(ctx)[0], "label": -1, "path": str(video)})
            times.append(float(t + window / 2))
            if len(pending) == batch_size or t == starts[-1]:
                p, _ = predict_scores(pred.model, collate(pending), 1, pred.multilabel, pred.device)
                scores.append(p.cpu())
                pending = []
    s = torch.cat(scores).numpy()
    result = {"video": str(video), "classes": pred.classes, "times": times, "scores": s.round(5).tolist(),
              "top": [pred.classes[i] for i in s.argmax(1)], "windows": len(times)}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(video).stem
        result["csv"], result["json"], result["png"] = (str(out / f"{stem}_timeline.{e}") for e in ("csv", "json", "png"))
        tmp = out / f".{stem}.csv.tmp-{os.getpid()}"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time", "top", *pred.classes])
            for t, top, row in zip(times, result["top"], s):
                w.writerow([f"{t:.3f}", top, *[f"{v:.5f}" for v in row]])
        os.replace(tmp, result["csv"])
        tmp = out / f".{stem}.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(result))
        os.replace(tmp, result["json"])
        plot_timeline(np.asarray(times), s, pred.classes, result["png"])
    return result
