"""Caption queries beyond one file's list (``Catalog.captions_of``): what ``dgsearch train`` asks of the library."""

from __future__ import annotations

from diffgap_search.store.catalog import Catalog


def count_captions(catalog: Catalog) -> int:
    """How many sidecar captions the index's successfully indexed files carry (0: a library without captions)."""
    row = catalog.conn.execute(
        "SELECT count(*) FROM captions c JOIN files f ON f.id = c.file_id WHERE f.status = 'ok'"
    ).fetchone()
    return int(row[0])
