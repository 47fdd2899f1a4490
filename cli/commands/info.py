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
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Show what an index holds: files, segments, model, size on disk, failed files."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.info import index_info

    from diffgap_search.cli.output import print_info

    print_info(index_info(resolve_index_dir(index)).to_dict(), fmt=output_format(json_, jsonl), errors=errors)
