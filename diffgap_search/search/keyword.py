"""Keyword and hybrid search: file names, folders, captions and tags (SQLite FTS5, BM25F) beside the
embeddings, fused by reciprocal rank.

``--mode keyword`` ranks files by BM25F over their keyword rows (``store/keywords.py``): it opens the
catalog only, loads no model and imports neither torch nor FAISS. A hit is the whole file (its first
window's segment id, from 0 s to its duration); its score is ``-bm25`` (higher is better).

``--mode hybrid`` (the CLI's default) fuses two rankings of files with **reciprocal-rank fusion** (Cormack, Clarke
& Büttcher, SIGIR 2009), each keyword term weighted by the share of the query's words the file holds: ``score(f) =
1 / (K + rank_sem(f)) + cov(f) / (K + rank_kw(f))`` (ranks from 1, ``K`` = :data:`RRF_K` = 60; a term is 0 when its
ranking does not hold ``f``). ``cov(f)`` is the fraction of the query's distinct words in ``f``'s keyword row
(``store/keywords.coverage``): plain RRF counts a file that holds one word of "wood door slam" (a comment "a knock
at the door") as much as the file named and tagged with all three, and, the embedding's rank deciding between them,
often puts it first; weighted, the one-word match gives a third of the term. The rankings are the embedding
search's files (each scored by its best window, with the bridge when there is one) and the keyword search's files,
each cut at :data:`HYBRID_DEPTH` files or ``top_k`` when larger, and each already filtered. Equal fused scores put
a file the keyword ranking holds first, then go by path, then start: a tie is a file found by its sound alone
against one holding every word of the query at the same rank, and the words were the better evidence on real
described sounds (``benchmarks/real_gap/hybrid.py``: R@1 93.3 -> 95.2 on names, 55.2 -> 59.0 on sentences, where
path order was a coin toss and the embedding first 84.5 and 53.3). Ranks count contents (``search/copies.py``):
copies share their content's rank in the embedding ranking, and a file holding the words itself has its content's
rank in the keyword ranking, so the copy named for the words is the one shown. A fused hit shows the embedding
search's best window when that ranking holds the file, else the whole file. ``--min-score`` applies to the
embedding ranking's cosines before fusion.

Hybrid needs words and a model that embeds them: an audio or video query and ``--segments`` (windows, not
files) get the semantic search alone; words on an index built with an audio-only model (aisfx) get the
keyword search alone (``--mode semantic`` refuses them there with exit 13); the result says so (``mode``
and ``note``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from diffgap_search.config import SearchConfig
from diffgap_search.errors import UsageError
from diffgap_search.search.copies import group_hits, shown
from diffgap_search.search.file_filter import Allowed, FileFilter
from diffgap_search.search.filters import allowed_file_ids
from diffgap_search.search.types import EMPTY_QUERY, Hit, SearchResult
from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.filters import first_segments
from diffgap_search.store.labels import labels_of
from diffgap_search.store.tags import tags_of

RRF_K = 60
HYBRID_DEPTH = 50
_FROM_CFG: Any = object()


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K,
        weights: Sequence[Mapping[int, float] | None] | None = None) -> dict[int, float]:
    """Reciprocal-rank fusion: item -> ``Σ w_i(item) / (k + rank_i)`` over the rankings holding it (ranks
    from 1); ``weights[i]`` maps ranking ``i``'s items to their weight (None: every weight 1)."""
    fused: dict[int, float] = {}
    for i, ranking in enumerate(rankings):
        w = weights[i] if weights is not None else None
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + (1.0 if w is None else w.get(item, 0.0)) / (k + rank)
    return fused


def keyword_hits(catalog: Catalog, terms: Sequence[str], *, limit: int, allowed: Allowed) -> list[Hit]:
    """The files matching the query's ``terms`` (``store/keywords.informative_tokens``), best BM25F first (ties by
    file id), at most ``limit``."""
    if isinstance(allowed, FileFilter):  # asked about the best matches first
        ranked = keywords.ranked_files(catalog, terms, limit=limit, passes=allowed.mask)
    else:
        ranked = keywords.ranked_files(catalog, terms, limit=limit, allowed=allowed)
    ids = [fid for fid, _ in ranked]
    rows = first_segments(catalog, ids)
    captions = catalog.captions_of(ids)
    tags = tags_of(catalog, ids)
    labels = labels_of(catalog, ids)
    hits: list[Hit] = []
    for rank, (fid, bm25) in enumerate(ranked, 1):
        if fid not in rows:
            continue
        sid, path, kind, duration, key = rows[fid]
        caps = captions.get(fid)
        hits.append(Hit(path, kind, 0.0, duration, -bm25, caps[0] if caps else None, sid, fid,
                        tags=tags.get(fid, {}), labels=labels.get(fid, []), ranks={"keyword": rank}, path_key=key))
    return hits


