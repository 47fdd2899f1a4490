"""What an indexing run did, for the CLI to present and tests to assert."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class IndexReport:
    """Counts of one run. ``failed`` lists ``(path, one-line reason)`` for the files that failed in it,
    ``unreadable`` the paths the walk could not read (``kept_unreadable``: the indexed files at or below them,
    kept as they were), ``deferred`` the files left for a later run because they were still changing (``--watch``'s
    settle time), ``caption_errors`` the caption files that were ignored (bad UTF-8, JSON or CSV); ``moved_hint`` the
    folder that ``--moved-from`` would have followed when the run copied vectors from files no longer there."""

    root: str
    index: str
    found: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    renamed: int = 0
    copied: int = 0
    deleted: int = 0
    previously_failed: int = 0
    embedded_files: int = 0
    windows_embedded: int = 0
    audio_seconds: float = 0.0
    elapsed_s: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    kept_unreadable: int = 0
    deferred: int = 0  # found, but modified too recently (still being written?): left for a later run
    ignored: int = 0  # files and folders a .dgsearchignore left out (a folder counts once)
    unread_formats: dict[str, int] = field(default_factory=dict)  # .ape, .mid ... (discover.UNREAD_FORMATS): count
    caption_errors: list[tuple[str, str]] = field(default_factory=list)
    moved_from: str | None = None  # --moved-from's folder: its rows were followed to their places under root
    moved: int = 0  # rows followed from there (``superseded``: those whose place already had a row, dropped)
    superseded: int = 0
    moved_hint: str | None = None  # copies made of files no longer there, most from under this folder

    @property
    def windows_per_s(self) -> float:
        return self.windows_embedded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("failed", "unreadable", "caption_errors"):
            out[name] = [{"path": p, "error": e} for p, e in getattr(self, name)]
        out["windows_per_s"] = round(self.windows_per_s, 3)
        return out


class IndexProgress(Protocol):
    """Progress sink of an indexing run (the CLI draws a rich bar on stderr; tests may record)."""

    def start(self, total_files: int) -> None: ...

    def advance(self, files: int, windows: int) -> None: ...

    def note(self, message: str) -> None: ...

    def stop(self) -> None:
        """End the display; shows nothing when ``start`` was never called (a run that failed before it)."""
        ...


class NoProgress:
    """A progress sink that shows nothing."""

    def start(self, total_files: int) -> None:
        pass

    def advance(self, files: int, windows: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def stop(self) -> None:
        pass
