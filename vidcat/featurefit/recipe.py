"""Fitting the default model, ``streams``, on the user's clips.

1. the streams the clips have are planned from a cheap probe of a sample (:mod:`vidcat.featurefit.plan`);
2. every labelled clip (training and ``--val`` clips alike) goes through the model's own data path, once per
   stream, into the store (:mod:`vidcat.featurefit.extract`; one set of clip workers serves every stream,
   :mod:`vidcat.featurefit.pool`); appearance also gets :data:`AUG_VIEWS` augmented views per clip, decoded
   with the centre view in one pass;
3. groups come from the manifest's ``group`` column or ``--group-regex``, else automatically from the clips
   (:mod:`vidcat.data.splits`: near-duplicates, and recording sessions told by container metadata);
4. each stream's head, the fused streams and the stacker are chosen by grouped CV
   (:mod:`vidcat.featurefit.select`); the nested out-of-fold accuracy is the printed ``expected top-1`` line,
   with a leave-one-session-out line when sessions were found, and the per-stream table says which streams
   helped;
5. the chosen heads and stacker go into an ordinary :class:`~vidcat.models.build.Checkpoint` of ``streams``,
   so ``eval``, ``predict``, ``timeline``, ``serve`` and ``batch`` run it like any model, computing only the
   chosen streams.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidcat.data.manifest import Dataset
from vidcat.data.splits import given_groups, grouped_folds, group_subset, resolve_groups
from vidcat.errors import VidcatError
from vidcat.featurefit import fusion as FU
from vidcat.featurefit import heads as H
from vidcat.featurefit.extract import NAMESPACE, default_workers, extract_stream
from vidcat.featurefit.pool import ClipPool
from vidcat.featurefit.plan import plan_streams
from vidcat.featurefit.select import StreamInput, answers, fit_streams, nested_logits, stream_table
from vidcat.featurefit.unknown import open_set_rule
from vidcat.io.store import Store
from vidcat.metrics import wilson

AUG_VIEWS = 2          # augmented training views per clip for the appearance stream, beside the centre view
FOLDS = 5
HEADROOM = 0.95        # costly streams run only where the cheap ones score below this (room for +5 points)
NESTED_MAX_CLIPS = 1500  # above this the estimate is the (slightly optimistic) out-of-fold score of the choice


def merged(train_ds: Dataset, val_ds: Dataset | None) -> tuple[Dataset, int]:
    """Training and ``--val`` clips in one set (grouped CV sees both); the number of training clips."""
    if not val_ds:
        return train_ds, len(train_ds.items)
    return Dataset(train_ds.items + val_ds.items, train_ds.classes), len(train_ds.items)


def stream_modules(names, data, cache=None) -> dict:
    """The feature module of every planned stream, built with the data settings it reads (``cache``: where
    derived artefacts such as exported backbone graphs go)."""
    from vidcat.models.stream_fusion import stream_module

    modules = {n: stream_module(n, **stream_kwargs(n, data)) for n in names}
    for m in modules.values():
        if hasattr(m, "runtime_root"):
            m.runtime_root = cache
    return modules


def stream_kwargs(name: str, data) -> dict:
    """Builder keywords of a stream's feature module (what the checkpoint records)."""
    if name == "appearance":
        return {"frames": data.frames}
    if name == "motion":
        return {"source": "flow"}      # DIS flow: codec vectors are mis-scaled in B-frame pyramids
    if name == "audio":
        return {"n_mels": data.n_mels}
    return {}


