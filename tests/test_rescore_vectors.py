"""Re-scoring reads candidates' vectors back from the loaded FAISS index (flat and IVF-Flat), bit for bit the
catalog's, and from the catalog exactly where the index cannot answer: vectors committed since publishing,
and a space whose vectors a new bridge replaced under the same ids (its file still holds the old ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffgap_search.search import scoring as search_scoring
from diffgap_search.config import FaissConfig, SearchConfig, SearchMode
from diffgap_search.search import Searcher, SearchTerm
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.vector_index import REBUILD_KEY, publish

D = 16
IVF = FaissConfig(flat_max=100, ivf_lists_per_sqrt=1.0, ivf_train_per_list=39, nprobe=4)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _add_files(cat: Catalog, first: int, count: int, rng: np.random.Generator) -> None:
    """``count`` files of 2 windows each, with an ``audio`` and an ``audio_as_text`` vector per window."""
    with cat.batch():
        for f in range(first, first + count):
            vecs = _unit(rng.normal(size=(2, 2, D)))
            cat.put_file(path_key=f"/lib/{f:04d}.wav".encode(), path=f"/lib/{f:04d}.wav", kind="audio", size=1,
                         mtime_ns=f, sha256=f"{f:064x}", duration_s=20.0,
                         segments=[SegmentInput(10.0 * s, 10.0 * s + 10.0,
                                                {"audio": vecs[s, 0], "audio_as_text": vecs[s, 1]}) for s in range(2)])


def _catalog(index_dir: Path, n_files: int, cfg: FaissConfig) -> None:
    rng = np.random.default_rng(3)
    with Catalog.open(index_dir, create=True) as cat:
        cat.set_meta({"encoder": {"model": "synthetic", "fingerprint": "0" * 64, "dim": D, "sample_rate": 48_000,
                                  "modalities": ["audio", "text"]},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        _add_files(cat, 0, n_files, rng)
        for space in ("audio", "audio_as_text"):
            publish(index_dir, cat, space, D, cfg)


def _exact(cat: Catalog, terms: list[SearchTerm], ids: list[int]) -> dict[int, float]:
    """The fused score by its definition, every vector read from the catalog."""
    out = {}
    for sid in ids:
        num = den = 0.0
        for t in terms:
            vec = cat.vectors_of(t.space, [sid]).get(sid)
            if vec is not None:
                num += t.weight * float((t.queries @ vec).max())
                den += t.weight
        if den:
            out[sid] = num / den
    return out


@pytest.mark.parametrize(("cfg", "kind"), [(FaissConfig(), "flat"), (IVF, "ivf16")], ids=["flat", "ivf"])
def test_vectors_read_back_from_the_index_are_the_catalogs_bit_for_bit(tmp_path: Path, cfg: FaissConfig,
                                                                     kind: str) -> None:
    _catalog(tmp_path, 150, cfg)  # 300 windows
    with Searcher(tmp_path, load_encoder=None, faiss_cfg=cfg) as s:  # type: ignore[arg-type]
        index = s.index_for("audio")
        assert (index.kind, index.rebuilt, index.ntotal) == (kind, False, 300)
        ids = np.array([300, 1, 7, 299, 10_000, 0, 150], np.int64)  # 10 000 and 0 are no segment's id
        held, vecs = index.vectors_of(ids)
        assert held.tolist() == [True, True, True, True, False, False, True]
        stored = s.catalog.vectors_of("audio", ids[held].tolist())
        assert vecs.dtype == np.float32 and vecs.shape == (5, D)
        for sid, vec in zip(ids[held].tolist(), vecs):
            assert np.array_equal(vec, stored[sid]), sid


def test_vectors_committed_since_publishing_come_from_the_catalog(tmp_path: Path) -> None:
    _catalog(tmp_path, 20, FaissConfig())  # 40 windows published
    with Catalog.open(tmp_path) as cat:
        _add_files(cat, 20, 5, np.random.default_rng(9))  # 10 more, unpublished: ids 41..50
    query = _unit(np.random.default_rng(1).normal(size=(1, D)))
    terms = [SearchTerm("audio", query, 0.3), SearchTerm("audio_as_text", query, 0.7)]
    with Searcher(tmp_path, load_encoder=None) as s:  # type: ignore[arg-type]
        assert s.index_for("audio").max_id == 40
        rows, vecs = search_scoring.term_vectors(s, "audio", np.arange(1, 51))
        assert sorted(rows.tolist()) == list(range(50)) and vecs.shape == (50, D)
        scores = search_scoring.fused(s, terms, [{i: 0.0 for i in range(1, 51)}])
        expected = _exact(s.catalog, terms, list(range(1, 51)))
        assert scores.keys() == expected.keys()
        assert max(abs(scores[i] - expected[i]) for i in scores) < 1e-6
        hits, _, _ = s.search_terms(terms, SearchConfig(mode=SearchMode.SEMANTIC, top_k=50, group_by_file=False))
    best = max(expected, key=expected.__getitem__)
    assert [h.segment_id for h in hits][:1] == [best] and len(hits) == 50


def test_a_space_awaiting_a_rebuild_is_read_from_the_catalog_not_its_stale_file(tmp_path: Path) -> None:
    _catalog(tmp_path, 20, FaissConfig())
    query = _unit(np.random.default_rng(2).normal(size=(1, D)))
    with Catalog.open(tmp_path) as cat:  # a new bridge's vectors, as commit_bridge leaves them before publish
        ids = np.arange(1, 41)
        replaced = _unit(np.random.default_rng(5).normal(size=(40, D)))
        with cat.batch():
            cat.put_vectors("audio_as_text", ids, replaced)
            cat.set_meta({REBUILD_KEY: ["audio_as_text"]})
    with Searcher(tmp_path, load_encoder=None) as s:  # type: ignore[arg-type]
        held, stale = s.index_for("audio_as_text").vectors_of(ids)
        assert held.all() and not np.allclose(stale, replaced)  # the file still holds the old bridge's vectors
        rows, vecs = search_scoring.term_vectors(s, "audio_as_text", ids)
        assert np.array_equal(vecs[np.argsort(rows)], replaced)
        terms = [SearchTerm("audio", query, 0.5), SearchTerm("audio_as_text", query, 0.5)]
        scores = search_scoring.fused(s, terms, [{int(i): 0.0 for i in ids}])
        expected = _exact(s.catalog, terms, ids.tolist())
    assert max(abs(scores[i] - expected[i]) for i in expected) < 1e-6


def test_a_deleted_file_read_back_from_the_stale_index_is_never_a_hit(tmp_path: Path) -> None:
    _catalog(tmp_path, 10, FaissConfig())
    with Catalog.open(tmp_path) as cat:
        target = cat.file_by_key(b"/lib/0003.wav")
        assert target is not None
        vec = cat.vectors_of("audio", [7])[7]  # file 3's first window: the query's exact match
        with cat.batch():
            cat.delete_files([target.id])
    terms = [SearchTerm("audio", vec[None, :], 0.5), SearchTerm("audio_as_text", vec[None, :], 0.5)]
    with Searcher(tmp_path, load_encoder=None) as s:  # type: ignore[arg-type]
        assert s.index_for("audio").vectors_of(np.array([7]))[0].tolist() == [True]  # not yet republished
        hits, _, _ = s.search_terms(terms, SearchConfig(mode=SearchMode.SEMANTIC, top_k=20))
    assert len(hits) == 9 and "/lib/0003.wav" not in {h.path for h in hits}
