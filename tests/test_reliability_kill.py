"""kill -9 at seeded random moments, including inside a FAISS write, around ``os.replace`` and inside a
SQLite commit: the next ``dgsearch index`` always finishes, the index then equals a clean build, and no
more than the batch in flight was embedded twice.

The moments are reached deterministically with ``fault_injection/sitecustomize.py`` (the subprocess
pauses there and the test sends SIGKILL); the product code has no test hooks.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import (
    DGProcess,
    Fault,
    Oracle,
    build_corpus,
    check_complete,
    check_partial,
    dgsearch,
    index_args,
    oracle_from,
    read_state,
    write_clip,
)

from diffgap_search.config import EncoderConfig, IndexingConfig, SearchConfig, SearchMode
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing import index_folder
from diffgap_search.search import Searcher

pytestmark = pytest.mark.slow

N_CLIPS = 20
BATCH = 2  # windows per encoder call and per commit: the most a kill may waste
CHANGED = [1, 4, 7, 10]  # clips whose content changes in the second phase


def _oracle(tmp_path: Path, model: Path) -> Oracle:
    """A clean in-process build of every content the test will use (v0 of all clips, v1 of CHANGED)."""
    src = tmp_path / "oracle_clips"
    build_corpus(src / "v0", N_CLIPS)
    for i in CHANGED:
        write_clip(src / "v1" / f"c{i:02d}.wav", i, variant=1)
    ix = tmp_path / "oracle_ix"
    cfg = EncoderConfig(model=str(model), device="cpu", batch_size=8)
    index_folder(src, ix, load_encoder=lambda c: load_encoder(c, progress=False), encoder_cfg=cfg,
                 indexing_cfg=IndexingConfig(decode_workers=0))
    return oracle_from(ix)


def _pending(index_dir: Path, clips: Path) -> int:
    """Windows still to embed: clips (one window each, distinct contents) whose content the catalog does
    not hold under any path (a renamed or copied file keeps or reuses its vectors)."""
    on_disk = {hashlib.sha256(p.read_bytes()).hexdigest() for p in clips.rglob("*.wav")}
    if not (index_dir / "catalog.sqlite").exists():
        return len(on_disk)
    held = {sha for status, sha in read_state(index_dir).files.values() if status == "ok"}
    return len(on_disk - held)


def _readers_still_answer(index_dir: Path) -> None:
    """A reader opens the killed index and every hit names a window of the catalog with its true score."""
    st = read_state(index_dir)
    if "encoder" not in st.meta or not st.vectors:
        return
    with Searcher(index_dir, load_encoder) as s:
        q = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
        q /= np.linalg.norm(q)
        hits, _, _ = s.search_vectors(q, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=100, group_by_file=False))
    assert len(hits) == len(st.vectors)
    for h in hits:
        assert (h.segment_id, h.start_s, h.end_s) in st.windows[h.path]
        assert h.score == pytest.approx(float(q[0] @ st.vectors[h.segment_id]), abs=1e-5)


def _kill_chain(rng: random.Random, clips: Path, ix: Path, model: Path, work: Path, oracle: Oracle,
                kills: list[str], min_left: int, max_kills: int) -> None:
    """Kill runs at random moments while more than ``min_left`` windows are left (at most ``max_kills``
    times), then finish the index with a run that is not killed."""
    for _ in range(max_kills):
        left = _pending(ix, clips)
        if left <= min_left:
            break
        points = ["commit", "committed", "embed", "embed", "committed"] + (["time"] if left >= 8 else [])
        point = rng.choice(points)
        if point == "time":
            p = DGProcess(index_args(clips, ix, model, BATCH), work / f"k{len(kills)}")
            delay = rng.uniform(0.5, 6.0)
            try:
                p.wait(delay)
            except Exception:  # noqa: BLE001 - still running: the moment has come
                pass
            moment = f"time:{delay:.1f}s"
        else:
            nth = rng.randint(1, max(1, min(3, left // BATCH - 1)))
            p = DGProcess(index_args(clips, ix, model, BATCH), work / f"k{len(kills)}", Fault(pause=f"{point}:{nth}"))
            assert p.wait_paused(), p.output()
            moment = f"{point}:{nth}"
        if p.proc.poll() is not None:
            raise AssertionError(f"run ended before the kill at {moment}: {p.output()}")
        p.kill()
        kills.append(moment)
        if not (ix / "catalog.sqlite").exists():
            continue
        check_partial(ix, oracle)
        _readers_still_answer(ix)
        stored = left - _pending(ix, clips)
        wasted = p.windows_embedded() - stored
        assert 0 <= wasted <= BATCH, (moment, p.events())
    left = _pending(ix, clips)
    code, out, err, p = dgsearch(index_args(clips, ix, model, BATCH), work / f"final{len(kills)}")
    assert code == 0, err
    report = json.loads(out)
    assert report["windows_embedded"] == p.windows_embedded() == left  # nothing committed re-embedded
    check_complete(ix, oracle, clips)


def test_kill_9_at_random_moments_resumes_to_a_clean_build(tmp_path: Path, tiny_clap_dir: Path) -> None:
    oracle = _oracle(tmp_path, tiny_clap_dir)
    rng = random.Random(20_250_505)
    clips, ix, work = tmp_path / "clips", tmp_path / "ix", tmp_path / "work"
    build_corpus(clips, N_CLIPS)
    kills: list[str] = []

    # 1. a fresh index, killed again and again while embedding
    _kill_chain(rng, clips, ix, tiny_clap_dir, work, oracle, kills, min_left=2 * BATCH, max_kills=7)
    assert len(kills) >= 5

    # 2. changed content (the old windows are replaced in the same transaction) and renames
    for i in CHANGED:
        old = next(clips.rglob(f"c{i:02d}.wav"))
        write_clip(old, i, variant=1)
    shutil.move(clips / "c00.wav", clips / "renamed00.wav")
    shutil.move(clips / "sub" / "c02.wav", clips / "moved02.wav")
    n_kills = len(kills)
    _kill_chain(rng, clips, ix, tiny_clap_dir, work, oracle, kills, min_left=1, max_kills=3)
    assert len(kills) > n_kills

    # 3. the publishing moments, each followed at once by a run to completion
    gone = sorted(clips.rglob("*.wav"))
    for k, point in enumerate(["faiss_write:1", "replace:1", "replaced:1", "commit:2", "unlink:1"]):
        gone[k].unlink()  # a deletion: the next run publishes a new generation without loading a model
        p = DGProcess(index_args(clips, ix, tiny_clap_dir, BATCH), work / f"pub{k}", Fault(pause=point))
        assert p.wait_paused(), p.output()
        p.kill()
        kills.append(point)
        check_partial(ix, oracle)
        _readers_still_answer(ix)
        code, out, err, p = dgsearch(index_args(clips, ix, tiny_clap_dir, BATCH), work / f"pubdone{k}")
        assert code == 0, err
        assert json.loads(out)["windows_embedded"] == 0
        check_complete(ix, oracle, clips)

    assert len(kills) >= 10, kills
    print(f"survived {len(kills)} kills: {kills}")
