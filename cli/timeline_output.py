"""``dgsearch query --timeline`` on stdout: one table grouped by query window, or JSON (a document with the
windows and their hits, or one line per hit carrying its query window's seconds)."""

from __future__ import annotations

from rich.table import Table

from diffgap_search.cli.output import copies_note, emit_json, emit_jsonl, shown_path, stderr_console, stdout_console
from diffgap_search.cli.output import timecode, working_directory
from diffgap_search.search.timeline import Timeline


def print_timeline(timeline: Timeline, *, fmt: str) -> None:
    """``timeline`` as ``fmt`` (table, json or jsonl); its note (files not pinpointed) on stderr for a table."""
    if fmt == "json":
        emit_json(timeline.to_dict())
        return
    if fmt == "jsonl":
        emit_jsonl(timeline.rows())
        return
    if timeline.note:
        stderr_console().print(f"note: {timeline.note}", markup=False)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("query", justify="right", no_wrap=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("from", justify="right")
    table.add_column("to", justify="right")
    here = working_directory()
    for window in timeline.windows:
        span = f"{timecode(window.start_s)}-{timecode(window.end_s)}"
        if not window.hits:
            table.add_row(span, "", "", "no results", "", "")
        for rank, hit in enumerate(window.hits, 1):
            table.add_row(span if rank == 1 else "", str(rank), f"{hit.score:.3f}",
                          shown_path(hit.path, here) + copies_note(hit.copies), timecode(hit.start_s), timecode(hit.end_s))
        table.add_section()
    stdout_console().print(table)
