"""A query by an uploaded file (the web API's ``POST /api/search/file``): the bytes are written to a private
temporary folder, their kind decided by ``media`` from the upload's name and type unless the caller says,
searched like ``dgsearch query --audio/--video FILE``, and every error names the upload, never the
temporary file."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from diffgap_search.config import SearchConfig
from diffgap_search.errors import DGSearchError, UsageError
from diffgap_search.media.discover import query_file_kind
from diffgap_search.search.types import Query

CHUNK = 1 << 20
R = TypeVar("R")  # what the search gives: a SearchResult, or a Timeline (``search/timeline.py``)


def safe_suffix(filename: str | None) -> str:
    """The upload's extension (lower case) when it is a plain one (alphanumeric, at most 7 characters), else
    ``""``: the temporary file's name never takes anything else from the request."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""


def search_upload(search: Callable[[Query, SearchConfig], R], data: BinaryIO, filename: str | None,
                  content_type: str | None, cfg: SearchConfig, *, media: str | None = None,
                  start_s: float | None = None, end_s: float | None = None) -> R:
    """Search with an uploaded file's bytes (``data``, read in chunks) through ``search`` (a searcher's).

    ``media``: ``"audio"`` or ``"video"``, or None to decide by the upload's name and type
    (``media/discover.query_file_kind``). Raises UsageError for another ``media``; a search error is raised
    again with the upload's name (or "the uploaded file") in place of the temporary path."""
    suffix = safe_suffix(filename)
    kind = media if media is not None else query_file_kind(f"query{suffix}", content_type)
    if kind not in ("audio", "video"):
        raise UsageError(f"media must be 'audio' or 'video', got {kind!r}")
    with tempfile.TemporaryDirectory(prefix="dgsearch-upload-") as tmp:
        path = Path(tmp) / f"query{suffix}"
        with open(path, "wb") as out:
            while chunk := data.read(CHUNK):
                out.write(chunk)
        query = Query(audio=path, start_s=start_s, end_s=end_s) if kind == "audio" else \
            Query(video=path, start_s=start_s, end_s=end_s)
        try:
            return search(query, cfg)
        except DGSearchError as exc:  # name the upload, not our temporary file
            raise type(exc)(str(exc).replace(str(path), filename or "the uploaded file")) from None
