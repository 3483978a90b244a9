"""``vidcat report RUN``: a markdown page summarising a run (config, curves, held-out metrics)."""
from __future__ import annotations

import json
from pathlib import Path

from vidcat.errors import VidcatError
from vidcat.io.store import atomic_write


def write_report(run) -> str:
    run = Path(run)
    cfg_path = run / "config.json"
    if not cfg_path.exists():
        raise VidcatError(f"{run}: no config.json (is this a training run folder?)")
    cfg = json.loads(cfg_path.read_text())
    lines = [f"# vidcat run `{run}`", "",
             f"- model: **{cfg['model']}** {_kwargs(cfg)}",
             f"- classes ({len(cfg['classes'])}): {', '.join(cfg['classes'])}",
             f"- input: {cfg['data']['frames']} frames ({cfg['data']['sampler']}), {cfg['data']['size']}px, "
             f"modalities {', '.join(cfg['data']['modalities'])}",
             f"- epochs: {cfg['epochs_done']}, non-finite steps skipped: {cfg.get('nonfinite_steps', 0)}, "
             f"unreadable files skipped: {len(cfg.get('skipped_files', {}))}", ""]
    lines += _recipe_section(cfg.get("recipe"))
    hist = cfg.get("history", [])
    if hist and "recipe" not in cfg:
        keys = [k for k in ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "clips_per_s") if k in hist[0]]
        lines += ["## Training", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(f"{h.get(k):.4g}" if isinstance(h.get(k), float) else str(h.get(k)) for k in keys) + " |"
                  for h in hist]
        lines += ["", "![curves](curves.png)", ""]
    eval_path = run / "eval.json"
    if eval_path.exists():
        ev = json.loads(eval_path.read_text())
        head = {k: ev[k] for k in ("top1", "top5", "mean_class_acc", "mAP", "gap", "n") if k in ev}
        lines += ["## Held-out evaluation", "", f"data: `{ev.get('data')}`", "",
                  " ".join(f"**{k}** {v:.4f}" if isinstance(v, float) else f"**{k}** {v}" for k, v in head.items()),
                  "", "| class | n | acc |", "|---|---|---|"]
        lines += [f"| {c} | {r['n']} | {r.get('acc', r.get('ap'))} |" for c, r in ev["per_class"].items()]
        if (run / "confusion.png").exists():
            lines += ["", "![confusion](confusion.png)"]
    out = run / "report.md"
    atomic_write(out, "\n".join(lines) + "\n")
    return str(out)


def _recipe_section(rec: dict | None) -> list[str]:
    """The default model's choice: the estimate, which streams helped, each stream's head, the curve."""
    if not rec:
        return []
    lines = ["## Streams chosen on these clips (grouped cross-validation)", "", f"**{rec.get('line', '')}**", "",
             f"fused: `{', '.join(rec.get('streams', []))}`; planned: {', '.join(rec.get('planned', []))}; "
             f"groups: {rec.get('groups')} ({rec.get('n_groups')}); {rec.get('estimate', {}).get('note', '')}", ""]
    lines += [f"- {line}" for line in rec.get("plan", [])] + [""]
    table = rec.get("table") or []
    if table:
        lines += ["Which streams helped (out-of-fold top-1, Wilson 95 % CI, CPU seconds per clip):", "",
                  "| | streams | top-1 | 95% CI | CPU s/clip |", "|---|---|---|---|---|"]
        lines += [f"| {r['row']} | {', '.join(r['streams'])} | {r['top1']:.3f} | {r['lo']:.2f}-{r['hi']:.2f} | "
                  f"{r['cpu_s_per_clip']:.2f} |" for r in table]
        lines.append("")
    heads = rec.get("heads") or {}
    if heads:
        lines += ["| stream | head | alone: p-value vs majority class |", "|---|---|---|"]
        lines += [f"| {n} | {h['params']} | {h['p_value']:.3g}{' (signal)' if h['signal'] else ''} |"
                  for n, h in heads.items()]
        lines.append("")
    cal = rec.get("calibration") or {}
    if "ece_before" in cal:
        how = f"temperature {cal['temperature']:.2f}" if cal["kind"] == "temperature" else "vector scaling"
        source = f"the {cal['fitted_on']} logits of" if cal.get("fitted_on") else "out-of-fold logits of"
        lines += [f"Calibration ({how}, fitted on {source} {cal['clips']} clips): expected calibration error "
                  f"{cal['ece_before']:.3f} before, {cal['ece_after']:.3f} after; the scores predict prints are the "
                  "calibrated ones.", "", "![reliability](reliability.png)", ""]
    lines += _open_set_lines(rec.get("open_set") or {})
    curve = [p for p in rec.get("learning_curve") or [] if p.get("top1") is not None]
    if curve:
        lines += ["Learning curve (same folds, the chosen streams' heads fitted on a fraction of each training "
                  "fold's groups):", "", "| labelled clips used | top-1 | 95% CI |", "|---|---|---|"]
        lines += [f"| {p['fraction']:.0%} | {p['top1']:.3f} | {p['lo']:.2f}-{p['hi']:.2f} |" for p in curve]
        lines.append("")
    return lines


def _open_set_lines(rule: dict) -> list[str]:
    """The "none of these" rule of a default-model run, in words."""
    if "threshold" not in rule:
        return [f"None of these: {rule['note']}.", ""] if rule.get("note") else []
    t = rule["threshold"]
    return [f"None of these: clips whose {rule['family']} score is above {t['value']:.4g} are `unknown` ({t['target']}, "
            f"{rule['how']}; out-of-fold precision {t['precision']:.2f}, coverage {t['coverage']:.2f}); "
            f"{rule['evidence']['chosen_by']}. `--min-precision` / `--coverage` move the threshold without retraining.",
            ""]


def _kwargs(cfg: dict) -> str:
    kw = cfg.get("model_kwargs") or {}
    if "streams" in kw:
        return "(streams: " + ", ".join(s["name"] for s in kw["streams"]) + ")"
    return str(kw) if kw else ""
