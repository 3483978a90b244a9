"""Where the videos are and what they are: folder-per-class trees, CSV/JSONL manifests, split lists.

Every source becomes a list of :class:`Item` plus the sorted class list. Relative paths in a
manifest are resolved against the manifest's folder, so a dataset folder can move as a whole.
"""
from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from vidcat.errors import VidcatError
from vidcat.io.video import find_videos
from vidcat.io.store import atomic_open

LABEL_SEP = ";"
log = logging.getLogger("vidcat")


@dataclass
class Item:
    """One video of a dataset: where it is, its labels, and optional text/metadata columns."""

    path: str
    labels: list[str] = field(default_factory=list)
    text: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Dataset:
    """Items and the class vocabulary; ``multilabel`` when any item has several labels."""

    items: list[Item]
    classes: list[str]
    multilabel: bool = False
    source: str = ""

    def __len__(self):
        return len(self.items)


def _split_labels(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(LABEL_SEP) if v.strip()]


def _row_to_item(row: dict, base: Path, where: str) -> Item:
    row = {k.strip().lower() if isinstance(k, str) else k: v for k, v in row.items()}
    if not row.get("path"):
        raise VidcatError(f"{where}: a row has no 'path' column value")
    labels = _split_labels(row.get("labels", row.get("label")))
    p = Path(str(row["path"]))
    path = p if p.is_absolute() else base / p
    meta = {k: v for k, v in row.items() if k not in {"path", "label", "labels", "text"}}
    return Item(str(path), labels, row.get("text") or None, meta)


def read_csv(path) -> list[Item]:
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "path" not in [c.strip().lower() for c in reader.fieldnames]:
            raise VidcatError(f"{path}: CSV manifest needs a header with 'path' and 'label' or 'labels'")
        return [_row_to_item(r, path.parent, str(path)) for r in reader]


def read_jsonl(path) -> list[Item]:
    path = Path(path)
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise VidcatError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                items.append(_row_to_item(row, path.parent, f"{path}:{n}"))
    return items


def read_folder(root) -> list[Item]:
    """``root/<class>/**/video`` → items labelled by their top-level folder."""
    root = Path(root)
    items = []
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        items += [Item(str(p), [class_dir.name]) for p in find_videos(class_dir)]
    return items


def read_split_list(path, video_root=None, class_index=None) -> list[Item]:
    """UCF101/HMDB51-style split lists.

    UCF101: ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi [1]`` (label from the folder).
    HMDB51: ``video.avi 1`` where 1 = train, 2 = test, 0 = unused; the class comes from the
    list's file name (``brush_hair_test_split1.txt``) and only train/test rows marked 1/2 are kept
    according to ``class_index`` given as ``{"keep": "1"}`` (default keeps 1).
    """
    path = Path(path)
    root = Path(video_root) if video_root else path.parent
    keep = (class_index or {}).get("keep", "1")
    hmdb_class = path.stem.rsplit("_test_split", 1)[0] if "_test_split" in path.stem else None
    items = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if hmdb_class is not None:
            if len(parts) > 1 and parts[1] != keep:
                continue
            items.append(Item(str(root / hmdb_class / parts[0]), [hmdb_class]))
        else:
            rel = Path(parts[0])
            items.append(Item(str(root / rel), [rel.parts[0]] if len(rel.parts) > 1 else []))
    return items


def regex_field(pattern: "str | re.Pattern", path) -> str | None:
    """The first capture group (or the whole match) of ``pattern`` in the file name, else in the
    whole path; None when neither matches. ``P(\\d)`` on ``.../PS7A1P2T3.avi`` -> ``"2"``."""
    rx = compile_regex(pattern) if isinstance(pattern, str) else pattern
    p = Path(path)
    for text in (p.name, p.as_posix()):
        m = rx.search(text)
        if m:
            return next((g for g in m.groups() if g is not None), m.group(0))
    return None


def compile_regex(pattern: str, flag: str = "--label-regex") -> re.Pattern:
    """``re.compile`` with a one-line VidcatError naming the option for a bad pattern."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise VidcatError(f"{flag} {pattern!r} is not a valid regular expression ({e})") from None


def label_by_regex(items: list[Item], pattern: str, where: str) -> list[Item]:
    """Give unlabelled items the label :func:`regex_field` finds; items it does not match are left out
    (one log line says how many)."""
    rx = compile_regex(pattern)
    out, missed = [], []
    for it in items:
        if it.labels:
            out.append(it)
            continue
        lab = regex_field(rx, it.path)
        if lab:
            out.append(Item(it.path, [lab], it.text, it.meta))
        else:
            missed.append(it.path)
    if missed:
        log.warning("%s: %d video(s) do not match label regex %r and are left out (e.g. %s)",
                    where, len(missed), pattern, Path(missed[0]).name)
    return out


def write_manifest(path, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    """Write ``rows`` (dicts with at least ``path`` and ``label``) as a CSV manifest that
    :func:`read_csv` reads back; atomic (temp file + rename). Columns: ``fieldnames`` or the union of
    the rows' keys in first-seen order; list values are joined with ``;`` (multi-label)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = fieldnames or list(dict.fromkeys(k for r in rows for k in r)) or ["path", "label"]
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: LABEL_SEP.join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in r.items()})
    return path


def load_dataset(source, classes: list[str] | None = None, label_regex: str | None = None) -> Dataset:
    """Any supported source as a :class:`Dataset` (see :func:`_load_dataset`); a manifest that is not
    UTF-8 text is one clear error, not a traceback."""
    try:
        return _load_dataset(source, classes, label_regex)
    except UnicodeDecodeError as e:
        raise VidcatError(f"{source}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                          "save the manifest as UTF-8") from None


def _load_dataset(source, classes: list[str] | None = None, label_regex: str | None = None) -> Dataset:
    """Read any supported source. ``classes`` (e.g. from a checkpoint) fixes the vocabulary.

    A directory containing ``train.csv`` is read as that manifest (the layout ``vidcat synth``
    writes); any other directory is a folder-per-class tree. ``label_regex`` labels videos that
    have no label (see :func:`regex_field`): with it a directory is read flat, every video under it
    labelled from its file name, e.g. ``PS7(A\\d)`` on ``PS7A2P1T1.avi`` -> ``A2``.
    """
    src = Path(source)
    if not src.exists():
        raise VidcatError(f"{src}: no such file or directory")
    if src.is_dir():
        if (src / "train.csv").exists():
            items = read_csv(src / "train.csv")
        elif label_regex:
            items = [Item(str(p)) for p in find_videos(src)]
        else:
            items = read_folder(src)
    elif src.suffix.lower() == ".csv":
        items = read_csv(src)
    elif src.suffix.lower() in (".jsonl", ".json"):
        items = read_jsonl(src)
    elif src.suffix.lower() == ".txt":
        items = read_split_list(src)
    else:
        raise VidcatError(f"{src}: unknown dataset source (want a folder, .csv, .jsonl or a .txt split list)")
    if label_regex and items:
        items = label_by_regex(items, label_regex, str(src))
        if not items:
            raise VidcatError(f"{src}: no video matches the label regex {label_regex!r}")
    if not items:
        raise VidcatError(f"{src}: the dataset is empty (no videos found)")
    found = sorted({lab for it in items for lab in it.labels})
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise VidcatError(f"{src}: labels not known to the model: {', '.join(unknown[:10])}"
                              f" (the model knows {len(classes)} classes: {', '.join(classes[:10])}...)")
    multilabel = any(len(it.labels) > 1 for it in items)
    return Dataset(items, list(classes), multilabel, str(src))
