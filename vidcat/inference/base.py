"""What every predictor shares, torch-free: class probabilities → the ``vidcat predict`` record.

:class:`Predictor` (torch), :class:`OnnxPredictor` (ONNX Runtime) and the Ray batch job all build
their records with :func:`make_record`, so they write the same ``{"path", "labels", "scores"}``
(or ``{"path", "error"}`` for a file that cannot be read).
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

import numpy as np

from vidcat.errors import VideoError
from vidcat.io.inputs import expand_inputs

log = logging.getLogger("vidcat")


def make_record(path, probs, classes: list[str], topk: int, warning: str | None = None,
                unknown: tuple[float, bool] | None = None) -> dict:
    """``{"path", "labels", "scores"[, "warning"]}``: the ``topk`` most probable classes, best first;
    ``warning`` says when the file is damaged (truncated, partly undecodable) yet was predicted; ``unknown``:
    the "none of these" verdict ``(score, unknown)`` (:func:`vidcat.inference.unknown.mark_unknown`)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[: max(0, min(topk, len(classes)))]
    record = {"path": str(path), "labels": [classes[i] for i in order],
              "scores": [round(float(p[i]), 6) for i in order]}
    if warning:
        record["warning"] = warning
    if unknown is not None:
        from vidcat.inference.unknown import mark_unknown

        mark_unknown(record, unknown)
    return record


def error_record(path, reason: str) -> dict:
    return {"path": str(path), "error": reason}


def probabilities(logits: np.ndarray, multilabel: bool, views: int = 1) -> np.ndarray:
    """(B*V, K) logits → (B, K) probabilities (sigmoid or softmax) averaged over ``views``."""
    x = np.asarray(logits, np.float32)
    if multilabel:
        p = 1.0 / (1.0 + np.exp(-x))
    else:
        e = np.exp(x - x.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    return p.reshape(-1, views, p.shape[-1]).mean(1)


def energies(logits: np.ndarray, views: int = 1) -> np.ndarray:
    """(B*V, K) logits → (B,) energies -logsumexp(logits), averaged over ``views``."""
    x = np.asarray(logits, np.float64)
    m = x.max(-1)
    e = -(m + np.log(np.exp(x - m[:, None]).sum(-1)))
    return e.reshape(-1, views).mean(1)


def _duration(path) -> float:
    from vidcat.io.video import probe

    return probe(path).duration


class BasePredictor:
    """``__call__`` and ``predict_many`` over a subclass's ``scores(path, text)`` -> (K,) probabilities,
    or ``scores_and_warning`` when it can also tell that a file is damaged (and, third, the clip's "none of
    these" evidence when it has some: see :func:`vidcat.models.inputs.predict_outputs`)."""

    classes: list[str]
    multilabel: bool
    topk: int = 5
    unknown_rule = None  # a default-model checkpoint's "none of these" rule (vidcat.inference.unknown)
    long_seconds: float = 0.0  # > 0: longer files get ``long_record(path)`` (the CLI sets timeline.predict_long)
    long_record = None

    def scores(self, path, text: str | None = None):
        raise NotImplementedError

    def scores_and_warning(self, path, text: str | None = None):
        return self.scores(path, text), None

    def __call__(self, path, text: str | None = None) -> dict:
        return self.finish(path, None, text)

    def is_long(self, path) -> bool:
        return bool(self.long_record is not None and self.long_seconds and _duration(path) > self.long_seconds)

    def prepare(self, path):
        """The I/O half of a prediction (decode), run one file ahead by :meth:`predict_many`; None defers
        everything to :meth:`finish` (the default). Raises :class:`VideoError`."""
        return None

    def score_prepared(self, prepared):
        raise NotImplementedError

    def finish(self, path, prepared, text: str | None = None) -> dict:
        """The record of ``path``, from what :meth:`prepare` returned (or from scratch when None)."""
        if prepared is None and self.is_long(path):
            return self.long_record(path)
        out = self.score_prepared(prepared) if prepared is not None else self.scores_and_warning(path, text)
        p, warning, evidence = (*out, None)[:3]
        return make_record(path, p, self.classes, self.topk, warning, self.verdict(p, evidence))

    def verdict(self, probs, evidence: dict | None = None) -> tuple[float, bool] | None:
        """The "none of these" ``(score, unknown)`` of one clip (``evidence``: its energy and space, see
        :func:`vidcat.models.inputs.predict_outputs`), or None without a rule."""
        if self.unknown_rule is None:
            return None
        one = {k: np.asarray(v, np.float64)[None] for k, v in (evidence or {}).items()}
        return self.unknown_rule.judge(np.asarray(probs, np.float64)[None], one)[0]

    def predict_many(self, paths: Iterable, strict: bool = False) -> Iterator[dict]:
        """One record per video under ``paths`` (folders recurse), in order; the next file decodes in a
        thread while the model scores this one (PyAV and the resize release the GIL).

        Every input yields at least one record: a prediction, or ``{"path", "error"}`` for a file that
        cannot be used, a missing path, a symlink loop or a folder without videos. Raises
        :class:`VidcatError` when the inputs hold no video at all; ``strict`` raises at the first error.
        """
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for item in _lookahead(expand_inputs(paths)):
                path, reason, nxt = item
                if reason is None and pending is None:
                    pending = pool.submit(self.prepare, path)
                ahead = pool.submit(self.prepare, nxt) if nxt is not None else None
                yield from self._record(path, reason, pending, strict)
                pending = ahead

    def _record(self, path, reason, pending, strict) -> Iterator[dict]:
        if reason is not None:
            if strict:
                raise VideoError(path, reason)
            yield error_record(path, reason)
            return
        try:
            yield self.finish(path, pending.result())
        except VideoError as e:
            if strict:
                raise
            yield error_record(path, e.reason)
        except Exception as e:  # a pathological file or a bug: one record saying so, not a dead batch
            if strict:
                raise
            log.info("predict failed on %s", path, exc_info=True)  # `vidcat -v` shows the traceback
            yield error_record(path, f"internal error ({type(e).__name__}: {e})")


def _lookahead(inputs) -> Iterator[tuple]:
    """``(path, reason, next readable path or None)`` for each input."""
    items = list(inputs)
    for k, (path, reason) in enumerate(items):
        nxt = items[k + 1] if k + 1 < len(items) else None
        yield path, reason, (nxt[0] if nxt is not None and nxt[1] is None else None)
