"""Embedded metadata of a media file: its descriptive tags and its stream facts (sample rate, channels).

Read with maintained libraries, never a parser of our own:

- **mutagen** for ID3 (mp3, and ``id3 `` chunks in WAV/AIFF), Vorbis comments (ogg, opus, flac), FLAC and
  MP4/M4A/MOV atoms, and for the stream facts of every format it knows;
- **wavinfo** for what mutagen does not read in WAV files: the RIFF ``LIST/INFO`` chunk, the Broadcast-WAV
  ``bext`` chunk (EBU Tech 3285) and ``iXML`` (mutagen's ``mutagen.wave`` exposes only an ID3 chunk).

Every format's fields are mapped onto one small vocabulary (:data:`TAG_KEYS`): ``title``, ``description``,
``comment``, ``keywords``, ``category``, ``artist``, ``library`` — plus iXML's ``project``, ``scene`` and
``take``. A broken or hostile tag block never fails a file: metadata is optional, so any error while reading
it gives no tags (the decoder decides whether the file is usable). Reading is called by the decode worker
that decodes the file (``indexing/decode.py``), so a file is opened for its tags only when it is decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TAG_KEYS = ("title", "description", "comment", "keywords", "category", "artist", "library",
            "project", "scene", "take")
MAX_VALUE_CHARS = 4096  # a tag value longer than this is cut (a hostile file may hold megabytes of "comment")
MAX_VALUES = 64  # per file

# Vorbis comments (ogg, opus, flac) and APE-style free-form names, upper-cased -> our key. UCS libraries
# write CATEGORY/SUBCATEGORY/CATID; Soundminer and BWF MetaEdit export DESCRIPTION and KEYWORDS.
_FREEFORM = {
    "TITLE": "title", "DESCRIPTION": "description", "SUBTITLE": "description", "COMMENT": "comment",
    "KEYWORDS": "keywords", "KEYWORD": "keywords", "CATEGORY": "category", "SUBCATEGORY": "category",
    "CATID": "category", "GENRE": "category", "GROUPING": "category", "ARTIST": "artist",
    "ALBUM": "library", "LIBRARY": "library", "PUBLISHER": "library", "ORGANIZATION": "library",
}
# ID3v2 frame ids -> our key (TXXX and COMM are handled by description).
_ID3 = {"TIT2": "title", "TIT3": "description", "TIT1": "category", "TCON": "category", "TPE1": "artist",
        "TALB": "library", "TPUB": "library"}
# MP4 atoms -> our key (freeform ``----:com.apple.iTunes:NAME`` atoms go through ``_FREEFORM``).
_MP4 = {"\xa9nam": "title", "desc": "description", "ldes": "description", "\xa9cmt": "comment",
        "\xa9gen": "category", "\xa9grp": "category", "\xa9ART": "artist", "aART": "artist",
        "\xa9alb": "library", "keyw": "keywords"}
# RIFF INFO fields (wavinfo's names) -> our key.
_RIFF_INFO = {"title": "title", "subject": "description", "comment": "comment", "keywords": "keywords",
              "genre": "category", "artist": "artist", "product": "library"}
# iXML element paths -> our key (USER/* is where Soundminer and UCS tools write their fields).
_IXML = {"PROJECT": "project", "SCENE": "scene", "TAKE": "take", "NOTE": "comment",
         "USER/DESCRIPTION": "description", "USER/CATEGORY": "category", "USER/SUBCATEGORY": "category",
         "USER/CATID": "category", "USER/KEYWORDS": "keywords", "USER/LIBRARY": "library",
         "USER/TRACKTITLE": "title"}


@dataclass(frozen=True)
class FileTags:
    """What a file says about itself: ``tags`` as ``(key, value)`` pairs in a stable order (keys from
    :data:`TAG_KEYS`, duplicates removed), and its first audio stream's ``sample_rate`` (Hz) and
    ``channels`` where the container states them (None when it does not, or could not be read)."""

    tags: tuple[tuple[str, str], ...] = ()
    sample_rate: int | None = None
    channels: int | None = None

    def as_dict(self) -> dict[str, list[str]]:
        """``{key: [values...]}`` in :data:`TAG_KEYS` order."""
        out: dict[str, list[str]] = {}
        for key, value in self.tags:
            out.setdefault(key, []).append(value)
        return out


@dataclass
class _Collector:
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str | None, values: Any) -> None:
        if key is None or values is None:
            return
        for value in values if isinstance(values, (list, tuple)) else [values]:
            text = _text(value)
            if text and (key, text) not in self.pairs and len(self.pairs) < MAX_VALUES:
                self.pairs.append((key, text))


def _text(value: Any) -> str:
    """One tag value as clean text: mutagen's frames and atoms stringify themselves; bytes are UTF-8."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join(str(value).replace("\x00", " ").split())
    return text[:MAX_VALUE_CHARS]


