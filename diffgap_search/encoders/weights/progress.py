"""Progress of model downloads on stderr: one rich bar per file on a terminal, one plain line otherwise.

huggingface_hub reports bytes through a ``tqdm_class`` it instantiates for every file (two bars per file
for Xet-stored files: "reconstructing" and "downloading bytes"). ``tqdm_bridge`` turns those into calls on
a ``DownloadProgress`` sink and draws nothing itself, so a log that is not a terminal gets no cursor
movements, no carriage returns and no per-chunk lines — only "downloading <repo>: <file> (<size>)" when a
file starts and "  done" when it ends.

``HF_HUB_DISABLE_PROGRESS_BARS=1`` (huggingface_hub's own switch) silences the bars and the lines.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from rich.console import Console


class DownloadProgress(Protocol):
    """Receives the progress of one file download at a time."""

    def begin(self, label: str, total: int | None) -> None:
        """A download of ``total`` bytes (None when unknown) starts; ``label`` is "<repo>: <file>"."""

    def advance(self, n: int) -> None:
        """``n`` more bytes arrived (``n`` may be negative when a resumed download rewinds)."""

    def end(self) -> None:
        """The file is complete."""


class NoDownloadProgress:
    """A sink that shows nothing."""

    def begin(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self) -> None:
        pass


class RichDownloadProgress:
    """One rich bar per file on a terminal console; on any other stream, one line when a file starts and one
    when it ends (no escape codes)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._task: Any = None
        self._label = ""
        self._total: int | None = None
        self._started = 0.0

    def begin(self, label: str, total: int | None) -> None:
        self._label, self._total, self._started = label, total, time.monotonic()
        if not self.console.is_terminal:
            size = f" ({_size(total)})" if total is not None else ""
            self.console.print(f"downloading {label}{size}", markup=False, highlight=False)
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("downloading {task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task(label, total=total)
        self._progress.start()

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._total or self._progress.tasks[0].completed)
            self._progress.stop()
            self._progress = None
            return
        took = time.monotonic() - self._started
        self.console.print(f"  done: {self._label} in {took:.1f} s", markup=False, highlight=False)


def stderr_download_progress(enabled: bool = True) -> DownloadProgress:
    """The sink the loaders use: ``RichDownloadProgress`` on stderr, unless ``enabled`` is False or
    ``HF_HUB_DISABLE_PROGRESS_BARS`` is set."""
    disabled = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return RichDownloadProgress() if enabled and not disabled else NoDownloadProgress()


def tqdm_bridge(sink: DownloadProgress) -> type:
    """A tqdm class for huggingface_hub's ``tqdm_class`` that draws nothing and feeds ``sink``'s current
    file with the bytes of the file's main bar (Xet's parallel "downloading bytes" bar is left out, so bytes
    are not counted twice)."""
    from tqdm import tqdm

    class SinkTqdm(tqdm):  # type: ignore[misc, type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            desc = str(kwargs.get("desc") or "")
            self._feeds = not desc.endswith("downloading bytes") and kwargs.get("unit", "B") == "B"
            super().__init__(*args, **kwargs)
            if self._feeds and kwargs.get("initial"):
                sink.advance(int(kwargs["initial"]))

        def update(self, n: float | None = 1) -> bool | None:
            if self._feeds and n:
                sink.advance(int(n))
            return super().update(n)

    return SinkTqdm


def _size(total: int) -> str:
    """``615.9 MB``-style size (decimal units, as the hub shows them)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if total >= scale:
            return f"{total / scale:.1f} {unit}"
    return f"{total} B"
