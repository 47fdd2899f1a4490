"""Copies shown once: hits whose files hold the same content (same ``sha256``) collapse into one hit.

Sound libraries hold many exact copies (the same effect in several packs). By default every ranking (semantic,
keyword, hybrid, ``similar``) counts a content once: its hits form a group, shown as its best hit (highest
score, ties by path, then start) with ``copies``, the paths of the other files holding that content that the
query's filters let through (by path). ``k`` counts groups. With ``--segments`` a group is one window of one
content (same hash, same seconds). ``SearchConfig.all_copies`` (``--all-copies``) shows every file apart, as
a ranking without groups. A file without a hash is a group of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace

from diffgap_search.search.file_filter import Allowed, allowed_among
from diffgap_search.search.types import Hit
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.copies import file_hashes, files_with_hashes

Key = Callable[[Hit], Hashable]


def content_key(hashes: dict[int, str], by_window: bool) -> Key:
    """The group of a hit: its file's content hash (the file itself when it has none), with its seconds
    when ``by_window``."""

    def key(hit: Hit) -> Hashable:
        sha = hashes.get(hit.file_id)
        base: Hashable = ("file", hit.file_id) if sha is None else ("sha", sha)
        return (base, hit.start_s, hit.end_s) if by_window else base

    return key


def best(members: Sequence[Hit]) -> Hit:
    """The representative of a group: the highest score, ties by path, then start."""
    return min(members, key=lambda h: (-h.score, h.path, h.start_s))


def group(hits: Sequence[Hit], key: Key) -> list[list[Hit]]:
    """``hits`` (best first) in groups by ``key``, each at the place of its first member, members in order."""
    groups: dict[Hashable, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(key(hit), []).append(hit)
    return list(groups.values())


def group_hits(catalog: Catalog, hits: Sequence[Hit], *, by_window: bool, all_copies: bool) -> list[list[Hit]]:
    """``hits`` in content groups (module docstring); one group per hit with ``all_copies``."""
    if all_copies:
        return [[h] for h in hits]
    return group(hits, content_key(file_hashes(catalog, {h.file_id for h in hits}), by_window))


def shown(catalog: Catalog, groups: Sequence[Sequence[Hit]], *, all_copies: bool = False,
          allowed: Allowed = None, exclude: frozenset[int] = frozenset()) -> list[Hit]:
    """One hit per group, its best, with ``copies``: the paths of the other ok files with its content that
    ``allowed`` (None: every file) lets through and ``exclude`` does not name, by path. A hit whose file has
    no such copy, and every hit with ``all_copies``, is shown as it is."""
    reps = [best(g) for g in groups]
    if all_copies:
        return reps
    hashes = file_hashes(catalog, {h.file_id for h in reps})
    holders = files_with_hashes(catalog, set(hashes.values()))
    passing = allowed_among(allowed, (fid for copies in holders.values() for fid, _ in copies))
    out: list[Hit] = []
    for rep in reps:
        sha = hashes.get(rep.file_id)
        others = sorted(path for fid, path in holders.get(sha, []) if sha is not None and fid != rep.file_id
                        and fid not in exclude and fid in passing)
        out.append(replace(rep, copies=others) if others else rep)
    return out
