"""Discover: walk a folder and list its audio and video files, deterministically and safely.

Paths are ``pathlib.Path`` objects made absolute with ``os.path.abspath`` (``..`` folded, symlinks in the
path *not* resolved), so a file reached through a symlinked folder keeps the link's path. Names that are
not valid UTF-8 are carried as Python's surrogate-escaped strings and round-trip through
``os.fsencode``; ``path_key`` gives the bytes the catalog uses as a file's unique key and
``display_path`` gives printable text for messages and tables.

The walk follows symlinks to folders but remembers every folder it entered by ``(st_dev, st_ino)``, so
loops end and a folder reached twice is listed once (under the first path in byte order). Hidden entries
(a name starting with ``.``), the ``exclude`` paths and everything below them, what a ``.dgsearchignore`` in the
folder or a folder above says (``media/ignore.py``), and anything that is not a regular file (fifos, sockets,
devices) are skipped. A folder that cannot be read, or a broken symlink, is
skipped and reported through ``on_error(path, reason)``; the walk never raises for them.
"""

from __future__ import annotations

import base64
import os
import stat as stat_mod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from diffgap_search.errors import InputNotFoundError
from diffgap_search.media.ignore import IGNORE_FILE, IgnoreFile, ignored, parent_ignores, read_ignore_file
from diffgap_search.media.sniff import AMBIGUOUS_EXTENSIONS, looks_like_media

MediaKind = Literal["audio", "video"]
OnError = Callable[[Path, str], None]

# What sound libraries, studios and archives hold: the web's formats; AIFF/AIFC and CAF (macOS, Logic, many
# commercial SFX libraries); Broadcast WAVE (.bwf), RF64 and Sony Wave64 for long recordings; Sun .au; WavPack
# (archives); MPEG-1 Layer II (broadcast playout); AAC, WMA and Matroska audio; film and broadcast stems (Dolby
# .ac3/.eac3, DTS); AAC audiobooks and ringtones (.m4b, .m4r); TTA (lossless archives); phones' voice memos (AMR)
# and Speex; web audio (.weba); RealAudio (.ra: web and radio archives of the 1990s); Creative .voc and Amiga
# .8svx/.16sv samples (games, trackers); NIST SPHERE .sph (speech corpora: TIMIT, Switchboard). libsndfile reads
# most, ffmpeg the rest.
AUDIO_EXTENSIONS: frozenset[str] = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".opus",
    ".aif", ".aiff", ".aifc", ".caf", ".bwf", ".rf64", ".w64", ".au", ".wv", ".mp2", ".aac", ".wma", ".mka",
    ".ac3", ".eac3", ".dts", ".m4b", ".m4r", ".tta", ".amr", ".spx", ".weba", ".ra", ".voc", ".8svx", ".16sv",
    ".sph",
})
# Sound in formats not read (none of their files to test a decoder on here, or not sound at all): an indexing run
# counts them by extension and says so (``media/listing.py``), so a folder of them is not passed over in silence.
UNREAD_FORMATS: dict[str, str] = {
    ".ape": "Monkey's Audio", ".mpc": "Musepack", ".dsf": "DSD", ".dff": "DSD", ".shn": "Shorten", ".tak": "TAK",
    ".ofr": "OptimFROG", ".sd2": "Sound Designer II", ".aax": "Audible, encrypted", ".m4p": "iTunes, encrypted",
    ".mid": "MIDI: notes, not sound", ".midi": "MIDI: notes, not sound",
}
# Besides the web's: MPEG program and transport streams (.mpg, DVD .vob, DVB/IPTV recordings' .ts, camcorders'
# AVCHD .mts/.m2ts), MXF (broadcast archives), DV tape transfers, Ogg Theora (.ogv: Wikimedia, archive.org), old
# phones' .3gp/.3g2, Flash .flv, .m4v and .wmv. A .ts, .mts or .m2ts file is kept only where its first bytes are
# transport-stream packets (``media/sniff.py``: TypeScript sources and Minetest schematics share them).
VIDEO_EXTENSIONS: frozenset[str] = frozenset({
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".vob", ".ts", ".mts", ".m2ts", ".mxf",
    ".dv", ".ogv", ".3gp", ".3g2", ".flv", ".wmv",
})