def keyword_groups(catalog: Catalog, terms: Sequence[str], n_groups: int, *, allowed: Allowed,
                   all_copies: bool = False) -> list[list[Hit]]:
    """The first ``n_groups`` groups of copies (``search/copies.py``; one hit each with ``all_copies``) of
    the files matching the query's ``terms``, best BM25F first: files are read until that many groups are found
    or none is left."""
    limit = n_groups
    while True:
        hits = keyword_hits(catalog, terms, limit=limit, allowed=allowed)
        groups = group_hits(catalog, hits, by_window=False, all_copies=all_copies)
        if len(groups) >= n_groups or len(hits) < limit:
            return groups[:n_groups]
        limit *= 4


def search_keyword(catalog: Catalog, text: str | None, cfg: SearchConfig,
                   allowed: Allowed = _FROM_CFG) -> SearchResult:
    """``--mode keyword``: files ranked by BM25F over names, folders, captions and tags; no model; one hit
    per content unless ``cfg.all_copies`` (its rank counts contents).

    ``allowed``: the files the filters let through, when the caller has decided them already (None: all);
    by default they are decided here from ``cfg``."""
    if text is None:
        raise UsageError("--mode keyword searches words: give TEXT, not --audio or --video")
    if not text.strip():
        raise UsageError(EMPTY_QUERY)
    t0 = time.perf_counter()
    if allowed is _FROM_CFG:
        allowed = allowed_file_ids(catalog, cfg, may_ask=True)
    t1 = time.perf_counter()
    terms = keywords.informative_tokens(catalog, text)
    groups = keyword_groups(catalog, terms, cfg.top_k, allowed=allowed, all_copies=cfg.all_copies)
    hits = [replace(h, ranks={"keyword": rank})
            for rank, h in enumerate(shown(catalog, groups, all_copies=cfg.all_copies, allowed=allowed), 1)]
    t2 = time.perf_counter()
    return SearchResult("text", hits, {"filters": (t1 - t0) * 1000, "keyword": (t2 - t1) * 1000,
                                       "total": (t2 - t0) * 1000}, mode="keyword")


def fuse(semantic: Sequence[Hit], keyword: Sequence[Hit], top_k: int, k: int = RRF_K,
         coverage: Mapping[int, float] | None = None) -> list[Hit]:
    """Hits of both rankings (one per file) fused by reciprocal rank, best first, ties to the keyword ranking's
    files, then by path, then start;
    ``coverage`` (file id -> share of the query's words it holds) weights the keyword terms (None: 1)."""
    return fuse_groups([[h] for h in semantic], [[h] for h in keyword], k, coverage)[:top_k]


def fuse_groups(semantic: Sequence[Sequence[Hit]], keyword: Sequence[Sequence[Hit]], k: int = RRF_K,
                coverage: Mapping[int, float] | None = None) -> list[Hit]:
    """Every file of both rankings fused by reciprocal rank, best first; equal scores put a file the keyword
    ranking holds first, then go by path, then start (module docstring). A ranking
    is a list of groups (copies of one content, or single files) and its ranks count groups: every file of
    its ``r``-th group has rank ``r`` there. A file shows its semantic hit when that ranking holds it."""
    by_file: dict[int, Hit] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, groups in (("semantic", semantic), ("keyword", keyword)):
        for rank, members in enumerate(groups, 1):
            for hit in members:
                by_file.setdefault(hit.file_id, hit)
                ranks.setdefault(hit.file_id, {}).setdefault(name, rank)
    scores: dict[int, float] = {}
    for fid, held in ranks.items():
        score = 0.0
        for name, rank in held.items():
            score += (1.0 if name == "semantic" or coverage is None else coverage.get(fid, 0.0)) / (k + rank)
        scores[fid] = score
    order = sorted(by_file, key=lambda fid: (-scores[fid], "keyword" not in ranks[fid], by_file[fid].path,
                                             by_file[fid].start_s))
    return [replace(by_file[fid], score=scores[fid], ranks=ranks[fid]) for fid in order]


def fuse_by_coverage(catalog: Catalog, terms: Sequence[str], semantic: Sequence[Sequence[Hit]],
                     words: Sequence[Sequence[Hit]], cfg: SearchConfig) -> list[list[Hit]]:
    """The first ``cfg.top_k`` groups of copies of :func:`fuse_groups`, each keyword term weighted by the
    share of the query's ``terms`` its file holds (``store/keywords.coverage``; module docstring)."""
    cover = keywords.coverage(catalog, terms, [h.file_id for g in words for h in g])
    hits = fuse_groups(semantic, words, coverage=cover)
    return group_hits(catalog, hits, by_window=False, all_copies=cfg.all_copies)[: cfg.top_k]


def hybrid_depth(cfg: SearchConfig) -> int:
    """How many files of each ranking a hybrid search fuses."""
    return max(HYBRID_DEPTH, cfg.top_k)


def semantic_only_reason(kind: str, cfg: SearchConfig) -> str | None:
    """Why a hybrid query gets the embedding search alone, or None when it is fused."""
    if kind != "text":
        return f"{'an' if kind == 'audio' else 'a'} {kind} query has no words: semantic search only"
    if not cfg.group_by_file:
        return "--segments lists windows: semantic search only"
    return None
