"""An indexing process's heap (``indexing/memory.py``): freed memory kept for reuse (measured by the kernel's
own page-fault count in a real process) and the guard that trims only when the heap has grown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffgap_search.indexing.memory import GROWTH_ALLOWED, HeapGuard, keep_freed_memory
from diffgap_search.libc import libc_function

# With glibc's malloc itself (as torch's CPU allocator uses it; NumPy asks for huge pages, which would hide the
# count): allocates, writes and frees 64 MiB three times; prints the minor page faults of the last two rounds.
_BLOCKS = """
import ctypes, json, resource
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
_FAULTS = """
import sys
from diffgap_search.indexing.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
""" + _BLOCKS + """
print(json.dumps({"kept": kept, "faults": faults[1:]}))
"""

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "clips"  # real recordings (CREDITS.md)
needs_glibc = pytest.mark.skipif(libc_function("mallopt") is None, reason="malloc is not glibc's here")


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@needs_glibc
def test_kept_memory_is_reused_without_page_faults() -> None:
    """Without it every 64 MiB block is a fresh mmap, faulted in page by page each time (16,384 pages of 4 KiB;
    at least 32 where the kernel gives every process huge pages); with it the second and third blocks reuse
    the first one's pages."""
    plain, kept = _faults("plain"), _faults("keep")
    assert kept["kept"] is True
    assert all(f >= 32 for f in plain["faults"]), plain
    assert all(f <= min(plain["faults"]) // 10 for f in kept["faults"]), (plain, kept)


# The same blocks on a thread other than the main one, as a Ray actor runs its methods (its own arena).
_ON_A_THREAD = """
import json, sys, threading
from diffgap_search.indexing.memory import keep_freed_memory
keep_freed_memory()
scope = {}
worker = threading.Thread(target=exec, args=(sys.argv[1], scope))
worker.start()
worker.join()
print(json.dumps(scope["faults"][1:]))
"""


def _thread_faults(env: dict[str, str]) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", _ON_A_THREAD, _BLOCKS], check=True, capture_output=True, text=True,
                         env={**clean, **env})
    return list(json.loads(out.stdout))


