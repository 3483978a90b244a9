"""Batch inference on Ray: ``vidcat batch --checkpoint C DATA --out results.parquet [--address ADDR]``.

    run_batch(BatchConfig(checkpoint="runs/demo/best.pt", data="videos/", out="results.parquet"))

Ray Data reads the list of videos (a folder, a CSV/JSONL manifest or one file), decodes each in a
task (CPU), and runs the model in actors (``map_batches`` with :class:`ModelActor`, holding a torch
checkpoint or an ONNX file; ``num_cpus`` / ``num_gpus`` per actor). Every input gives one record,
the same as ``vidcat predict`` (:func:`vidcat.inference.base.make_record`): ``path``, ``labels``,
``scores``, or ``error`` for a file that cannot be read (never a failed job).

Output: ``.jsonl`` (the predict records, one per line) or ``.parquet`` (columns path, labels,
scores, error). Rows stream into a journal (``.<out>.partial.jsonl``, flushed per row) and the
output is written at the end to a temp name and renamed, so a killed job never leaves a half file;
``resume`` skips every path already in the output or the journal. Without ``address`` (or
``RAY_ADDRESS``) a local Ray with 2 CPUs is started; with one, the job joins that cluster (vidcat
is shipped to the workers as a ``py_modules`` package).
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from vidcat.config import OUT_FORMATS, BatchConfig  # noqa: F401 (OUT_FORMATS: re-exported)
from vidcat.io.ray_cluster import init_ray, local_cpus
from vidcat.errors import VidcatError, VideoError
from vidcat.inference.onnx_predictor import FRAME_INPUTS
from vidcat.io.store import atomic_path, atomic_write, json_text

# -- inputs ----------------------------------------------------------------------------------------
def list_inputs(data) -> list[tuple[str, str | None]]:
    """``(path, text)`` of every video in ``data``: a folder (recursive), a .csv/.jsonl manifest, one file."""
    from vidcat.data.manifest import read_csv, read_jsonl
    from vidcat.io.video import find_videos

    src = Path(data)
    if src.is_dir():
        return [(str(p), None) for p in find_videos(src)]
    suffix = src.suffix.lower()
    if suffix == ".csv":
        return [(it.path, it.text) for it in read_csv(src)]
    if suffix in (".jsonl", ".json"):
        return [(it.path, it.text) for it in read_jsonl(src)]
    return [(str(src), None)]


def _is_onnx(path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def model_spec(checkpoint) -> dict:
    """What a decode task needs to build model input: data config, classes, graph inputs (no weights)."""
    if _is_onnx(checkpoint):
        from vidcat.inference.export import metadata_of
        from vidcat.inference.onnx_predictor import ort_session

        session = ort_session(checkpoint)
        meta = metadata_of(session, checkpoint)
        inputs = [i.name for i in session.get_inputs()]
        return {"onnx": True, "data": meta["data"], "classes": meta["classes"], "multilabel": meta["multilabel"],
                "inputs": inputs}
    from vidcat.models.build import Checkpoint

    c = Checkpoint.load(checkpoint).to_dict()
    return {"onnx": False, "data": c["data"], "classes": c["classes"], "multilabel": c["multilabel"], "inputs": None}


def decode(row: dict, spec: dict, clips: int, crops: int) -> dict:
    """A Ray task: one video → its model input (pickled numpy arrays, views on axis 0) or an error."""
    from vidcat.config import DataConfig

    cfg = DataConfig.from_dict(spec["data"])
    try:
        if tuple(spec["inputs"] or ()) == FRAME_INPUTS:  # torch-free: decoded frames, the graph makes the views
            from vidcat.data.views import graph_views

            inputs = graph_views(row["path"], cfg, clips, crops)
            views = len(inputs["crop"])
        else:
            from vidcat.models.inputs import NON_INPUT_KEYS
            from vidcat.inference.predictor import video_batch

            batch, views = video_batch(row["path"], cfg, spec["classes"], spec["multilabel"], clips, crops,
                                       row.get("text"))
            if spec["inputs"]:  # ONNX graph inputs
                from vidcat.inference.onnx_predictor import batch_feeds

                inputs = batch_feeds(batch, spec["inputs"], views)
            else:  # torch: the collated entries (1, [V,] ...) the model reads
                inputs = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in batch.items()
                          if k not in NON_INPUT_KEYS}
        return {**row, "inputs": pickle.dumps(inputs), "views": views, "error": ""}
    except VideoError as e:
        return {**row, "inputs": b"", "views": 0, "error": e.reason}


def _concat(values: list):
    if isinstance(values[0], np.ndarray):
        return np.concatenate(values)
    return [x for v in values for x in v]  # lists (text)


class ModelActor:
    """A Ray actor holding the model: a batch of decoded rows → records (``make_record``), errors kept."""

    def __init__(self, checkpoint: str, topk: int, device: str = "cpu", fast: str | None = None):
        from vidcat.inference.onnx_predictor import load_predictor

        self.pred = load_predictor(checkpoint, topk=topk, device=device, threads=0)
        self.onnx = _is_onnx(checkpoint)
        if fast and not self.onnx:  # chosen on random clips of the model's input: agreement with eager
            from vidcat.inference.fast import accelerate

            accelerate(self.pred, variant=fast)

    def probabilities(self, inputs: list[dict], views: int) -> np.ndarray:
        """(B, K) class probabilities of B videos' inputs (each with ``views`` test views)."""
        if self.onnx:
            from vidcat.inference.base import probabilities
            from vidcat.inference.onnx_predictor import run_logits

            shapes = {tuple((k, np.shape(v)[1:]) for k, v in x.items()) for x in inputs}
            groups = [inputs] if len(shapes) == 1 else [[x] for x in inputs]  # frames of one size stack
            logits = [run_logits(self.pred.session, {k: _concat([x[k] for x in g]) for k in g[0]}) for g in groups]
            return probabilities(np.concatenate(logits), self.pred.multilabel, views)
        merged = {k: _concat([x[k] for x in inputs]) for k in inputs[0]}
        import torch

        from vidcat.models.inputs import predict_scores

        batch = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in merged.items()}
        p, _ = predict_scores(self.pred.model, batch, views, self.pred.multilabel, self.pred.device)
        return p.cpu().numpy()

    def __call__(self, batch: dict) -> dict:
        from vidcat.inference.base import make_record

        n = len(batch["path"])
        records: list = [None] * n
        good = [i for i in range(n) if not batch["error"][i]]
        for views in sorted({int(batch["views"][i]) for i in good}):  # same view count → one forward
            rows = [i for i in good if int(batch["views"][i]) == views]
            probs = self.probabilities([pickle.loads(batch["inputs"][i]) for i in rows], views)
            for i, p in zip(rows, probs):
                records[i] = make_record(batch["path"][i], p, self.pred.classes, self.pred.topk)
        for i in range(n):
            if records[i] is None:
                records[i] = {"path": str(batch["path"][i]), "error": str(batch["error"][i])}
        return {"index": np.asarray(batch["index"]), "record": [json_text(r) for r in records]}


