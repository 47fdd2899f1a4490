"""Search against a brute-force oracle over the catalog's vectors, with exact ids and orders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from fixtures_media import chirp, noise, tone, write_audio

from diffgap_search.config import EncoderConfig, SearchConfig, SearchMode
from diffgap_search.indexing import index_folder
from diffgap_search.errors import BridgeUnavailableError, InputNotFoundError, UsageError
from diffgap_search.search import Query, Searcher
from diffgap_search.store.catalog import Catalog, SegmentInput


def oracle(index_dir: Path, q: np.ndarray, group: bool) -> list[tuple[int, float]]:
    """(segment id, score) by brute force: max over query rows, best window per file, ties by path/start."""
    with Catalog.open(index_dir) as cat:
        ids, vecs = next(cat.read_vectors("audio"))
        rows = cat.hit_rows(ids.tolist())
    scores = (q @ vecs.T).max(axis=0)
    ranked = sorted(((float(s), int(i)) for s, i in zip(scores, ids)),
                    key=lambda t: (-t[0], rows[t[1]].path, rows[t[1]].start_s))
    out, seen = [], set()
    for s, i in ranked:
        if group and rows[i].file_id in seen:
            continue
        seen.add(rows[i].file_id)
        out.append((i, s))
    return out


@pytest.mark.parametrize("group", [True, False])
def test_text_query_matches_brute_force(indexed: tuple[Path, Path], group: bool) -> None:
    _, index_dir = indexed
    with Searcher(index_dir, CountingLoader()) as s:
        q = s.embed_query(Query(text="a dog barks"))
        result = s.search(Query(text="a dog barks"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=10, group_by_file=group))
    expected = oracle(index_dir, q, group)
    assert [h.segment_id for h in result.hits] == [i for i, _ in expected][:10]
    assert [h.score for h in result.hits] == pytest.approx([s for _, s in expected][:10], abs=1e-5)
    assert len(result.hits) == (5 if group else 7)


def test_audio_query_finds_itself_first_with_its_window(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    sr = 16_000
    parts = [noise(10.0, sr, seed=5), tone(330.0, 10.0, sr), chirp(5.0, sr)]
    write_audio(clips_dir / "medley.wav", np.concatenate(parts), sr)
    index_folder(clips_dir, tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    with Searcher(tmp_path / "ix", CountingLoader()) as s:
        result = s.search(Query(audio=clips_dir / "long" / "siren.wav"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=3))
        span = s.search(Query(audio=clips_dir / "medley.wav", start_s=10.0, end_s=20.0),
                        SearchConfig(mode=SearchMode.SEMANTIC, top_k=2, group_by_file=False))
    top = result.hits[0]
    assert (os.path.basename(top.path), top.score) == ("siren.wav", pytest.approx(1.0, abs=1e-5))
    assert [(os.path.basename(h.path), h.start_s, h.end_s) for h in span.hits][0] == ("medley.wav", 10.0, 20.0)
    assert span.hits[0].score == pytest.approx(1.0, abs=1e-5) and span.hits[1].score < 0.9999


def test_same_query_same_order_every_time(indexed: tuple[Path, Path]) -> None:
    _, index_dir = indexed
    with Searcher(index_dir, CountingLoader()) as s:
        runs = [[(h.segment_id, h.score) for h in s.search(Query(text="rain"), SearchConfig(mode=SearchMode.SEMANTIC)).hits] for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_filters(indexed: tuple[Path, Path]) -> None:
    _, index_dir = indexed
    with Searcher(index_dir, CountingLoader()) as s:
        q = Query(text="birds")
        all_hits = s.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=10)).hits
        only_birds = s.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=10, path_glob="*/birds/*")).hits
        by_name = s.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=10, path_glob="*.wav")).hits
        video = s.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=10, kind="video")).hits
        cut = all_hits[2].score
        above = s.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=10, min_score=cut)).hits
        two = s.search(q, SearchConfig(mode=SearchMode.SEMANTIC, top_k=2)).hits
    assert sorted(os.path.basename(h.path) for h in only_birds) == ["Yabc123.mp3", "chirp.ogg"]
    assert sorted(os.path.basename(h.path) for h in by_name) == ["dog_bark.wav", "siren.wav"]
    assert video == []
    assert [h.segment_id for h in above] == [h.segment_id for h in all_hits[:3]]
    assert [h.segment_id for h in two] == [h.segment_id for h in all_hits[:2]]
    assert all_hits[0].caption is not None or all_hits[0].path.endswith("chirp.ogg")


def test_unpublished_vectors_are_searched_and_deleted_ones_never_returned(indexed: tuple[Path, Path]) -> None:
    """A reader during an indexing run: new committed vectors are found, deleted files never named."""
    _, index_dir = indexed
    with Searcher(index_dir, CountingLoader()) as s:
        q = s.embed_query(Query(text="a brand new sound"))
        with Catalog.open(index_dir) as writer:
            new_id = writer.put_file(path_key=b"/x/new.wav", path="/x/new.wav", kind="audio", size=1, mtime_ns=1,
                                     sha256="n", segments=[SegmentInput(0.0, 1.0, {"audio": q[0]})])
            gone = writer.file_by_key(next(f.path_key for f in writer.files() if f.path.endswith("rain.flac")))
            assert gone is not None
            writer.delete_files([gone.id])
        hits = s.search(Query(text="a brand new sound"), SearchConfig(mode=SearchMode.SEMANTIC, top_k=10)).hits
    assert hits[0].path == "/x/new.wav" and hits[0].file_id == new_id
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert not any(h.path.endswith("rain.flac") for h in hits)
    assert len(hits) == 5


def test_query_errors(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    _, index_dir = indexed
    with Searcher(index_dir, CountingLoader()) as s:
        with pytest.raises(UsageError, match="the query is empty"):
            s.search(Query(text="   "))
        with pytest.raises(UsageError, match="give exactly one query"):
            s.search(Query(text="a", audio=tmp_path / "x.wav"))
    with pytest.raises(UsageError, match="give exactly one query"):  # when made, before any search
        Query(text="a", audio=tmp_path / "x.wav")
    with pytest.raises(UsageError, match="give exactly one query"):
        Query()
        with pytest.raises(InputNotFoundError, match="query file not found: .*missing.wav"):
            s.search(Query(audio=tmp_path / "missing.wav"))
        with pytest.raises(InputNotFoundError, match="query file not found: .*missing.mp4"):
            s.search(Query(video=tmp_path / "missing.mp4"))
        (tmp_path / "in.mp4").write_bytes(b"\0")
        with pytest.raises(BridgeUnavailableError, match="needs a DiffGAP bridge"):
            s.search(Query(video=tmp_path / "in.mp4"))
