"""sqlite-utils imported without pandas.

``sqlite_utils.db`` imports pandas at its top when pandas is installed (it is here: Ray Data needs it), only to
map ``pandas.Timestamp`` values to TEXT columns. The catalog never writes a pandas value, and importing pandas
costs about 0.45 s of a core (2026-12-06, Zen 4 EPYC: ``python -X importtime``, sqlite_utils 0.49 s of which
pandas 0.45 s), paid by every writer: a `dgsearch index` with nothing to embed took 1.9 s, a quarter of it this.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_sqlite_utils() -> ModuleType:
    """The ``sqlite_utils`` module; when pandas is not imported yet, imported with pandas hidden (an entry of
    ``None`` in ``sys.modules`` makes ``import pandas`` raise ImportError, which sqlite-utils handles), and
    pandas unhidden afterwards so that a later ``import pandas`` works as usual. Where pandas is already
    imported (a Ray driver), sqlite-utils finds it and uses it, as it would anyway."""
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hide = "pandas" not in sys.modules
    if hide:
        sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils
    finally:
        if hide and "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]
    return sqlite_utils