@dataclass(frozen=True)
class DiscoveredFile:
    """One media file found by ``discover``.

    ``path`` is absolute (not resolved through symlinks), ``kind`` is ``"audio"`` or ``"video"``, ``size`` is
    in bytes and ``mtime_ns`` is the modification time in integer nanoseconds (both of the file a symlink
    points to).
    """

    path: Path
    kind: MediaKind
    size: int
    mtime_ns: int

    @property
    def key(self) -> bytes:
        """The catalog's unique key for this file: ``path_key(self.path)``."""
        return path_key(self.path)


def media_kind(path: Path | str) -> MediaKind | None:
    """``"audio"`` or ``"video"`` from the file name's extension (case-insensitive), else ``None``."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def file_media_kind(path: Path) -> MediaKind | None:
    """:func:`media_kind` of a file on disk: for an extension that other files share (``.ts``, ``.mts``,
    ``.m2ts``) also by its first bytes (``media/sniff.py``), so a TypeScript source is not a video."""
    kind = media_kind(path)
    if kind is not None and name_extension(path.name) in AMBIGUOUS_EXTENSIONS and not looks_like_media(path):
        return None
    return kind


def query_file_kind(name: str, content_type: str | None = None) -> MediaKind:
    """The kind of a query file known by its name (an upload's file name) and, optionally, its declared
    MIME type: ``"video"`` for a video extension or a ``video/*`` type, else ``"audio"`` (decoding decides
    the rest)."""
    if media_kind(name) == "video" or (content_type or "").startswith("video/"):
        return "video"
    return "audio"


def path_key(p: Path | str) -> bytes:
    """The file's unique key: ``os.fsencode`` of its absolute path (raw bytes, any name round-trips)."""
    return os.fsencode(os.path.abspath(os.fspath(p)))


def display_path(p: Path | str | bytes) -> str:
    """Printable text for any path: non-UTF-8 bytes become ``\\xNN``, control characters are escaped.

    ``\\n``, ``\\r`` and ``\\t`` are written as such; any other unprintable character as ``\\xNN`` or
    ``\\uNNNN``. The result is for people (messages, tables); use ``path_key`` to identify a file.
    """
    raw = p if isinstance(p, bytes) else os.fsencode(os.fspath(p))
    text = raw.decode("utf-8", errors="backslashreplace")
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) for ch in text)


def utf8_name(name: str) -> str:
    """A file name (surrogate-escaped where its bytes are not UTF-8) as UTF-8 text, such bytes as U+FFFD: for
    a name that must be text (an HTTP header, a new file's name), not for finding the file again."""
    return os.fsencode(name).decode("utf-8", "replace")


def exact_path_field(shown: str, key: bytes) -> dict[str, str]:
    """``{"path_bytes": base64 of key}`` where ``shown`` (a ``display_path``) is not the file's exact name
    (bytes that are not UTF-8, an escaped control character), else ``{}``: what JSON output adds beside
    ``path`` so a program can open any file (ripgrep's JSON does the same with ``bytes``)."""
    if not key or os.fsencode(shown) == key:
        return {}
    return {"path_bytes": base64.b64encode(key).decode("ascii")}


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def discover(
    root: Path,
    *,
    exclude: Sequence[Path] = (),
    on_error: OnError | None = None,
) -> Iterator[DiscoveredFile]:
    """Yield every audio/video file under ``root``, in the byte order of their absolute paths.

    ``root`` may also be a single media file. Raises ``InputNotFoundError`` when ``root`` does not exist.
    """
    for path, st in walk_files(root, exclude=exclude, on_error=on_error, wanted=is_media_name):
        kind = file_media_kind(path)
        if kind is not None:
            yield DiscoveredFile(path=path, kind=kind, size=st.st_size, mtime_ns=st.st_mtime_ns)


MEDIA_EXTENSIONS: frozenset[str] = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def name_extension(name: str) -> str:
    """A file name's extension, lower-cased, with its dot (``"Dog.WAV"`` -> ``".wav"``; ``""`` for none): what
    ``os.path.splitext`` gives for a name without a folder, at a third of its cost (every name of a walk)."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_media_name(name: str) -> bool:
    """Whether a file named ``name`` is audio or video by its extension (``walk_files``' ``wanted``)."""
    return name_extension(name) in MEDIA_EXTENSIONS


def walk_files(
    root: Path,
    *,
    exclude: Sequence[Path] = (),
    on_error: OnError | None = None,
    wanted: Callable[[str], bool] | None = None,
    on_ignored: Callable[[Path, bool], None] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Yield ``(absolute path, stat)`` for every non-hidden regular file under ``root`` whose name ``wanted``
    accepts (default: every name), in path-byte order.

    The shared walker of ``discover`` and the caption sidecar scan; see the module docstring for the rules. A file
    whose name is not wanted costs no ``stat`` and no ``Path`` (most of a big tree: 0.9 of 1.5 s on /usr/share's
    52,000 files), and its broken symlink is not reported: nothing would have read it. ``on_ignored`` gets each
    wanted file and each folder a ``.dgsearchignore`` leaves out (a folder once, not its contents), and whether it
    is a folder.
    """
    report: OnError = on_error or (lambda _p, _r: None)
    top = Path(os.path.abspath(os.fspath(root)))
    try:
        st = os.stat(top)
    except FileNotFoundError:
        raise InputNotFoundError(f"no such file or folder: {display_path(top)}") from None
    except OSError as exc:
        raise InputNotFoundError(f"cannot read {display_path(top)}: {exc.strerror or exc}") from None
    excluded = identities(exclude)
    if _identity(st) in excluded:
        return
    if stat_mod.S_ISREG(st.st_mode):
        yield top, st
        return
    if not stat_mod.S_ISDIR(st.st_mode):
        return
    for path, file_st in _walk_dir(str(top), excluded, {_identity(st)}, report, wanted or (lambda _name: True),
                                   parent_ignores(str(top), report), on_ignored or (lambda _path, _is_dir: None)):
        yield Path(path), file_st


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def identities(paths: Sequence[Path]) -> set[tuple[int, int]]:
    """``(st_dev, st_ino)`` of each of ``paths`` that exists (what the walk and the watch leave out by)."""
    found: set[tuple[int, int]] = set()
    for p in paths:
        try:
            found.add(_identity(os.stat(p)))
        except OSError:
            continue  # an exclude path that does not exist yet excludes nothing
    return found


def _walk_dir(
    folder: str,
    excluded: set[tuple[int, int]],
    visited: set[tuple[int, int]],
    report: OnError,
    wanted: Callable[[str], bool],
    ignores: tuple[IgnoreFile, ...] = (),
    on_ignored: Callable[[Path, bool], None] = lambda _path, _is_dir: None,
) -> Iterator[tuple[str, os.stat_result]]:
    """``walk_files`` below one folder (``folder`` a string path: a ``Path`` per entry costs more than its stat);
    ``ignores``: the ignore files of the folders above (outermost first), this folder's own added here."""
    try:
        with os.scandir(folder) as it:
            every = list(it)
    except OSError as exc:
        report(Path(folder), f"cannot read folder: {exc.strerror or exc}")
        return
    entries = [e for e in every if not e.name.startswith(".")]
    if any(e.name == IGNORE_FILE for e in every):
        own = read_ignore_file(folder, report)
        ignores = ignores + (own,) if own is not None else ignores
    # A folder sorts as "name/" so that the walk's order is the byte order of the full paths.
    listed: list[tuple[bytes, str, os.stat_result]] = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()  # follows symlinks; a plain entry's type comes with the listing, no syscall
        except OSError:
            is_dir = False
        if not is_dir and not wanted(entry.name):
            continue
        path = entry.path
        if ignores and ignored(ignores, path, is_dir):
            on_ignored(Path(path), is_dir)
            continue
        try:
            st = os.stat(path)  # follows symlinks
        except OSError as exc:
            reason = "broken symlink" if entry.is_symlink() else f"cannot stat: {exc.strerror or exc}"
            report(Path(path), reason)
            continue
        if _identity(st) in excluded:
            continue
        name = os.fsencode(entry.name)
        if stat_mod.S_ISDIR(st.st_mode):
            listed.append((name + b"/", path, st))
        elif stat_mod.S_ISREG(st.st_mode) and wanted(entry.name):
            listed.append((name, path, st))
    listed.sort(key=lambda item: item[0])
    for _key, path, st in listed:
        if stat_mod.S_ISDIR(st.st_mode):
            ident = _identity(st)
            if ident in visited:
                continue  # a symlink loop, or a folder already listed under another path
            visited.add(ident)
            yield from _walk_dir(path, excluded, visited, report, wanted, ignores, on_ignored)
        else:
            yield path, st
