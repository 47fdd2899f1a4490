"""The command line's listener of ``diffgap_search.notices``: each notice as ``note: ...`` on stderr while a
command runs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from diffgap_search.notices import LOGGER


class _StderrNotices(logging.Handler):
    """Writes each record as ``note: <message>`` to the ``sys.stderr`` of the moment: while rich shows a progress
    bar it has replaced ``sys.stderr`` with a proxy that prints above the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"note: {record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's rule: a failing handler reports, never raises
            self.handleError(record)


@contextmanager
def shown_notices() -> Iterator[None]:
    """Show the notices sent while the block runs (nested blocks add no second handler)."""
    logger = logging.getLogger(LOGGER)
    if any(isinstance(h, _StderrNotices) for h in logger.handlers):
        yield
        return
    handler, level, propagate = _StderrNotices(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
