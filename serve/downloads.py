"""Taking a found sound away from ``dgsearch serve``: the file itself, or one window of it as WAV.

- A download is named by the file's own name, with bytes that are not UTF-8 as U+FFFD (``media/discover.utf8_name``:
  a header cannot carry them; Starlette writes any name that is not plain ASCII as RFC 6266's
  ``filename*=utf-8''...``, quotes and line breaks included, so no name can break the header).
- A window is cut by ``media/cut.py`` (the file's own rate, channels and resolution, sample-exact) into a
  temporary file that the route deletes once sent; :func:`checked_span` keeps the span inside the file and at
  most ``MAX_WINDOW_S`` (600 s) long.

The file is one the catalog named (``media.catalog_file``): nothing here sees a request's path.
"""

from __future__ import annotations

import math

from diffgap_search.errors import UsageError
from diffgap_search.media.cut import MAX_WINDOW_S
from diffgap_search.store.rows import FileRow



def checked_span(row: FileRow, start_s: float, end_s: float) -> tuple[float, float]:
    """``(start_s, end_s)`` with ``end_s`` clipped to the file's duration; UsageError (exit 2, HTTP 400) for a
    span that is not finite, empty, outside the file or longer than :data:`MAX_WINDOW_S`."""
    duration = row.duration_s
    bad = UsageError(f"a window needs 0 <= start < end, in seconds (got start={start_s}, end={end_s})")
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0:
        raise bad
    if duration is not None and start_s >= duration:
        raise UsageError(f"start={start_s} s is past the end of file {row.id} ({duration:.3f} s)")
    if end_s <= start_s:
        raise bad
    if duration is not None:
        end_s = min(end_s, duration)
    if end_s - start_s > MAX_WINDOW_S:
        raise UsageError(f"a window is at most {MAX_WINDOW_S:g} s long (asked for {end_s - start_s:g} s):"
                         " save the whole file instead")
    return start_s, end_s