def read_tags(path: Path) -> FileTags:
    """The tags and stream facts of ``path``; ``FileTags()`` when it has none or they cannot be read."""
    out = _Collector()
    sample_rate: int | None = None
    channels: int | None = None
    try:
        import mutagen

        audio = mutagen.File(path)
    except Exception as exc:  # noqa: BLE001 - optional metadata: a broken tag block must not fail the file
        log.debug("no readable tags in %s: %s", path, exc)
        audio = None
    if audio is not None:
        info = getattr(audio, "info", None)
        sample_rate = _positive_int(getattr(info, "sample_rate", None))
        channels = _positive_int(getattr(info, "channels", None))
        if sample_rate is None and type(audio).__name__ == "OggOpus":
            sample_rate = 48_000  # Opus always decodes at 48 kHz (RFC 7845); its header's rate is informational
        try:
            _from_mutagen(audio, out)
        except Exception as exc:  # noqa: BLE001 - see above
            log.debug("unreadable tags in %s: %s", path, exc)
    if path.suffix.lower() in (".wav", ".wave", ".bwf", ".rf64"):
        _from_wavinfo(path, out)
    return FileTags(tuple(sorted(out.pairs, key=lambda kv: TAG_KEYS.index(kv[0]))), sample_rate, channels)


def _positive_int(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _from_mutagen(audio: Any, out: _Collector) -> None:
    tags = audio.tags
    if tags is None:
        return
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    if isinstance(tags, ID3):
        for frame in tags.values():
            fid = frame.FrameID
            if fid in _ID3:
                out.add(_ID3[fid], list(frame.text))
            elif fid == "COMM":
                out.add("comment", list(frame.text))
            elif fid == "TXXX":
                out.add(_FREEFORM.get(str(frame.desc).upper()), list(frame.text))
        return
    if isinstance(tags, MP4Tags):
        for atom, values in tags.items():
            if atom.startswith("----:"):
                out.add(_FREEFORM.get(atom.rsplit(":", 1)[-1].upper()), list(values))
            elif atom in _MP4:
                out.add(_MP4[atom], list(values))
        return
    # Vorbis comments (ogg, opus, flac) and other key=value containers: a list of (name, value)
    items: Iterable[Any] = tags.items() if hasattr(tags, "items") else tags
    for name, value in items:
        out.add(_FREEFORM.get(str(name).upper()), value)


def _from_wavinfo(path: Path, out: _Collector) -> None:
    """RIFF INFO, bext and iXML of a WAV file. INFO and bext text is tried as UTF-8 first (what today's
    tools write), then as Latin-1 (what the RIFF specification and older tools use; it never fails)."""
    try:
        from wavinfo import WavInfoReader

        try:
            wav = WavInfoReader(str(path), info_encoding="utf-8", bext_encoding="utf-8")
        except UnicodeDecodeError:
            wav = WavInfoReader(str(path), info_encoding="latin_1", bext_encoding="latin_1")
        if wav.info is not None:
            fields = wav.info.to_dict()
            for name, key in _RIFF_INFO.items():
                out.add(key, fields.get(name))
        if wav.bext is not None:
            out.add("description", wav.bext.description)
        if wav.ixml is not None:
            tree = wav.ixml.raw_xml
            for xpath, key in _IXML.items():
                out.add(key, tree.findtext(xpath))
    except Exception as exc:  # noqa: BLE001 - optional metadata: a broken chunk must not fail the file
        log.debug("unreadable RIFF metadata in %s: %s", path, exc)
