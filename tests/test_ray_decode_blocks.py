"""What a Ray decode task yields (``ray_engine/work.py``), without a Ray runtime: the blocks of rows of its files
(a short file's end row rides in its last block of windows, so a file of up to 8 windows is one block, and short
files of one task share blocks of up to 8 windows), how many files a task takes, and the torch threads an
embedding actor without a GPU takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_media import write_tone

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.encoders.runtime import available_cpus, limit_cpu_threads
from diffgap_search.indexing.ray_engine.rows_codec import pack, unpack
from diffgap_search.indexing.ray_engine.driver import files_per_task
from diffgap_search.indexing.ray_engine.work import CHUNK_WINDOWS, END, FILES_PER_TASK, FileEnd, decode_rows

WINDOW = WindowConfig(window_s=2.0, hop_s=2.0, sample_rate=8_000)


def _blocks(path: Path, file: int = 3) -> list[tuple[list[int], list[object]]]:
    batch = {"file": np.array([file], dtype=np.int64),
             "task": np.array([pack((path, "audio", WINDOW, VideoConfig(), 1_000))], dtype=object)}
    out = []
    for block in decode_rows(batch):
        assert set(block["file"].tolist()) == {file}
        out.append((block["seq"].tolist(), [unpack(p) for p in block["payload"]]))
    return out


def test_a_short_file_is_one_block_its_end_row_last(tmp_path: Path) -> None:
    blocks = _blocks(write_tone(tmp_path / "a.wav", 330.0, 6.0, sr=8_000))
    assert [seqs for seqs, _ in blocks] == [[0, 1, 2, END]]
    payloads = blocks[0][1]
    assert [p[:2] for p in payloads[:3]] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]  # type: ignore[index]
    end = payloads[3]
    assert isinstance(end, FileEnd) and (end.windows, end.has_audio, end.error) == (3, True, None)


def test_a_file_of_more_windows_than_a_block_ends_in_its_last_block(tmp_path: Path) -> None:
    blocks = _blocks(write_tone(tmp_path / "b.wav", 220.0, 20.0, sr=8_000))  # 10 windows
    assert CHUNK_WINDOWS == 8
    assert [seqs for seqs, _ in blocks] == [list(range(8)), [8, 9, END]]
    assert blocks[1][1][2] == FileEnd(10, True, blocks[1][1][2].tags)  # type: ignore[union-attr]


def test_a_bad_file_is_one_block_of_its_end_row_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    blocks = _blocks(tmp_path / "broken.wav")
    assert [seqs for seqs, _ in blocks] == [[END]]
    end = blocks[0][1][0]
    assert isinstance(end, FileEnd) and end.windows == 0 and end.error is not None and end.error != ""


def test_a_task_of_several_short_files_shares_blocks_of_at_most_a_chunk(tmp_path: Path) -> None:
    """Four 3-window files in one task: two blocks of two files each (3 + 3 <= 8 windows, a third would pass 8),
    each file's end row right after its windows."""
    paths = [write_tone(tmp_path / f"{i}.wav", 220.0 + 20 * i, 6.0, sr=8_000) for i in range(4)]
    batch = {"file": np.array([10, 11, 12, 13], dtype=np.int64),
             "task": np.array([pack((p, "audio", WINDOW, VideoConfig(), 1_000)) for p in paths], dtype=object)}
    blocks = [(block["file"].tolist(), block["seq"].tolist()) for block in decode_rows(batch)]
    assert blocks == [([10] * 4 + [11] * 4, [0, 1, 2, END] * 2), ([12] * 4 + [13] * 4, [0, 1, 2, END] * 2)]


def test_files_per_task_up_to_four_while_every_cpu_gets_a_task() -> None:
    assert FILES_PER_TASK == 4
    assert [files_per_task(files, cpus) for files, cpus in [(200, 2), (7, 2), (5, 16), (0, 2), (64, 16)]] == [
        4, 3, 1, 1, 4]


@pytest.fixture
def torch_threads_restored() -> object:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_an_actor_without_a_gpu_takes_the_threads_asked_at_most_its_cpus(torch_threads_restored: object) -> None:
    assert limit_cpu_threads(1) == 1 and torch.get_num_threads() == 1
    assert limit_cpu_threads(10_000) == available_cpus() == torch.get_num_threads()
    assert limit_cpu_threads(0) == 1  # never below one
