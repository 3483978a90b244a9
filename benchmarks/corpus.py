"""A development corpus of real labelled video sets with real groups, laid out for grouped evaluation.

    python benchmarks/corpus.py --list                       # the table below
    python benchmarks/corpus.py [--root DIR] [--mirror-dir DIR] [--only NAME] [--force]

Every set is pinned: a public GitHub repository at a 40-hex commit (or a folder of ``../shared/data``),
a regex choosing its files, a label regex and a group regex (who/which session a clip comes from), an
optional subsample rule, and the evaluation protocol (``logo`` = leave one group out, ``group_kfold`` =
StratifiedGroupKFold). Nothing here is ever committed to this repository: the videos are read from a
local bare mirror (``MIRROR/<owner>+<name>/repo``) when
present, else from a blob-less ``git clone`` of the public repository at that commit (needs the network),
and written under the corpus root (``--root``, else ``$VIDCAT_CORPUS``, else ``~/.cache/vidcat/corpus``):

    ROOT/<set>/videos/<label>/<file>
    ROOT/<set>/manifest.csv      path,label,group   (paths relative to the manifest)
    ROOT/<set>/protocol.json     protocol, folds, n_clips, n_groups, classes, source repo@commit, licence,
                                 the subset rule, what the decode probe saw, files dropped as unreadable

Each set is built in a temporary folder beside its final place and renamed into place, so a set is either
whole or absent; a set whose protocol.json already records the same spec is left alone (``--force`` redoes
it). A set whose source is absent is skipped with one line. Every file is probed with
:func:`vidcat.io.video.probe` (container + first frame); one that does not open is dropped and listed.

Other scripts read the corpus through :func:`load_corpus`.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_MIRROR = Path(os.environ["VIDCAT_MIRROR"]) if os.environ.get("VIDCAT_MIRROR") else None
GIT_URL = "https://github.com/{repo}.git"      # $VIDCAT_CORPUS_GIT_URL overrides it ({repo}, {owner}, {name})
# kept out of the development corpus: reserved for held-out checks
FORBIDDEN_WORDS = ("fight", "violen", "basketball", "punch", "assault", "weapon", "crime")


@dataclass(frozen=True)
class CorpusSet:
    """One pinned set. Regexes apply to a file's path relative to ``subdir`` (``/``-separated)."""

    name: str
    kind: str                       # "github" or "local"
    source: str                     # github: owner/name; local: folder name under ../shared/data
    commit: str | None              # github: the pinned commit (40 hex); local: None
    subdir: str                     # folder inside the repository / local folder holding the videos
    path_regex: str                 # files to take (full match on the relative path)
    label_regex: str                # group(1) of a search on the relative path = the label
    group_regex: str                # group(1) of a search on the relative path = the group
    protocol: dict                  # {"protocol": "logo"} or {"protocol": "group_kfold", "folds": 5}
    classes: tuple | None = None    # keep only these labels (None: all)
    subset: str = "all files matching path_regex"   # the subsample rule, in words (path_regex does it)
    prefer_suffix: str | None = None  # when two files give the same output name, keep the one with this suffix
    strip_suffix: str | None = None   # removed from output names (e.g. ".backup")
    group_meaning: str = ""
    class_names: tuple = ()           # ((label, name), ...) when the labels are codes
    licence: str = "unknown"
    notes: str = ""
    verified: bool = True             # laid out and probed in the session that pinned it

    # the fields that decide which bytes land where; the rest is description
    CONTENT_FIELDS = ("name", "kind", "source", "commit", "subdir", "path_regex", "label_regex", "group_regex",
                      "classes", "prefer_suffix", "strip_suffix")

    def spec_hash(self) -> str:
        """Hash of what is laid out (files, labels, groups): a different one means lay the set out again."""
        d = {k: v for k, v in asdict(self).items() if k in self.CONTENT_FIELDS}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:16]

    def metadata(self) -> dict:
        """The descriptive part of protocol.json (rewritten in place when only this changes)."""
        return dict(self.protocol, source=self.origin, subdir=self.subdir, path_regex=self.path_regex,
                    label_regex=self.label_regex, group_regex=self.group_regex, group_meaning=self.group_meaning,
                    subset=self.subset, class_names=dict(self.class_names), licence=self.licence, notes=self.notes)

    @property
    def origin(self) -> str:
        return f"github:{self.source}@{self.commit}" if self.kind == "github" else f"local:../shared/data/{self.source}"


