"""Equal sounds score equally, bit for bit, and tie by path: identical vectors anywhere in a flat or IVF index,
copies whose vectors differ by a few ulps (byte-identical files embedded in different batches), and more tied
windows than FAISS's first top-k holds. A synthetic catalog at D = 512 (CLAP's width): real SQLite, real FAISS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import FaissConfig, SearchConfig, SearchMode
from diffgap_search.search import Searcher, SearchTerm
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.vector_index import publish

D = 512
IVF = FaissConfig(flat_max=100, ivf_lists_per_sqrt=1.0, ivf_train_per_list=39, nprobe=16)
CONFIGS = [(FaissConfig(), "flat"), (IVF, "ivf16")]
SPACES = ("audio", "audio_as_text")


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def build(index_dir: Path, cfg: FaissConfig, files: list[tuple[str, str, np.ndarray]]) -> None:
    """One file per ``(path, sha256, vectors (2, D): audio, audio_as_text)``, one window each, in list order
    (file and segment ids follow it), both spaces published with ``cfg``."""
    with Catalog.open(index_dir, create=True) as cat:
        cat.set_meta({"encoder": {"model": "synthetic", "fingerprint": "0" * 64, "dim": D, "sample_rate": 48_000,
                                  "modalities": ["audio", "text"]},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        with cat.batch():
            for i, (path, sha, vecs) in enumerate(files):
                cat.put_file(path_key=path.encode(), path=path, kind="audio", size=1, mtime_ns=i, sha256=sha,
                             duration_s=10.0, segments=[SegmentInput(0.0, 10.0, dict(zip(SPACES, vecs)))])
        for space in SPACES:
            publish(index_dir, cat, space, D, cfg)


def planted(n_files: int, at: dict[int, str], vecs: np.ndarray, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """``n_files`` random files; file ``i`` in ``at`` holds ``vecs`` (its path ``at[i]``), the others random
    vectors, paths ``/lib/r{i}.wav``; every sha256 distinct unless ``at``'s paths say ``copy``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_files):
        if i in at:
            sha = "c" * 64 if "copy" in at[i] else f"{i:064x}"
            out.append((at[i], sha, vecs))
        else:
            out.append((f"/lib/r{i:04d}.wav", f"{i:064x}", unit(rng.normal(size=(2, D)))))
    return out


