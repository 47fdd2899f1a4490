"""The methods of the real-gap benchmark, each a ``(Q, F) float32`` score matrix of text queries against
held-out files (higher is better), and the keyword baselines.

A file's audio score is the maximum over its windows (as ``dgsearch query`` ranks files). Methods:

- ``random``: seeded random scores (chance, computed by ``run.py``);
- ``raw``: WordLlama's query against aisfx's windows (unrelated spaces: chance, the floor);
- ``ridge``, ``procrustes``: the linear maps text -> audio fitted on the training pairs (the bridge's
  training record, ``gap/record.py``);
- ``diffgap``: the bridged query against the windows (DiffGAP alone);
- ``diffgap_served``: what ``dgsearch query`` serves here: the bridge's tuned weights of the bridged-query
  term and the bridged-items term (``audio_as_text``), the raw term dropped (``search/terms.py``: words of
  a text model of their own share no space with the audio);
- ``keyword``: BM25 over the training files' texts (the descriptions and category labels a library
  already has), each held-out file scored by its audio's cosine to the matched training files, weighted by
  their BM25 scores (a user's keyword search, then "more like these"); no match: a seeded random order;
- ``hybrid``: reciprocal-rank fusion (k = 60) of ``diffgap_served`` and ``keyword``;
- ``names_keyword`` (reference, not a held-out method): BM25 over the held-out files' own file names, what
  ``--mode keyword`` finds in a new library with descriptive names (for qabcs-data the description *is*
  the name).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from diffgap_search.gap.bridge import Bridge
from diffgap_search.gap.fusion import FusionConfig
from diffgap_search.store.keywords import words

RRF_K = 60
KEYWORD_DEPTH = 10


def tokens(text: str) -> list[str]:
    """The words of ``text`` as the keyword index splits them, lowercased."""
    return [w.lower() for w in words(text)]


class BM25:
    """Okapi BM25 (k1 = 1.2, b = 0.75) over documents given as texts."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.docs = [Counter(tokens(d)) for d in docs]
        self.lengths = np.array([sum(c.values()) for c in self.docs], np.float64)
        self.avg = float(self.lengths.mean()) if len(self.docs) else 0.0
        df = Counter(w for c in self.docs for w in c)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - k + 0.5) / (k + 0.5)) for w, k in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> np.ndarray:
        """``(N,) float64`` BM25 of every document for ``query``."""
        out = np.zeros(len(self.docs))
        for w in set(tokens(query)):
            idf = self.idf.get(w)
            if idf is None:
                continue
            tf = np.array([c.get(w, 0) for c in self.docs], np.float64)
            out += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * self.lengths / max(self.avg, 1e-9)))
        return out


def file_max(scores: np.ndarray, owner: np.ndarray, n_files: int) -> np.ndarray:
    """``(Q, V)`` window scores -> ``(Q, F)``: each file's best window (``owner (V,)`` file index)."""
    out = np.full((scores.shape[0], n_files), -np.inf, np.float32)
    np.maximum.at(out.T, owner, scores.T)
    return out


def served_weights(bridge: Bridge) -> FusionConfig:
    """The bridge's text -> audio fusion weights with the raw term dropped, renormalised (as served)."""
    return without_raw(bridge.fusion_for("text", "audio"))


def without_raw(f: FusionConfig) -> FusionConfig:
    """Tuned weights as search serves them when the words share no space with the audio: the raw term dropped,
    the other two renormalised (``search/terms.py``)."""
    total = f.w_query_bridged + f.w_item_bridged
    if total <= 0:
        return FusionConfig(0.0, 1.0, 0.0)  # the raw term alone was tuned: the bridged query serves
    return FusionConfig(0.0, f.w_query_bridged / total, f.w_item_bridged / total)


def semantic_scores(q: np.ndarray, windows: np.ndarray, owner: np.ndarray, n_files: int, bridge: Bridge) -> dict[str, np.ndarray]:
    """Method -> ``(Q, F)`` for the embedding methods; ``q (Q, D)`` WordLlama, ``windows (V, D)`` aisfx."""
    base = bridge.record.baselines["audio-text"]
    bq = bridge.apply(q, "text", "audio")
    items_as_text = bridge.apply(windows, "audio", "text", role="items")
    w = served_weights(bridge)
    vector = {
        "raw": q @ windows.T,
        "ridge": base.linear("ridge", "text", "audio")(q) @ windows.T,
        "procrustes": base.linear("procrustes", "text", "audio")(q) @ windows.T,
        "diffgap": bq @ windows.T,
        "diffgap_served": w.w_query_bridged * (bq @ windows.T) + w.w_item_bridged * (q @ items_as_text.T),
    }
    return {m: file_max(s, owner, n_files) for m, s in vector.items()}


def keyword_scores(queries: Sequence[str], train_texts: Sequence[str], train_owner: np.ndarray,
                   train_audio: np.ndarray, test_audio: np.ndarray, seed: int) -> np.ndarray:
    """``(Q, F)``: BM25 over training texts (``train_owner``: the training file of each text), expanded to
    held-out files by audio cosine (file vectors ``(F_train, D)``, ``(F, D)``, unit rows)."""
    bm25 = BM25(train_texts)
    rng = np.random.default_rng(seed)
    out = np.zeros((len(queries), len(test_audio)), np.float32)
    sims = test_audio @ train_audio.T  # (F, F_train)
    for i, query in enumerate(queries):
        per_file: dict[int, float] = {}
        for j, s in enumerate(bm25.scores(query)):
            if s > 0:
                per_file[int(train_owner[j])] = max(per_file.get(int(train_owner[j]), 0.0), float(s))
        top = sorted(per_file.items(), key=lambda kv: -kv[1])[:KEYWORD_DEPTH]
        if not top:
            out[i] = rng.random(len(test_audio)) * 1e-6  # nothing matched: no order to give
            continue
        idx = np.array([k for k, _ in top])
        wts = np.array([v for _, v in top], np.float32)
        out[i] = (sims[:, idx] * wts).sum(1) / wts.sum()
    return out


def names_keyword_scores(queries: Sequence[str], test_names: Sequence[str], seed: int) -> np.ndarray:
    """``(Q, F)``: BM25 over the held-out files' own names (ties and misses broken by a seeded random order)."""
    bm25 = BM25(test_names)
    rng = np.random.default_rng(seed)
    return np.stack([bm25.scores(q) + rng.random(len(test_names)) * 1e-6 for q in queries]).astype(np.float32)


def rrf(a: np.ndarray, b: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """Reciprocal-rank fusion of two ``(Q, F)`` score matrices (ranks from 1)."""
    def ranks(s: np.ndarray) -> np.ndarray:
        order = np.argsort(-s, axis=1, kind="stable")
        r = np.empty_like(order)
        np.put_along_axis(r, order, np.arange(1, s.shape[1] + 1)[None, :].repeat(len(s), 0), axis=1)
        return r
    return (1.0 / (k + ranks(a)) + 1.0 / (k + ranks(b))).astype(np.float32)
