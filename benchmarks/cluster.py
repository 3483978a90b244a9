"""Does ``vidcat cluster`` find the classes of a real set without its labels? Adjusted Rand index per set.

    python benchmarks/cluster.py [--root DIR] [--only SET ...] [--streams appearance,motion]

For every corpus set, every clip's centre-view features (the store's, as ``vidcat cluster`` extracts them) are
clustered four ways and scored by ARI against the true labels (and the number of clusters found):

* ``vidcat cluster``: each stream's clip vectors L2-normalised, centred and scaled to the same mean norm
  (:func:`vidcat.featurefit.explore.stream_block`), k-means with k by the best mean silhouette
  (:func:`vidcat.featurefit.clusters.cluster_clips`, standardise off) -- and the same given the true k;
* the baseline: k-means on the plain mean-pooled appearance features (standardised), given the true k -- and
  with k by the same silhouette rule.

Writes ``benchmarks/results/cluster.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import corpus_arguments, default_root, load_corpus  # noqa: E402
from real_data import features  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from vidcat.featurefit.clusters import cluster_clips  # noqa: E402
from vidcat.featurefit.explore import stream_block  # noqa: E402

STREAMS = ("appearance", "motion")


def clip_vectors(inputs: dict, name: str) -> np.ndarray:
    """A stream's centre-view clip vectors as ``vidcat cluster`` uses them (appearance: the time-averaged
    global features, the first third of its trend-pooled ones)."""
    inp = inputs[name]
    x = inp.x[:, 0]
    return x[:, : inp.per_frame[1] // 3] if inp.per_frame else x


def score_set(entry, streams, cache, seed: int = 0) -> dict:
    inputs, _, y, _, nc, _ = features(entry, streams, cache)
    names = [n for n in STREAMS if n in inputs]
    ours = np.concatenate([stream_block(clip_vectors(inputs, n)) for n in names], 1)
    plain = StandardScaler().fit_transform(clip_vectors(inputs, "appearance"))
    k_max = max(12, nc + 2)
    found = cluster_clips(ours, k_max=min(k_max, len(y) - 1), seed=seed, standardise=False)
    base_found = cluster_clips(clip_vectors(inputs, "appearance"), k_max=min(k_max, len(y) - 1), seed=seed)
    given = KMeans(nc, n_init=10, random_state=seed).fit_predict(ours)
    base_given = KMeans(nc, n_init=10, random_state=seed).fit_predict(plain)
    row = {"set": entry["name"], "clips": int(len(y)), "classes": nc, "streams": names,
           "ari_cluster": adjusted_rand_score(y, found.labels), "k_cluster": found.k,
           "ari_cluster_true_k": adjusted_rand_score(y, given),
           "ari_baseline_true_k": adjusted_rand_score(y, base_given),
           "ari_baseline_silhouette_k": adjusted_rand_score(y, base_found.labels), "k_baseline": base_found.k}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    corpus_arguments(ap, ",".join(STREAMS))       # vidcat cluster's streams by default
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cluster"))
    a = ap.parse_args(argv)
    streams = a.streams
    rows = [score_set(e, streams, a.cache) for e in load_corpus(a.root or default_root())
            if not a.only or e["name"] in a.only]
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1))
    print("| set | clips | classes | ARI vidcat cluster (k found) | ARI same, true k | ARI baseline k-means, true k | "
          "ARI baseline, silhouette k (k) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['clips']} | {r['classes']} | {r['ari_cluster']:.3f} ({r['k_cluster']}) | "
              f"{r['ari_cluster_true_k']:.3f} | {r['ari_baseline_true_k']:.3f} | {r['ari_baseline_silhouette_k']:.3f} "
              f"({r['k_baseline']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
