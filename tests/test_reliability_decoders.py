"""A crashing or hanging decoder costs one file, not the run; no decoder process outlives ``dgsearch index``.

The real CLI runs in a subprocess over generated clips, with faults injected into its decode workers by
``fault_injection/sitecustomize.py`` (``DGS_DECODE_FAULT``): one file's worker segfaults, another's hangs
in native code holding the GIL, and a stand-in ``ffmpeg`` first on PATH never answers for an ``.m4a``.
Every process of a run carries a marker in its environment (workers and ffmpeg inherit it), so the
processes left behind are counted from ``/proc`` after a success, an error exit and a SIGKILL: zero.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from fixtures_media import write_tone
from process_watch import live_processes, proc_file
from reliability_helpers import VEC_TOL, DGProcess, Fault, build_corpus, dgsearch, oracle_from, read_state

from diffgap_search.config import EncoderConfig
from diffgap_search.indexing import index_folder
from diffgap_search.media.discover import discover

pytestmark = pytest.mark.slow

HANG_FFMPEG = """#!/bin/sh
echo $$ > "$DGS_FAKE_PID.tmp" && mv "$DGS_FAKE_PID.tmp" "$DGS_FAKE_PID"  # atomic: a reader never sees it empty
exec sleep 600
"""


def marked(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``DGS_PROC_MARKER=<marker>``."""
    needle = f"DGS_PROC_MARKER={marker}".encode()
    return [pid for pid, _ in live_processes() if needle in (proc_file(pid, "environ") or b"").split(b"\0")]


def left_behind(marker: str, timeout: float = 5.0) -> list[int]:
    """The marked processes still alive after up to ``timeout`` s (time for the kernel to reap them)."""
    deadline = time.monotonic() + timeout
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return marked(marker)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """8 one-second clips ``c00.wav`` … ``c07.wav`` (c02 and c05 in ``sub/``) and ``hung.m4a``."""
    folder = tmp_path / "clips"
    build_corpus(folder, n=8)
    (folder / "hung.m4a").write_bytes(b"\0" * 64)  # only the stand-in ffmpeg ever sees it
    return folder


