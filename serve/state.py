"""What the server shares across requests: one Searcher on one thread of its own, and catalog reads per request.

**One Searcher, one thread.** FastAPI runs the (synchronous) endpoints in a thread pool of up to 40 threads.
A ``Searcher`` holds a SQLite connection, the encoder and the loaded FAISS indexes; every call into it runs
on one dedicated, long-lived thread (``SharedSearcher``'s single-worker executor), the request's thread
waiting for the answer. Why not under a lock from whichever pool thread took the request (as before): torch
and FAISS parallelise with OpenMP, and GNU OpenMP keeps one team of worker threads *per calling thread*:
queries arriving on N pool threads built N teams, each spinning after its turn (``OMP_WAIT_POLICY``'s
default) while the next query's team wanted the same cores, and each thread's own ``omp_set_num_threads``
settings (``torch_threads``, ``search_threads``) applied to that thread only; on one thread it is one
process's single team again. ``DGSEARCH_SERVE_POOL_THREADS=1`` restores the old way, for
``benchmarks/bench_serve.py``'s comparison. (Most of the "three times one in process" measured before, 76 vs
24 ms, was not threads but Nagle's algorithm: ~50 ms per keep-alive request, fixed in ``run.py``'s listening
socket.) The one team idles passively (``run.passive_openmp``): spinning, it fought a writer beside the
server for the cores. Why not one Searcher per worker thread: each would load its own copy of the
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

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from diffgap_search.config import SearchConfig
from diffgap_search.encoders.base import AUDIO_TEXT, EncoderLoader, QueryVideoLoader
from diffgap_search.errors import DGSearchError
from diffgap_search.search import Query, Searcher, SearchResult
from diffgap_search.search.timeline import Timeline
from diffgap_search.store.catalog import Catalog

T = TypeVar("T")


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
    precision: str = "auto"  # the audio model's precision path (``--precision``)


class SharedSearcher:
    """One :class:`Searcher` for the whole server, used on one thread (see the module docstring)."""

    def __init__(self, cfg: ServeConfig, load_encoder: EncoderLoader,
                 load_video_encoder: QueryVideoLoader | None) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()  # only for the pool-threads comparison (DGSEARCH_SERVE_POOL_THREADS=1)
        self.pool_threads = os.environ.get("DGSEARCH_SERVE_POOL_THREADS") == "1"
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dgsearch-search")
        self.searcher = self._run(lambda: Searcher(cfg.index_dir, load_encoder, model=cfg.model, device=cfg.device,
                                                   load_video_encoder=load_video_encoder,
                                                   precision=cfg.precision))

    def _run(self, job: Callable[[], T]) -> T:
        """``job()`` on the searcher's own thread (queued behind the jobs before it); its result or exception."""
        if self.pool_threads:
            with self.lock:
                return job()
        return self._worker.submit(job).result()

    def search(self, query: Query, cfg: SearchConfig) -> SearchResult:
        """``Searcher.search(query, cfg)``: exactly what ``dgsearch query`` runs, one query at a time."""
        return self._run(lambda: self.searcher.search(query, cfg))

    def timeline(self, query: Query, cfg: SearchConfig) -> Timeline:
        """``search_timeline``: what ``dgsearch query --timeline`` runs, on the same thread."""
        from diffgap_search.search.timeline import search_timeline

        return self._run(lambda: search_timeline(self.searcher, query, cfg))

    def warm_up(self) -> None:
        """Load the encoder now (not on the first query), and embed one text on the search thread, so the first
        text query does not pay the text tower's one-time precision choice (a probe, a copy or an int8 quantisation:
        a serving process may take the int8 path, ``encoders/clap/text_path.py``); an index
        not ready yet stays cold, quietly."""
        def load() -> None:
            try:
                encoder = self.searcher.encoder
                if "text" in tuple(getattr(encoder, "modalities", AUDIO_TEXT)):
                    if hasattr(encoder, "text_serving"):  # CLAP: auto may quantise its text tower here
                        encoder.text_serving = True
                    encoder.embed_text(["warm up"])
            except DGSearchError:
                pass

        self._run(load)

    def close(self) -> None:
        try:
            self._run(self.searcher.close)
        finally:
            self._worker.shutdown(wait=True)


@contextmanager
def reading_catalog(index_dir: Path) -> Iterator[Catalog]:
    """A catalog connection for one request (SQLite connections belong to one thread; WAL: no lock)."""
    catalog = Catalog.open(index_dir)
    try:
        yield catalog
    finally:
        catalog.close()
