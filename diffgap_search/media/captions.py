"""Captions: read the text that comes with clips, from sidecar files, once per indexing run.

Three sources, looked up for a media file ``dir/clip.wav``, in this order:

1. ``dir/clip.txt`` (or ``dir/clip.wav.txt``): UTF-8 text; every non-empty stripped line is one caption,
   except a translation line ``LOCALE.utf8=TEXT`` (``fr.utf8=``, ``pt_BR.utf8=``, ``sr@latin.utf8=``: the
   form Tux Paint's stamp descriptions ship in, ~75 languages under one English line), whose TEXT is a
   caption only when LOCALE is English (``en``, ``en_GB`` ...): the text encoders are English, and 75
   translations per clip would outweigh every other clip's one caption in training.
2. ``dir/clip.json`` (or ``dir/clip.wav.json``): an object with ``"caption"`` or ``"captions"``, each a
   string or a list of strings.
3. Any ``*.csv`` in ``dir`` or a folder above it whose header has caption columns (``caption``,
   ``captions``, ``caption_1`` … ``caption_N``): AudioCaps (``audiocap_id, youtube_id, start_time,
   caption``) and Clotho (``file_name, caption_1 … caption_5``) forms. The *name column* is the non-caption
   column whose values match the most media files below the CSV's folder (ties broken by a preference for
   ``file_name``, ``filename``, ``path``, ``file``, ``youtube_id``, …). A value matches a file when it equals
   the file's path relative to the CSV's folder (with or without extension), its name, its stem, or its
   stem without an AudioCaps ``Y`` prefix. CSVs nearer to the file come first.

Captions are stripped, empty ones dropped, duplicates removed keeping the first. A sidecar that cannot be
read (bad UTF-8, bad JSON, bad CSV, wrong types) is skipped and reported through ``on_error(path, reason)``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffgap_search.media.discover import MEDIA_EXTENSIONS, media_kind, name_extension, walk_files

OnError = Callable[[Path, str], None]

_CAPTION_COLUMN = re.compile(r"^(caption|captions|caption_\d+|caption\d+)$", re.IGNORECASE)
# gettext locale + ".utf8=" (Tux Paint's stamp descriptions): ll[l][_CC][@variant].utf8=text
_TRANSLATION_LINE = re.compile(r"^(?P<lang>[a-z]{2,3})(?:_[A-Z]{2})?(?:@[a-z]+)?\.(?:utf8|UTF-8)=(?P<text>.*)$")
_NAME_PREFERENCE = ("file_name", "filename", "fname", "path", "file", "audio", "youtube_id", "ytid", "id")


SIDECAR_EXTENSIONS = frozenset({".txt", ".json", ".csv"})
_LISTED = MEDIA_EXTENSIONS | SIDECAR_EXTENSIONS


def is_listed_name(name: str) -> bool:
    """Whether a file named ``name`` matters to an indexing run: media, or a caption sidecar by its extension
    (``walk_files``' ``wanted`` for the run's one walk)."""
    return name_extension(name) in _LISTED


@dataclass
class _CaptionCsv:
    folder: str
    rows: dict[str, list[tuple[int, str]]]  # name-column value -> (row number, caption), in file order


@dataclass
class CaptionIndex:
    """Captions of every media file under a root, built by one scan (``CaptionIndex.build``)."""

    sidecars: dict[str, list[str]] = field(default_factory=dict)  # absolute media path -> captions
    csvs: dict[str, list[_CaptionCsv]] = field(default_factory=dict)  # absolute folder -> its caption CSVs

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
    def from_files(cls, files: Sequence[Path], *, on_error: OnError | None = None) -> CaptionIndex:
        """Read every sidecar among ``files`` (absolute paths of every regular file under a root, as
        ``media.listing.list_library`` lists them) that belongs to a media file among them."""
        report: OnError = on_error or (lambda _p, _r: None)
        present = {str(p) for p in files}
        media = [p for p in files if media_kind(p) is not None]
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
        clip = Path(os.path.abspath(os.fspath(path)))
        found = list(self.sidecars.get(str(clip), ()))
        for folder in clip.parents:
            for table in self.csvs.get(str(folder), ()):
                hits = [hit for key in _match_keys(clip, folder) for hit in table.rows.get(key, ())]
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
    try:
        return path.read_bytes().decode("utf-8-sig")
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


def _match_keys(clip: Path, folder: Path) -> list[str]:
    """The strings a CSV name cell may hold for ``clip`` relative to the CSV's ``folder``."""
    rel = clip.relative_to(folder).as_posix()
    stem = clip.stem
    keys = [rel, rel[: -len(clip.suffix)] if clip.suffix else rel, clip.name, stem]
    if stem.startswith("Y") and len(stem) > 1:
        keys.append(stem[1:])
    return list(dict.fromkeys(keys))


def _read_csv(path: Path, media: list[Path], report: OnError) -> _CaptionCsv | None:
    text = _read_text(path, report)
    if text is None:
        return None
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        report(path, f"bad CSV: {exc}")
        return None
    if not records:
        return None
    header = [h.strip() for h in records[0]]
    caption_cols = [i for i, h in enumerate(header) if _CAPTION_COLUMN.match(h)]
    if not caption_cols:
        return None  # some other CSV: not ours, not an error
    rows = [r for r in records[1:] if any(cell.strip() for cell in r)]
    if any(len(r) != len(header) for r in rows):
        report(path, f"bad CSV: rows do not all have the {len(header)} columns of the header")
        return None
    folder = path.parent
    below = [m for m in media if folder in m.parents]
    keys = {k for m in below for k in _match_keys(m, folder)}
    name_col = _pick_name_column(header, caption_cols, rows, keys)
    if name_col is None:
        report(path, "no column of this CSV names the clips")
        return None
    table: dict[str, list[tuple[int, str]]] = {}
    for number, r in enumerate(rows):
        table.setdefault(r[name_col].strip(), []).extend((number, r[i]) for i in caption_cols)
    return _CaptionCsv(folder=str(folder), rows=table)


def _pick_name_column(header: list[str], caption_cols: list[int], rows: list[list[str]], keys: set[str]) -> int | None:
    def preference(i: int) -> int:
        name = header[i].lower()
        return _NAME_PREFERENCE.index(name) if name in _NAME_PREFERENCE else len(_NAME_PREFERENCE)

    candidates = [i for i in range(len(header)) if i not in caption_cols]
    if not candidates:
        return None
    scored = [(sum(r[i].strip() in keys for r in rows), -preference(i), -i) for i in candidates]
    best = max(range(len(candidates)), key=lambda j: scored[j])
    hits, pref, _ = scored[best]
    if hits == 0 and -pref == len(_NAME_PREFERENCE):
        return None
    return candidates[best]
