"""``dgsearch label`` and ``dgsearch labels``: the user's own labels on indexed files (``diffgap_search/labels.py``)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.options import IndexOpt, JsonlOpt, JsonOpt, output_format, PathsOpt, Print0Opt
from diffgap_search.errors import UsageError


def stdin_paths(null: bool) -> list[str]:
    """The paths on stdin: one per line, or each ended by a NUL byte with ``null`` (any name, newlines included);
    empty entries skipped; bytes that are not UTF-8 kept exactly (``os.fsdecode``)."""
    data = sys.stdin.buffer.read()
    return [os.fsdecode(part) for part in data.split(b"\0" if null else b"\n") if part]


@handle_errors
def label(
    name: Annotated[str, typer.Argument(metavar="LABEL", help="The label: any words, compared ignoring case.")],
    targets: Annotated[Optional[list[str]], typer.Argument(metavar="PATH", help="Indexed files, or folders (every indexed file below). '-' reads paths from stdin, one per line.")] = None,
    remove: Annotated[bool, typer.Option("--remove", "-r", help="Take the label off these files instead.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="With --remove: take the label off every file of the index.")] = False,
    null: Annotated[bool, typer.Option("--null", "-0", help="With '-': the paths on stdin each end with a NUL byte (as --print0 writes them).")] = False,
    index: IndexOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Label files of the index (or take a label off them): your own names for sounds, kept across re-indexing."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.labels import label as put_label
    from diffgap_search.labels import unlabel_everywhere

    from diffgap_search.cli.label_output import print_label_outcome

    names = list(targets or [])
    if all_ and not remove:
        raise UsageError("--all goes with --remove: `dgsearch label NAME --remove --all` takes NAME off every file")
    if all_ and names:
        raise UsageError("--all takes the label off every file: name no paths with it")
    if null and "-" not in names:
        raise UsageError("--null reads paths from stdin: give '-' among the paths")
    if not all_ and not names:
        raise UsageError("name the files to label: their paths, their folders, or '-' to read paths from stdin")
    if "-" in names:
        names = [p for n in names for p in (stdin_paths(null) if n == "-" else [n])]
        if not names:
            raise UsageError("no paths on stdin: nothing to label")
    index_dir = resolve_index_dir(index)
    outcome = unlabel_everywhere(index_dir, name) if all_ else put_label(index_dir, name, names, remove=remove)
    print_label_outcome(outcome, fmt=output_format(json_, False))


@handle_errors
def labels(
    name: Annotated[Optional[str], typer.Argument(metavar="LABEL", help="List the files carrying this label (without it: every label, with its count of files).")] = None,
    index: IndexOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
    paths: PathsOpt = False,
    print0: Print0Opt = False,
) -> None:
    """List your labels, or the files carrying one."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.labels import all_labels, files_labelled

    from diffgap_search.cli.label_output import print_label_counts, print_labelled_files

    fmt = output_format(json_, jsonl, paths, print0)
    index_dir = resolve_index_dir(index)
    if name is None:
        if fmt in ("paths", "paths0"):
            raise UsageError("--paths and --print0 list the files of one label: `dgsearch labels NAME --paths`")
        print_label_counts(all_labels(index_dir), fmt=fmt)
    else:
        print_labelled_files(name, files_labelled(index_dir, name), fmt=fmt)
