"""``vidcat eval --unknown DIR``: how well a default-model checkpoint's "none of these" rule tells the evaluation
clips (known classes) from clips of none of them -- AUROC of its score, and at its threshold the precision of
the accepted predictions (an accepted unknown clip is a wrong one), the coverage of the known clips and the
share of unknown clips flagged."""
from __future__ import annotations

import numpy as np

from vidcat.config import EvalConfig
from vidcat.errors import VidcatError


def unknown_rule(cfg: EvalConfig, ck):
    """The checkpoint's rule (its threshold refitted to ``--min-precision`` / ``--coverage`` when given), or
    one error line when ``--unknown`` asks for one the checkpoint does not carry."""
    from vidcat.featurefit.rule import rule_from

    rule = rule_from(ck.extra.get("open_set"), cfg)
    if rule is None and cfg.unknown:
        raise VidcatError(f"--unknown: {cfg.checkpoint} carries no 'unknown' rule (the default model learns one "
                          f"when it is trained; {ck.setup.name} does not)")
    return rule


def evaluate_unknown(cfg: EvalConfig, ck, model, device, known: tuple, skips) -> dict:
    """Open-set metrics of ``known`` = (probabilities, labels, evidence) of the evaluation clips against the
    clips of ``cfg.unknown`` (folder or manifest; their labels, if any, are ignored)."""
    from vidcat.data.dataset import VideoClips, make_loader
    from vidcat.data.manifest import Dataset
    from vidcat.engine.scoring import evaluate_loader
    from vidcat.featurefit.openset import openset_metrics
    from vidcat.featurefit.unlabelled import unlabelled_items

    rule = unknown_rule(cfg, ck)
    clips = VideoClips(Dataset(unlabelled_items(cfg.unknown), ck.classes), ck.data, train=False, clips=cfg.clips,
                       crops=cfg.crops)
    loader = make_loader(clips, cfg.batch_size, False, cfg.workers)
    evidence: dict = {}
    probs, *_ = evaluate_loader(model, loader, clips.num_views, ck.multilabel, device, cfg.amp, skips,
                                progress=cfg.progress, desc="eval unknown", evidence=evidence)
    known_probs, labels, known_evidence = known
    ks, us = rule.scores(known_probs, known_evidence), rule.scores(probs, evidence)
    m = openset_metrics(ks, np.asarray(known_probs).argmax(1) == labels, us, rule.threshold)
    return {**{k: round(v, 4) if k != "threshold" else v for k, v in m.items()}, "family": rule.family,
            "target": rule.target, "known_clips": len(ks), "unknown_clips": len(us), "unknown_data": str(cfg.unknown)}


def open_set_line(m: dict) -> str:
    """The printed line of :func:`evaluate_unknown`'s metrics."""
    return (f"open set: AUROC {m['auroc']:.3f} ({m['known_clips']} known vs {m['unknown_clips']} unknown clips, "
            f"{m['family']}); at the threshold ({m['target']}): precision {m['precision']:.3f}, coverage "
            f"{m['coverage']:.3f}, unknown flagged {m['unknown_flagged']:.3f}")
