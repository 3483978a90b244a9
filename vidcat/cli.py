"""``vidcat`` command line: a thin layer over the Python API (one sub-command per task).

User errors (bad paths, unknown models, unreadable files under ``--strict``) print one line and
exit with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from vidcat.errors import VidcatError


def _csv_list(s: str) -> tuple:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _views(s: str) -> tuple[int, int]:
    try:
        clips, crops = (int(x) for x in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("--views wants CLIPS,CROPS such as 1,1 or 4,3") from None
    return clips, crops


def _kv(s: str) -> tuple[str, object]:
    if "=" not in s:
        raise argparse.ArgumentTypeError("--model-arg wants KEY=VALUE")
    k, v = s.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def add_training_arguments(p) -> None:
    """Optimisation, input and weight options shared by ``train`` and ``cv`` (TrainConfig fields)."""
    p.add_argument("--val-split", type=float, default=0.0, help="hold out this fraction when no --val")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs")
    p.add_argument("--clip-grad", type=float, default=5.0)
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--frames", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--stride", type=int)
    p.add_argument("--sampler", choices=["clip", "tsn"])
    p.add_argument("--modalities", type=_csv_list, help="e.g. video,audio,text or rgb,flow")
    p.add_argument("--hflip", action="store_true", help="random horizontal flips (direction-free labels only)")
    p.add_argument("--flow-method", help="flow stream's method: dis_fast, dis_medium, farneback, tvl1, raft, mv")
    p.add_argument("--flow-length", type=int, help="L motion fields stacked per sampled frame (2L channels)")
    p.add_argument("--motion-cache", help="folder filled by `vidcat flow` (computed on the fly when absent)")
    p.add_argument("--pretrained", action="store_true", help="torchvision/timm weights (needs the hub)")
    p.add_argument("--weights", help="local state-dict file to start from")
    p.add_argument("--freeze-backbone", action="store_true")
    p.add_argument("--backbone-lr-mult", type=float, default=1.0)
    p.add_argument("--model-arg", type=_kv, action="append", help="builder keyword KEY=VALUE (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop training early (smoke tests)")


def training_kwargs(a) -> dict:
    """TrainConfig keywords from the options of :func:`add_training_arguments`."""
    overrides = {k: getattr(a, k) for k in ("frames", "size", "stride", "sampler", "flow_method", "flow_length",
                                            "motion_cache") if getattr(a, k) is not None}
    if a.modalities:
        overrides["modalities"] = a.modalities
    if a.hflip:
        overrides["hflip"] = True
    return dict(val_split=a.val_split, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                weight_decay=a.weight_decay, warmup_epochs=a.warmup, clip_grad=a.clip_grad, amp=a.amp,
                seed=a.seed, pretrained=a.pretrained, weights=a.weights, freeze_backbone=a.freeze_backbone,
                backbone_lr_mult=a.backbone_lr_mult, max_steps=a.max_steps,
                model_kwargs=dict(a.model_arg or []), data_overrides=overrides)


# -- sub-commands ------------------------------------------------------------------------------
def cmd_synth(a) -> int:
    from vidcat.data.synthetic import SynthConfig, check_kind, generate

    check_kind(a.kind)
    cfg = SynthConfig(kind=a.kind, per_class=a.per_class, seed=a.seed, size=a.size, frames=a.frames,
                      rotate=a.rotate, distractors=a.distractors, jitter=a.jitter, crf=a.crf,
                      missing_audio=a.missing_audio, missing_text=a.missing_text)
    manifests = generate(a.out, cfg, progress=not a.quiet)
    print(json.dumps({k: str(v) for k, v in manifests.items()}))
    return 0


def cmd_train(a) -> int:
    from vidcat.config import TrainConfig
    from vidcat.engine.train import train

    cfg = TrainConfig(source=a.data, out=a.out, model=a.model, val=a.val, device=a.device, workers=a.workers,
                      threads=a.threads, resume=a.resume, strict=a.strict, progress=not a.quiet,
                      **training_kwargs(a))
    summary = train(cfg)
    last = summary["history"][-1] if summary["history"] else {}
    print(json.dumps({"out": a.out, "epochs": summary["epochs_done"], "best_score": summary["best_score"],
                      "last": last, "skipped": len(summary["skipped_files"])}, default=str))
    return 0


def cmd_eval(a) -> int:
    from vidcat.engine.evaluate import evaluate, format_table

    clips, crops = a.views
    result = evaluate(a.checkpoint, a.data, clips=clips, crops=crops, batch_size=a.batch_size,
                      workers=a.workers, device=a.device, json_out=a.json, strict=a.strict,
                      progress=not a.quiet, threads=a.threads, ablate=a.ablate)
    print(format_table(result))
    return 0


def cmd_predict(a) -> int:
    from vidcat.inference.predictor import Predictor

    for p in a.paths:
        if not Path(p).exists():
            raise VidcatError(f"{p}: no such file or directory")
    clips, crops = a.views
    predictor = Predictor(a.checkpoint, device=a.device, clips=clips, crops=crops, topk=a.topk)
    failed = 0
    for record in predictor.predict_many(a.paths, strict=a.strict):
        failed += "error" in record
        print(json.dumps(record), flush=True)
    if failed:
        print(f"vidcat: {failed} file(s) could not be read", file=sys.stderr)
    return 0


def cmd_models(a) -> int:
    from vidcat.models.registry import get_spec, list_models, model_summary

    names = list_models(a.family)
    if a.json:
        print(json.dumps([get_spec(n).info() for n in names], indent=1))
        return 0
    print(model_summary(names, params=not a.no_params))
    return 0


def cmd_timeline(a) -> int:
    from vidcat.inference.timeline import timeline

    result = timeline(a.checkpoint, a.video, window=a.window, stride=a.stride, out_dir=a.out, device=a.device)
    print(json.dumps({k: result[k] for k in ("csv", "json", "png", "windows")}))
    return 0


def cmd_report(a) -> int:
    from vidcat.report import write_report

    print(write_report(a.run))
    return 0


def cmd_bench(a) -> int:
    from vidcat.bench import run_bench

    print(json.dumps(run_bench(a.what, a.files, a), indent=1))
    return 0


# -- parser ------------------------------------------------------------------------------------
def add_runtime_arguments(p, workers: int = 2) -> None:
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--workers", type=int, default=workers, help="data-loader processes")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from vidcat import __version__

    parser = argparse.ArgumentParser(prog="vidcat", description="Video categorization toolkit.")
    parser.add_argument("--version", action="version", version=f"vidcat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic benchmark of real encoded videos")
    p.add_argument("out")
    p.add_argument("--kind", default="motion", help="motion | av | avt")
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--rotate", action="store_true", help="add cw/ccw rotation classes (motion)")
    p.add_argument("--distractors", type=int, default=0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--missing-audio", type=float, default=0.0)
    p.add_argument("--missing-text", type=float, default=0.0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a model; writes best.pt, last.pt, history.csv, curves.png")
    p.add_argument("--data", required=True, help="folder-per-class tree, CSV/JSONL manifest or split list")
    p.add_argument("--model", default="tiny3d")
    p.add_argument("--out", required=True)
    p.add_argument("--val", help="validation set (default: val.csv beside the training manifest)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    add_training_arguments(p)
    add_runtime_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on held-out data")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--views", type=_views, default=(1, 1), help="CLIPS,CROPS test views (e.g. 4,3)")
    p.add_argument("--json", help="write metrics here (+ confusion.png beside it)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--ablate", nargs="?", const=(), type=_csv_list, metavar="M1,M2",
                   help="multi-modal models: also score with each modality removed (default: all of them)")
    add_runtime_arguments(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="one JSON line per video (folders recurse)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("paths", nargs="+")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--views", type=_views, default=(1, 1))
    p.add_argument("--json", action="store_true", help="JSON lines (the default; kept for scripts)")
    add_runtime_arguments(p, workers=0)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--family")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-params", action="store_true", help="skip building models to count parameters")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("timeline", help="per-window scores over a long video (CSV, JSON, PNG)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("video")
    p.add_argument("--window", type=float, default=2.0, help="seconds")
    p.add_argument("--stride", type=float, default=1.0, help="seconds")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_timeline)

    p = sub.add_parser("report", help="write RUN/report.md from a run's files")
    p.add_argument("run")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="speed benchmarks, printed as JSON with ratios to a baseline")
    p.add_argument("what", choices=["decode", "loader", "model", "flow", "mv"])
    p.add_argument("files", nargs="*")
    p.add_argument("--model", default="tiny3d")
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=cmd_bench)

    for extension in ("vidcat.motion.cli", "vidcat.features", "vidcat.engine.fuse", "vidcat.engine.crossval",
                      "vidcat.inference.export", "vidcat.inference.server"):
        try:
            module = __import__(extension, fromlist=["add_parser"])
        except ModuleNotFoundError as e:
            if e.name != extension:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="vidcat: %(message)s")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        return args.func(args)
    except VidcatError as e:
        print(f"vidcat: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidcat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