SETS: tuple[CorpusSet, ...] = (
    CorpusSet(
        name="mlr511-arsl",
        kind="github", source="7abushahla/MLR511", commit="a82a0d33024eb2fd21b35b85f0f6549cc8bb3650",
        subdir="data/MLR511-ArabicSignLanguage-Dataset-MP4",
        # user01..user12 / G01..G10 (gesture) / R01..R10 (repetition); user01-02 also carry R??.mp4.backup
        path_regex=r"user\d\d/G\d\d/R0[1-3]\.mp4(\.backup)?",
        label_regex=r"/(G\d\d)/", group_regex=r"^(user\d\d)/",
        protocol={"protocol": "logo"},
        subset="repetitions R01-R03 of every signer x gesture (12 x 10 x 3 = 360 of the 1200 clips)",
        prefer_suffix=".backup", strip_suffix=".backup",
        group_meaning="signer (12 people); leave-one-signer-out is the set's own protocol (its SignBART code runs LOSO)",
        class_names=(("G01", "Hi"), ("G02", "Please"), ("G03", "What?"), ("G04", "Arabic"), ("G05", "University"),
                     ("G06", "You"), ("G07", "Eat"), ("G08", "Sleep"), ("G09", "Go"), ("G10", "UAE")),
        licence="unknown (no licence file in the repository; course project data of 'MLR511')",
        notes=("Arabic sign-language gestures, 960x540 15 fps phone video, 3-4 s, one signer per clip. For user01 "
               "and user02 the repository's R??.mp4 are horizontally flipped MPEG-4 re-encodes (to make these "
               "left-handed signers right-handed); their untouched H.264 originals are R??.mp4.backup, which "
               "are the ones used here. Dataset README (seba20-0/WLASL@f470c70 copy): Intel RealSense D415, "
               "~150 cm, LED-lit room, 12 users aged 20-24, 10 gestures x 10 repetitions, .bag -> png -> mp4 "
               "with ffmpeg; gestures from the Qatari Mada 'Jumla' sign dictionary."),
    ),
    CorpusSet(
        name="lsa64-sub",
        kind="github", source="wilbertArc/sign-language-LSA64-interpreter-with-CNN-LSTM",
        commit="ad0b44f28daf475ad1a434e0174b1da4e2ac1fe3",
        subdir="dataset",
        # LSA64 raw: SSS_PPP_RRR.mp4 = sign 001-064, signer 001-010, repetition 001-005
        path_regex=r"0(0[1-9]|10)_0(0[1-9]|10)_00[1-3]\.mp4",
        label_regex=r"^(\d{3})_", group_regex=r"^\d{3}_(\d{3})_",
        protocol={"protocol": "logo"},
        subset="signs 001-010, all 10 signers, repetitions 001-003 (10 x 10 x 3 = 300 of the 3200 clips)",
        group_meaning="signer (10 people); leave-one-signer-out is LSA64's signer-independent protocol",
        licence="LSA64 (Ronchetti et al., UNLP 2016), released by its authors for research (CC BY-NC-SA 4.0 as "
                "far as known); this repository re-hosts the raw clips without a licence file",
        notes=("Argentinian sign language, raw LSA64 clips (1920x1080, 60 fps as released), signers wear "
               "fluorescent gloves. NOT laid out in the session that pinned it: the snapshot is 1.9 GB, over the "
               "session fetch limit, so it needs the network (blob-less clone, only the 300 chosen blobs are "
               "downloaded, ~180 MB)."),
        verified=False,
    ),
    CorpusSet(
        name="ucf101-5",
        kind="github", source="2024ab05275-chocs/Student_2024ab05275_Video_Classification",
        commit="117e995fb9f170cfc5b11d658ed2949aa1823656",
        subdir="dataset",
        # class_<k>_<Class>/v_<Class>_g<GG>_c<CC>.avi: UCF101's own names (group GG = 25 source-video groups)
        path_regex=r"class_\d_[A-Za-z]+/v_[A-Za-z]+_g\d\d_c\d\d\.avi",
        label_regex=r"/v_([A-Za-z]+)_g\d\d_", group_regex=r"_(g\d\d)_c\d\d\.avi$",
        protocol={"protocol": "group_kfold", "folds": 5},
        subset=("all 400 clips of the repository's UCF101 subset (Diving, JumpRope, SkyDiving, Surfing, Swing; "
                "80 clips each, the repository's own random pick of 80 of each class's clips)"),
        group_meaning=("UCF101 group gGG (25 a class): the clips of one group are cut from one long YouTube "
                       "video (same actor, background, viewpoint); the group number is shared across classes, "
                       "so a fold holds out whole groups g01..g25 of every class, as UCF101's own splits do"),
        licence=("UCF101 (Soomro, Zamir & Shah, CRCV-TR-12-01, 2012), released for research; this course "
                 "repository re-hosts the clips without a licence file"),
        notes=("UCF101 YouTube clips, 320x240 25 fps, 2-20 s. A course project (BITS 'Student_2024ab05275') "
               "committed 80 clips of each of 5 classes, all 25 groups present for JumpRope/SkyDiving/Swing, 24 "
               "for Surfing, 22 for Diving. Clips of one group share a source video, so ungrouped splits leak; "
               "StratifiedGroupKFold over gGG keeps each source video in one fold."),
    ),
    CorpusSet(
        name="body-gesture",
        kind="github", source="RamonRL/BODY-GESTURE-DATASET", commit="29498cd1d4abbaf888ff6565f9dad0def7102398",
        subdir="dataset/BodyGestureDataset",
        # S<subject>/{videos,dynamic_videos}/<gesture>_<take>_<distance>m_{upper,full}.avi (+ .npy poses, not taken)
        path_regex=r"S\d+/(videos|dynamic_videos)/[a-z]+_\d+_\d+m_(upper|full)\.avi",
        label_regex=r"/([a-z]+)_\d+_\d+m_(?:upper|full)\.avi$", group_regex=r"^(S\d+)/",
        protocol={"protocol": "logo"},
        subset="all 450 clips (10 subjects x 15 gestures x 3 takes, one take each at 1 m upper body, 4 m and 6 m full body)",
        group_meaning=("subject (10 people, S1-S10); leave-one-subject-out. The three takes of a subject x "
                       "gesture are at 1 m (upper body), 4 m and 6 m (full body)"),
        licence="unknown (no licence file; a final-degree project's own recordings, RamonRL/BODY-GESTURE-DATASET)",
        notes=("Human-robot body gestures, 640x480 webcam .avi, a few seconds each: 8 static (attention, left, "
               "right, stop, yes, shrug, random, static) and 7 dynamic (greeting, continue, turnback, no, "
               "slowdown, back, come); 'random' and 'static' are the no-command classes. 30 clips a gesture "
               "(random 32, static 28). The repository also holds per-clip MediaPipe BlazePose .npy arrays, "
               "not laid out here. joanjaumeoliver/GESTURE-PROJECT is a later copy of the same files."),
    ),
    CorpusSet(
        name="ud810",
        kind="local", source="ud810-actions", commit=None, subdir="",
        path_regex=r"PS7A\dP\dT\d\.avi", label_regex=r"PS7(A\d)", group_regex=r"P(\d)",
        protocol={"protocol": "logo"},
        group_meaning="person (3); the course's classic protocol is leave-one-person-out",
        licence="course material of gkouros/intro-to-cv-ud810 (GitHub), no licence stated",
        notes="27 clips: 3 actions x 3 persons x 3 trials, 640x480 lab footage.",
    ),
    CorpusSet(
        name="arid-dark",
        kind="local", source="arid-dark", commit=None, subdir="",
        path_regex=r"[A-Za-z]+_\d+_\d+\.mp4", label_regex=r"^([A-Za-z]+)_", group_regex=r"^[A-Za-z]+_(\d+)_",
        protocol={"protocol": "group_kfold", "folds": 5},
        group_meaning=("UNVERIFIED: the first number of {Class}_{a}_{b}.mp4 taken as the group; ARID's names do "
                       "not document it (most clips have a=1, so this is a weak grouping)"),
        licence="ARID test split via jasminaaa20/Human-Action-Recognition-in-the-dark@c503e91, research use",
        notes="24 dark clips, 11 classes, 1-4 clips a class: far too small to choose anything on.",
    ),
)


