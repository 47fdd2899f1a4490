"""The library map: a PCA projection of the audio windows, stored beside the FAISS file at publish, updated
incrementally (points already placed never move), refitted when the library has doubled, brought up to date
in memory by a reader when stale, and sampled beyond a cap. Real SQLite catalog, real FAISS files, seeded
random vectors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import FaissConfig
from diffgap_search.errors import UsageError
from diffgap_search.media.tags import FileTags
from diffgap_search.projection import fit_pca, project_2d
from diffgap_search.search.library_map import map_points, sample_positions
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.labels import add_label
from diffgap_search.store.library_map import current_generation, map_path, read_map, update_map
from diffgap_search.store.tags import put_file_meta
from diffgap_search.store.vector_index import publish

DIM = 8


def test_pca_finds_the_two_widest_directions_with_fixed_signs() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, DIM)) * np.array([0.1, 5.0, 0.1, 0.1, 2.0, 0.1, 0.1, 0.1]) + 7.0
    chunks = [x[:700], x[700:1500], x[1500:]]
    basis = fit_pca(chunks)
    assert np.argmax(np.abs(basis.axes[0])) == 1 and np.argmax(np.abs(basis.axes[1])) == 4
    assert basis.axes[0][1] > 0 and basis.axes[1][4] > 0  # signs fixed: the largest component is positive
    assert np.allclose(basis.axes @ basis.axes.T, np.eye(2), atol=1e-5)
    assert np.allclose(basis.mean, x.mean(0), atol=1e-4)
    # equal to numpy's SVD of the centred data, up to the sign fixed above
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    assert np.allclose(np.abs(basis.axes), np.abs(vt[:2]), atol=1e-4)
    xy, method = project_2d(x.astype(np.float32), "pca")
    assert method == "pca" and xy.shape == (2000, 2) and xy.dtype == np.float32
    assert np.allclose(xy, basis.project(x), atol=1e-4)
    with pytest.raises(ValueError, match="no vectors to project"):
        fit_pca([np.zeros((0, DIM))])


@pytest.mark.parametrize("splits", [(40,), (10, 30), (10, 20, 10, 30)])
def test_pca_of_fewer_rows_than_dimensions_equals_the_svd_whether_or_not_the_chunks_cross_d(splits: tuple[int, ...]) -> None:
    # 40 rows in 64 dimensions (a small library of one-shots: the Gram path); 70 rows cross D mid-stream
    rng = np.random.default_rng(11)
    dim = 64
    x = rng.normal(size=(sum(splits), dim)) * np.linspace(3.0, 0.1, dim) + 2.0
    chunks = np.split(x, np.cumsum(splits)[:-1])
    basis = fit_pca(chunks)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    assert np.allclose(np.abs(basis.axes), np.abs(vt[:2]), atol=1e-5)
    assert np.allclose(basis.axes @ basis.axes.T, np.eye(2), atol=1e-5)
    assert np.allclose(basis.mean, x.mean(0), atol=1e-5)
    assert all(row[np.argmax(np.abs(row))] > 0 for row in basis.axes)


def test_pca_of_one_or_two_distinct_rows_gives_orthonormal_axes() -> None:
    one = fit_pca([np.ones((3, 5))])
    assert np.allclose(one.axes, np.eye(5)[:2]) and np.allclose(one.mean, 1.0)
    two = fit_pca([np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 3.0, 4.0, 0.0]])])
    assert np.allclose(two.axes[0], [0.0, 0.6, 0.8, 0.0], atol=1e-6)  # along the difference, largest part > 0
    assert np.allclose(two.axes @ two.axes.T, np.eye(2), atol=1e-6)
    xy = two.project(np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 3.0, 4.0, 0.0]]))
    assert np.allclose(xy[:, 0], [-2.5, 2.5], atol=1e-5) and np.allclose(xy[:, 1], 0.0, atol=1e-5)


def _add_files(cat: Catalog, root: Path, start: int, count: int, rng: np.random.Generator) -> None:
    with cat.batch():
        for i in range(start, start + count):
            folder = "drums" if i % 3 == 0 else "bells"
            path = root / folder / f"f{i:03d}.wav"
            vecs = rng.normal(size=(2, DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            fid = cat.put_file(path_key=os.fsencode(str(path)), path=str(path), kind="audio", size=i, mtime_ns=i,
                               sha256=f"{i:064x}", duration_s=20.0,
                               segments=[SegmentInput(0.0, 10.0, {"audio": vecs[0]}),
                                         SegmentInput(10.0, 20.0, {"audio": vecs[1]})])
            put_file_meta(cat, fid, FileTags((("genre", f"g{i % 2}"),) if i % 4 else (), 48_000, 2))


def _vectors(cat: Catalog) -> tuple[np.ndarray, np.ndarray]:
    parts = list(cat.read_vectors("audio"))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_the_map_is_stored_at_publish_updated_incrementally_and_refitted_when_doubled(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    ix = tmp_path / "ix"
    with Catalog.open(ix, create=True) as cat:
        _add_files(cat, tmp_path, 0, 20, rng)
        publish(ix, cat, "audio", DIM, FaissConfig())
        first = update_map(ix, cat)
        assert map_path(ix).is_file() and first.method == "pca" and first.fitted == 40
        assert first.generation == current_generation(cat) == 1
        ids, vecs = _vectors(cat)
        assert first.ids.tolist() == ids.tolist()
        assert np.allclose(first.xy, fit_pca([vecs]).project(vecs), atol=1e-5)
        stored = read_map(ix)
        assert stored is not None and stored.ids.tolist() == first.ids.tolist() and np.array_equal(stored.xy, first.xy)
        written = map_path(ix).stat().st_mtime_ns
        os.utime(map_path(ix), ns=(written - 10**9, written - 10**9))
        update_map(ix, cat)  # already current: not written again
        assert map_path(ix).stat().st_mtime_ns == written - 10**9

        # 10 more files and 2 deleted: old points keep their exact places, new ones use the same basis
        _add_files(cat, tmp_path, 20, 10, rng)
        gone = [r.id for r in cat.files() if r.path.endswith(("f001.wav", "f002.wav"))]
        cat.delete_files(gone)
        publish(ix, cat, "audio", DIM, FaissConfig())
        second = update_map(ix, cat)
        assert second.generation == 2 and second.fitted == 40  # not refitted: 56 windows <= 2 x 40
        ids, vecs = _vectors(cat)
        assert second.ids.tolist() == ids.tolist() and len(ids) == 56
        kept = np.isin(first.ids, second.ids)
        assert kept.sum() == 36
        assert np.array_equal(second.xy[np.isin(second.ids, first.ids)], first.xy[kept])
        new = second.ids > first.ids.max()
        assert np.allclose(second.xy[new], first.basis.project(vecs[new]), atol=1e-6)  # type: ignore[union-attr]

        _add_files(cat, tmp_path, 30, 20, rng)  # 96 windows > 2 x 40: fitted again on all
        publish(ix, cat, "audio", DIM, FaissConfig())
        third = update_map(ix, cat)
        ids, vecs = _vectors(cat)
        assert (third.generation, third.fitted, len(third.ids)) == (3, 96, 96)
        assert np.allclose(third.xy, fit_pca([vecs]).project(vecs), atol=1e-5)


def test_a_reader_brings_a_stale_map_up_to_date_in_memory_and_samples_beyond_the_cap(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ix = tmp_path / "ix"
    with Catalog.open(ix, create=True) as cat:
        _add_files(cat, tmp_path, 0, 12, rng)
        publish(ix, cat, "audio", DIM, FaissConfig())
        update_map(ix, cat)
        before = map_path(ix).read_bytes()
        _add_files(cat, tmp_path, 12, 3, rng)
        publish(ix, cat, "audio", DIM, FaissConfig())  # a writer that did not update the map
        pts = map_points(ix, cat)
        assert pts.stale and pts.generation == 2 and pts.total == 30 and len(pts.segment_id) == 30
        assert map_path(ix).read_bytes() == before  # a reader writes nothing
        ids, _ = _vectors(cat)
        assert pts.segment_id.tolist() == ids.tolist()
        rows = {r.id: r for r in cat.files()}
        assert [rows[int(f)].path.rsplit("/", 2)[-2] for f in pts.file_id] == [pts.keys[k] for k in pts.key]
        assert pts.keys == ["bells", "drums"]
        assert pts.start_s.tolist() == [0.0, 10.0] * 15 and pts.end_s.tolist() == [10.0, 20.0] * 15
        tagged = map_points(ix, cat, colour="tag")
        assert tagged.keys == ["", "g0", "g1"]
        assert [tagged.keys[k] for k in tagged.key][:8] == ["", "", "g1", "g1", "g0", "g0", "g1", "g1"]
        sampled = map_points(ix, cat, cap=7)
        assert sampled.total == 30 and sampled.segment_id.tolist() == ids[[0, 5, 10, 14, 19, 24, 29]].tolist()
        doc = sampled.to_dict()
        assert (doc["count"], doc["total"], doc["method"], len(doc["x"]), len(doc["key"])) == (7, 30, "pca", 7, 7)
        add_label(cat, "Keepers", [3, 1])
        add_label(cat, "bells I like", [1])
        labelled = map_points(ix, cat, colour="label")
        assert labelled.keys == ["", "Keepers"]  # file 1's first label is Keepers
        assert [labelled.keys[k] for k in labelled.key][:6] == ["Keepers", "Keepers", "", "", "Keepers", "Keepers"]
        with pytest.raises(UsageError, match="colour must be one of folder, tag, label, got 'size'"):
            map_points(ix, cat, colour="size")


def test_sample_positions() -> None:
    assert sample_positions(4, 10).tolist() == [0, 1, 2, 3]
    assert sample_positions(10, 4).tolist() == [0, 3, 6, 9]
    assert sample_positions(5, 1).tolist() == [0]