# -- output ----------------------------------------------------------------------------------------
def journal_path(out) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.partial.jsonl")


def read_records(path) -> list[dict]:
    """Records of a .jsonl or .parquet results file (a torn last JSON line, from a kill, is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return [{k: v for k, v in r.items() if v is not None and not (k == "error" and v == "")} for r in rows]
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_records(path, records: list[dict]) -> None:
    """``records`` to ``path`` (.jsonl lines or .parquet table) via a temp file and rename."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("path", pa.string()), ("labels", pa.list_(pa.string())),
                            ("scores", pa.list_(pa.float64())), ("error", pa.string())])
        cols = {name: [r.get(name) for r in records] for name in schema.names}
        with atomic_path(path) as tmp:
            pq.write_table(pa.table(cols, schema=schema), tmp)
    else:
        atomic_write(path, "".join(json_text(r) + "\n" for r in records))


# -- the job ---------------------------------------------------------------------------------------
def batch_predict(cfg: BatchConfig) -> dict:
    """Run the job; returns ``{"out", "inputs", "done_before", "predicted", "errors"}``."""
    items = list_inputs(cfg.data)
    if not items:
        raise VidcatError(f"{cfg.data}: no videos found")
    journal = journal_path(cfg.out)
    done = {r["path"]: r for r in read_records(cfg.out) + read_records(journal)} if cfg.resume else {}
    if not cfg.resume:
        journal.unlink(missing_ok=True)
    todo = [(i, p, t) for i, (p, t) in enumerate(items) if p not in done]
    new: dict[str, dict] = {}
    if todo:
        spec = model_spec(cfg.checkpoint)
        address = cfg.address or os.environ.get("RAY_ADDRESS") or None
        import ray

        started_here = not ray.is_initialized()
        if started_here and not address and cfg.actors * cfg.num_cpus > local_cpus() - 1:
            raise VidcatError(f"the local Ray has {local_cpus()} CPUs: --actors x --num-cpus must leave one for "
                              f"decoding (got {cfg.actors} x {cfg.num_cpus:g}); pass --address for a bigger cluster")
        if started_here:
            init_ray(address)
        try:
            ds = ray.data.from_items([{"index": i, "path": p, "text": t or ""} for i, p, t in todo],
                                     override_num_blocks=min(len(todo), 64))
            ds = ds.map(decode, fn_kwargs={"spec": spec, "clips": cfg.clips, "crops": cfg.crops}, num_cpus=1)
            ds = ds.map_batches(ModelActor, fn_constructor_kwargs={
                "checkpoint": str(Path(cfg.checkpoint).resolve()), "topk": cfg.topk,
                "device": "cuda" if cfg.num_gpus > 0 else "cpu", "fast": cfg.fast},
                batch_size=cfg.batch_size, compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus)
            journal.parent.mkdir(parents=True, exist_ok=True)
            with open(journal, "a", encoding="utf-8") as f:
                for row in ds.iter_rows():
                    f.write(row["record"] + "\n")
                    f.flush()
                    record = json.loads(row["record"])
                    new[record["path"]] = record
        finally:
            if started_here:
                ray.shutdown()
    by_path = {**done, **new}
    records = [by_path[p] for p, _ in items if p in by_path]
    write_records(cfg.out, records)
    journal.unlink(missing_ok=True)
    return {"out": str(cfg.out), "inputs": len(items), "done_before": len(items) - len(todo),
            "predicted": len(new), "errors": sum("error" in r for r in records)}


def run_batch(cfg: BatchConfig) -> int:
    """CLI entry: run the job and print its summary as one JSON line."""
    print(json.dumps(batch_predict(cfg)), flush=True)
    return 0
