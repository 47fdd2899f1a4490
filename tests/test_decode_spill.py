"""A decode worker's large buffers reach the indexing process through a memory file (``indexing/spill.py``),
bit for bit, through a real spawned worker; where no memory file can be had, through the pipe as before."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import pool_tasks
from diffgap_search.indexing import pool, spill
from diffgap_search.indexing.pool import ordered_map


def expected(i: int) -> dict:
    return pool_tasks.windows(i)


def same(a: dict, b: dict) -> bool:
    return (a["i"] == b["i"] and len(a["windows"]) == len(b["windows"])
            and all(np.array_equal(x, y) for x, y in zip(a["windows"], b["windows"]))
            and np.array_equal(a["seconds"], b["seconds"]) and np.array_equal(a["frames"], b["frames"]))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_result_round_trips_through_the_memory_file_bit_for_bit() -> None:
    into = spill.open_spill()
    assert into is not None
    try:
        result = expected(2)
        message = spill.spill(result, into)
        assert isinstance(message, spill.Spilled)
        # the three windows (1.9 MB each) went to the file; seconds (24 B) and frames (36 kB) stayed in the message
        assert message.result["windows"] == [spill.InFile(k * 1_920_000, "<f4", (480_000,)) for k in range(3)]
        assert message.result["seconds"] is result["seconds"] and message.result["frames"] is result["frames"]
        assert os.fstat(into.fd).st_size == 5_760_000
        back = spill.unspill(message, into)
        assert same(back, result)
        assert all(w.flags.writeable for w in back["windows"])
    finally:
        spill.close_spill(into)


def test_a_result_without_large_buffers_or_without_a_file_goes_as_it_is() -> None:
    small = {"seconds": np.arange(3.0)}
    into = spill.open_spill()
    try:
        assert spill.spill(small, into) is small
    finally:
        spill.close_spill(into)
    big = expected(0)
    assert spill.spill(big, None) is big
    broken = spill.SpillFd(os.open(os.devnull, os.O_RDONLY))  # a write fails: the pipe takes the result
    try:
        assert spill.spill(big, broken) is big
    finally:
        spill.close_spill(broken)


def test_spawned_workers_hand_their_arrays_over_through_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    read = []
    real = pool.unspill
    monkeypatch.setattr(pool, "unspill", lambda m, f: read.append(len(m.result["windows"])) or real(m, f))
    list(ordered_map(pool_tasks.task, range(1), workers=1, on_lost=pool_tasks.lost))  # spawn's one-time pipe
    before = open_fds()
    results = list(ordered_map(pool_tasks.windows, range(6), workers=2, on_lost=pool_tasks.lost))
    assert [r["i"] for r in results] == list(range(6))
    assert all(same(r, expected(i)) for i, r in enumerate(results))
    assert sorted(read) == [1, 2, 3, 4, 5, 6]  # every result's windows came through a memory file
    assert open_fds() == before  # the files are closed with their workers


def test_without_memory_files_the_pipe_carries_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "open_spill", lambda: None)
    results = list(ordered_map(pool_tasks.windows, range(4), workers=1, on_lost=pool_tasks.lost))
    assert all(same(r, expected(i)) for i, r in enumerate(results))


def test_a_decoded_file_keeps_its_dataclasses_and_its_small_arrays(tmp_path: Path) -> None:
    """``Decoded`` and ``SegmentData`` (frozen dataclasses) come back as themselves, the windows equal."""
    from diffgap_search.indexing.decode import Decoded, SegmentData

    rng = np.random.default_rng(1)
    segs = [SegmentData(float(k), float(k + 10), rng.standard_normal(480_000).astype(np.float32), None)
            for k in (0, 10)]
    segs.append(SegmentData(20.0, 21.0, np.zeros(100, np.float32), None))  # a short window: stays in the message
    decoded = Decoded(tmp_path / "a.wav", segs, True)
    into = spill.open_spill()
    try:
        message = spill.spill(decoded, into)
        assert [type(s.audio).__name__ for s in message.result.segments] == ["InFile", "InFile", "ndarray"]
        back = spill.unspill(message, into)
    finally:
        spill.close_spill(into)
    assert isinstance(back, Decoded) and back.path == decoded.path and back.duration_s == 21.0
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(back.segments, segs))