# ---------------------------------------------------------------------------------------------------------
def default_root() -> Path:
    env = os.environ.get("VIDCAT_CORPUS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidcat" / "corpus"


def get_set(name: str) -> CorpusSet:
    for s in SETS:
        if s.name == name:
            return s
    raise KeyError(f"no corpus set {name!r}; sets: {', '.join(s.name for s in SETS)}")


def _git(gitdir: Path, *args, binary: bool = False, check: bool = True):
    r = subprocess.run(["git", "--git-dir", str(gitdir), *args], capture_output=True, check=False)
    if check and r.returncode:
        raise RuntimeError(f"git {' '.join(args[:2])}: {r.stderr.decode(errors='replace').strip()[:200]}")
    return r.stdout if binary else r.stdout.decode(errors="replace")


class Source:
    """Files of one set as (relative path -> bytes reader)."""

    def __init__(self, files: dict, reader, where: str, cleanup=None):
        self.files, self.read, self.where, self._cleanup = files, reader, where, cleanup

    def close(self):
        if self._cleanup:
            self._cleanup()


def _git_source(gitdir: Path, s: CorpusSet, where: str, cleanup=None) -> Source:
    if _git(gitdir, "cat-file", "-t", s.commit, check=False).strip() != "commit":
        raise FileNotFoundError(f"commit {s.commit[:12]} not in {where}")
    prefix = s.subdir.rstrip("/") + "/" if s.subdir else ""
    out = _git(gitdir, "ls-tree", "-r", "-l", "-z", s.commit, "--", prefix or ".")
    files = {}
    for rec in out.split("\0"):
        if not rec:
            continue
        meta, path = rec.split("\t", 1)
        mode, typ, sha, size = meta.split()
        if typ == "blob" and path.startswith(prefix):
            files[path[len(prefix):]] = (sha, int(size) if size.isdigit() else -1)

    def read(rel):
        return _git(gitdir, "cat-file", "blob", files[rel][0], binary=True)

    return Source(files, read, where, cleanup)


def open_source(s: CorpusSet, mirror_dir: Path | None, clone: bool = True, shared: Path = SHARED) -> Source:
    """The set's files from the local mirror, else a blob-less clone at the pinned commit, else the local
    folder; FileNotFoundError (one line) when none is there."""
    if s.kind == "local":
        d = shared / s.source / s.subdir if s.subdir else shared / s.source
        if not d.is_dir():
            raise FileNotFoundError(f"{d} not found")
        files = {p.relative_to(d).as_posix(): (None, p.stat().st_size) for p in sorted(d.rglob("*")) if p.is_file()}
        return Source(files, lambda rel: (d / rel).read_bytes(), str(d))
    owner, repo = s.source.split("/")
    if mirror_dir is not None:
        for cand in (mirror_dir / f"{owner}+{repo}" / "repo", mirror_dir / f"{owner}+{repo}"):
            if (cand / "objects").is_dir():
                return _git_source(cand, s, f"mirror {cand}")
    if not clone:
        raise FileNotFoundError(f"no mirror of {s.source} under {mirror_dir}")
    tmp = Path(tempfile.mkdtemp(prefix=f"vidcat-corpus-{repo}-"))
    url = os.environ.get("VIDCAT_CORPUS_GIT_URL", GIT_URL).format(repo=s.source, owner=owner, name=repo)
    r = subprocess.run(["git", "clone", "-q", "--bare", "--filter=blob:none", url, str(tmp / "repo")],
                       capture_output=True, timeout=1800)
    if r.returncode == 0:
        subprocess.run(["git", "--git-dir", str(tmp / "repo"), "fetch", "-q", "origin", s.commit],
                       capture_output=True, timeout=1800)
    if r.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        msg = r.stderr.decode(errors="replace").strip().splitlines()
        raise FileNotFoundError(f"no mirror under {mirror_dir} and git clone {url} failed: {msg[-1] if msg else ''}")
    return _git_source(tmp / "repo", s, f"clone of {url}", cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True))


