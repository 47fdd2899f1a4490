"""Another process holding an index's writer lock, as a running `dgsearch index --watch` or `train` does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = ("import sys, time\nfrom pathlib import Path\nfrom diffgap_search.store.lock import writer_lock\n"
         "with writer_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)")


@contextmanager
def writer_lock_held(index_dir: Path) -> Iterator[None]:
    """A real process holds ``index_dir``'s writer lock (taken before this yields) until the block ends; it is
    killed then, and the kernel releases the lock."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(index_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait()