def semantic(**kw: object) -> SearchConfig:
    return SearchConfig(mode=SearchMode.SEMANTIC, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cfg", "kind"), CONFIGS, ids=["flat", "ivf"])
def test_identical_vectors_anywhere_in_the_index_score_alike_and_tie_by_path(tmp_path: Path, cfg: FaissConfig,
                                                                              kind: str) -> None:
    rng = np.random.default_rng(11)
    vecs = unit(rng.normal(size=(2, D)))
    # 13 files holding the same vectors at positions spread over the index, their paths in no id order
    positions = [0, 1, 2, 3, 5, 8, 13, 34, 55, 89, 144, 233, 299]
    at = {p: f"/lib/same/{(p * 37) % 101:03d}.wav" for p in positions}
    build(tmp_path, cfg, planted(300, at, vecs, seed=4))
    expected = sorted(at.values())
    near = unit(vecs[0] + 0.5 * unit(rng.normal(size=D)))[None, :]  # a query near them (cosine 0.9), not on them
    with Searcher(tmp_path, load_encoder=None, faiss_cfg=cfg) as s:  # type: ignore[arg-type]
        assert s.index_for("audio").kind == kind
        for query in (vecs[:1], near, np.concatenate([near, unit(rng.normal(size=(3, D)))])):
            for terms in ([SearchTerm("audio", query, 1.0)],
                          [SearchTerm("audio", query, 0.3), SearchTerm("audio_as_text", query, 0.7)]):
                hits, _, _ = s.search_terms(terms, semantic(top_k=13, group_by_file=False))
                assert [h.path for h in hits] == expected
                assert len({h.score for h in hits}) == 1, sorted({h.score for h in hits})
                assert [h.copies for h in hits] == [[]] * 13  # distinct hashes: 13 sounds, not copies


@pytest.mark.parametrize(("cfg", "kind"), CONFIGS, ids=["flat", "ivf"])
def test_copies_a_few_ulps_apart_score_as_one_content(tmp_path: Path, cfg: FaissConfig, kind: str) -> None:
    """Byte-identical files embedded in different batches hold vectors a few ulps apart; each copy is scored
    by the first-indexed copy's vectors, so they tie exactly and collapse into one hit."""
    rng = np.random.default_rng(5)
    base = unit(rng.normal(size=(2, D)))
    files = planted(120, {}, base, seed=6)
    paths = {7: "/lib/copy/z.wav", 40: "/lib/copy/a.wav", 41: "/lib/copy/m.wav", 100: "/lib/copy/b.wav"}
    for n, (i, path) in enumerate(sorted(paths.items())):
        bits = base.copy().view(np.uint32)
        bits[:, ::2] += np.uint32(n)  # n ulps off in every other component: as another batch leaves them
        files[i] = (path, "c" * 64, bits.view(np.float32))
    build(tmp_path, cfg, files)
    query = unit(base[0] + 0.5 * unit(rng.normal(size=D)))[None, :]
    with Searcher(tmp_path, load_encoder=None, faiss_cfg=cfg) as s:  # type: ignore[arg-type]
        own = {i: float(query[0].astype(np.float64) @ files[i][2][0].astype(np.float64)) for i in paths}
        assert len(set(own.values())) == 4  # by their own vectors the four would not tie
        apart, _, _ = s.search_vectors(query, "audio", semantic(top_k=6, all_copies=True))
        assert [h.path for h in apart[:4]] == sorted(paths.values())
        assert len({h.score for h in apart[:4]}) == 1 and abs(apart[0].score - own[7]) < 1e-12  # file 7: indexed first
        assert apart[4].score < apart[0].score and all(h.copies == [] for h in apart)
        once, _, _ = s.search_vectors(query, "audio", semantic(top_k=3))
        assert [h.path for h in once] == ["/lib/copy/a.wav", apart[4].path, apart[5].path]
        assert once[0].copies == ["/lib/copy/b.wav", "/lib/copy/m.wav", "/lib/copy/z.wav"]
        assert [h.score for h in once] == [h.score for h in (apart[0], apart[4], apart[5])]


@pytest.mark.parametrize(("cfg", "kind"), CONFIGS, ids=["flat", "ivf"])
def test_more_ties_than_the_first_top_k_are_all_fetched_and_ordered_by_path(tmp_path: Path, cfg: FaissConfig,
                                                                          kind: str) -> None:
    """150 windows tie, more than the 72 candidates FAISS is first asked for (top_k + 32): k grows until
    the last hit shown scores above what any window left out could, so the first 40 by path come back,
    not the 40 FAISS happened to hold; 300 copies of one content are one hit, listing the other 299."""
    rng = np.random.default_rng(8)
    vecs = unit(rng.normal(size=(2, D)))
    tied = {i: f"/lib/tie/{999 - i:04d}.wav" for i in range(0, 300, 2)}  # paths run against the ids
    build(tmp_path / "ties", cfg, planted(400, tied, vecs, seed=9))
    with Searcher(tmp_path / "ties", load_encoder=None, faiss_cfg=cfg) as s:  # type: ignore[arg-type]
        hits, _, _ = s.search_vectors(vecs[:1], "audio", semantic(top_k=40, group_by_file=False))
    assert [h.path for h in hits] == sorted(tied.values())[:40]
    assert len({h.score for h in hits}) == 1
    copies = {i: f"/lib/copy/{999 - i:04d}.wav" for i in range(0, 600, 2)}
    build(tmp_path / "copies", cfg, planted(700, copies, vecs, seed=10))
    near = unit(vecs[0] + 0.5 * unit(rng.normal(size=D)))[None, :]
    with Searcher(tmp_path / "copies", load_encoder=None, faiss_cfg=cfg) as s:  # type: ignore[arg-type]
        once, _, _ = s.search_vectors(near, "audio", semantic(top_k=3))
        apart, _, _ = s.search_vectors(near, "audio", semantic(top_k=3, all_copies=True))
    names = sorted(copies.values())
    assert once[0].path == names[0] and once[0].copies == names[1:]
    assert all(not h.path.startswith("/lib/copy/") and h.copies == [] for h in once[1:]) and len(once) == 3
    assert [h.path for h in apart] == names[:3]
