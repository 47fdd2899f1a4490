"""One-line notices for the person at the terminal: a slow step that happens once (a model's first use on this
machine), said as it starts, so that a progress bar that stops moving for seconds is explained.

They go to the ``logging`` logger :data:`LOGGER` at INFO, which shows nothing unless a handler is attached: the
command line attaches one for each command (``cli/notices.py``: ``note: ...`` on stderr, above a live progress
bar); used as a library, the package stays silent.
"""

from __future__ import annotations

import logging

LOGGER = "dgsearch.notice"


def notice(message: str) -> None:
    """Say ``message`` (one line, no trailing period needed) to whoever listens on :data:`LOGGER`."""
    logging.getLogger(LOGGER).info(message)
