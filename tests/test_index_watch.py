"""``dgsearch index FOLDER --watch``: a folder that keeps changing stays indexed, with the models loaded once.

A real ``dgsearch`` process watching a real folder (files copied in, renamed, deleted; Ctrl-C as a terminal
sends it), and the library's watch loop driven in process with the real runner, a real catalog and a lock
held by this process as another writer would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_runner import dg
from fixtures_index import INLINE, CountingLoader
from fixtures_media import write_tone

from diffgap_search.config import EncoderConfig
from diffgap_search.indexing import IndexReport, index_folder
from diffgap_search.indexing.watch import remembered, watch
from diffgap_search.media.discover import DiscoveredFile
from diffgap_search.media.listing import split_settled
from diffgap_search.store.lock import writer_lock

DGSEARCH = Path(sys.executable).with_name("dgsearch")


def aged(path: Path, seconds: float = 60.0) -> Path:
    """``path`` with its modification time ``seconds`` in the past (settled)."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_split_settled_waits_for_recent_files_but_not_for_a_clock_ahead() -> None:
    now = 1_000_000 * 10**9
    files = [DiscoveredFile(Path(f"/l/{name}.wav"), "audio", 1, now + offset)
             for name, offset in (("old", -10 * 10**9), ("writing", -2 * 10**9), ("ahead", 30 * 10**9))]
    settled, deferred = split_settled(files, 5.0, now_ns=now)
    assert [f.path.name for f in settled] == ["old.wav", "ahead.wav"]
    assert [f.path.name for f in deferred] == ["writing.wav"]
    assert split_settled(files, 0.0, now_ns=now) == (files, [])


