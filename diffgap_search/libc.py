"""The C library's functions that Python does not wrap (``malloc_trim``, ``prctl``), looked up once.

Linux only (glibc or another libc that has the function); elsewhere, or where the function is missing,
``libc_function`` returns None and callers fall back (no trim; a parent-pid watch instead of prctl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

_libc: Any = None
_functions: dict[str, Any] = {}


def libc_function(name: str) -> Any | None:
    """``libc.<name>`` as a ctypes function (errno kept for ``ctypes.get_errno``), or None where absent."""
    global _libc
    if name not in _functions:
        if _libc is None:
            _libc = False
            if sys.platform.startswith("linux"):
                try:
                    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                except OSError:
                    pass
        _functions[name] = getattr(_libc, name, None) if _libc else None
    return _functions[name]
