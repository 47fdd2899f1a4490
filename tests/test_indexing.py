"""Indexing runs through the library: what gets embedded, what is kept, what is refused."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from fixtures_media import write_tone

from diffgap_search.config import EncoderConfig, IndexingConfig, WindowConfig
from diffgap_search.errors import IncompatibleIndexError, IndexBusyError, InputNotFoundError, NothingIndexedError
from diffgap_search.indexing import index_folder
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.vector_index import Published

# clips_dir: 5 discoverable files; windows: dog 1, rain 1, chirp 1, Yabc123 1, siren (25 s) 3 -> 7.
CLIP_FILES = ["Yabc123.mp3", "chirp.ogg", "dog_bark.wav", "rain.flac", "siren.wav"]


def rows(index_dir: Path) -> list[tuple[str, int, float, float]]:
    """(file name, segment id, start, end) of every segment, by segment id."""
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    out = conn.execute(
        "SELECT f.path, s.id, s.start_s, s.end_s FROM segments s JOIN files f ON f.id = s.file_id ORDER BY s.id"
    ).fetchall()
    conn.close()
    return [(os.path.basename(p), i, a, b) for p, i, a, b in out]


def run(clips: Path, index_dir: Path, cfg: EncoderConfig, loader: CountingLoader, **kw: object):  # type: ignore[no-untyped-def]
    return index_folder(clips, index_dir, load_encoder=loader, encoder_cfg=cfg, indexing_cfg=INLINE, **kw)  # type: ignore[arg-type]


def test_first_run_indexes_every_window_with_seconds(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig,
                                                     loader: CountingLoader) -> None:
    report = run(clips_dir, tmp_path / "ix", tiny_cfg, loader)
    assert (report.found, report.new, report.embedded_files, report.windows_embedded) == (5, 5, 5, 7)
    assert loader.loads == 1 and loader.windows == 7
    segs = rows(tmp_path / "ix")
    assert sorted((n, a, b) for n, _, a, b in segs) == [
        ("Yabc123.mp3", 0.0, pytest.approx(1.5, abs=0.05)),
        ("chirp.ogg", 0.0, pytest.approx(2.0, abs=1e-3)),
        ("dog_bark.wav", 0.0, 3.0),
        ("rain.flac", 0.0, 2.0),
        ("siren.wav", 0.0, 10.0),
        ("siren.wav", 10.0, 20.0),
        ("siren.wav", 15.0, 25.0),  # the last window ends at the clip's end
    ]
    with Catalog.open(tmp_path / "ix") as cat:
        pub = Published.read(cat, "audio")
        assert pub is not None and (pub.count, pub.generation, pub.kind) == (7, 1, "flat")
        caps = {os.path.basename(f.path): cat.captions_of([f.id]).get(f.id, []) for f in cat.files()}
    assert caps == {
        "Yabc123.mp3": ["birds sing in the morning", "a bird chirps"],
        "chirp.ogg": [],
        "dog_bark.wav": ["a dog barks", "the dog barks twice"],
        "rain.flac": ["rain falling", "rain on a roof"],
        "siren.wav": ["a siren wails", "an ambulance passes", "a long siren", "a siren in the street"],
    }


def test_second_run_embeds_nothing_and_loads_no_model(indexed: tuple[Path, Path], tiny_cfg: EncoderConfig,
                                                      loader: CountingLoader) -> None:
    clips, index_dir = indexed
    before = rows(index_dir)
    report = run(clips, index_dir, tiny_cfg, loader)
    assert (report.unchanged, report.embedded_files, report.windows_embedded) == (5, 0, 0)
    assert loader.loads == 0
    assert rows(index_dir) == before


def test_changed_deleted_renamed_and_copied_files(indexed: tuple[Path, Path], tiny_cfg: EncoderConfig,
                                                  loader: CountingLoader) -> None:
    clips, index_dir = indexed
    before = {n: i for n, i, _, _ in rows(index_dir)}
    write_tone(clips / "dog_bark.wav", 300.0, 4.0, sr=16_000)           # changed content
    (clips / "rain.flac").unlink()                                       # deleted
    (clips / "birds" / "chirp.ogg").rename(clips / "chirp_moved.ogg")    # renamed
    shutil.copy(clips / "long" / "siren.wav", clips / "siren_copy.wav")  # same content, new path
    os.utime(clips / "birds" / "Yabc123.mp3", ns=(1, 1))                 # touched, same content
    report = run(clips, index_dir, tiny_cfg, loader)
    assert (report.changed, report.new, report.deleted, report.renamed, report.copied, report.unchanged) == (
        1, 0, 1, 1, 1, 2)
    assert loader.windows == 1  # only the changed dog_bark.wav was embedded
    after = rows(index_dir)
    names = [n for n, _, _, _ in after]
    assert "rain.flac" not in names and "chirp.ogg" not in names
    assert {i for n, i, _, _ in after if n == "chirp_moved.ogg"} == {before["chirp.ogg"]}  # same segment id
    assert [(a, b) for n, _, a, b in after if n == "siren_copy.wav"] == [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]
    assert [(a, b) for n, _, a, b in after if n == "dog_bark.wav"] == [(0.0, 4.0)]
    with Catalog.open(index_dir) as cat:
        pub = Published.read(cat, "audio")
        assert pub is not None and pub.count == 9 == cat.count_vectors("audio")
        ids, vecs = next(cat.read_vectors("audio"))
    siren = [i for n, i, _, _ in after if n == "siren.wav"]
    copy = [i for n, i, _, _ in after if n == "siren_copy.wav"]
    np.testing.assert_array_equal(vecs[np.searchsorted(ids, siren)], vecs[np.searchsorted(ids, copy)])


def test_bad_files_are_recorded_and_the_run_goes_on(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig,
                                                    loader: CountingLoader) -> None:
    (clips_dir / "broken.wav").write_text("not audio at all")
    (clips_dir / "empty.flac").write_bytes(b"")
    report = run(clips_dir, tmp_path / "ix", tiny_cfg, loader)
    assert report.embedded_files == 5
    assert sorted(os.path.basename(p) for p, _ in report.failed) == ["broken.wav", "empty.flac"]
    assert all(reason and "\n" not in reason for _, reason in report.failed)
    with Catalog.open(tmp_path / "ix") as cat:
        assert sorted(os.path.basename(f.path) for f in cat.files(status="error")) == ["broken.wav", "empty.flac"]
    again = run(clips_dir, tmp_path / "ix", tiny_cfg, loader)
    assert (again.previously_failed, again.failed) == (2, [])
    retried = run(clips_dir, tmp_path / "ix", tiny_cfg, loader, retry_failed=True)
    assert len(retried.failed) == 2


def test_nothing_indexable_raises_with_report(tmp_path: Path, tiny_cfg: EncoderConfig, loader: CountingLoader) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.wav").write_text("text")
    with pytest.raises(NothingIndexedError, match=r"none of the 1 files under .*bad could be indexed") as info:
        run(folder, tmp_path / "ix", tiny_cfg, loader)
    assert len(info.value.report.failed) == 1  # type: ignore[attr-defined]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NothingIndexedError, match="no audio or video files found under"):
        run(empty, tmp_path / "ix2", tiny_cfg, loader)


def test_missing_folder(tmp_path: Path, tiny_cfg: EncoderConfig, loader: CountingLoader) -> None:
    with pytest.raises(InputNotFoundError, match="no such file or folder"):
        run(tmp_path / "absent", tmp_path / "ix", tiny_cfg, loader)


def test_other_window_settings_are_refused(indexed: tuple[Path, Path], tiny_cfg: EncoderConfig,
                                           loader: CountingLoader) -> None:
    clips, index_dir = indexed
    with pytest.raises(IncompatibleIndexError, match=r"built with 10 s windows, hop 10 s at 48000 Hz, not 5 s / 5 s"):
        run(clips, index_dir, tiny_cfg, loader, window_cfg=WindowConfig(window_s=5.0, hop_s=5.0))


def test_other_model_weights_are_refused(indexed: tuple[Path, Path], tmp_path: Path, loader: CountingLoader) -> None:
    from fixtures_models import make_tiny_clap

    clips, index_dir = indexed
    other = make_tiny_clap(tmp_path / "other-model", seed=1)
    write_tone(clips / "new.wav", 100.0, 1.0)
    with pytest.raises(IncompatibleIndexError, match=r"was built with model .* has other weights"):
        run(clips, index_dir, EncoderConfig(model=str(other), device="cpu"), loader)


def test_busy_index_is_refused(indexed: tuple[Path, Path], tiny_cfg: EncoderConfig, loader: CountingLoader) -> None:
    clips, index_dir = indexed
    with writer_lock(index_dir):
        with pytest.raises(IndexBusyError, match=r"is busy: another dgsearch process \(pid \d+\)"):
            run(clips, index_dir, tiny_cfg, loader)


def test_worker_processes_give_the_same_index(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    a = index_folder(clips_dir, tmp_path / "a", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                     indexing_cfg=INLINE)
    b = index_folder(clips_dir, tmp_path / "b", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                     indexing_cfg=IndexingConfig(decode_workers=1, files_per_batch=2))
    assert a.windows_embedded == b.windows_embedded == 7
    with Catalog.open(tmp_path / "a") as ca, Catalog.open(tmp_path / "b") as cb:
        (ia, va), (ib, vb) = next(ca.read_vectors("audio")), next(cb.read_vectors("audio"))
        pa = {f.id: os.path.basename(f.path) for f in ca.files()}
        pb = {f.id: os.path.basename(f.path) for f in cb.files()}
    assert sorted(pa.values()) == sorted(pb.values())
    np.testing.assert_allclose(np.sort(va, axis=0), np.sort(vb, axis=0), atol=1e-6)


def test_a_run_after_the_last_window_was_deleted_leaves_the_faiss_file_alone(
        indexed: tuple[Path, Path], tiny_cfg: EncoderConfig, loader: CountingLoader) -> None:
    """Segment ids are never reused, so the published highest id stays above the catalog's once the last window
    is deleted; that is no reason to publish again (it was, at every run and every look of --watch)."""
    clips, index_dir = indexed
    last = max(rows(index_dir), key=lambda r: r[1])[0]
    next(clips.rglob(last)).unlink()
    run(clips, index_dir, tiny_cfg, loader)
    with Catalog.open(index_dir) as cat:
        pub = Published.read(cat, "audio")
        assert pub is not None and pub.max_id > cat.max_segment_id("audio") and pub.count == cat.count_vectors("audio")
    files = sorted(p.name for p in index_dir.glob("*.faiss"))
    report = run(clips, index_dir, tiny_cfg, loader)
    assert (report.embedded_files, report.deleted) == (0, 0)
    with Catalog.open(index_dir) as cat:
        assert Published.read(cat, "audio") == pub
    assert sorted(p.name for p in index_dir.glob("*.faiss")) == files


def test_a_space_marked_for_rebuild_is_published_again_and_the_mark_cleared(
        indexed: tuple[Path, Path], tiny_cfg: EncoderConfig, loader: CountingLoader) -> None:
    """A writer killed between replacing a space's vectors and publishing leaves the mark: the next run
    rebuilds that space even though its count and ids match."""
    clips, index_dir = indexed
    with Catalog.open(index_dir) as cat:
        before = Published.read(cat, "audio")
        cat.set_meta({"rebuild_faiss": ["audio"]})
    run(clips, index_dir, tiny_cfg, loader)
    with Catalog.open(index_dir) as cat:
        after = Published.read(cat, "audio")
        assert before is not None and after is not None and after.generation == before.generation + 1
        assert cat.get_meta("rebuild_faiss") == []
