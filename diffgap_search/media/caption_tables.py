"""Caption tables: the CSV files that datasets and sound archives publish beside their recordings, read into
``file key -> captions``.

A CSV is a caption table when its header names the text in one of three ways (case-insensitive):

- **caption columns** ``caption``, ``captions``, ``caption_1`` … ``caption_N``: AudioCaps (``audiocap_id,
  youtube_id, start_time, caption``) and Clotho (``file_name, caption_1 … caption_5``);
- **description columns** ``description``, ``desc``: the BBC Sound Effects archive's ``BBCSoundEffects.csv``
  (``location, description, secs, category, CDNumber, CDName, tracknum``: 33,000 files named by catalogue
  number, ``07076051.wav``, whose words live only in that list), taken as captions;
- **label columns** ``category``, ``class``, ``label``, ``labels``, only where the table has neither of the
  above: ESC-50's ``meta/esc50.csv`` (``filename, fold, target, category, …``: ``dog``), UrbanSound8K's
  ``metadata/UrbanSound8K.csv`` (``slice_file_name, …, classID, class``: ``dog_bark``), FSD50K's
  ``ground_truth/dev.csv`` (``fname, labels, mids, split``: ``"Electric_guitar,Guitar,…"``). A cell's labels
  are split on commas and each becomes a caption with ``_`` read as a space (``dog bark``, ``electric guitar``).

The *name column* is the column (not a text column) whose values match the most media files in the table's
*scope*, ties broken by a preference for ``file_name``, ``filename``, ``path``, ``file``, ``youtube_id``, ….
The scope is the CSV's folder; where no media file lies below it (ESC-50's ``meta/``, UrbanSound8K's
``metadata/``, FSD50K's ``FSD50K.ground_truth/``: tables kept apart from the audio), its parent folder. A value
matches a file when it equals the file's path relative to the scope (with or without extension), its name, its
stem, or its stem without an AudioCaps ``Y`` prefix. A caption-column table that names no file is reported
(``no column of this CSV names the clips``); a description or label table that names none is some other CSV (a
track list, a licence list) and is left alone, as is a CSV without any of these columns. A table whose rows do not
all have its header's columns is reported where it is a caption table or any of its cells names a clip.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OnError = Callable[[Path, str], None]

_CAPTION_COLUMN = re.compile(r"^(caption|captions|caption_\d+|caption\d+)$", re.IGNORECASE)
_DESCRIPTION_COLUMN = re.compile(r"^(description|desc)$", re.IGNORECASE)
_LABEL_COLUMN = re.compile(r"^(category|class|label|labels)$", re.IGNORECASE)
_NAME_PREFERENCE = ("file_name", "filename", "fname", "path", "file", "audio", "youtube_id", "ytid", "id")


@dataclass
class CaptionTable:
    """One caption table: ``folder`` (its scope, absolute), ``rows``: name-column value -> ``(row number,
    caption)`` in file order."""

    folder: str
    rows: dict[str, list[tuple[int, str]]]


def match_keys(clip: Path, folder: Path) -> list[str]:
    """The strings a table's name cell may hold for ``clip`` relative to the table's scope ``folder``."""
    rel = clip.relative_to(folder).as_posix()
    stem = clip.stem
    keys = [rel, rel[: -len(clip.suffix)] if clip.suffix else rel, clip.name, stem]
    if stem.startswith("Y") and len(stem) > 1:
        keys.append(stem[1:])
    return list(dict.fromkeys(keys))


def read_table(path: Path, text: str, media: list[Path], report: OnError) -> CaptionTable | None:
    """The caption table in ``text`` (the CSV at ``path``), matched against ``media`` (absolute paths); None
    for a CSV that is not one (module docstring), or a bad one (reported)."""
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_of(text)))
    except csv.Error as exc:
        report(path, f"bad CSV: {exc}")
        return None
    if not records:
        return None
    header = [h.strip() for h in records[0]]
    text_cols = [i for i, h in enumerate(header) if _CAPTION_COLUMN.match(h)]
    strict = bool(text_cols)  # a table that says "caption" is ours: one that names no clip is an error
    text_cols += [i for i, h in enumerate(header) if _DESCRIPTION_COLUMN.match(h)]
    labels = not text_cols
    if labels:
        text_cols = [i for i, h in enumerate(header) if _LABEL_COLUMN.match(h)]
    if not text_cols:
        return None  # some other CSV: not ours, not an error
    rows = [r for r in records[1:] if any(cell.strip() for cell in r)]
    folder = path.parent
    below = [m for m in media if folder in m.parents]
    if not below:  # a metadata folder beside the audio (ESC-50, UrbanSound8K, FSD50K)
        folder = folder.parent
        below = [m for m in media if folder in m.parents]
    keys = {k for m in below for k in match_keys(m, folder)}
    if any(len(r) != len(header) for r in rows):
        if strict or any(cell.strip() in keys for r in rows for cell in r):  # it is about these clips: say so
            report(path, f"bad CSV: rows do not all have the {len(header)} columns of the header")
        return None
    name_col = _pick_name_column(header, text_cols, rows, keys, strict)
    if name_col is None:
        if strict:
            report(path, "no column of this CSV names the clips")
        return None
    table: dict[str, list[tuple[int, str]]] = {}
    for number, r in enumerate(rows):
        texts = [label for i in text_cols for label in _labels(r[i])] if labels else [r[i] for i in text_cols]
        table.setdefault(r[name_col].strip(), []).extend((number, t) for t in texts)
    return CaptionTable(folder=str(folder), rows=table)


def delimiter_of(text: str) -> str:
    """The CSV's delimiter: of ``,``, ``;`` and tab, the one its header line holds most of (``,`` on a tie or none).
    Excel writes ``;`` where the decimal mark is a comma (French, German, Spanish, Italian, Dutch … settings),
    and a tab in its "Unicode Text"; read with ``,``, such a header is one column and the table was passed over."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=lambda d: (header.count(d), d == ","))


def _labels(cell: str) -> list[str]:
    """A label cell's captions: split on commas, ``_`` read as a space (``"Electric_guitar,Guitar"``)."""
    return [" ".join(part.replace("_", " ").split()) for part in cell.split(",")]


def _pick_name_column(header: list[str], text_cols: list[int], rows: list[list[str]], keys: set[str],
                      strict: bool) -> int | None:
    def preference(i: int) -> int:
        name = header[i].lower()
        return _NAME_PREFERENCE.index(name) if name in _NAME_PREFERENCE else len(_NAME_PREFERENCE)

    candidates = [i for i in range(len(header)) if i not in text_cols]
    if not candidates:
        return None
    scored = [(sum(r[i].strip() in keys for r in rows), -preference(i), -i) for i in candidates]
    best = max(range(len(candidates)), key=lambda j: scored[j])
    hits, pref, _ = scored[best]
    if hits == 0 and (not strict or -pref == len(_NAME_PREFERENCE)):
        return None
    return candidates[best]