@needs_glibc
def test_an_actor_thread_reuses_kept_memory_only_in_the_actors_environment() -> None:
    """On a thread of its own (how Ray runs an actor's methods) keep_freed_memory is not enough: the thread's
    arena cannot hold a 64 MiB block, so each is a fresh mmap, faulted in again every time. The embedding
    actor's environment (``ray_engine.work.ACTOR_ENV``, one arena) puts them on the main heap, reused."""
    from diffgap_search.indexing.ray_engine.work import ACTOR_ENV

    own_arena, actor = _thread_faults({}), _thread_faults(ACTOR_ENV)
    assert all(f >= 32 for f in own_arena), own_arena
    assert all(f <= min(own_arena) // 10 for f in actor), (own_arena, actor)


# A fresh process (a test process's heap may hold free pages already): maps and reads a 64 MiB file, then
# writes 64 MiB into its heap; prints the guard's measure before, after the mapping and after the writing.
_MAPPED_THEN_HEAP = """
import json, mmap, sys
from diffgap_search.indexing.memory import anonymous_resident_bytes
size = 64 << 20
before = anonymous_resident_bytes()
with open(sys.argv[1], "rb") as fh, mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ) as mapped:
    assert sum(mapped[i] for i in range(0, size, 4096)) == size // 4096  # every page resident now
    mapped_file = anonymous_resident_bytes()
    heap = b"\\x02" * size
    written = anonymous_resident_bytes()
print(json.dumps([before, mapped_file, written, heap[-1]]))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="no /proc here")
def test_the_guard_counts_the_heap_not_mapped_files(tmp_path: Path) -> None:
    """A mapped file read through (as a Ray actor's input blocks from the object store) leaves the guard's
    measure where it was; the same 64 MiB written into the heap moves it by that much."""
    size = 64 << 20
    data = tmp_path / "blocks.bin"
    data.write_bytes(b"\x01" * size)
    out = subprocess.run([sys.executable, "-c", _MAPPED_THEN_HEAP, str(data)], check=True, capture_output=True,
                         text=True)
    before, mapped_file, written, last = json.loads(out.stdout)
    assert last == 2
    assert abs(mapped_file - before) < 8 << 20, (before, mapped_file)
    assert written - mapped_file >= size - (4 << 20), (mapped_file, written)


def test_the_guard_trims_past_the_working_set_plus_growth_and_measures_it_again_after_a_trim() -> None:
    sizes = iter([1000, 1050, 1100, 1101, 1200, 1319, 1320, None])
    guard = HeapGuard(keep=True, rss=lambda: next(sizes))
    assert GROWTH_ALLOWED == 0.10
    assert [guard.after_batch() for _ in range(4)] == [False, False, False, True]  # the first batch's 1000 + 10 %
    assert (guard.limit, guard.trims) == (None, 1)
    assert guard.after_batch() is False  # the batch after a trim: its 1200 is the working set now
    assert guard.limit == 1320
    assert [guard.after_batch() for _ in range(3)] == [False, False, True]  # None (no /proc): trimmed, as without the guard
    assert guard.trims == 2


def test_without_kept_memory_the_guard_trims_after_every_batch() -> None:
    guard = HeapGuard(keep=False, rss=lambda: 1)
    assert [guard.after_batch() for _ in range(3)] == [True, True, True]
    assert guard.limit is None


@needs_glibc
def test_keep_freed_memory_applies_once_per_process() -> None:
    out = subprocess.run([sys.executable, "-c", "from diffgap_search.indexing.memory import keep_freed_memory as k;"
                          " print(k(), k())"], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"]


_RUN_THEN_FAULTS = """
import sys
from pathlib import Path
from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing import index_folder
report = index_folder(Path(sys.argv[1]), Path(sys.argv[2]), encoder_cfg=EncoderConfig(model=sys.argv[3], device="cpu"),
                      load_encoder=lambda c: load_encoder(c, progress=False))
""" + _BLOCKS + """
print(json.dumps({"windows": report.windows_embedded, "second_block_faults": faults[1]}))
"""


@needs_glibc
def test_an_indexing_run_leaves_its_process_reusing_freed_memory(tmp_path, tiny_clap_dir) -> None:  # noqa: ANN001
    """``run_index`` applies ``keep_freed_memory`` to its process: after a real run (tiny CLAP, two WAVs) a
    freed 64 MiB block is reused without a page fault."""
    from fixtures_media import write_tone

    clips = tmp_path / "clips"
    clips.mkdir()
    write_tone(clips / "a.wav", 440.0, 2.0)
    write_tone(clips / "b.wav", 880.0, 3.0)
    out = subprocess.run([sys.executable, "-c", _RUN_THEN_FAULTS, str(clips), str(tmp_path / "index"), str(tiny_clap_dir)],
                         check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"windows": 2, "second_block_faults": 0}


_DECODE_THEN_FAULTS = """
import sys
from pathlib import Path
from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.indexing.decode import MAX_WINDOWS_PER_TASK, decode_task
decoded = decode_task((Path(sys.argv[1]), "audio", WindowConfig(), VideoConfig(), MAX_WINDOWS_PER_TASK))
""" + _BLOCKS + """
print(json.dumps({"windows": len(decoded.segments), "error": decoded.error, "second_block_faults": faults[1]}))
"""


@needs_glibc
def test_a_decode_worker_keeps_its_freed_memory_too() -> None:
    """``decode_task`` (what each decode worker runs per file) applies ``keep_freed_memory`` to its process: after
    decoding a real recording, a freed 64 MiB block is reused without a page fault (measured: 3.6 -> 3.0 CPU-s of
    decoding per 240 clips, ``benchmarks/bench_heap.py``)."""
    out = subprocess.run([sys.executable, "-c", _DECODE_THEN_FAULTS, str(EXAMPLES / "bell.ogg")],
                         check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"windows": 1, "error": None, "second_block_faults": 0}
