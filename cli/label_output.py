"""How ``dgsearch label`` and ``dgsearch labels`` print: a line or a table for people, JSON for programs, bare
paths (``--paths``, ``--print0``) for pipes."""

from __future__ import annotations

import os
import sys

from rich.table import Table

from diffgap_search.cli.output import emitted_as_json, literal, shown_path, stderr_console, stdout_console
from diffgap_search.cli.output import working_directory
from diffgap_search.labels import LabelledFile, LabelOutcome
from diffgap_search.store.labels import LabelCount


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"


def print_label_outcome(outcome: LabelOutcome, *, fmt: str) -> None:
    """One line saying what was labelled (``labelled 3 files 'door' (1 had it already)``), or its JSON."""
    if emitted_as_json(fmt, outcome.to_dict()):
        return
    name = repr(outcome.label)
    if outcome.removed:
        text = f"took {name} off {_files(outcome.changed)}"
        if outcome.files > outcome.changed:
            text += f" ({outcome.files - outcome.changed} of those named did not have it)"
    else:
        text = f"labelled {_files(outcome.changed)} {name}"
        if outcome.files > outcome.changed:
            text += f" ({outcome.files - outcome.changed} had it already)"
    stdout_console().print(text, markup=False, highlight=False)


def print_label_counts(counts: list[LabelCount], *, fmt: str) -> None:
    """Every label with its count of files: a table, one JSON document or JSON lines."""
    rows = [{"label": c.label, "files": c.files} for c in counts]
    if emitted_as_json(fmt, {"labels": rows}, rows):
        return
    if not counts:
        stderr_console().print("no labels yet: `dgsearch label NAME PATH...` puts one on files", markup=False)
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("label", overflow="fold")
    table.add_column("files", justify="right")
    for c in counts:
        table.add_row(literal(c.label), str(c.files))
    stdout_console().print(table)


def print_labelled_files(label: str, files: list[LabelledFile], *, fmt: str) -> None:
    """The files carrying ``label``: their paths (relative to the working folder below it), one JSON document,
    JSON lines, or the exact paths' bytes one per line (``paths``) or NUL-ended (``paths0``)."""
    rows = [f.to_dict() for f in files]
    if emitted_as_json(fmt, {"label": label, "files": rows}, rows):
        return
    if fmt in ("paths", "paths0"):
        end = b"\n" if fmt == "paths" else b"\0"
        sys.stdout.flush()
        sys.stdout.buffer.write(b"".join(os.fsencode(f.fs_path) + end for f in files))
        sys.stdout.buffer.flush()
        return
    if not files:
        stderr_console().print(f"no file carries the label {label!r}", markup=False)
        return
    here = working_directory()
    console = stdout_console()
    for f in files:
        console.print(shown_path(f.path, here), markup=False, highlight=False)
