"""Captions: read the text that comes with clips, from sidecar files, once per indexing run.

Three sources, looked up for a media file ``dir/clip.wav``, in this order:

1. ``dir/clip.txt`` (or ``dir/clip.wav.txt``): UTF-8 text; every non-empty stripped line is one caption,
   except a translation line ``LOCALE.utf8=TEXT`` (``fr.utf8=``, ``pt_BR.utf8=``, ``sr@latin.utf8=``: the
   form Tux Paint's stamp descriptions ship in, ~75 languages under one English line), whose TEXT is a
   caption only when LOCALE is English (``en``, ``en_GB`` ...): the text encoders are English, and 75
   translations per clip would outweigh every other clip's one caption in training.
2. ``dir/clip.json`` (or ``dir/clip.wav.json``): an object with ``"caption"`` or ``"captions"``, each a
   string or a list of strings.
3. Any caption table: a ``*.csv`` in ``dir`` or a folder above it (or in a metadata folder beside one) with
   caption, description or label columns, as AudioCaps, Clotho, the BBC Sound Effects archive, ESC-50,
   UrbanSound8K and FSD50K publish them (``media/caption_tables.py``). Tables nearer to the file come first.

Captions are stripped, empty ones dropped, duplicates removed keeping the first. A sidecar that cannot be
read (bad UTF-8, bad JSON, bad CSV, wrong types) is skipped and reported through ``on_error(path, reason)``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffgap_search.media.caption_tables import CaptionTable, match_keys, read_table
from diffgap_search.media.discover import MEDIA_EXTENSIONS, file_media_kind, name_extension, walk_files

OnError = Callable[[Path, str], None]

# gettext locale + ".utf8=" (Tux Paint's stamp descriptions): ll[l][_CC][@variant].utf8=text
_TRANSLATION_LINE = re.compile(r"^(?P<lang>[a-z]{2,3})(?:_[A-Z]{2})?(?:@[a-z]+)?\.(?:utf8|UTF-8)=(?P<text>.*)$")


SIDECAR_EXTENSIONS = frozenset({".txt", ".json", ".csv"})
_LISTED = MEDIA_EXTENSIONS | SIDECAR_EXTENSIONS


def is_listed_name(name: str) -> bool:
    """Whether a file named ``name`` matters to an indexing run: media, or a caption sidecar by its extension
    (``walk_files``' ``wanted`` for the run's one walk)."""
    return name_extension(name) in _LISTED


@dataclass
class CaptionIndex:
    """Captions of every media file under a root, built by one scan (``CaptionIndex.build``)."""

    sidecars: dict[str, list[str]] = field(default_factory=dict)  # absolute media path -> captions
    csvs: dict[str, list[CaptionTable]] = field(default_factory=dict)  # absolute folder -> its caption CSVs

    @classmethod
    def build(
        cls,
        root: Path,
        *,
        exclude: Sequence[Path] = (),
        on_error: OnError | None = None,
    ) -> CaptionIndex:
        """Scan ``root`` (same walk rules as ``discover``) and read every sidecar that belongs to a clip."""
        report: OnError = on_error or (lambda _p, _r: None)
        files = [p for p, _st in walk_files(root, exclude=exclude, on_error=report, wanted=is_listed_name)]
        return cls.from_files(files, on_error=report)

    @classmethod
    def from_files(cls, files: Sequence[Path], *, on_error: OnError | None = None,
                   media: Sequence[Path] | None = None) -> CaptionIndex:
        """Read every sidecar among ``files`` (absolute paths of every regular file under a root, as
        ``media.listing.list_library`` lists them) that belongs to a media file among them (``media``: those
        files, as the listing found them; else told by ``file_media_kind``)."""
        report: OnError = on_error or (lambda _p, _r: None)
        present = {str(p) for p in files}
        if media is None:
            media = [p for p in files if file_media_kind(p) is not None]
        index = cls()
        for clip in media:
            captions: list[str] = []
            for suffix, reader in ((".txt", _read_txt), (".json", _read_json)):
                for side in (clip.with_suffix(suffix), clip.with_name(clip.name + suffix)):
                    if str(side) in present:
                        captions += reader(side, report)
                        break
            if captions:
                index.sidecars[str(clip)] = _dedup(captions)
        for path in files:
            if path.suffix.lower() == ".csv":
                table = _read_csv(path, media, report)
                if table is not None:
                    index.csvs.setdefault(table.folder, []).append(table)
        return index

    def captions_for(self, path: Path) -> list[str]:
        """The captions of ``path`` (deduplicated, in source order); ``[]`` when it has none."""
        text = os.path.abspath(os.fspath(path))
        found = list(self.sidecars.get(text, ()))
        folder = text
        while self.csvs:  # its folders, nearest first (as strings: Path.parents took 0.4 s per 10,000 files)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
            for table in self.csvs.get(folder, ()):
                hits = [hit for key in match_keys(Path(text), Path(folder)) for hit in table.rows.get(key, ())]
                found += [caption for _row, caption in sorted(hits, key=lambda h: h[0])]
        return _dedup(found)


def _dedup(captions: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for caption in captions:
        text = caption.strip()
        if text and text not in seen:
            seen[text] = None
    return list(seen)


def _read_text(path: Path, report: OnError) -> str | None:
    """The file's text: UTF-8 (a BOM skipped), or UTF-16 where it starts with UTF-16's BOM (what Excel's
    "Unicode Text" and Windows' Notepad of old write); None, reported, for anything else."""
    try:
        data = path.read_bytes()
        return data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report(path, "not UTF-8 text")
    except OSError as exc:
        report(path, f"cannot read: {exc.strerror or exc}")
    return None


def _read_txt(path: Path, report: OnError) -> list[str]:
    text = _read_text(path, report)
    return [] if text is None else [c for line in text.splitlines() if (c := _txt_caption(line))]


def _txt_caption(line: str) -> str:
    """A ``.txt`` line's caption: the stripped line; an English translation line's text; ``""`` for another
    language's translation line (module docstring)."""
    found = _TRANSLATION_LINE.match(line.strip())
    if found is None:
        return line.strip()
    return found["text"].strip() if found["lang"] == "en" else ""


def _read_json(path: Path, report: OnError) -> list[str]:
    text = _read_text(path, report)
    if text is None:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        report(path, f"bad JSON: {exc.msg} at line {exc.lineno}")
        return []
    if not isinstance(data, dict):
        report(path, "bad JSON: expected an object with a \"caption\" field")
        return []
    out: list[str] = []
    for name in ("caption", "captions"):
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out += value
        else:
            report(path, f"bad JSON: \"{name}\" must be a string or a list of strings")
    return out


def _read_csv(path: Path, media: list[Path], report: OnError) -> CaptionTable | None:
    text = _read_text(path, report)
    return None if text is None else read_table(path, text, media, report)
