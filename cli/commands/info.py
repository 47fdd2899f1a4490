"""``dgsearch info``: what an index holds."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.options import IndexOpt, JsonlOpt, JsonOpt, output_format


@handle_errors
def info(
    index: IndexOpt = None,
    errors: Annotated[bool, typer.Option("--errors", help="List the files that could not be indexed, with reasons.")] = False,
    missing: Annotated[bool, typer.Option("--missing", help="List the indexed files no longer on disk, by the folder (or file) that is gone, with what to do.")] = False,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Show what an index holds: files, segments, model, size on disk, failed files."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.errors import UsageError
    from diffgap_search.info import index_info, missing_files

    from diffgap_search.cli.output import print_info

    fmt = output_format(json_, jsonl)
    if missing:
        from diffgap_search.cli.info_output import print_missing

        if errors:
            raise UsageError("--errors and --missing list different files: give one")
        print_missing(missing_files(resolve_index_dir(index)), fmt=fmt)
        return
    print_info(index_info(resolve_index_dir(index)).to_dict(), fmt=fmt, errors=errors)
