"""The keyword ranking as it was before BM25F (2026-12-06): FTS5's own ``bm25()``, whose length normalisation
takes the whole row (name, folders, captions and tags together), kept for benchmarks to compare against in the
same run (``bench_keyword.py``, ``real_gap/hybrid.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def row_length_bm25() -> Iterator[None]:
    """Inside: ``store/keywords.ranked_files`` ranks by FTS5's own ``bm25()`` with the same column weights (the whole
    row's length normalises every column), as it did before BM25F; the same words, ties and limit."""
    from diffgap_search.store import keywords

    def ranked(catalog: Any, terms: Sequence[str], *, limit: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        expr = keywords.expression_of(terms)
        if expr is None or limit < 1:
            return []
        weights = ", ".join(str(w) for w in keywords.COLUMN_WEIGHTS)
        rows = catalog.conn.execute(f"SELECT rowid, bm25(keywords, {weights}) AS rank FROM keywords WHERE keywords"
                                    " MATCH ? ORDER BY rank, rowid", (expr,))
        return [(int(i), float(r)) for i, r in rows if allowed is None or i in allowed][:limit]

    kept = keywords.ranked_files
    keywords.ranked_files = ranked  # type: ignore[assignment]
    try:
        yield
    finally:
        keywords.ranked_files = kept  # type: ignore[assignment]
