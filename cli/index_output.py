"""What ``dgsearch index`` prints: a run's report (with every failed file and its reason), and with
``--dry-run`` the files a run would take in, follow and remove, one per line, below the library folder
(``--json``/``--jsonl``: the whole report or preview as one document or one line)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from diffgap_search.cli.output import (
    emitted_as_json, shown_path, stderr_console, stdout_console, working_directory,
)
from diffgap_search.indexing.preview import Preview
from diffgap_search.indexing.report import IndexReport
from diffgap_search.media.discover import UNREAD_FORMATS

if TYPE_CHECKING:  # its module imports the FAISS store: not for `index --dry-run`'s output
    from diffgap_search.indexing.forget import ForgetOutcome

MARKS = {"new": "+", "changed": "~", "renamed": ">", "copied": "=", "removed": "-", "ignored": "!"}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def print_preview(preview: Preview, *, fmt: str) -> None:
    """``preview`` as ``fmt`` (table, json or jsonl); the table's notes (unreadable paths, failed files) on stderr."""
    if emitted_as_json(fmt, preview.to_dict()):
        return
    out, notes = stdout_console(), stderr_console()
    root = preview.root.rstrip("/") + "/"

    def below(path: str) -> str:
        return path[len(root):] if path.startswith(root) else path

    if not preview.changes:
        out.print(f"dry run: nothing would change: {preview.root} is up to date in {preview.index}"
                  f" ({_plural(preview.unchanged, 'file')} unchanged)", markup=False)
    else:
        parts = [f"index {_plural(len(preview.new), 'new file')}" if preview.new else "",
                 f"re-index {len(preview.changed)} changed" if preview.changed else "",
                 f"follow {_plural(len(preview.renamed), 'rename')}" if preview.renamed else "",
                 f"reuse the vectors of {len(preview.copied)} {'copy' if len(preview.copied) == 1 else 'copies'}"
                 if preview.copied else "",
                 f"remove {len(preview.removed)}" if preview.removed else ""]
        if preview.moved or preview.superseded:
            parts.insert(0, f"follow {_plural(len(preview.moved), 'file')} moved from {preview.moved_from}"
                         + (f" (and drop {len(preview.superseded):,} rows there whose new place is indexed already)"
                            if preview.superseded else ""))
        out.print(f"dry run: indexing {preview.root} into {preview.index} would "
                  f"{', '.join(p for p in parts if p)} ({preview.unchanged:,} unchanged); nothing was changed",
                  markup=False)
        lines = [f"{MARKS['new']} {below(p)}" for p in preview.new]
        lines += [f"{MARKS['changed']} {below(p)}" for p in preview.changed]
        lines += [f"{MARKS['renamed']} {below(old)} -> {below(new)}" for old, new in preview.renamed]
        lines += [f"{MARKS['copied']} {below(new)} (same content as {below(of)})" for new, of in preview.copied]
        lines += [f"{MARKS['removed']} {below(p)}" for p in preview.removed]
        for line in lines:
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    for path in preview.ignored:
        out.print(f"{MARKS['ignored']} {below(path)} (left out by a .dgsearchignore)", markup=False, highlight=False,
                  soft_wrap=True)
    for path, reason in preview.unreadable + preview.cannot_read:
        notes.print(f"note: cannot read {path}: {reason}", markup=False)
    _moved_notes(notes, preview.moved_from, bool(preview.moved or preview.superseded), preview.moved_hint,
                 preview.root)
    if preview.failed_before:
        notes.print(f"note: {_plural(len(preview.failed_before), 'file')} failed in an earlier run and would be left"
                    " alone (--retry-failed tries them again; `dgsearch info --errors` says why)", markup=False)


def _moved_notes(console: Console, moved_from: str | None, followed: bool, hint: str | None, root: str) -> None:
    """``--moved-from``'s folder when nothing was indexed there, and the hint to use it (``indexing/moved.py``)."""
    if moved_from is not None and not followed:
        console.print(f"note: nothing in the index was under {moved_from}: no move to follow (followed already?)",
                      markup=False)
    if hint is not None:
        console.print(f"note: files here have the same content as files indexed under {hint} that are no longer"
                      f" there: if the library moved, `dgsearch index {shlex.quote(root)} --moved-from"
                      f" {shlex.quote(hint)}` follows it (the old rows leave the index, their labels come along)",
                      markup=False, soft_wrap=True)


def _reasons(console: Console, items: list[tuple[str, str]], here: Path | None) -> None:
    """One indented line per ``(path, reason)``: the path below the working directory where it lies there."""
    for path, reason in items:
        console.print(f"  {shown_path(path, here)}: {reason}", markup=False)


