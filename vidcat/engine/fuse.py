"""``vidcat fuse``: two separately trained streams -> one late-fusion checkpoint, weights tuned on val.

"Train the streams separately, then fuse" (Simonyan & Zisserman 2014)::

    vidcat train --data D --model tsn --out runs/rgb
    vidcat train --data D --model tsn --modalities flow --out runs/flow
    vidcat fuse --checkpoints runs/rgb/best.pt runs/flow/best.pt --data D/val.csv --out runs/fused.pt
    vidcat eval --checkpoint runs/fused.pt --data D/test.csv

The result is an ordinary ``two_stream`` (``fusion=late``) checkpoint: ``vidcat eval`` / ``predict``
read it like any other, and report each stream's top-1 next to the fused one. Given a single
``two_stream`` checkpoint (late or weighted fusion), ``vidcat fuse`` re-tunes its weights instead.

This module also adds the motion-stream data options (``--flow-method``, ``--flow-length``,
``--motion-cache``) to ``vidcat train``, which has no flags of its own for them.
"""
from __future__ import annotations

import json
import sys

from vidcat.errors import VidcatError

MOTION_FLAGS = ("flow_method", "flow_length", "motion_cache")


def _stream_key(ck: dict) -> str:
    """Which batch entry a single-stream checkpoint's model reads (video | flow | mv | ...)."""
    from vidcat.models.registry import get_spec

    spec = get_spec(ck["model"])
    return ck.get("model_kwargs", {}).get("input_key") or spec.modality


def fuse_checkpoints(paths, val_source, out, batch_size: int = 16, workers: int = 2, device: str = "cpu",
                     steps: int = 21, tune: bool = True) -> dict:
    """Build (two single-stream checkpoints) or re-tune (one two_stream checkpoint) a late-fusion
    two-stream checkpoint at ``out``; returns the tuning summary."""
    from vidcat import __version__
    from vidcat.config import DataConfig
    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.data.manifest import load_dataset
    from vidcat.engine import checkpoint
    from vidcat.models.fusion import as_stream
    from vidcat.models.registry import create_model
    from vidcat.models.two_stream import MOTIONS, RGB, tune_fusion_weights

    cks = [checkpoint.load(p) for p in paths]
    if len(cks) == 1:
        ck = cks[0]
        if ck["model"] != "two_stream" or ck.get("model_kwargs", {}).get("fusion", "late") not in ("late", "weighted"):
            raise VidcatError(f"{paths[0]}: give two single-stream checkpoints (RGB + flow/mv), or one two_stream "
                              "checkpoint with late/weighted fusion to re-tune")
        model = checkpoint.build_model(ck)
        kwargs, data, sources = dict(ck["model_kwargs"]), DataConfig.from_dict(ck["data"]), ck.get("sources", [str(paths[0])])
    elif len(cks) == 2:
        keys = [_stream_key(c) for c in cks]
        if sorted(k in MOTIONS for k in keys) != [False, True] or "video" not in keys:
            raise VidcatError(f"vidcat fuse wants one RGB (video) and one flow/mv checkpoint; got streams {keys}")
        i_rgb = keys.index("video")
        ck_rgb, ck_mot = cks[i_rgb], cks[1 - i_rgb]
        motion = keys[1 - i_rgb]
        if ck_rgb["classes"] != ck_mot["classes"] or ck_rgb["multilabel"] != ck_mot["multilabel"]:
            raise VidcatError("the two checkpoints were trained on different classes")
        d_rgb, d_mot = DataConfig.from_dict(ck_rgb["data"]), DataConfig.from_dict(ck_mot["data"])
        diff = [k for k in ("frames", "stride", "sampler", "size", "short_side") if getattr(d_rgb, k) != getattr(d_mot, k)]
        if diff:
            raise VidcatError("the two streams were trained on different clips (" + ", ".join(
                f"{k}: {getattr(d_rgb, k)} vs {getattr(d_mot, k)}" for k in diff) + "); both need the same sampling")
        data = DataConfig.from_dict({**d_rgb.as_dict(), "modalities": ["video", motion],
                                     **{k: getattr(d_mot, k) for k in MOTION_FLAGS}})
        strip = lambda kw: {k: v for k, v in kw.items() if k not in ("input_key", "pretrained")}  # noqa: E731
        kwargs = {"motion": motion, "fusion": "late", "rgb": ck_rgb["model"], "temporal": ck_mot["model"],
                  "rgb_kw": strip(ck_rgb.get("model_kwargs", {})), "motion_kw": strip(ck_mot.get("model_kwargs", {})),
                  "flow_length": d_mot.flow_length, "modalities": ["video", motion]}
        model = create_model("two_stream", len(ck_rgb["classes"]), **kwargs)
        for name, c in ((RGB, ck_rgb), (motion, ck_mot)):
            model.streams[name].load_state_dict(as_stream(checkpoint.build_model(c)).state_dict())
        ck = {k: ck_rgb[k] for k in ("classes", "multilabel")}
        sources = [str(p) for p in paths]
    else:
        raise VidcatError("vidcat fuse takes one or two checkpoints")

    model = model.to(device)
    result = {"weights": dict(zip(model.names, model.fusion_weights()))}
    if tune:
        if not val_source:
            raise VidcatError("vidcat fuse: --data VAL is needed to tune the weights (or pass --no-tune)")
        ds = load_dataset(val_source, classes=ck["classes"])
        loader = make_loader(VideoClips(ds, data), batch_size, False, workers)
        result = tune_fusion_weights(model, loader, device, steps=steps)
    payload = {"model": "two_stream", "model_kwargs": kwargs, "classes": ck["classes"], "multilabel": ck["multilabel"],
               "data": data.as_dict(), "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
               "vidcat_version": __version__, "sources": sources, "fusion_tuning": result if tune else None,
               "epoch": None, "score": result.get("score")}
    checkpoint.save(out, payload)
    return {"out": str(out), "sources": sources, **result}


def fuse_main(a) -> int:
    res = fuse_checkpoints(a.checkpoints, a.data, a.out, batch_size=a.batch_size, workers=a.workers,
                           device=a.device, steps=a.steps, tune=not a.no_tune)
    res.pop("grid", None)
    print(json.dumps(res))
    return 0


def add_parser(subparsers) -> None:
    """Register ``vidcat fuse``."""
    p = subparsers.add_parser("fuse", help="fuse an RGB and a flow/mv checkpoint (late fusion, weights tuned on val)")
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="RGB + flow/mv single-stream checkpoints (or one two_stream checkpoint to re-tune)")
    p.add_argument("--data", help="validation set the fusion weight is tuned on")
    p.add_argument("--out", required=True, help="fused checkpoint to write")
    p.add_argument("--steps", type=int, default=21, help="grid points for the RGB weight in [0, 1]")
    p.add_argument("--no-tune", action="store_true", help="keep equal weights (plain late fusion)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=fuse_main)


if __name__ == "__main__":  # pragma: no cover
    from vidcat.cli import main
    sys.exit(main(["fuse", *sys.argv[1:]]))
