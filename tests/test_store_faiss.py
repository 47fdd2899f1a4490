"""FAISS files derived from the catalog: exact ids against brute force, generations, repair, ANN recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import FaissConfig
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.index_choice import index_kind_for, ivf_lists
from diffgap_search.store.vector_index import Published, faiss_path, load_index, publish

D = 16


def fill(cat: Catalog, n_files: int, seg_per_file: int, rng: np.random.Generator, start: int = 0) -> np.ndarray:
    vecs = rng.standard_normal((n_files * seg_per_file, D)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with cat.batch():
        for f in range(n_files):
            segs = [SegmentInput(s, s + 1.0, {"audio": vecs[f * seg_per_file + s]}) for s in range(seg_per_file)]
            cat.put_file(path_key=f"/f/{start + f}".encode(), path=f"/f/{start + f}", kind="audio", size=1,
                         mtime_ns=1, sha256=str(start + f), segments=segs)
    return vecs


def brute_force(cat: Catalog, q: np.ndarray, k: int) -> list[int]:
    ids, vecs = next(cat.read_vectors("audio"))
    order = np.argsort(-(vecs @ q), kind="stable")[:k]
    return ids[order].tolist()


def test_flat_search_equals_brute_force_exact_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cfg = FaissConfig()
    with Catalog.open(tmp_path, create=True) as cat:
        fill(cat, 40, 3, rng)
        rec = publish(tmp_path, cat, "audio", D, cfg)
        assert (rec.generation, rec.count, rec.max_id, rec.kind) == (1, 120, 120, "flat")
        loaded = load_index(tmp_path, cat, "audio", D, cfg)
        assert not loaded.rebuilt
        for _ in range(5):
            q = rng.standard_normal(D).astype(np.float32)
            q /= np.linalg.norm(q)
            _, ids = loaded.search(q[None], 10)
            assert ids[0].tolist() == brute_force(cat, q, 10)


def test_incremental_publish_follows_deletes_and_adds(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cfg = FaissConfig()
    with Catalog.open(tmp_path, create=True) as cat:
        fill(cat, 5, 2, rng)
        publish(tmp_path, cat, "audio", D, cfg)
        cat.delete_files([cat.file_by_key(b"/f/0").id])  # type: ignore[union-attr]
        fill(cat, 2, 2, rng, start=100)
        rec = publish(tmp_path, cat, "audio", D, cfg)
        assert (rec.generation, rec.count, rec.max_id) == (2, 12, 14)
        assert sorted(p.name for p in tmp_path.glob("*.faiss")) == ["audio.2.faiss"]
        loaded = load_index(tmp_path, cat, "audio", D, cfg)
        import faiss

        assert sorted(faiss.vector_to_array(loaded.index.id_map).tolist()) == list(range(3, 15))


@pytest.mark.parametrize("damage", ["truncate", "delete", "garbage", "flip"])
def test_damaged_faiss_file_is_rebuilt_from_catalog(tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(2)
    cfg = FaissConfig()
    with Catalog.open(tmp_path, create=True) as cat:
        fill(cat, 10, 2, rng)
        publish(tmp_path, cat, "audio", D, cfg)
        path = faiss_path(tmp_path, "audio", 1)
        if damage == "truncate":
            path.write_bytes(path.read_bytes()[:100])
        elif damage == "delete":
            path.unlink()
        elif damage == "flip":  # same size, same count: only the CRC-32 tells
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x40
            path.write_bytes(bytes(data))
        else:
            path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
        loaded = load_index(tmp_path, cat, "audio", D, cfg)
        assert loaded.rebuilt and loaded.ntotal == 20
        q = next(cat.read_vectors("audio"))[1][7]
        assert loaded.search(q[None], 1)[1][0, 0] == 8
        rec = publish(tmp_path, cat, "audio", D, cfg)
        assert rec.generation == 2 and not load_index(tmp_path, cat, "audio", D, cfg).rebuilt


def test_size_rule() -> None:
    cfg = FaissConfig(flat_max=1000)
    assert index_kind_for(1000, cfg) == "flat"
    assert index_kind_for(1001, cfg) == "ivf16"
    assert index_kind_for(100_000, cfg) == "ivf1024"
    assert ivf_lists(10**6, FaissConfig()) == 4096


def test_ivf_recall_against_exact(tmp_path: Path) -> None:
    """The ANN choice keeps recall@10 ≥ 0.95 against exact search on clustered data."""
    rng = np.random.default_rng(3)
    cfg = FaissConfig(flat_max=2000, nprobe=16)
    centers = rng.standard_normal((50, D)).astype(np.float32)
    with Catalog.open(tmp_path, create=True) as cat:
        pts = centers[rng.integers(0, 50, 6000)] + 0.6 * rng.standard_normal((6000, D)).astype(np.float32)
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        with cat.batch():
            for i in range(0, 6000, 100):
                segs = [SegmentInput(j, j + 1.0, {"audio": pts[i + j]}) for j in range(100)]
                cat.put_file(path_key=f"/p/{i}".encode(), path=f"/p/{i}", kind="audio", size=1, mtime_ns=1,
                             sha256=None, segments=segs)
        rec = publish(tmp_path, cat, "audio", D, cfg)
        assert rec.kind == "ivf128"
        loaded = load_index(tmp_path, cat, "audio", D, cfg)
        queries = pts[rng.choice(6000, 100, replace=False)] + 0.1 * rng.standard_normal((100, D)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        _, ann = loaded.search(queries, 10)
        exact_ids = np.argsort(-(queries @ pts.T), axis=1)[:, :10] + 1
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ann.tolist(), exact_ids.tolist())])
        assert recall >= 0.95


def test_published_record_roundtrip(tmp_path: Path) -> None:
    with Catalog.open(tmp_path, create=True) as cat:
        assert Published.read(cat, "audio") is None