@pytest.fixture
def hung_ffmpeg(tmp_path: Path) -> dict[str, str]:
    """Environment for a run whose ``ffmpeg`` is a stand-in that never answers (writes its pid first)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "ffmpeg").write_text(HANG_FFMPEG)
    (folder / "ffmpeg").chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "DGS_FAKE_PID": str(tmp_path / "ffmpeg.pid")}


def run_env(tmp_path: Path, faults: str, extra: dict[str, str], timeout_s: str = "") -> dict[str, str]:
    env = {"DGS_DECODE_FAULT": faults, "DGS_PROC_MARKER": str(tmp_path), **extra}
    if timeout_s:
        env["DGSEARCH_DECODE_TIMEOUT"] = timeout_s
    return env


def cli_args(folder: Path, index_dir: Path, model: Path) -> list[str | Path]:
    return ["index", folder, "--index", index_dir, "--model", model, "--workers", "2", "--batch-size", "4", "--json"]


def test_a_segfault_and_two_hangs_fail_three_files_and_the_run_goes_on(
        corpus: Path, hung_ffmpeg: dict[str, str], tmp_path: Path, tiny_clap_dir: Path) -> None:
    env = run_env(tmp_path, "segv:c02.wav,hang:c04.wav", hung_ffmpeg, timeout_s="3")
    code, out, err, proc = dgsearch(cli_args(corpus, tmp_path / "ix", tiny_clap_dir), tmp_path / "run", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert {f["path"]: f["error"] for f in report["failed"]} == {
        str(corpus / "sub" / "c02.wav"): "decoder crashed: signal 11 (SIGSEGV)",
        str(corpus / "c04.wav"): "decoder timed out after 3 s",
        str(corpus / "hung.m4a"): "decoder timed out after 3 s",  # its worker, and the ffmpeg under it, killed
    }
    assert (report["found"], report["embedded_files"], report["windows_embedded"]) == (9, 6, 6)
    # the segfaulting file was tried twice (a crash is retried once in a fresh worker), the hung one once
    assert sorted(e.split()[1] for e in proc.events() if e.startswith("decode_fault")) == ["hang", "segv", "segv"]
    assert left_behind(str(tmp_path), timeout=0.5) == []  # every worker stopped before dgsearch exited

    # the six files hold exactly a clean build's windows and vectors, committed in input order
    build_corpus(tmp_path / "clean", n=8)
    index_folder(tmp_path / "clean", tmp_path / "clean-ix", load_encoder=CountingLoader(), indexing_cfg=INLINE,
                 encoder_cfg=EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=4))
    oracle = oracle_from(tmp_path / "clean-ix")
    st = read_state(tmp_path / "ix")
    assert {p: s for p, (s, _) in st.files.items() if s != "ok"} == {
        str(corpus / "sub" / "c02.wav"): "error", str(corpus / "c04.wav"): "error", str(corpus / "hung.m4a"): "error"}
    ok = [p for p, (s, _) in st.files.items() if s == "ok"]
    for path in ok:
        expected = oracle[st.files[path][1]]  # type: ignore[index]
        assert [(s, e) for _, s, e in st.windows[path]] == [(s, e) for s, e, _ in expected]
        for (sid, _, _), (_, _, vec) in zip(st.windows[path], expected):
            np.testing.assert_allclose(st.vectors[sid], vec, rtol=0, atol=VEC_TOL)
    order = [str(f.path) for f in discover(corpus)]
    by_id = [path for path in _paths_by_id(tmp_path / "ix") if path in ok]
    assert by_id == [p for p in order if p in ok]
    assert st.meta["faiss.audio"]["count"] == 6


def _paths_by_id(index_dir: Path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return [p for (p,) in conn.execute("SELECT path FROM files ORDER BY id")]
    finally:
        conn.close()


def test_a_long_file_whose_stream_crashes_or_hangs_fails_alone(tmp_path: Path, tiny_clap_dir: Path) -> None:
    """Files longer than one decode task (33 windows) are streamed from a worker of their own: its crash or
    hang after the first window fails that file only."""
    folder = tmp_path / "clips"
    build_corpus(folder, n=3)
    for name in ("long1.wav", "long2.wav"):
        write_tone(folder / name, 220.0, 340.0, sr=8_000)  # 34 windows
    env = run_env(tmp_path, "stream-segv:long1.wav,stream-hang:long2.wav", {}, timeout_s="5")
    code, out, err, proc = dgsearch(cli_args(folder, tmp_path / "ix", tiny_clap_dir), tmp_path / "run", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert {f["path"]: f["error"] for f in report["failed"]} == {
        str(folder / "long1.wav"): "decoder crashed: signal 11 (SIGSEGV)",
        str(folder / "long2.wav"): "decoder timed out after 5 s",
    }
    assert (report["embedded_files"], report["windows_embedded"]) == (3, 3)
    assert sorted(e.split()[1] for e in proc.events() if e.startswith("decode_fault")) == ["hang", "segv"]
    assert left_behind(str(tmp_path), timeout=0.5) == []


def test_an_error_exit_leaves_no_worker(corpus: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    """A bug in decoding (an exception, not bad media) aborts the run while another worker hangs."""
    (corpus / "hung.m4a").unlink()
    env = run_env(tmp_path, "hang:c04.wav,raise:c06.wav", {})
    code, _, err, proc = dgsearch(cli_args(corpus, tmp_path / "ix", tiny_clap_dir), tmp_path / "run", env=env)
    assert code == 1, err
    assert err.strip().splitlines()[-1].startswith(
        "dgsearch: internal error: AssertionError: injected decoder bug on c06.wav")
    assert any(e.startswith("decode_fault hang c04.wav") for e in proc.events())
    assert left_behind(str(tmp_path), timeout=0.5) == []


def test_a_sigkill_leaves_no_worker_and_no_ffmpeg(corpus: Path, hung_ffmpeg: dict[str, str], tmp_path: Path,
                                                  tiny_clap_dir: Path) -> None:
    """SIGKILL of ``dgsearch`` while one worker hangs in native code (GIL held) and another waits on a hung
    ffmpeg: the kernel's parent-death signal takes the workers, and theirs takes the ffmpeg."""
    env = run_env(tmp_path, "hang:c04.wav", hung_ffmpeg)
    p = DGProcess(cli_args(corpus, tmp_path / "ix", tiny_clap_dir), tmp_path / "run", Fault(), env)
    pid_file = Path(hung_ffmpeg["DGS_FAKE_PID"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.proc.poll() is None:
        if pid_file.exists() and any(e.startswith("decode_fault hang") for e in p.events()):
            break
        time.sleep(0.05)
    assert p.proc.poll() is None, p.output()
    ffmpeg = int(pid_file.read_text())
    before = marked(str(tmp_path))
    assert p.proc.pid in before and ffmpeg in before and len(before) >= 4  # main, 2 workers, ffmpeg (+ tracker)
    p.kill()
    assert left_behind(str(tmp_path)) == []