def test_a_file_still_being_written_waits_and_an_indexed_one_keeps_its_vectors(
        clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    for p in clips_dir.rglob("*"):
        aged(p)
    ix = tmp_path / "ix"
    first = index_folder(clips_dir, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE,
                         settle_s=5.0)
    assert (first.found, first.new, first.deferred) == (5, 5, 0)
    shutil.copyfile(clips_dir / "rain.flac", clips_dir / "rain copy.flac")  # being copied in: mtime now
    (clips_dir / "dog_bark.wav").write_bytes((clips_dir / "dog_bark.wav").read_bytes())  # rewritten in place
    second = index_folder(clips_dir, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE,
                          settle_s=5.0)
    assert (second.found, second.deferred, second.new, second.changed, second.deleted, second.kept_unreadable) == (
        6, 2, 0, 0, 0, 0)
    assert "dog_bark.wav" in dg("query", "dog", "--index", ix, "--mode", "keyword", "--paths").stdout
    third = index_folder(clips_dir, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    # the copy is a copy (its vectors copied); dog_bark.wav has the same bytes under a new mtime: not re-embedded
    assert (third.deferred, third.copied, third.unchanged, third.windows_embedded) == (0, 1, 5, 0)


def test_the_watch_loads_its_models_once_and_takes_in_each_change(
        clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    loader = CountingLoader()
    load = remembered(loader)
    ix, reports, stop = tmp_path / "ix", [], threading.Event()
    changes = [lambda: write_tone(clips_dir / "new tone.wav", 523.0, 2.0),
               lambda: (clips_dir / "birds" / "chirp.ogg").unlink(),
               lambda: (clips_dir / "rain.flac").write_bytes(b"not audio any more"),
               stop.set]
    runs = 0

    def run_once(first: bool) -> IndexReport:
        nonlocal runs
        assert first is (runs == 0)
        runs += 1
        return index_folder(clips_dir, ix, load_encoder=load, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)

    def on_report(report: IndexReport) -> None:
        reports.append(report)
        changes.pop(0)()

    watch(run_once, interval_s=0.01, on_report=on_report, on_note=lambda text: pytest.fail(text), stop=stop)
    assert [(r.new, r.changed, r.deleted, r.copied, len(r.failed)) for r in reports] == [
        (5, 0, 0, 0, 0), (1, 0, 0, 0, 0), (0, 0, 1, 0, 0), (0, 1, 0, 0, 1)]
    assert loader.loads == 1 and runs == 4  # three runs embedded (the last failed its file), one model load
    assert reports[3].failed[0][0].endswith("rain.flac")


def test_a_busy_index_is_noted_once_and_tried_again(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    ix, notes, reports, stop = tmp_path / "ix", [], [], threading.Event()
    holder = writer_lock(ix)
    holder.__enter__()  # another writer (this process) holds the index
    tries = 0

    def run_once(first: bool) -> IndexReport:
        nonlocal tries
        tries += 1
        assert first  # no run has completed yet: --retry-failed would still apply
        if tries == 4:
            holder.__exit__(None, None, None)
        return index_folder(clips_dir, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)

    def on_report(report: IndexReport) -> None:
        reports.append(report)
        stop.set()

    watch(run_once, interval_s=0.01, on_report=on_report, on_note=notes.append, stop=stop)
    assert tries == 4 and [r.new for r in reports] == [5]
    assert len(notes) == 1 and notes[0].startswith(f"index {ix} is busy: another dgsearch process (pid {os.getpid()})")
    assert notes[0].endswith("; looking again every 0.01 s")


@pytest.mark.parametrize(("args", "message"), [
    (["--interval", "5"], "--interval, --settle and --poll need --watch"),
    (["--settle", "5"], "--interval, --settle and --poll need --watch"),
    (["--poll"], "--interval, --settle and --poll need --watch"),
    (["--watch", "--json"], "--watch prints one report per run: use --jsonl (one JSON line each) instead of --json"),
    (["--watch", "--engine", "ray"], "--watch runs the local engine; on a Ray cluster, run `dgsearch index --engine"
                                     " ray` on a schedule instead"),
])
def test_watch_flags_are_checked(clips_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    r = dg("index", clips_dir, "--index", tmp_path / "ix", *args)
    assert (r.exit_code, r.stderr) == (2, f"dgsearch: error: {message}\n")
    assert not (tmp_path / "ix").exists()


def read_report(stream: object, deadline: float) -> dict:
    line = stream.readline()  # type: ignore[attr-defined]
    assert line, "the watch ended without a report"
    assert time.monotonic() < deadline
    return json.loads(line)


def test_a_watching_process_indexes_what_arrives_and_stops_on_ctrl_c(
        clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> None:
    for p in clips_dir.rglob("*"):
        aged(p)
    ix = tmp_path / "ix"
    proc = subprocess.Popen(
        [str(DGSEARCH), "index", str(clips_dir), "--index", str(ix), "--model", str(tiny_clap_dir), "--workers", "0",
         "--watch", "--interval", "1", "--settle", "1", "--jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's foreground job
    try:
        deadline = time.monotonic() + 120
        first = read_report(proc.stdout, deadline)
        assert (first["found"], first["new"], first["deferred"]) == (5, 5, 0) and "at" in first
        os.replace(write_tone(tmp_path / "recorded.wav", 587.0, 3.0), clips_dir / "new take.wav")
        arrived = read_report(proc.stdout, deadline)
        assert (arrived["found"], arrived["new"], arrived["unchanged"]) == (6, 1, 5)
        found = dg("query", "new take", "--index", ix, "--mode", "keyword", "--paths").stdout.splitlines()
        assert found == [str(clips_dir / "new take.wav")]
        os.rename(clips_dir / "new take.wav", clips_dir / "renamed take.wav")
        renamed = read_report(proc.stdout, deadline)
        assert (renamed["renamed"], renamed["new"], renamed["windows_embedded"]) == (1, 0, 0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    said = " ".join(err.split())  # rich wraps stderr at 80 columns
    assert out == "" and said.startswith(f"watching {clips_dir} every 1 s (files wait until unchanged for 1 s),"
                                         " looking only after a change (inotify on 3 folders) or 10 min without one;"
                                         " Ctrl-C stops")
    assert said.endswith("stopped watching") and "interrupted" not in said


def test_retry_failed_retries_on_the_first_run_only(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> None:
    (clips_dir / "broken.wav").write_bytes(b"RIFF....WAVE but nothing after")
    ix, reports, stop = tmp_path / "ix", [], threading.Event()
    assert len(index_folder(clips_dir, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                            indexing_cfg=INLINE).failed) == 1
    runs = 0

    def run_once(first: bool) -> IndexReport:  # what `dgsearch index --watch --retry-failed` runs
        nonlocal runs
        runs += 1
        if runs == 3:
            stop.set()
        return index_folder(clips_dir, ix, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE,
                            retry_failed=first)

    watch(run_once, interval_s=0.01, on_report=reports.append, on_note=lambda text: pytest.fail(text), stop=stop)
    assert runs == 3 and len(reports) == 1  # the later looks found nothing new: not tried again, nothing printed
    assert [p.rsplit("/", 1)[1] for p, _ in reports[0].failed] == ["broken.wav"]
    assert reports[0].previously_failed == 0
