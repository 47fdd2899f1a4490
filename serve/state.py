"""What the server shares across requests: one Searcher behind a lock, and catalog reads per request.

**One Searcher, one lock.** FastAPI runs the (synchronous) endpoints in a thread pool. A ``Searcher``
holds a SQLite connection, the encoder and the loaded FAISS indexes; it is used by one thread at a time,
under ``SharedSearcher.lock``. Why not one Searcher per worker thread: each would load its own copy of the
model and of every FAISS index (10⁶ × 512 vectors are 2 GB per copy), and concurrent queries would not be
faster anyway, because one query already keeps the cores busy (torch's and FAISS's own threads); and
HF tokenizers are not safe to call from several threads at once. So queries queue: under N concurrent
clients, latency grows about N-fold while throughput stays that of one warm process
(``benchmarks/bench_serve.py`` measures it). Everything that is not a search (playback, peaks, ``/info``)
opens its own short-lived catalog connection and never waits for this lock.

**Readers take no lock a writer waits for.** The catalog is SQLite in WAL mode, and the Searcher re-reads
the published FAISS record and the bridge record on every query (``Searcher.index_for``,
``Searcher.bridge``), so a ``dgsearch index`` or ``train`` running beside the server is neither blocked
nor missed: the next query sees its committed files, generation and bridge, without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from diffgap_search.config import SearchConfig
from diffgap_search.encoders.base import EncoderLoader, QueryVideoLoader
from diffgap_search.errors import DGSearchError
from diffgap_search.search import Query, Searcher, SearchResult
from diffgap_search.store.catalog import Catalog


@dataclass(frozen=True)
class ServeConfig:
    """``dgsearch serve``'s settings: the index, where to listen, the token, the upload bound (bytes)."""

    index_dir: Path
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_upload_bytes: int = 100_000_000
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"  # CLAP's precision path (``--precision``)


class SharedSearcher:
    """One :class:`Searcher` for the whole server, used under a lock (see the module docstring)."""

    def __init__(self, cfg: ServeConfig, load_encoder: EncoderLoader,
                 load_video_encoder: QueryVideoLoader | None) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()
        self.searcher = Searcher(cfg.index_dir, load_encoder, model=cfg.model, device=cfg.device,
                                 load_video_encoder=load_video_encoder, precision=cfg.precision)

    def search(self, query: Query, cfg: SearchConfig) -> SearchResult:
        """``Searcher.search(query, cfg)``: exactly what ``dgsearch query`` runs, one query at a time."""
        with self.lock:
            return self.searcher.search(query, cfg)

    def warm_up(self) -> None:
        """Load the encoder now (not on the first query); an index not ready yet stays cold, quietly."""
        with self.lock:
            try:
                self.searcher.encoder
            except DGSearchError:
                pass

    def close(self) -> None:
        with self.lock:
            self.searcher.close()


@contextmanager
def reading_catalog(index_dir: Path) -> Iterator[Catalog]:
    """A catalog connection for one request (SQLite connections belong to one thread; WAL: no lock)."""
    catalog = Catalog.open(index_dir)
    try:
        yield catalog
    finally:
        catalog.close()