def select(s: CorpusSet, paths) -> list[tuple[str, str, str, str]]:
    """(source rel path, output file name, label, group) for the set's files, sorted by output name."""
    rx, lrx, grx = re.compile(s.path_regex), re.compile(s.label_regex), re.compile(s.group_regex)
    chosen: dict[str, tuple] = {}
    for rel in sorted(paths):
        if not rx.fullmatch(rel):
            continue
        lm, gm = lrx.search(rel), grx.search(rel)
        if not lm or not gm:
            continue
        label, group = lm.group(1), gm.group(1)
        if s.classes is not None and label not in s.classes:
            continue
        name = rel
        if s.strip_suffix and name.endswith(s.strip_suffix):
            name = name[: -len(s.strip_suffix)]
        name = name.replace("/", "_")
        old = chosen.get(name)
        if old is not None and not (s.prefer_suffix and rel.endswith(s.prefer_suffix)):
            continue
        chosen[name] = (rel, name, label, group)
    return [chosen[k] for k in sorted(chosen)]


def _probe(path: Path) -> dict | str:
    """What vidcat's probe sees (codec, size, duration, frames), or the reason the file does not open."""
    try:
        from vidcat.io.video import probe
    except ImportError as e:                              # vidcat not importable: no probe, keep the file
        return {"codec": None, "note": f"not probed ({e})"}
    try:
        i = probe(path)
    except Exception as e:                                # noqa: BLE001 -- any failure drops the file
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    return {"codec": i.codec, "width": i.width, "height": i.height, "duration": round(i.duration, 3),
            "fps": round(i.fps, 3), "frames": i.num_frames}


