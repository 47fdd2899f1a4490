"""A library that moved: checking ``dgsearch index NEW --moved-from OLD`` before it is planned, and telling a user
who indexed a moved library without it that the flag exists.

After ``mv /old/sfx /new/sfx`` (or a drive mounted at another path, or a library copied to another machine with
its index), the catalog's rows still name ``/old/sfx``. ``--moved-from OLD`` plans them at their places under the
new folder (``indexing/plan.py``): no file whose size and time are unchanged is read, labels move along, and the
rows under OLD leave the index. It is refused while a file indexed under OLD is still there (a copy, not a move:
indexing NEW on its own keeps both, the copies reusing the vectors).
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from diffgap_search.errors import IndexNotFoundError, UsageError
from diffgap_search.indexing.plan import rows_under
from diffgap_search.media.discover import display_path, path_key
from diffgap_search.store.catalog import Catalog


def moved_from_key(old: Path, root: Path) -> bytes:
    """The key ``--moved-from old`` names for a library now at ``root`` (absolute): a folder's key ending in ``/``
    when ``root`` is a folder, a file's key when it is a file. UsageError when ``old`` is ``root`` or holds it."""
    old_key, root_key = path_key(old), path_key(root)
    if old_key == root_key or root_key.startswith(old_key.rstrip(b"/") + b"/") or old_key == b"/":
        raise UsageError(f"--moved-from {display_path(old_key)}: the library's old place cannot be "
                         f"{display_path(root_key)} or a folder above it")
    return old_key if root.is_file() else old_key.rstrip(b"/") + b"/"


def check_moved_away(catalog: Catalog, old_prefix: bytes) -> None:
    """UsageError when a file indexed under ``old_prefix`` is still there on disk."""
    rows = rows_under(catalog, old_prefix)
    still = [row for row in rows if os.path.lexists(os.fsdecode(row.path_key))]
    if still:
        n = len(still)
        raise UsageError(
            f"--moved-from {display_path(old_prefix.rstrip(b'/') or b'/')}: {n:,} of the {len(rows):,} files indexed"
            f" there {'is' if n == 1 else 'are'} still there ({still[0].path}{', ...' if n > 1 else ''}): that is a"
            " copy, not a move. Index the new folder without --moved-from to keep both (the copies reuse the"
            " vectors), or finish the move first")


def moved_library_hint(root_prefix: bytes, copied: Sequence[tuple[bytes, bytes]]) -> str | None:
    """For ``(new key, key of the indexed file with the same content)`` pairs of a run of the library at
    ``root_prefix`` (a folder's key ending in ``/``), the folder that ``--moved-from`` would name to follow them
    when their indexed files are no longer there (the library moved), as a display path: the one most such files
    sit at the same relative path under. None when there is none (the originals are still there: copies)."""
    roots: Counter[bytes] = Counter()
    for new_key, twin_key in copied:
        rel = new_key[len(root_prefix):]
        if not root_prefix.endswith(b"/") or not rel or not twin_key.endswith(b"/" + rel):
            continue
        old_root = twin_key[: -len(rel) - 1]
        if old_root and not root_prefix.startswith(old_root + b"/") and not os.path.lexists(os.fsdecode(twin_key)):
            roots[old_root] += 1
    if not roots:
        return None
    return display_path(roots.most_common(1)[0][0])


def gone_library_hint(index_dir: Path, root: Path) -> str:
    """For a library folder ``root`` (absolute) that cannot be found: ``"; the index holds N files under it: ..."``
    naming ``--moved-from`` and ``dgsearch forget``, when the index at ``index_dir`` holds files there; else ``""``."""
    key = path_key(root)
    try:
        with Catalog.open(index_dir) as catalog:
            n = catalog.count_files_under(key.rstrip(b"/") + b"/") + (catalog.file_by_key(key) is not None)
    except IndexNotFoundError:
        return ""
    if n == 0:
        return ""
    shown = shlex.quote(display_path(key))
    return (f"; the index holds {n:,} file{'' if n == 1 else 's'} from there: if it moved, `dgsearch index NEW"
            f" --moved-from {shown}` follows {'it' if n == 1 else 'them'}; gone for good, `dgsearch forget {shown}`"
            f" takes {'it' if n == 1 else 'them'} out")
