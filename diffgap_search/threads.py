"""How many CPU threads a block of torch work may use: a core helper, so every stage (``gap``'s bridge,
``encoders``) can cap it without importing another stage.

torch is imported when the helper runs, never at import: importing this module stays instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with at most ``n`` intra-op threads (restored after). For tiny matrix products (one
    query text is a handful of tokens, one bridged query a few 512-d layers) a second thread only adds
    synchronisation, and on a busy machine a descheduled thread stalls every operation."""
    import torch

    before = torch.get_num_threads()
    if n >= before:
        yield
        return
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
