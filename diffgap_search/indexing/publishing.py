"""The end of every write to an index: the FAISS files that no longer match the catalog written again and
published, the library map brought up to date, and what a writer killed while publishing left behind swept away.

The catalog is the truth (``store/``); an indexing run (``indexing/runner.py``) and ``dgsearch forget``
(``indexing/forget.py``) call :func:`publish_changes` last, holding the writer lock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from diffgap_search.config import FaissConfig
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.library_map import SPACE as MAP_SPACE, map_path, update_map
from diffgap_search.store.settings import space_dim
from diffgap_search.store.vector_index import REBUILD_KEY, Published, sweep_unpublished

PublishSpace = Callable[[Path, Catalog, str, int, FaissConfig], Any]


def publish_changes(index_dir: Path, catalog: Catalog, cfg: FaissConfig, publish: PublishSpace,
                    note: Callable[[str], None]) -> list[str]:
    """Write and publish with ``publish`` (``store.vector_index.publish``, or another engine's) each space
    :func:`stale_spaces` names whose dimension is recorded, update the library map when the index has one, and
    sweep unpublished files; returns the spaces written. ``note`` is told of each space before it is written."""
    written = []
    for space in stale_spaces(catalog):
        dim = space_dim(catalog, space)
        if dim is not None:
            note(f"writing the {space} index")
            publish(index_dir, catalog, space, dim, cfg)
            written.append(space)
    if catalog.count_vectors(MAP_SPACE) or map_path(index_dir).exists():
        update_map(index_dir, catalog)  # the library map, beside the audio FAISS file it matches
    sweep_unpublished(index_dir, catalog)  # files left by a writer killed while publishing
    return written


def stale_spaces(catalog: Catalog) -> list[str]:
    """Spaces whose published FAISS file does not match the catalog: none published, another count, vectors
    above its highest id, or marked for a rebuild (vectors replaced under their ids: ``REBUILD_KEY``). Segment
    ids are never reused (AUTOINCREMENT), so a published ``max_id`` above the catalog's highest id only means
    the last windows were deleted since, which the count says; comparing the two for equality made a space
    whose highest window had been deleted stale forever, and every run (every look of ``--watch``) wrote its
    FAISS file again."""
    marked = set(catalog.get_meta(REBUILD_KEY) or [])
    stale = []
    for space in catalog.spaces():
        pub = Published.read(catalog, space)
        if (pub is None or pub.count != catalog.count_vectors(space) or catalog.max_segment_id(space) > pub.max_id
                or space in marked):
            stale.append(space)
    for key, value in catalog.all_meta().items():  # spaces that lost all their vectors
        if key.startswith("faiss.") and value.get("count") and key[6:] not in stale and catalog.count_vectors(key[6:]) == 0:
            stale.append(key[6:])
    return stale
