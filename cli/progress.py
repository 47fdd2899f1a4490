"""A rich progress bar on stderr for indexing runs (counts, rate and ETA); silent when not a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RichIndexProgress:
    """Implements ``diffgap_search.indexing.IndexProgress`` with a rich bar on ``console`` (stderr)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.windows = 0
        self.progress = Progress(
            TextColumn("[bold]indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[windows]} windows · {task.fields[rate]} windows/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("index", total=0, windows=0, rate="-")
        self.started = False

    def start(self, total_files: int) -> None:
        self.progress.update(self.task, total=total_files)
        self.progress.start()
        self.started = True

    def advance(self, files: int, windows: int) -> None:
        self.windows += windows
        elapsed = self.progress.tasks[0].elapsed or 0.0
        rate = f"{self.windows / elapsed:.1f}" if elapsed > 0 else "-"
        self.progress.update(self.task, advance=files, windows=self.windows, rate=rate)

    def note(self, message: str) -> None:
        self.console.print(Text(message, style="dim"))  # a note may name a file: its text is not markup

    def stop(self) -> None:
        if self.started:  # rich's stop() of a bar never started still prints a blank line
            self.progress.stop()


class RichTrainProgress:
    """A rich bar over training epochs with the running loss and pairs/s, on ``console`` (stderr)."""

    def __init__(self, console: Console, epochs: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            TextColumn("epoch {task.completed:.0f}/{task.total:.0f} · loss {task.fields[loss]} · {task.fields[rate]} pairs/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("train", total=epochs, loss="-", rate="-")
        self.started = False

    def step(self, epoch: int, step: int, loss: float, pairs_per_s: float) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        self.progress.update(self.task, completed=epoch, loss=f"{loss:.4f}", rate=f"{pairs_per_s:.0f}")

    def stop(self) -> None:
        if self.started:
            self.progress.update(self.task, completed=self.progress.tasks[0].total)
            self.progress.stop()
