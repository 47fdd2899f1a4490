"""Search: a query (text, an audio file, a video file, an indexed window) -> hits.

``from diffgap_search.search import Searcher, Query`` is the entry point."""
