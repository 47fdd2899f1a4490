"""Indexing: turn a folder of media into (or update) an index.

Entry points: :func:`index_folder` (the models given), :func:`update_index` (an existing index keeps its
models), :func:`run_index` (any :class:`Stages`, e.g. ``dataclasses.replace(default_stages(), embed=...)``).
"""

from diffgap_search.indexing.models import ModelChoice
from diffgap_search.indexing.report import IndexProgress, IndexReport, NoProgress
from diffgap_search.indexing.run import index_folder, update_index
from diffgap_search.indexing.runner import RunSettings, run_index
from diffgap_search.indexing.stages import Stages, default_stages

__all__ = [
    "IndexProgress",
    "IndexReport",
    "ModelChoice",
    "NoProgress",
    "RunSettings",
    "Stages",
    "default_stages",
    "index_folder",
    "run_index",
    "update_index",
]
