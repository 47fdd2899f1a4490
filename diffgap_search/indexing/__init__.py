"""Indexing: turn a folder of media into (or update) an index. Entry point: :func:`index_folder`."""

from diffgap_search.indexing.report import IndexProgress, IndexReport, NoProgress
from diffgap_search.indexing.run import index_folder

__all__ = ["IndexProgress", "IndexReport", "NoProgress", "index_folder"]