def print_index_report(report: IndexReport, *, fmt: str) -> None:
    """The summary of an indexing run (stdout) with every failed file and its reason."""
    if emitted_as_json(fmt, report.to_dict()):
        return
    console = stdout_console()
    if report.moved or report.superseded:
        console.print(f"followed {_plural(report.moved, 'file')} moved from {report.moved_from}"
                      + (f"; {report.superseded:,} rows there gave way to the files indexed here already (their"
                         " labels added)" if report.superseded else ""), markup=False)
    if report.embedded_files == 0 and not report.failed:
        console.print(
            f"index {report.index} is up to date: {report.found} files found, nothing to embed"
            f" ({report.unchanged} unchanged, {report.renamed} renamed, {report.copied} copied,"
            f" {report.deleted} removed)"
        )
    else:
        failed = f", {len(report.failed)} failed" if report.failed else ""
        console.print(
            f"indexed {report.embedded_files} files ({report.new} new, {report.changed} changed{failed}):"
            f" {report.windows_embedded} windows, {report.audio_seconds:.1f} s of audio in"
            f" {report.elapsed_s:.1f} s ({report.windows_per_s:.1f} windows/s);"
            f" {report.unchanged} unchanged, {report.renamed} renamed, {report.copied} copied,"
            f" {report.deleted} removed"
        )
    here = working_directory()
    if report.ignored:
        n = report.ignored
        console.print(f"{n} file{'' if n == 1 else 's'} or folder{'' if n == 1 else 's'} left out by .dgsearchignore"
                      " files")
    if report.unread_formats:
        n = sum(report.unread_formats.values())
        kinds = ", ".join(f"{ext} ×{count:,} ({UNREAD_FORMATS.get(ext, '?')})"
                          for ext, count in report.unread_formats.items())
        console.print(f"{n:,} file{'' if n == 1 else 's'} in formats dgsearch does not read left out: {kinds}; convert"
                      " recordings to FLAC (ffmpeg -i IN OUT.flac) to index them", markup=False, highlight=False)
    if report.deferred:
        n = report.deferred
        console.print(f"{n} file{'' if n == 1 else 's'} still being written (changed in the last seconds): left for"
                      " the next look")
    if report.failed:
        n = len(report.failed)
        console.print(f"{n} file{'' if n == 1 else 's'} could not be indexed:")
        _reasons(console, report.failed, here)
    if report.unreadable:
        n, kept = len(report.unreadable), report.kept_unreadable
        console.print(f"{n} path{'s' if n > 1 else ''} skipped"
                      + (f"; the {kept} file{'s' if kept > 1 else ''} indexed there {'are' if kept > 1 else 'is'}"
                         " kept as they were" if kept else "") + ":")
        _reasons(console, report.unreadable, here)
    if report.caption_errors:
        n = len(report.caption_errors)
        console.print(f"{n} caption file{'s' if n > 1 else ''} could not be used:")
        _reasons(console, report.caption_errors, here)
    _moved_notes(console, report.moved_from, bool(report.moved or report.superseded), report.moved_hint, report.root)
    if report.previously_failed:
        console.print(f"{report.previously_failed} files failed in an earlier run and were skipped"
                      " (`dgsearch info --errors`; `--retry-failed` tries them again)")


def print_forget_outcome(outcome: "ForgetOutcome", *, fmt: str) -> None:
    """What ``dgsearch forget`` took out of the index (``--dry-run``: would take out, each file listed); a note on
    stderr when some of those files are still on disk (the next run of their folder takes them in again)."""
    if emitted_as_json(fmt, outcome.to_dict()):
        return
    out, notes = stdout_console(), stderr_console()
    n = len(outcome.paths)
    failed = f", {outcome.failed} of them failed ones" if outcome.failed else ""
    what = f"{_plural(n, 'file')} ({_plural(outcome.windows, 'window')}{failed})"
    if outcome.dry_run:
        out.print(f"dry run: forgetting would take {what} out of index {outcome.index}; nothing was changed",
                  markup=False)
        for path in outcome.paths:
            out.print(f"{MARKS['removed']} {path}", markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(f"forgot {what}: index {outcome.index} no longer holds them", markup=False)
    if outcome.still_on_disk:
        k = outcome.still_on_disk
        notes.print(f"note: {k:,} of {'them' if n > 1 else 'it'} {'are' if k > 1 else 'is'} still on disk: the next"
                    " `dgsearch index` of a folder holding them takes them in again (a .dgsearchignore keeps them"
                    " out)", markup=False)
