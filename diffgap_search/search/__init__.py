"""Search: a query (words, an audio file, a video file, an indexed window) -> hits, in one of three modes.

``from diffgap_search.search import Searcher, Query`` is the entry point. Inside, from the bottom up:
``types`` (Query, SearchTerm, Hit, SearchResult), ``filters`` and ``options`` (what a query may return and
the flags that say so), ``open_index`` (catalog, encoders, bridge, FAISS indexes), ``embedding`` (a query's
vectors), ``terms`` (the cosines it is scored by), ``copies`` (hits of one content as one group),
``rescore`` (final scores: by content, exactly), ``scoring`` (candidates, the growing top-k, presentation),
``keyword`` (BM25F and reciprocal-rank fusion), ``searcher`` (the one dispatcher of the modes); beside them
``similar`` and ``dupes``. No module of the package imports one above it.
"""

from diffgap_search.search.searcher import Searcher
from diffgap_search.search.types import Hit, Query, SearchResult, SearchTerm

__all__ = ["Hit", "Query", "SearchResult", "SearchTerm", "Searcher"]
