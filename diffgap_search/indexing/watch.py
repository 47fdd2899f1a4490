"""``dgsearch index FOLDER --watch``: keep an index up to date with a folder that keeps changing.

A watch folder, as sound-library managers have them: the folder is indexed, then looked at again every
``interval_s`` seconds, and whatever was added, changed, renamed or deleted is taken in by an ordinary incremental
run (``indexing/runner.py``: the same plan, the same crash rule, the same report). A server beside it
(``dgsearch serve``) sees each run's committed files at its next query.

- **Told of changes where the kernel can tell, polling elsewhere**: a walk that finds nothing new costs about
  0.5-0.6 s of one core per 10,000 files here (Tux Paint's 7,873 recordings; 2-core Zen 4 EPYC), so on a local
  file system a look is skipped when no inotify event came in its interval (``media/fs_events.py``; one look
  every :data:`BACKSTOP_S` all the same). Network shares (NFS, SMB), FUSE mounts and trees with more folders
  than inotify may watch raise no event for every change, and are polled: a look every interval.
- **Settle time**: a file modified less than ``settle_s`` seconds ago is being copied or recorded; it is left
  for a later run (``IndexReport.deferred``), and an indexed file being rewritten keeps its old vectors until
  then.
- **Models load once**: the encoders a run loads are kept for the next one (:func:`remembered`), so a new
  file is searchable seconds after it settles instead of after a model load.
- **What ends it**: Ctrl-C (KeyboardInterrupt) or ``stop`` while it waits, cleanly; during a run, what any
  interrupted run does (the batch in flight is lost, the next run resumes). A run that finds the index busy
  (another writer), the folder gone (an unmounted drive) or nothing indexable yet (an empty drop folder) is
  reported once and tried again at the next look; any other error ends the watch with its exit code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from diffgap_search.errors import IndexBusyError, InputNotFoundError, NothingIndexedError
from diffgap_search.indexing.report import IndexReport

DEFAULT_INTERVAL_S = 10.0
DEFAULT_SETTLE_S = 5.0
BACKSTOP_S = 600.0  # with change events, a look at least this often all the same

L = TypeVar("L", bound=Callable[..., Any])


def remembered(loader: L) -> L:
    """``loader`` that loads each configuration once and returns the same model after (arguments compared by
    equality: configurations are frozen dataclasses)."""
    loaded: list[tuple[tuple[Any, ...], Any]] = []

    def load(*args: Any) -> Any:
        for seen, model in loaded:
            if seen == args:
                return model
        model = loader(*args)
        loaded.append((args, model))
        return model

    return load  # type: ignore[return-value]


def changed(report: IndexReport) -> bool:
    """Whether a run changed the catalog (or failed a file): what a watch reports."""
    return bool(report.embedded_files or report.failed or report.renamed or report.copied or report.deleted
                or report.changed or report.new or report.moved or report.superseded or report.moved_from)


def change_signal(folder: Path, index_dir: Path) -> tuple[ChangeSignal | None, str]:
    """``(signal, why)``: inotify watches on ``folder``'s folders (the index folder left out), or None and why
    the watch must poll (``media/fs_events.FolderEvents.start``). Close the signal when done."""
    from diffgap_search.media.fs_events import FolderEvents

    return FolderEvents.start(folder, exclude=[index_dir])


class ChangeSignal(Protocol):
    """What tells a watch that its folder changed (``media/fs_events.FolderEvents``)."""

    lost: str  # why it can no longer be trusted to cover the folder ("" while it can)

    @property
    def folders(self) -> int: ...  # how many folders it watches

    def changed(self, timeout_s: float = 0.0) -> bool: ...

    def close(self) -> None: ...


def watch(run_once: Callable[[bool], IndexReport], *, interval_s: float, on_report: Callable[[IndexReport], None],
          on_note: Callable[[str], None], stop: threading.Event | None = None,
          signal: ChangeSignal | None = None, backstop_s: float = BACKSTOP_S) -> None:
    """Run ``run_once`` now and again ``interval_s`` seconds after each run ends, until ``stop`` is set or
    KeyboardInterrupt arrives while waiting. ``run_once(first)``: ``first`` is True until a run has completed
    (``--retry-failed`` retries the failed files once, not at every look). ``on_report`` gets the first run's
    report and every later one that changed something; ``on_note`` the reason a run was skipped, once until it
    changes. With a ``signal``, a look whose interval brought no change is skipped, unless files were still
    settling, the last look was skipped for a reason (a busy index...), or ``backstop_s`` passed since the last
    look; once the signal is ``lost`` (noted once), every interval looks again."""
    stop = stop or threading.Event()
    first, completed, last_note, told_lost = True, False, "", False
    while True:
        note, settling = "", False
        try:
            report = run_once(not completed)
        except (IndexBusyError, InputNotFoundError) as exc:
            if first and isinstance(exc, InputNotFoundError):
                raise  # a folder that is not there at all is a mistake, not a drive to wait for
            note = f"{exc}; looking again every {interval_s:g} s"
        except NothingIndexedError as exc:
            completed = True  # its bookkeeping was committed
            found: IndexReport | None = getattr(exc, "report", None)
            if found is not None and (first or changed(found)):
                on_report(found)  # the files that failed, each with its reason
            settling = found is not None and found.deferred > 0
        else:
            completed = True
            if first or changed(report):
                on_report(report)
            settling = report.deferred > 0
        if note and note != last_note:
            on_note(note)
        last_note, first = note, False
        looked = time.monotonic()
        try:
            while True:
                if stop.wait(interval_s):
                    return
                if signal is None or note or settling or time.monotonic() - looked >= backstop_s:
                    break
                if signal.lost:
                    if not told_lost:
                        on_note(f"no longer told of changes ({signal.lost}): looking every {interval_s:g} s")
                        told_lost = True
                    break
                if signal.changed(0.0):
                    break
        except KeyboardInterrupt:
            return
