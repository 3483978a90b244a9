""""None of these" in the prediction record (torch-free): the fields a default-model checkpoint's rule
(:mod:`vidcat.featurefit.rule`) adds, and the rule as an ONNX export carries it.

A record of a model with a rule gains ``"unknown"`` (true/false) and ``"unknown_score"`` (the rule's score:
larger = less like any known class; ``unknown`` when it is above the threshold). An unknown record's
``labels`` start with ``"unknown"``, the top classes after it; its score there is 1 - the top class's
probability.
"""
from __future__ import annotations

from vidcat.featurefit.rule import UnknownRule, rule_from  # noqa: F401  (the rule: public here too)

UNKNOWN = "unknown"


def mark_unknown(record: dict, verdict: tuple[float, bool] | None) -> dict:
    """``record`` (``make_record``'s) with the rule's verdict ``(score, unknown)``: the two fields, and
    ``"unknown"`` first among the labels when it is."""
    if verdict is None or "labels" not in record:
        return record
    score, unknown = verdict
    record["unknown"], record["unknown_score"] = unknown, round(score, 6)
    if unknown:
        top = record["scores"][0] if record["scores"] else 0.0
        record["labels"] = [UNKNOWN] + record["labels"]
        record["scores"] = [round(1.0 - top, 6)] + record["scores"]
    return record


META_UNKNOWN = "vidcat.unknown"   # ONNX metadata key of a fused-head export's rule


def onnx_rule(entry: dict | None) -> tuple[dict | None, str]:
    """``(metadata, note)`` of a checkpoint's rule for an ONNX export of the fused head (whose output is the
    calibrated fused logits): msp and energy are functions of those logits, so the rule travels in full; a
    distance family needs the heads' pooled inputs, which the graph does not output -- the metadata then
    names the rule and says so."""
    if not entry:
        return None, "no 'unknown' rule (none in the checkpoint)"
    t = entry["threshold"]
    meta = {"family": entry["family"], "threshold": t["value"], "target": t["target"], "precision": t["precision"],
            "coverage": t["coverage"], "unknown_when": "score > threshold"}
    if entry["family"] == "msp":
        meta["score"] = "1 - max(softmax(logits))"
    elif entry["family"] == "energy":
        meta["score"] = "-logsumexp(logits)"
    else:
        meta["score"] = (f"{entry['family']} distance of the heads' pooled inputs to the class centroids: not "
                         "output by this graph; vidcat predict --checkpoint applies it")
        return meta, f"the {entry['family']} 'unknown' rule needs features this graph does not output (named in " \
                     f"its metadata {META_UNKNOWN}; predict --checkpoint applies it)"
    return meta, f"the 'unknown' rule ({meta['score']} > {t['value']:.4g}) is in the metadata {META_UNKNOWN}"