@contextmanager
def ray_session(address):
    """One Ray session for every stream of a run (``address``: True for a local Ray or ``$RAY_ADDRESS``, a
    string for that cluster, None for none); one started here ends with the block."""
    if not address:
        yield
        return
    import ray

    from vidcat.io.ray_cluster import init_ray

    started = not ray.is_initialized()
    if started:
        init_ray(None if address is True else address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def extract_all(ds: Dataset, data, modules: dict, cfg, log, index: list | None = None) -> dict:
    """Each stream's features of the clips the first stream (appearance) could read -- or of ``index`` --
    (clips it could not are skipped, with one line each); a stream missing for a clip is a mask, never a skip."""
    store, ray = Store(NAMESPACE, root=cfg.cache), (cfg.address or True) if cfg.ray else None
    sets = {}
    cap, threads = getattr(cfg, "workers", None), getattr(cfg, "threads", 0) or None
    with ClipPool(0 if ray else default_workers(cap), modules) as pool, ray_session(ray):   # one for every stream
        for name, module in modules.items():
            views = 1 + AUG_VIEWS if getattr(module, "per_frame", False) else 1
            sets[name] = extract_stream(ds, data, module, views=views, store=store, strict=cfg.strict, log=log,
                                        ray=ray, only=index, workers=cap, pool=pool, threads=threads)
            if index is None:
                index = sets[name].index
                if not index:
                    raise VidcatError(f"none of the {len(ds.items)} videos could be read")
    for name, s in sets.items():
        if s.index != index:            # a clip this stream could not read at all: absent, not skipped
            pos = {i: j for j, i in enumerate(s.index)}
            feats = np.zeros((len(index),) + s.feats.shape[1:], np.float32)
            present = np.zeros((len(index), s.feats.shape[1]), np.float32)
            for j, i in enumerate(index):
                if i in pos:
                    feats[j], present[j] = s.feats[pos[i]], s.present[pos[i]]
            sets[name] = replace(s, feats=feats, present=present, index=index, skipped=[])
    return sets


def stream_inputs(sets: dict, modules: dict) -> dict:
    """What the selection fits on: each stream's features; per-frame ones trend-pooled once."""
    out = {}
    for name, s in sets.items():
        m = modules[name]
        per_frame = (m.frames, m.feat_dim) if getattr(m, "per_frame", False) else None
        x = H.pool_views(s.feats, m.frames) if per_frame else s.feats
        dims = tuple(getattr(m, "dims", ())) if per_frame else ()
        out[name] = StreamInput(name, x, s.present[:, 0], per_frame, dims, s.cpu_per_clip)
    return out


def clip_groups(ds: Dataset, index, inputs: dict, cfg, log):
    """Groups of the readable clips: given, or found from their appearance and recording metadata."""
    from vidcat.io.video import recording_metadata

    given = given_groups(ds, cfg.group_regex)
    metas = None
    if given is not None:
        given = [given[i] for i in index]
    else:
        metas = [recording_metadata(ds.items[i].path) for i in index]
    app = inputs["appearance"]
    emb = app.x[:, 0, : app.per_frame[1] // 3]          # the centre view's mean global appearance features
    groups = resolve_groups(given, emb, metas, FOLDS)
    if groups.how == "auto":
        log(f"no groups given (manifest 'group' column or --group-regex): {groups.describe()} "
            f"among {len(index)} clips")
    return groups


def estimate(inputs: dict, y: np.ndarray, groups: np.ndarray, folds, num_classes: int, seed: int,
             protocol: str, fit=None) -> tuple[dict, np.ndarray | None]:
    """Top-1 of the whole procedure on clips it never chose on (nested), with a Wilson 95 % interval; and the
    nested fused logits it comes from (None above :data:`NESTED_MAX_CLIPS`, where the score is the out-of-fold
    one of ``fit``, the selection on these ``folds``: fitted here when not given)."""
    n_clips, z = len(y), None
    if not folds:
        return {"top1": None, "n": n_clips, "groups": len(np.unique(groups)),
                "note": f"{len(np.unique(groups))} group(s): nothing to cross-validate"}, None
    nested = n_clips <= NESTED_MAX_CLIPS
    if nested:
        z = nested_logits(inputs, y, groups, folds, num_classes, seed)
        ok = answers(z, y, folds) == y
    else:
        fit = fit or fit_streams(inputs, y, folds, num_classes)
        ok = FU.stacker_correct({n: fit.heads[n].oof for n in fit.chosen}, list(fit.chosen), y, folds,
                                fit.stacker_kind)[1]
    covered = np.zeros(n_clips, bool)
    for _, te in folds:
        covered[te] = True
    k, n = int(ok[covered].sum()), int(covered.sum())
    lo, hi = wilson(k, n)
    return {"top1": round(k / n, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": n,
            "groups": len(np.unique(groups)), "folds": len(folds), "protocol": protocol, "nested": nested,
            "note": "the whole selection repeated inside each outer fold" if nested else
            "out-of-fold accuracy of the chosen streams (slightly optimistic: chosen on these folds)"}, z


def estimate_line(e: dict, session: dict | None = None) -> str:
    if e.get("top1") is None:
        return f"expected top-1 unknown ({e.get('note', 'too few clips to cross-validate')})"
    line = (f"expected top-1 {e['top1']:.2f} (95% CI {e['lo']:.2f}-{e['hi']:.2f}; {e['folds']}-fold grouped CV, "
            f"{e['n']} clips, {e['groups']} groups)")
    if session and session.get("top1") is not None:
        line += (f"; on a new recording session {session['top1']:.2f} ({session['lo']:.2f}-{session['hi']:.2f}; "
                 f"leave one of {session['groups']} sessions out)")
    return line


def learning_curve(fit, inputs: dict, y: np.ndarray, groups: np.ndarray, folds, num_classes: int,
                   seed: int = 0, fractions=(0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """Grouped-CV top-1 of the chosen streams, their heads fitted (with the chosen settings) on a fraction
    of each training fold's groups and fused by the plain sum of their centred log-probabilities: does
    labelling more help?"""
    rng, rows = np.random.default_rng(seed), []
    for f in fractions:
        k = n = 0
        for tr, te in folds:
            sub = group_subset(tr, groups, f, rng)
            if len(np.unique(y[sub])) < 2:
                continue
            total = np.zeros((len(te), num_classes))
            for name in fit.chosen:
                inp = inputs[name]
                pres = sub[inp.present[sub] > 0]
                if len(np.unique(y[pres])) < 2:
                    continue
                est = H.fit_rows(fit.heads[name].estimator, inp.x[pres], y[pres])
                lp = H.log_proba(est, inp.x[te, 0], num_classes)
                total += FU.centred(lp) * inp.present[te, None]
            k, n = k + int((total.argmax(1) == y[te]).sum()), n + len(te)
        lo, hi = wilson(k, n)
        rows.append({"fraction": f, "top1": round(k / n, 4) if n else None, "lo": round(lo, 4), "hi": round(hi, 4),
                     "n": n})
    return rows


def head_config(module, head) -> tuple[dict, int]:
    """The model's head settings of a stream and the width of what its linear layer sees."""
    if getattr(module, "per_frame", False):
        dims = int(head.params.get("dims", module.feat_dim))
        return {"in_dim": module.feat_dim, "pool": "trend", "dims": dims}, 3 * dims
    return {"in_dim": module.feat_dim}, module.feat_dim


def calibration_logits(fit, nested: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """What the calibration is fitted on: the nested estimate's held-out fused logits, whose models were chosen
    and fitted without the clips they score, like the final model on a new clip; the selection's own
    out-of-fold logits (chosen on the clips they score: over-confident) where the nested procedure could not
    fit on every fold (too few groups) or was not run (above :data:`NESTED_MAX_CLIPS`). ``(logits, which)``."""
    if nested is not None and np.isfinite(nested).all():
        return nested, "nested estimate"
    return fit.oof_logits, "out-of-fold"


def calibrate(z: np.ndarray | None, y: np.ndarray, groups: np.ndarray, out=None, fitted_on: str = "") -> tuple:
    """``(calibrator, report)``: temperature (or, where grouped CV shows it is better, vector) scaling fitted on
    held-out fused logits ``z`` (N, K) (:func:`calibration_logits`); the expected calibration error before and
    after, and a reliability diagram ``out/reliability.png``."""
    from vidcat.featurefit.calibration import expected_calibration_error, fit_calibration, plot_reliability
    from scipy.special import softmax

    ok = np.isfinite(z).all(1) if z is not None else np.zeros(len(y), bool)
    if ok.sum() < 10 or len(np.unique(y[ok])) < 2:
        return None, {"note": "too few out-of-fold clips to calibrate"}
    cal = fit_calibration(z[ok], y[ok], groups[ok])
    before, after = softmax(z[ok], 1), cal.probs(z[ok])
    rep = {**cal.to_dict(), "fitted_on": fitted_on, "ece_before": round(expected_calibration_error(before, y[ok]), 4),
           "ece_after": round(expected_calibration_error(after, y[ok]), 4), "clips": int(ok.sum())}
    if out is not None:
        plot_reliability(Path(out) / "reliability.png", y[ok], before, after, title="held-out fused probabilities")
        rep["diagram"] = "reliability.png"
    return cal, rep


def build_fitted(fit, modules: dict, data, num_classes: int, calibrator=None):
    """The ``streams`` model of the chosen streams, its heads and stacker set from the fit (the stacker's
    logits scaled by the calibrator, so every entry point reports calibrated scores); and its builder
    keywords (what the checkpoint records)."""
    import torch

    from vidcat.models.stream_fusion import StreamFusion

    specs = []
    for name in fit.chosen:
        cfg, _ = head_config(modules[name], fit.heads[name])
        specs.append({"name": name, "kwargs": stream_kwargs(name, data), "head": cfg})
    model = StreamFusion(num_classes, specs)
    with torch.no_grad():
        for spec in specs:
            _, width = head_config(modules[spec["name"]], fit.heads[spec["name"]])
            form = H.linear_form(fit.heads[spec["name"]].estimator, width, num_classes)
            head = model.heads[spec["name"]]
            for k in ("mu", "sigma", "keep"):
                getattr(head, k).copy_(torch.from_numpy(form[k]).float())
            head.fc.weight.copy_(torch.from_numpy(form["weight"]).float())
            head.fc.bias.copy_(torch.from_numpy(form["bias"]).float())
        w, b = FU.stacker_weights(fit.stacker, num_classes, len(specs))
        if calibrator is not None:             # calibrated logits = logits * scale + bias, per class
            scale = 1.0 / calibrator.temperature if calibrator.kind == "temperature" else calibrator.scale
            w, b = w * np.reshape(scale, (-1, 1)), b * scale + (0.0 if calibrator.bias is None else calibrator.bias)
        model.stack.weight.copy_(torch.from_numpy(w).float())
        model.stack.bias.copy_(torch.from_numpy(b).float())
    return model.eval(), {"streams": specs}


def val_top1(inputs: dict, y, groups, n_train_pos: int, index, num_classes: int, seed: int) -> float | None:
    """Top-1 on the ``--val`` clips of the procedure fitted on the training clips alone (no shared group)."""
    is_val = np.array([i >= n_train_pos for i in index])
    if not is_val.any() or is_val.all():
        return None
    tr = np.flatnonzero(~is_val & ~np.isin(groups, groups[is_val]))
    te = np.flatnonzero(is_val)
    folds = grouped_folds(y[tr], groups[tr], FOLDS, seed)
    fit = fit_streams({n: i.take(tr) for n, i in inputs.items()}, y[tr], folds, num_classes) if folds else None
    if fit is None:
        return None
    return float((fit.predict({n: i.take(te) for n, i in inputs.items()}) == y[te]).mean())


def stream_costs(sets: dict, log) -> dict:
    """CPU seconds per clip and wall minutes of each stream's extraction, printed in one line."""
    costs = {n: {"cpu_s_per_clip": round(s.cpu_per_clip, 3), "wall_min": round(s.wall_seconds / 60, 2),
                 "computed": s.computed} for n, s in sets.items()}
    log("stream cost " + ", ".join(f"{n} {c['wall_min']:.1f} min ({c['cpu_s_per_clip']:.2f} CPU s/clip, "
                                             f"{c['computed']} computed)" for n, c in costs.items()))
    return costs


def planned_modules(setup, plan, cache=None) -> tuple:
    """``(data settings, {stream: feature module})`` of the planned streams: the model's data settings plus
    what each stream needs, reading the modalities the streams read."""
    from vidcat.models.streams import STREAMS

    data = setup.data if setup.data.short_side else replace(setup.data, short_side=setup.data.size)
    extra = {}
    for name in plan.streams:
        extra.update(getattr(STREAMS[name], "data_settings", {}))
    extra.update(plan.data)
    data = replace(data, **extra)
    modules = stream_modules(plan.streams, data, cache)
    reads = tuple(dict.fromkeys(k for m in modules.values() for k in m.reads))
    return replace(data, modalities=reads), modules


def fit_default(cfg, train_ds: Dataset, val_ds: Dataset | None, setup, log=None) -> dict:
    """Fit ``streams`` (see the module docstring), write best.pt/last.pt (the same model) and return the
    summary parts: ``{"history", "best", "report"}``; ``setup`` is updated to the fitted model's."""
    from vidcat.models.build import Checkpoint

    log = log or (lambda s: print(s, file=sys.stderr))
    if train_ds.multilabel:
        raise VidcatError("the default model fits single-label data; for multi-label data pick a model, "
                          "e.g. --model tiny3d")
    t0 = time.time()
    ds, n_train = merged(train_ds, val_ds)
    plan = plan_streams(ds.items, setup.data, tuple(cfg.streams) if cfg.streams else None, log)
    data, modules = planned_modules(setup, plan, cfg.cache)
    sets, inputs, y, groups, folds, modules = staged_streams(ds, data, modules, cfg, plan, log)
    costs, index, nc = stream_costs(sets, log), sets["appearance"].index, len(ds.classes)
    step = _steps(log if cfg.progress else None)
    step(f"fit: a head per stream and their fusion on {len(index)} clips ({len(folds or ())} grouped folds)")
    fit = fit_streams(inputs, y, folds, nc) if folds else fit_streams(inputs, y, [(np.arange(len(y)),) * 2], nc)
    report, nested = _report(fit, inputs, y, groups, folds, nc, cfg, plan, costs, step)
    report["val_top1"] = val_top1(inputs, y, groups.fine, n_train, index, nc, cfg.seed) if val_ds else None
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    step("calibration on held-out fused logits")
    held_out, which = calibration_logits(fit, nested)
    calibrator, report["calibration"] = calibrate(held_out, y, groups.fine, cfg.out, which)
    model, kwargs = build_fitted(fit, modules, data, nc, calibrator)
    step("the 'unknown' rule")
    report["open_set"], open_set = open_set_rule(fit, inputs, y, folds, calibrator, model, data, modules, cfg, log)
    setup.kwargs, setup.data = kwargs, replace(data, modalities=model.reads)
    report.update(clips=len(index), seconds=round(time.time() - t0, 1),
                  skipped=sets["appearance"].skipped, damaged=sets["appearance"].damaged)
    extra = {"epoch": 1, "score": report["estimate"].get("top1"), "recipe": report, "open_set": open_set}
    for name in ("best.pt", "last.pt"):
        Checkpoint(setup, model.state_dict(), extra).save(Path(cfg.out) / name)
    if cfg.progress:
        log(f"streams {', '.join(fit.chosen)} fused ({len(index)} clips); {report['line']}")
        for row in report["table"]:
            log(f"  {row['row']:<28} top-1 {row['top1']:.3f} ({row['lo']:.2f}-{row['hi']:.2f})  "
                f"{row['cpu_s_per_clip']:.2f} CPU s/clip")
    row = {"epoch": 1, "seconds": report["seconds"], "streams": "+".join(fit.chosen),
           "cv_top1": report["estimate"].get("top1"), "val_top1": report["val_top1"]}
    return {"history": [row], "best": report["estimate"].get("top1"), "report": report}


def costly(name: str, data) -> bool:
    """Streams worth a cost check before running over every clip: pose (MediaPipe on 32 frames), and text
    when it transcribes speech or reads text off the screen."""
    return name == "pose" or (name == "text" and bool(data.speech or data.ocr))


def has_room(inputs: dict, y: np.ndarray, folds, num_classes: int) -> tuple[bool, float, tuple]:
    """Whether the streams of ``inputs`` leave room for a costly stream (grouped-CV top-1 of their fusion below
    :data:`HEADROOM`): ``(room, score, the streams fused)``."""
    quick = fit_streams(inputs, y, folds, num_classes)
    oof = {n: quick.heads[n].oof for n in quick.chosen}
    score = FU.mean_se(FU.stacker_correct(oof, quick.chosen, y, folds, quick.stacker_kind)[0])[0]
    return score < HEADROOM, score, quick.chosen


def staged_streams(ds: Dataset, data, modules: dict, cfg, plan, log) -> tuple:
    """Extract the cheap streams, find groups and folds; then the costly ones -- unless ``--streams`` left no
    choice, only when the cheap streams' grouped-CV top-1 is below :data:`HEADROOM`, so that a costly stream
    can pay for itself. ``(sets, inputs, labels, groups, folds, modules)``."""
    cheap = {n: m for n, m in modules.items() if not costly(n, data)}
    sets = extract_all(ds, data, cheap, cfg, log)
    index = sets["appearance"].index
    y = np.array([ds.classes.index(ds.items[i].labels[0]) for i in index])
    if len(np.unique(y)) < 2:
        raise VidcatError("need readable labelled clips of at least 2 classes to train")
    inputs = stream_inputs(sets, cheap)
    groups = clip_groups(ds, index, inputs, cfg, log)
    folds = grouped_folds(y, groups.fine, FOLDS, cfg.seed)
    rest = {n: m for n, m in modules.items() if n not in cheap}
    if rest and folds and not cfg.streams:
        room, score, chosen = has_room(inputs, y, folds, len(ds.classes))
        if not room:
            log(f"{', '.join(rest)}: not computed: {', '.join(chosen)} already reach {score:.2f} on grouped CV "
                f"(a costly stream runs where it has room to add 5 points)")
            plan.reasons.update({n: plan.reasons.get(n, "") + f"; skipped, cheap streams at {score:.2f}" for n in rest})
            plan.streams = [n for n in plan.streams if n not in rest]
            rest = {}
    if rest:
        more = extract_all(ds, data, rest, cfg, log, index=index)
        sets.update(more)
        inputs.update(stream_inputs(more, rest))
    return sets, inputs, y, groups, folds, {**cheap, **rest}


def _steps(log):
    """``step(what)``: one line per step of the fit, with the minutes since the first (None: silent)."""
    t0 = time.time()

    def step(what: str) -> None:
        if log:
            log(f"[{(time.time() - t0) / 60:.1f} min] {what}")
    return step


def _report(fit, inputs, y, groups, folds, nc, cfg, plan, costs, step) -> tuple[dict, np.ndarray | None]:
    step(f"estimate: the whole procedure re-run inside each of {len(folds or ())} outer grouped folds")
    est, nested = estimate(inputs, y, groups.fine, folds, nc, cfg.seed, "stratified grouped k-fold", fit)
    session = None
    if groups.sessions is not None and groups.n_sessions >= 3:
        step(f"estimate for a new recording session ({groups.n_sessions} sessions)")
        session = estimate(inputs, y, groups.sessions, grouped_folds(y, groups.sessions, None), nc, cfg.seed,
                           "leave one recording session out")[0]
    table, curve = [], []
    if folds:
        step("each stream alone, all fused, fused without each one")
        table = stream_table(fit, inputs, y, folds)
        step("learning curve")
        curve = learning_curve(fit, inputs, y, groups.fine, folds, nc, cfg.seed)
    heads = {n: {"params": h.params, "candidates": h.candidates, "alone_correct": h.correct,
                 "p_value": round(h.p_value, 6), "signal": h.signal} for n, h in fit.heads.items()}
    path = [{"streams": list(s.names), "stacker": s.kind, "top1": round(s.mean, 4), "se": round(s.se, 4)}
            for s in fit.path]
    return {"streams": list(fit.chosen), "planned": plan.streams, "plan": plan.lines(), "heads": heads,
            "fusion_path": path, "table": table, "estimate": est, "session_estimate": session,
            "line": estimate_line(est, session), "groups": groups.how, "n_groups": groups.n,
            "n_sessions": groups.n_sessions, "costs": costs,
            "learning_curve": curve}, nested