def _summary(probes: list[dict]) -> dict:
    ok = [p for p in probes if p.get("codec")]
    if not ok:
        return {}
    codecs, sizes = {}, {}
    for p in ok:
        codecs[p["codec"]] = codecs.get(p["codec"], 0) + 1
        k = f"{p['width']}x{p['height']}"
        sizes[k] = sizes.get(k, 0) + 1
    d = [p["duration"] for p in ok]
    return {"codecs": codecs, "resolutions": sizes, "duration_s": [min(d), round(sum(d) / len(d), 3), max(d)],
            "fps": sorted({p["fps"] for p in ok})[:8]}


def layout(s: CorpusSet, src: Source, root: Path, probe: bool = True) -> dict:
    """Write ``root/<set>`` (videos, manifest.csv, protocol.json) atomically; returns the protocol dict."""
    items = select(s, src.files)
    if not items:
        raise FileNotFoundError(f"no file of {src.where} matches {s.path_regex!r}")
    root.mkdir(parents=True, exist_ok=True)
    final = root / s.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{s.name}.tmp-", dir=root))
    try:
        rows, probes, dropped, total = [], [], [], 0
        for rel, name, label, group in items:
            data = src.read(rel)
            if not data:
                dropped.append({"file": rel, "reason": "empty or absent blob"})
                continue
            out = tmp / "videos" / label / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            p = _probe(out) if probe else {"codec": None}
            if isinstance(p, str):
                out.unlink()
                dropped.append({"file": rel, "reason": p})
                continue
            total += len(data)
            probes.append(p)
            rows.append((f"videos/{label}/{name}", label, group))
        with open(tmp / "manifest.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "group"])
            w.writerows(rows)
        classes = sorted({r[1] for r in rows})
        groups = sorted({r[2] for r in rows})
        per_class = {c: sum(r[1] == c for r in rows) for c in classes}
        proto = dict(name=s.name, n_clips=len(rows), n_groups=len(groups), n_classes=len(classes),
                     classes=classes, groups=groups, clips_per_class=per_class, **s.metadata(),
                     source_read_from=src.where, bytes=total, decode=_summary(probes),
                     dropped=dropped, spec_hash=s.spec_hash())
        (tmp / "protocol.json").write_text(json.dumps(proto, indent=1) + "\n")
        old = None
        if final.exists():
            old = root / f".{s.name}.old-{os.getpid()}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return proto
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build(s: CorpusSet, root: Path, mirror_dir: Path | None = DEFAULT_MIRROR, force: bool = False,
          clone: bool = True, shared: Path = SHARED, probe: bool = True, echo=print) -> dict | None:
    """Lay out one set unless it is already there with the same spec; None (and one line) when its source
    is absent."""
    pj = root / s.name / "protocol.json"
    if pj.is_file() and not force:
        try:
            old = json.loads(pj.read_text())
        except ValueError:
            old = {}
        if old.get("spec_hash") == s.spec_hash():
            new = {**old, **s.metadata()}
            if new != old:                                # only the description changed: rewrite it in place
                tmp = pj.with_name(f".protocol.json.tmp-{os.getpid()}")
                tmp.write_text(json.dumps(new, indent=1) + "\n")
                tmp.replace(pj)
            echo(f"{s.name}: up to date ({old.get('n_clips')} clips, {old.get('n_groups')} groups) in {root / s.name}")
            return new
    try:
        src = open_source(s, mirror_dir, clone=clone, shared=shared)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        echo(f"{s.name}: skipped, source absent ({e})")
        return None
    try:
        proto = layout(s, src, root, probe=probe)
    except FileNotFoundError as e:
        echo(f"{s.name}: skipped ({e})")
        return None
    finally:
        src.close()
    dec = proto.get("decode") or {}
    echo(f"{s.name}: {proto['n_clips']} clips, {proto['n_classes']} classes, {proto['n_groups']} groups, "
         f"{proto['bytes'] / 1e6:.1f} MB, codecs {dec.get('codecs')}, sizes {dec.get('resolutions')}, "
         f"duration {dec.get('duration_s')} s, dropped {len(proto['dropped'])} -> {root / s.name}")
    return proto


def load_corpus(root=None) -> list[dict]:
    """The laid-out sets under ``root`` (default :func:`default_root`), in table order then any others:
    ``[{"name", "manifest" (Path), "protocol" (dict from protocol.json)}]``. Empty when nothing is there."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return []
    order = {s.name: i for i, s in enumerate(SETS)}
    out = []
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: (order.get(p.name, len(order)), p.name)):
        m, pj = d / "manifest.csv", d / "protocol.json"
        if m.is_file() and pj.is_file():
            out.append({"name": d.name, "manifest": m, "protocol": json.loads(pj.read_text())})
    return out


def read_manifest(manifest) -> list[tuple[Path, str, str]]:
    """``[(absolute video path, label, group)]`` of a manifest.csv."""
    manifest = Path(manifest)
    with open(manifest, newline="") as f:
        return [(manifest.parent / r["path"], r["label"], r["group"]) for r in csv.DictReader(f)]


def report(root) -> str:
    """A markdown table of the table's sets and what is laid out under ``root``."""
    have = {c["name"]: c["protocol"] for c in load_corpus(root)}
    lines = ["# Development corpus", "", f"Laid out by `python benchmarks/corpus.py` under `{root}` "
             "(`ROOT/<set>/videos/<label>/<file>`, `manifest.csv` path,label,group, `protocol.json`).", "",
             "| set | source | clips | classes | groups (meaning) | protocol | codecs | sizes | duration s (min/mean/max) | MB | subset |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in SETS:
        p = have.get(s.name)
        proto = s.protocol["protocol"] + (f" {s.protocol['folds']}-fold" if "folds" in s.protocol else "")
        if p is None:
            lines.append(f"| {s.name} | {s.origin} | not laid out{'' if s.verified else ' (needs the network)'} | | "
                         f"| {proto} | | | | | {s.subset} |")
            continue
        d = p.get("decode") or {}
        lines.append(f"| {s.name} | {s.origin} | {p['n_clips']} | {p['n_classes']} | {p['n_groups']} "
                     f"({s.group_meaning.split(';')[0]}) | {proto} | {d.get('codecs')} | {d.get('resolutions')} | "
                     f"{d.get('duration_s')} | {p['bytes'] / 1e6:.1f} | {s.subset} |")
    lines += ["", "Notes:", ""] + [f"* **{s.name}**: {s.notes} Licence: {s.licence}." for s in SETS]
    dropped = {n: p["dropped"] for n, p in have.items() if p.get("dropped")}
    lines += ["", f"Unreadable files dropped: {dropped or 'none'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="corpus root (default $VIDCAT_CORPUS or ~/.cache/vidcat/corpus)")
    ap.add_argument("--mirror-dir", type=Path, default=DEFAULT_MIRROR, help="bare mirrors OWNER+NAME/repo (default $VIDCAT_MIRROR; none: clone)")
    ap.add_argument("--only", action="append", default=None, help="build only this set (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the table and what is laid out, build nothing")
    ap.add_argument("--force", action="store_true", help="rebuild sets already laid out")
    ap.add_argument("--no-clone", action="store_true", help="never git clone (mirror or local only)")
    ap.add_argument("--no-probe", action="store_true", help="do not probe the files with vidcat")
    ap.add_argument("--report", type=Path, nargs="?", const=ROOT / "benchmarks" / "results" / "corpus.md",
                    help="also write a markdown summary (default benchmarks/results/corpus.md)")
    a = ap.parse_args(argv)
    root = a.root or default_root()
    if a.list:
        have = {c["name"]: c["protocol"] for c in load_corpus(root)}
        for s in SETS:
            p = have.get(s.name)
            state = f"{p['n_clips']} clips / {p['n_groups']} groups laid out" if p else "not laid out"
            if not s.verified:
                state += " (never laid out by its author: needs the network)"
            print(f"{s.name:12s} {s.origin}\n{'':12s} files {s.subdir + '/' if s.subdir else ''}{s.path_regex}  "
                  f"label {s.label_regex}  group {s.group_regex}  {json.dumps(s.protocol)}\n{'':12s} subset: "
                  f"{s.subset}; {state}")
        print(f"root: {root}")
        return 0
    names = a.only or [s.name for s in SETS]
    try:
        todo = [get_set(n) for n in names]
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    built = 0
    for s in todo:
        built += build(s, root, a.mirror_dir, force=a.force, clone=not a.no_clone, probe=not a.no_probe) is not None
    print(f"{built}/{len(todo)} sets under {root}")
    if a.report:
        a.report.parent.mkdir(parents=True, exist_ok=True)
        a.report.write_text(report(root))
        print(f"wrote {a.report}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())


def stream_names(text: str) -> list[str] | None:
    """``--streams a,b`` -> ``["a", "b"]``; empty -> None (the planner's streams)."""
    return [s for s in text.split(",") if s] or None


def corpus_arguments(ap, streams: str | None = None):
    """The options every corpus benchmark takes: ``--root``, ``--only``, ``--streams`` (parsed by
    :func:`stream_names`), ``--cache``."""
    ap.add_argument("--root", default=None, help="corpus root (default: $VIDCAT_CORPUS or ~/.cache/vidcat/corpus)")
    ap.add_argument("--only", nargs="*", default=None, help="set names")
    ap.add_argument("--streams", default=streams, type=stream_names,
                    help="comma-separated streams to force (default: the planner's)")
    ap.add_argument("--cache", default=None, help="feature store root (default: vidcat's cache root)")
    return ap

