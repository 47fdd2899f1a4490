"""The stages of an indexing run, as small callables the runner is given (clip-retrieval's reader / mapper /
writer cut): discover -> plan -> decode (or stream, for a long file) -> embed -> bridge -> commit -> publish.

``default_stages()`` builds the local engine's: decoding in worker processes pulled ahead by a thread,
the encoders in this process, the catalog and FAISS files of ``store/``. Another engine swaps what it runs
elsewhere (a distributed engine: ``embed``) with ``dataclasses.replace``; a test swaps any of them. The
runner (``indexing/runner.py``) alone decides the order, the batches and the transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from diffgap_search.config import FaissConfig
from diffgap_search.indexing.commit import EmbeddedFile, FailedFile, commit_files
from diffgap_search.indexing.decode import DecodeArgs, Decoded, SegmentData, stream_segments
from diffgap_search.indexing.embed import Vectors, bridge_segments, embed_segments
from diffgap_search.indexing.models import RunModels
from diffgap_search.indexing.plan import Plan, ToEmbed, make_plan
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.media.discover import DiscoveredFile
from diffgap_search.media.listing import Listing, list_library
from diffgap_search.media.tags import FileTags
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.vector_index import publish


class Discover(Protocol):
    def __call__(self, root: Path, index_dir: Path) -> Listing:
        """The audio, video and caption files under ``root`` (``index_dir`` excluded) and the paths that could not
        be read (``media/listing.py``). Raises InputNotFoundError."""
        ...


class PlanFiles(Protocol):
    def __call__(self, found: list[DiscoveredFile], catalog: Catalog, prefix: bytes, retry_failed: bool,
                 unreadable: Sequence[bytes] = (), moved_from: bytes | None = None) -> Plan:
        """What changed between ``found`` and the catalog rows under ``prefix`` (``indexing/plan.py``); rows at
        or below an ``unreadable`` path key are left as they are; rows under ``moved_from`` (the library's old
        place) are planned at their places under ``prefix``."""
        ...


class DecodedFiles(Protocol):
    """The decode stage's results, in order, with a budget of windows decoded ahead that can change."""

    def __iter__(self) -> Iterator[Decoded]: ...

    def __next__(self) -> Decoded: ...

    def set_budget(self, budget: int) -> None:
        """At most about ``budget`` windows decoded ahead of the consumer from now on."""
        ...


class Decode(Protocol):
    def __call__(self, tasks: Sequence[DecodeArgs], workers: int, deadline_s: float | None,
                 budget: int) -> AbstractContextManager[DecodedFiles]:
        """The files of ``tasks`` decoded into windows, one ``Decoded`` per task, in order; a file with more than
        its ``max_windows`` comes back ``too_long``. ``workers`` processes (0: in this process), each file within
        ``deadline_s``; at most about ``budget`` windows decoded ahead of the consumer. Closing the context
        stops every worker."""
        ...


class Stream(Protocol):
    def __call__(self, task: DecodeArgs, workers: int,
                 deadline_s: float | None) -> tuple[bool, FileTags, Iterator[SegmentData]]:
        """``(has_audio, tags, windows)`` of one long file, its windows streamed in bounded memory (close the
        iterator when done). Raises MediaDecodeError for an undecodable file."""
        ...


class Embed(Protocol):
    def __call__(self, models: RunModels, segments: list[SegmentData]) -> list[Vectors]:
        """Each window's vectors by space from the encoders (``audio``, ``cavp_audio``, ``video``)."""
        ...


class Bridge(Protocol):
    def __call__(self, models: RunModels, vectors: list[Vectors]) -> list[Vectors]:
        """``vectors`` with the bridged spaces added (``audio_as_text``, ``audio_as_video``)."""
        ...


class EmbedFiles(Protocol):
    def __call__(self, models: RunModels, todo: Sequence[ToEmbed], prepare: Callable[[], Sequence[DecodeArgs]],
                 ) -> AbstractContextManager[Iterator[EmbeddedFile | FailedFile]]:
        """Another engine's decode, embed and bridge stages in one (``indexing/ray_engine``): each file of
        ``todo`` once, embedded with its vectors or failed with its reason, in any order, as they finish.
        ``prepare`` loads the run's models (binding them to the index) and returns each file's decode
        arguments; the engine calls it once on entering, while it starts (Ray: while it joins the cluster),
        and raises what it raises. Closing the context stops the engine's work."""
        ...


class Commit(Protocol):
    def __call__(self, catalog: Catalog, embedded: Sequence[EmbeddedFile], failed: Sequence[FailedFile],
                 captions: CaptionIndex) -> None:
        """Write the embedded files and the failures in one transaction."""
        ...


class Publish(Protocol):
    def __call__(self, index_dir: Path, catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> Any:
        """Bring ``space``'s FAISS file up to date with the catalog (``D = dim``) and publish it."""
        ...


@dataclass(frozen=True)
class Stages:
    """The callables one indexing run is made of (see the module docstring); ``default_stages()`` builds them."""

    discover: Discover
    plan: PlanFiles
    decode: Decode
    stream: Stream
    embed: Embed
    bridge: Bridge
    commit: Commit
    publish: Publish
    embed_files: EmbedFiles | None = None  # None: decode, embed and bridge here (the local engine)


def discover_files(root: Path, index_dir: Path) -> Listing:
    """The default discover stage: one walk of ``root`` (``media.listing.list_library``), the index folder
    left out."""
    return list_library(root, exclude=[index_dir])


def plan_by_content(found: list[DiscoveredFile], catalog: Catalog, prefix: bytes, retry_failed: bool,
                    unreadable: Sequence[bytes] = (), moved_from: bytes | None = None) -> Plan:
    """The default plan stage: ``make_plan`` with changed files confirmed by their sha256."""
    from diffgap_search.media.hashing import sha256_file

    return make_plan(found, catalog, prefix, lambda f: sha256_file(f.path), retry_failed=retry_failed,
                     unreadable=unreadable, moved_from=moved_from)


def decode_in_workers(tasks: Sequence[DecodeArgs], workers: int, deadline_s: float | None, budget: int,
                      task: Callable[[DecodeArgs], Decoded] | None = None) -> AbstractContextManager[DecodedFiles]:
    """The default decode stage: ``task`` (default ``decode.decode_task``; another must be importable by the
    spawned workers) in ``workers`` processes (``indexing/pool.py``: a worker that crashes or hangs fails its
    file only), pulled ahead by a thread while the encoder runs, up to ``budget`` windows (``indexing/prefetch.py``)."""
    from diffgap_search.indexing.decode import decode_task, lost_decode
    from diffgap_search.indexing.pool import ordered_map
    from diffgap_search.indexing.prefetch import Prefetched

    def decode_all(cancel: Connection) -> Iterator[Decoded]:
        return ordered_map(task or decode_task, iter(tasks), workers, on_lost=lost_decode, deadline_s=deadline_s,
                           cancel=cancel)

    cost: Callable[[Decoded], int] = lambda d: max(1, len(d.segments))  # noqa: E731
    return Prefetched(decode_all, cost=cost, budget=budget)


def default_stages() -> Stages:
    """The local engine: decode workers and a prefetch thread, the encoders in this process, ``store/``."""
    return Stages(discover=discover_files, plan=plan_by_content, decode=decode_in_workers, stream=stream_segments,
                  embed=embed_segments, bridge=bridge_segments, commit=commit_files, publish=publish)
