"""``dgsearch query --timeline`` on stdout: one table grouped by query window, or JSON (a document with the
windows and their hits, or one line per hit carrying its query window's seconds); with ``--save``, each
window's hits cut into a folder of its own first."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from diffgap_search.cli.output import copies_note, emit_json, emit_jsonl, shown_path, stderr_console, stdout_console
from diffgap_search.cli.output import literal, timecode, working_directory
from diffgap_search.media.discover import display_path
from diffgap_search.search.timeline import Timeline


def show_timeline(timeline: Timeline, *, fmt: str, save: Path | None) -> None:
    """:func:`print_timeline`, after cutting each query window's hits into a folder of ``save`` where given
    (``saved_windows.save_timeline``: each hit's JSON gains ``saved``; a note on stderr says where they went and
    which were skipped, and why)."""
    if save is None:
        print_timeline(timeline, fmt=fmt)
        return
    from diffgap_search.search.saved_windows import save_timeline

    done = save_timeline(timeline, save)
    print_timeline(timeline, fmt=fmt, saved=[{sid: str(p) for sid, p in w.saved.items()} for w in done])
    n = sum(len(w.saved) for w in done)
    folders = sum(1 for w in done if w.saved)
    notes = stderr_console()
    notes.print(f"saved {n} window{'' if n == 1 else 's'} to {display_path(Path(save).absolute())}, in {folders}"
                f" folder{'' if folders == 1 else 's'}: one per query window", markup=False)
    for path, reason in (s for w in done for s in w.skipped):
        notes.print(f"  not saved: {path}: {reason}", markup=False)


def print_timeline(timeline: Timeline, *, fmt: str, saved: list[dict[int, str]] | None = None) -> None:
    """``timeline`` as ``fmt`` (table, json or jsonl); its note (files not pinpointed) on stderr for a table;
    ``saved``: per query window, segment id -> the WAV ``--save`` wrote (JSON's ``saved``)."""
    if fmt in ("json", "jsonl"):
        doc = timeline.to_dict()
        if saved is not None:
            for window, cut in zip(doc["windows"], saved):
                for hit in window["hits"]:
                    hit["saved"] = cut.get(hit["segment_id"])
        if fmt == "json":
            emit_json(doc)
        else:
            emit_jsonl([{"query_start_s": w["start_s"], "query_end_s": w["end_s"], **h}
                        for w in doc["windows"] for h in w["hits"]])
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
                          literal(shown_path(hit.path, here) + copies_note(hit.copies)), timecode(hit.start_s),
                          timecode(hit.end_s))
        table.add_section()
    stdout_console().print(table)
