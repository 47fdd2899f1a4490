"""``dgsearch index --watch``: its flags, their checks, and what the terminal shows of each run
(``indexing/watch.py`` does the watching)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from diffgap_search.indexing import IndexReport

WatchOpt = Annotated[bool, typer.Option("--watch", help="Keep the index up to date: look at the folder again every --interval seconds and take in what was added, changed, renamed or deleted (Ctrl-C stops).")]
IntervalOpt = Annotated[Optional[float], typer.Option("--interval", min=1, help="--watch: seconds between two looks at the folder (default 10).")]
PollOpt = Annotated[bool, typer.Option("--poll", help="--watch: look every --interval seconds even where the system tells of changes (it is not told on network shares, which are looked at every interval anyway).")]
SettleOpt = Annotated[Optional[float], typer.Option("--settle", min=0, help="--watch: a file modified less than this many seconds ago is still being written and waits for a later look (default 5).")]


@dataclass(frozen=True)
class Watching:
    interval_s: float
    settle_s: float
    poll: bool = False


def watching(watch: bool, interval: float | None, settle: float | None, engine: str, fmt: str,
             poll: bool = False) -> Watching | None:
    """The watch's settings (None without ``--watch``); UsageError for its flags without it, with another
    engine, or with ``--json`` (a watch prints one report per run: ``--jsonl``)."""
    from diffgap_search.errors import UsageError
    from diffgap_search.indexing.watch import DEFAULT_INTERVAL_S, DEFAULT_SETTLE_S

    if not watch:
        if interval is not None or settle is not None or poll:
            raise UsageError("--interval, --settle and --poll need --watch")
        return None
    if engine != "local":
        raise UsageError("--watch runs the local engine; on a Ray cluster, run `dgsearch index --engine ray` on a"
                         " schedule instead")
    if fmt == "json":
        raise UsageError("--watch prints one report per run: use --jsonl (one JSON line each) instead of --json")
    return Watching(DEFAULT_INTERVAL_S if interval is None else interval, DEFAULT_SETTLE_S if settle is None else settle,
                    poll)


def watch_folder(run_once: Callable[[bool], IndexReport], folder: Path, index_dir: Path, settings: Watching,
                 fmt: str) -> None:
    """Index ``folder`` now and at every look until Ctrl-C: each run that changed something is printed (the table
    form after its time of day, ``--jsonl`` with an ``at`` field), flushed at once for a pipe. Where the system
    tells of changes (and not ``--poll``), a look whose interval brought none is skipped."""
    from diffgap_search.cli.index_output import print_index_report
    from diffgap_search.cli.output import emit_jsonl, stderr_console, stdout_console
    from diffgap_search.indexing.watch import BACKSTOP_S, change_signal, watch
    from diffgap_search.media.discover import display_path

    notes = stderr_console()

    def on_report(report: IndexReport) -> None:
        if fmt == "jsonl":
            emit_jsonl([{**report.to_dict(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}])
        else:
            stdout_console().print(time.strftime("%H:%M:%S"), end=" ", markup=False)
            print_index_report(report, fmt=fmt)
        sys.stdout.flush()

    signal, why = (None, "") if settings.poll else change_signal(folder, index_dir)
    told = (f", looking only after a change (inotify on {signal.folders:,} folders) or {BACKSTOP_S / 60:g} min without"
            " one" if signal is not None else "")
    notes.print(f"watching {display_path(folder)} every {settings.interval_s:g} s (files wait until unchanged for"
                f" {settings.settle_s:g} s){told}; Ctrl-C stops", markup=False)
    if why:
        notes.print(f"note: looking at every interval: {why}", markup=False)
    try:
        watch(run_once, interval_s=settings.interval_s, on_report=on_report, signal=signal,
              on_note=lambda text: notes.print(f"note: {text}", markup=False))
    finally:
        if signal is not None:
            signal.close()
    notes.print("stopped watching", markup=False)
