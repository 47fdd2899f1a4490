"""The memory budget in the index-type rule (issue 23): a tiny budget forces the compressed OPQ/IVF-PQ index on
small data; its searches re-score candidates exactly (scores are the catalog vectors' cosines), found ids are
checked against brute force, through deletions and incremental publishes."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import FaissConfig, SearchConfig
from diffgap_search.errors import UsageError
from diffgap_search.info import index_info
from diffgap_search.search import Searcher
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.index_budget import budget_from, choose_index, default_budget_mb
from diffgap_search.store.vector_index import Published, ivf_ids, publish

D = 16
N_FILES, PER_FILE = 6000, 2  # 12 000 windows: enough to train 8-bit PQ (9 984)
# flat would take 0.86 MB; 4-byte codes and 2 OPQ rounds keep training short on a busy 2-core machine
# 5 000-vector shards: publish builds 3 (5 000, 5 000, 2 000) and merges them on disk
TINY = FaissConfig(memory_budget_mb=0.5, nprobe=64, pq_bytes=4, opq_iterations=2, shard_vectors=5000)
CFG = SearchConfig(top_k=10, group_by_file=False, all_copies=True)


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors around 64 centres (the spread of real embeddings: clumps, not a uniform sphere)."""
    centres = np.random.default_rng(99).normal(size=(64, D))
    vecs = centres[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, D))
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def _add(cat: Catalog, first: int, count: int, rng: np.random.Generator) -> None:
    vecs = _clustered(rng, count * PER_FILE).reshape(count, PER_FILE, D)
    with cat.batch():
        for f in range(first, first + count):
            cat.put_file(path_key=f"/lib/{f:05d}.wav".encode(), path=f"/lib/{f:05d}.wav", kind="audio", size=1,
                         mtime_ns=f, sha256=f"{f:064x}", duration_s=20.0,
                         segments=[SegmentInput(10.0 * s, 10.0 * s + 10.0, {"audio": vecs[f - first, s]})
                                   for s in range(PER_FILE)])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("compressed")
    with Catalog.open(index_dir, create=True) as cat:
        cat.set_meta({"encoder": {"model": "synthetic", "fingerprint": "0" * 64, "dim": D, "sample_rate": 48_000,
                                  "modalities": ["audio", "text"]},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        _add(cat, 0, N_FILES, np.random.default_rng(0))
        publish(index_dir, cat, "audio", D, TINY)
    return index_dir


@pytest.fixture()
def index_dir(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "index"
    shutil.copytree(built, dest)
    return dest


def _brute(cat: Catalog, q: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    ids, vecs = [np.concatenate(p) for p in zip(*cat.read_vectors("audio"))]
    sims = vecs.astype(np.float64) @ q.astype(np.float64)
    order = np.lexsort((ids, -sims))[:k]
    return ids[order].tolist(), sims[order]


def _check_against_brute_force(index_dir: Path, seed: int, n_queries: int = 20) -> float:
    """Searches ``n_queries`` seeded queries; every score is the exact cosine (1e-9), the mean recall@10."""
    rng = np.random.default_rng(seed)
    found = 0
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        queries = _clustered(rng, n_queries)
        for q in queries:
            hits, _, _ = s.search_vectors(q[None], "audio", CFG)
            want, sims = _brute(s.catalog, q, 10)
            vecs = s.catalog.vectors_of("audio", [h.segment_id for h in hits])
            for h in hits:
                assert abs(h.score - float(vecs[h.segment_id].astype(np.float64) @ q)) < 1e-9
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            found += len({h.segment_id for h in hits} & set(want))
            assert hits[0].segment_id == want[0] and abs(hits[0].score - sims[0]) < 1e-9
    return found / (10 * n_queries)


def test_the_rule_chooses_by_budget_and_says_when_too_few_vectors() -> None:
    cfg = FaissConfig()
    assert choose_index(12_000, 32, cfg, None).kind == "flat"
    assert choose_index(12_000, 32, cfg, 1.0).kind == "opq32_ivf256_pq32"
    assert choose_index(12_000, 16, TINY, 0.5).kind == "opq4_ivf256_pq4"
    assert choose_index(12_000, 32, cfg, 2.0).kind == "flat"  # 1.63 MB fits
    few = choose_index(5_000, 32, cfg, 0.1)
    assert few.kind == "flat"
    assert few.reason == ("flat would take 0.7 MB, over the 0.1 MB budget, but 5000 vectors are too few to train a"
                          " compressed index (it needs 9984): flat kept")
    assert choose_index(10**6, 512, cfg, 3000).kind == "ivf4096"  # 2.07 GB fits 3 GB
    assert choose_index(10**6, 512, cfg, 1000).kind == "opq64_ivf4096_pq64"
    big = choose_index(10**7, 512, cfg, 3000)
    assert big.kind == "opq64_ivf16384_hnsw32_pq64"  # an HNSW coarse quantiser above 4096 lists
    assert big.reason == ("ivf16384 would take 20673.6 MB, over the 3000 MB budget: opq64_ivf16384_hnsw32_pq64,"
                          " 838.8 MB in RAM")


def test_budget_from_option_env_and_machine(tmp_path: Path) -> None:
    assert budget_from(512.0, {"DGSEARCH_INDEX_BUDGET_MB": "9"}) == 512.0
    assert budget_from(None, {"DGSEARCH_INDEX_BUDGET_MB": "9"}) == 9.0
    assert budget_from(None, {}) is None
    with pytest.raises(UsageError, match=r"^DGSEARCH_INDEX_BUDGET_MB must be a number of megabytes, got 'lots'$"):
        budget_from(None, {"DGSEARCH_INDEX_BUDGET_MB": "lots"})
    with pytest.raises(UsageError, match=r"^--memory-budget must be a positive number of megabytes, got -1$"):
        budget_from(-1.0, {})
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:         1000 kB\n")
    assert default_budget_mb(str(meminfo)) == 3145  # an eighth of 25.2 GB


def test_tiny_budget_publishes_a_compressed_index_and_search_rescores_exactly(index_dir: Path) -> None:
    with Catalog.open(index_dir) as cat:
        rec = Published.read(cat, "audio")
    assert rec is not None
    assert (rec.kind, rec.count, rec.max_id, rec.budget_mb) == ("opq4_ivf256_pq4", 12_000, 12_000, 0.5)
    assert rec.data_size == 12_000 * (4 + 8)  # on-disk lists: 4-byte codes and int64 ids, merged without gaps
    assert rec.size < 100_000  # the trained parts and the lists' directory: no codes
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        loaded = s.index_for("audio")
        assert (loaded.kind, loaded.rebuilt, loaded.ntotal) == ("opq4_ivf256_pq4", False, 12_000)
        held, vecs = loaded.vectors_of(np.array([1, 2, 3], np.int64))  # codes: the catalog answers
        assert held.tolist() == [False, False, False] and vecs.shape == (0, D)
    assert _check_against_brute_force(index_dir, seed=5) >= 0.95
    assert index_info(index_dir).summary["vector spaces"] == (
        f"audio (12000 vectors, opq4_ivf256_pq4, {(rec.size + rec.data_size) / 12_000:.0f} B/vector, budget 0.5 MB,"
        " generation 1)")


def test_deletions_and_incremental_publish_keep_the_compressed_index(index_dir: Path,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    with Catalog.open(index_dir) as cat:
        gone = [cat.file_by_key(f"/lib/{f:05d}.wav".encode()).id for f in range(0, 6000, 6)]  # type: ignore[union-attr]
        cat.delete_files(gone)
        _add(cat, N_FILES, 500, np.random.default_rng(1))  # 1 000 new windows
        rec = publish(index_dir, cat, "audio", D, replace(TINY, memory_budget_mb=None))  # no budget given: the recorded one
        assert (rec.generation, rec.kind, rec.count, rec.max_id, rec.budget_mb) == (
            2, "opq4_ivf256_pq4", 12_000 - 2_000 + 1_000, 13_000, 0.5)
        assert rec.data_size == 11_000 * 12  # the live 10 000 copied, the 1 000 new ones encoded, merged
        live = set(cat.live_ids("audio").tolist())
    assert sorted(p.name for p in index_dir.glob("audio.*")) == ["audio.2.faiss", "audio.2.ivfdata"]
    assert _check_against_brute_force(index_dir, seed=6) == 1.0  # exact ids, as brute force
    with Catalog.open(index_dir) as cat:
        again = publish(index_dir, cat, "audio", D, TINY)  # nothing new: the published lists merged as they are
        assert (again.generation, again.count, again.data_size) == (3, 11_000, 11_000 * 12)
    assert capfd.readouterr().out == ""  # FAISS's "resizing <file>" lines kept off stdout
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        held = np.sort(ivf_ids(s.index_for("audio").index))  # the lists hold exactly the live ids
        assert np.array_equal(held, np.array(sorted(live), np.int64))
        _, ids = s.index_for("audio").search(_clustered(np.random.default_rng(7), 50), 40)
        assert set(ids[ids >= 0].tolist()) <= live  # no deleted window is ever a candidate
        assert (ids > 12_000).any()  # the new windows are in the index


def _maps(path: Path) -> list[str]:
    """This process's memory mappings of ``path`` (``/proc/self/maps`` lines: ``ADDR PERMS OFFSET DEV INODE PATH``)."""
    with open("/proc/self/maps") as fh:
        return [line.split()[1] for line in fh if line.rstrip().endswith(" " + str(path))]


def test_the_sharded_on_disk_build_equals_the_in_memory_build(index_dir: Path, tmp_path: Path) -> None:
    """The same trained index filled in memory, through 3 shards merged on disk, and as publish built it (3 shards
    of TINY.shard_vectors): the same ids and distances, in the same order, for every query."""
    import faiss

    from diffgap_search.store import ondisk_index as ondisk

    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        published = s.index_for("audio").index
        assert ondisk.is_on_disk(published)
        in_memory = ondisk.empty_copy(published)  # the trained parts only: nothing is trained again
        assert in_memory.ntotal == 0 and not ondisk.is_on_disk(in_memory)
        for ids, vecs in s.catalog.read_vectors("audio", dim=D):
            in_memory.add_with_ids(vecs, ids)
        shards: list[Path] = []

        def shard(i: int) -> Path:
            shards.append(tmp_path / f"shard{i}.faiss")
            return shards[-1]

        on_disk, max_id = ondisk.build_sharded(ondisk.empty_copy(published), s.catalog.read_vectors(
            "audio", dim=D, chunk_rows=2000), tmp_path / "data.ivfdata", shard, shard_vectors=4000)
        assert (len(shards), max_id, on_disk.ntotal) == (3, 12_000, 12_000)
        assert not any(p.exists() for p in shards)  # merged, then deleted
        assert (tmp_path / "data.ivfdata").stat().st_size == 12_000 * (4 + 8)
        queries = _clustered(np.random.default_rng(11), 30)
        results = []
        for index in (in_memory, on_disk, published):
            faiss.extract_index_ivf(index).nprobe = TINY.nprobe
            results.append(index.search(queries, 40))
    for dist, ids in results[1:]:
        assert np.array_equal(ids, results[0][1]) and np.array_equal(dist, results[0][0])
    assert (results[0][1] >= 0).all()


def test_the_published_lists_are_memory_mapped_read_only(index_dir: Path) -> None:
    import faiss

    data = index_dir / "audio.1.ivfdata"
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(s.index_for("audio").index).invlists)
        assert isinstance(lists, faiss.OnDiskInvertedLists)
        assert (lists.read_only, lists.filename, lists.totsize) == (True, str(data), 12_000 * 12)
        assert _maps(data) == ["r--s"]  # mapped shared, read-only: its pages are the page cache's, not read in
        assert faiss.read_index(str(index_dir / "audio.1.faiss"), faiss.IO_FLAG_SKIP_IVF_DATA).ntotal == 12_000
    with open(index_dir / "audio.1.faiss", "rb") as fh:  # the .faiss file names its data file by base name
        raw = fh.read()
    assert b"audio.1.ivfdata" in raw and str(index_dir).encode() not in raw


@pytest.mark.parametrize("damage", ["flip", "missing"])
def test_a_damaged_data_file_is_never_served(index_dir: Path, damage: str) -> None:
    data = index_dir / "audio.1.ivfdata"
    if damage == "missing":
        data.unlink()
    else:
        raw = bytearray(data.read_bytes())
        raw[1000] ^= 0xFF
        data.write_bytes(bytes(raw))
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        loaded = s.index_for("audio")
        assert (loaded.kind, loaded.rebuilt, loaded.ntotal) == ("flat", True, 12_000)  # exact search instead


def test_a_killed_publish_leaves_nothing_the_next_run_keeps(index_dir: Path) -> None:
    from diffgap_search.store.generations import sweep_unpublished

    left = [index_dir / ".audio.2.shard0.tmp", index_dir / ".audio.2.ivfdata.tmp", index_dir / "audio.2.ivfdata",
            index_dir / "audio.2.faiss"]  # a kill while merging, or after the files but before the record
    for path in left:
        path.write_bytes(b"x" * 100)
    with Catalog.open(index_dir) as cat:
        assert sweep_unpublished(index_dir, cat)
    assert not any(p.exists() for p in left)
    assert sorted(p.name for p in index_dir.glob("audio.*")) == ["audio.1.faiss", "audio.1.ivfdata"]


def test_deleting_whole_regions_keeps_exact_ids(index_dir: Path) -> None:
    """Every file with a window near 10 of the 64 centres deleted: the lists there lose most of their entries
    (where removing ids from merged on-disk lists in place would move a list over another); ids stay exact."""
    centres = np.random.default_rng(99).normal(size=(64, D))
    with Catalog.open(index_dir) as cat:
        ids, vecs = [np.concatenate(p) for p in zip(*cat.read_vectors("audio"))]
        near = np.argmax(vecs @ (centres / np.linalg.norm(centres, axis=1, keepdims=True)).T, axis=1) < 10
        keys = sorted({f"/lib/{(int(i) - 1) // PER_FILE:05d}.wav" for i in ids[near]})
        cat.delete_files([cat.file_by_key(k.encode()).id for k in keys])  # type: ignore[union-attr]
        _add(cat, N_FILES, 1500, np.random.default_rng(2))  # 3 000 new windows keep it over PQ_MIN_TRAIN
        rec = publish(index_dir, cat, "audio", D, TINY)
        n_live = len(cat.live_ids("audio"))
        assert (rec.kind, rec.count, rec.data_size) == ("opq4_ivf256_pq4", n_live, n_live * 12)
        assert 2 * len(keys) > 3000  # over a quarter of the windows went
        live = cat.live_ids("audio")
    assert _check_against_brute_force(index_dir, seed=8) == 1.0  # 0.965 when removed from the merged file in place
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        assert np.array_equal(np.sort(ivf_ids(s.index_for("audio").index)), np.sort(live))


def test_a_compressed_index_published_in_memory_is_served_then_moved_on_disk(index_dir: Path) -> None:
    """A generation written before on-disk lists (codes inside the .faiss file, no data_size) still loads, and the
    next publish merges its lists into a data file."""
    from diffgap_search.store import ondisk_index as ondisk
    from diffgap_search.store.faiss_files import write_atomic
    from diffgap_search.store.vector_index import faiss_path

    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        legacy = ondisk.empty_copy(s.index_for("audio").index)
        for ids, vecs in s.catalog.read_vectors("audio", dim=D):
            legacy.add_with_ids(vecs, ids)
    (index_dir / "audio.1.ivfdata").unlink()
    size, crc = write_atomic(legacy, faiss_path(index_dir, "audio", 1))
    with Catalog.open(index_dir) as cat:
        old = {k: v for k, v in cat.get_meta("faiss.audio").items() if not k.startswith("data_")}
        cat.set_meta({"faiss.audio": {**old, "size": size, "crc32": crc}})
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        loaded = s.index_for("audio")
        assert (loaded.rebuilt, ondisk.is_on_disk(loaded.index), loaded.ntotal) == (False, False, 12_000)
    with Catalog.open(index_dir) as cat:
        _add(cat, N_FILES, 100, np.random.default_rng(3))
        rec = publish(index_dir, cat, "audio", D, TINY)
    assert (rec.generation, rec.count, rec.data_size) == (2, 12_200, 12_200 * 12)
    assert _check_against_brute_force(index_dir, seed=9) == 1.0


def test_a_merge_that_cannot_fit_the_disk_is_refused_before_faiss_maps_it(tmp_path: Path) -> None:
    from diffgap_search.errors import StorageError
    from diffgap_search.store.ondisk_index import check_room

    check_room(tmp_path / ".audio.2.ivfdata.tmp", 1000, 64)
    with pytest.raises(StorageError, match=r"^cannot merge the index into .*: it needs 72000000000 MB, \d+ MB are free;"
                                           r" the published index is unchanged"):
        check_room(tmp_path / ".audio.2.ivfdata.tmp", 10**15, 64)


def test_cli_refuses_a_bad_budget_before_doing_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from diffgap_search.cli.app import app

    runner = CliRunner()
    r = runner.invoke(app, ["index", str(tmp_path), "--index", str(tmp_path / "ix"), "--memory-budget", "0"])
    assert r.exit_code == 2
    assert "--memory-budget must be a positive number of megabytes, got 0" in r.output
    r = runner.invoke(app, ["train", "--index", str(tmp_path / "ix")], env={"DGSEARCH_INDEX_BUDGET_MB": "lots"})
    assert r.exit_code == 2
    assert "DGSEARCH_INDEX_BUDGET_MB must be a number of megabytes, got 'lots'" in r.output
    assert not (tmp_path / "ix").exists()


_PUBLISH_CHILD = """
import sys
from pathlib import Path
from diffgap_search.config import FaissConfig
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.vector_index import publish
cfg = FaissConfig(memory_budget_mb=0.5, nprobe=64, pq_bytes=4, opq_iterations=2, shard_vectors=5000)
with Catalog.open(Path(sys.argv[1])) as cat:
    publish(Path(sys.argv[1]), cat, "audio", 16, cfg)
"""


@pytest.mark.parametrize("stage", ["shard", "ivfdata"])
def test_a_publish_process_killed_while_writing_shards_or_merging_loses_nothing(built: Path, tmp_path: Path,
                                                                               stage: str) -> None:
    """A real process publishing the next generation is SIGKILLed the moment its first shard file (``shard``)
    or its merged data file (``ivfdata``) appears: generation 1 stays published and served as it was, and the
    next writer sweeps the leftovers and publishes generation 2 exactly (ids checked against brute force).
    The kill races the child; an attempt the child finished first is made again on a fresh copy."""
    import os
    import signal
    import subprocess
    import sys

    from diffgap_search.store.vector_index import sweep_unpublished

    for attempt in range(6):
        index_dir = tmp_path / f"index{attempt}"
        shutil.copytree(built, index_dir)
        with Catalog.open(index_dir) as cat:
            _add(cat, N_FILES, 100, np.random.default_rng(3))  # committed, not yet published
        child = subprocess.Popen([sys.executable, "-c", _PUBLISH_CHILD, str(index_dir)])
        seen: list[str] = []
        while child.poll() is None and not seen:
            seen = [n for n in os.listdir(index_dir) if n.startswith(".audio.2.") and stage in n]
        if seen and child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        if child.wait(timeout=120) == -signal.SIGKILL:
            break
    else:
        pytest.fail("the publishing child finished before every kill")
    with Catalog.open(index_dir) as cat:
        assert (Published.read(cat, "audio").generation, cat.count_vectors("audio")) == (1, 12_200)  # type: ignore[union-attr]
    assert (index_dir / seen[0]).exists() or stage == "shard"  # killed mid-merge: the data file is still a .tmp
    with Searcher(index_dir, load_encoder=None, faiss_cfg=TINY) as s:  # type: ignore[arg-type]
        loaded = s.index_for("audio")
        assert (loaded.kind, loaded.rebuilt, loaded.ntotal) == ("opq4_ivf256_pq4", False, 12_000)
    with Catalog.open(index_dir) as cat:
        sweep_unpublished(index_dir, cat)  # what the next `dgsearch index` does first
        assert not [n for n in os.listdir(index_dir) if n.endswith(".tmp")]
        rec = publish(index_dir, cat, "audio", D, TINY)
    assert (rec.generation, rec.count, rec.data_size) == (2, 12_200, 12_200 * 12)
    assert _check_against_brute_force(index_dir, seed=10) == 1.0
