"""``index --watch`` on a local file system looks only when the kernel says something changed (real inotify
watches on real folders, ``media/fs_events.py``), and falls back to looking at every interval where it cannot
be told: a queue that overflowed, a single file."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from diffgap_search.indexing import IndexReport
from diffgap_search.indexing.watch import change_signal, watch
from diffgap_search.media.fs_events import REMOTE_FILE_SYSTEMS, FolderEvents, file_system_type

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def events_on(root: Path, **kw: object) -> FolderEvents:
    events, why = FolderEvents.start(root, **kw)  # type: ignore[arg-type]
    assert events is not None, why
    return events


def test_changes_anywhere_in_the_tree_are_told_and_new_folders_are_watched(tmp_path: Path) -> None:
    (tmp_path / "lib" / "sfx" / "doors").mkdir(parents=True)
    (tmp_path / "lib" / ".cache").mkdir()
    (tmp_path / "lib" / "ix").mkdir()
    with events_on(tmp_path / "lib", exclude=[tmp_path / "lib" / "ix"]) as events:
        assert events.folders == 3 and events.changed() is False  # lib, sfx, doors: not .cache, not the index
        (tmp_path / "lib" / "sfx" / "doors" / "slam.wav").write_bytes(b"RIFF")
        assert events.changed(5.0) is True and events.changed() is False  # told once, then quiet
        (tmp_path / "lib" / "sfx" / "doors" / "slam.wav").rename(tmp_path / "lib" / "slam.wav")
        assert events.changed(5.0) is True
        (tmp_path / "lib" / ".cache" / "x.wav").write_bytes(b"x")  # a hidden folder is not walked: not watched
        (tmp_path / "lib" / "ix" / "catalog.sqlite").write_bytes(b"x")  # nor is the index folder
        assert events.changed(0.2) is False
        (tmp_path / "lib" / "new folder").mkdir()
        assert events.changed(5.0) is True and events.folders == 4
        (tmp_path / "lib" / "new folder" / "take.wav").write_bytes(b"x")
        assert events.changed(5.0) is True and events.lost == ""


def test_an_overflowing_queue_is_a_change_and_the_watch_stops_trusting_it(tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 50_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to make here")
    (tmp_path / "lib").mkdir()
    with events_on(tmp_path / "lib") as events:
        for i in range(limit // 2 + 100):  # two events each: created, closed after writing
            (tmp_path / "lib" / f"f{i}.wav").touch()
        assert events.changed() is True
        assert events.lost == "more changes came at once than the kernel queues (some folders may be unwatched)"


def test_what_cannot_be_told_is_said() -> None:
    assert file_system_type("/proc") == 0x9FA0  # procfs, as linux/magic.h has it
    assert REMOTE_FILE_SYSTEMS[0x6969] == "nfs" and REMOTE_FILE_SYSTEMS[0xFF534D42] == "cifs"
    assert file_system_type(__file__) not in REMOTE_FILE_SYSTEMS  # the test tree is on a local disk
    events, why = FolderEvents.start(Path(__file__))
    assert events is None and why == "a single file is watched by looking at it"


def test_a_watch_skips_the_looks_whose_interval_brought_no_change(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    signal, why = change_signal(tmp_path / "lib", tmp_path / "ix")
    assert signal is not None, why
    looks: list[float] = []
    stop = threading.Event()
    deferred = {3: 1}  # the fourth look finds a file still settling: the next interval looks again unasked

    def run_once(first: bool) -> IndexReport:
        looks.append(time.monotonic())
        return IndexReport(root="lib", index="ix", deferred=deferred.get(len(looks), 0))

    def drive() -> None:
        time.sleep(0.6)  # twelve intervals with nothing changed: no look
        assert len(looks) == 1
        (tmp_path / "lib" / "a.wav").write_bytes(b"x")
        until(lambda: len(looks) == 2)
        (tmp_path / "lib" / "b.wav").write_bytes(b"x")
        until(lambda: len(looks) == 4)  # b.wav's look, then the look for the file that was settling
        time.sleep(0.6)
        assert len(looks) == 4
        stop.set()

    def until(condition) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        watch(run_once, interval_s=0.05, on_report=lambda r: None, on_note=pytest.fail, stop=stop, signal=signal)
    finally:
        stop.set()
        driver.join()
        signal.close()
    assert len(looks) == 4


def test_a_lost_signal_is_noted_once_and_every_interval_looks(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    signal, _ = change_signal(tmp_path / "lib", tmp_path / "ix")
    assert signal is not None
    signal.lost = "more changes came at once than the kernel queues (some folders may be unwatched)"
    notes: list[str] = []
    looks = 0
    stop = threading.Event()

    def run_once(first: bool) -> IndexReport:
        nonlocal looks
        looks += 1
        if looks == 4:
            stop.set()
        return IndexReport(root="lib", index="ix")

    try:
        watch(run_once, interval_s=0.01, on_report=lambda r: None, on_note=notes.append, stop=stop, signal=signal)
    finally:
        signal.close()
    assert looks == 4 and notes == ["no longer told of changes (more changes came at once than the kernel queues"
                                    " (some folders may be unwatched)): looking every 0.01 s"]


def test_only_changes_a_run_could_act_on_count_and_ignore_files_are_followed(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for folder in ("sfx", "renders"):
        (lib / folder).mkdir(parents=True)
    (lib / ".dgsearchignore").write_text("renders/\n*_old.wav\n")
    with events_on(lib) as events:
        assert events.watched() == [str(lib), str(lib / "sfx")]  # not the folder the ignore file leaves out
        (lib / "sfx" / "session.rpp").write_bytes(b"x")  # a DAW's project, saved: not a name a run wants
        (lib / "sfx" / ".door.wav.swp").write_bytes(b"x")  # hidden
        (lib / "sfx" / "door_old.wav").write_bytes(b"x")  # a pattern of the ignore file
        (lib / "renders" / "bounce.wav").write_bytes(b"x")  # an ignored folder: not watched
        assert events.changed(0.3) is False
        (lib / "sfx" / "door.wav").write_bytes(b"x")
        assert events.changed(5.0) is True and events.changed(0.2) is False
        (lib / "sfx" / "door.txt").write_text("a wooden door")  # a caption sidecar
        assert events.changed(5.0) is True
        (lib / "sfx" / "takes").mkdir()
        assert events.changed(5.0) is True and str(lib / "sfx" / "takes") in events.watched()
        (lib / ".dgsearchignore").write_text("*_old.wav\nsfx/\n")  # renders/ no longer left out; sfx/ now is
        assert events.changed(5.0) is True
        assert events.watched() == [str(lib), str(lib / "renders")] and events.lost == ""
        (lib / "sfx" / "takes" / "t1.wav").write_bytes(b"x")
        assert events.changed(0.3) is False
        (lib / "renders" / "final.wav").write_bytes(b"x")
        assert events.changed(5.0) is True
