"""Weak captions: the words a sound library's file names (and tags) carry, cleaned into training captions.

Real libraries name their files for people: ``DOORWood_Slam Heavy_03.wav``, ``door-creak_v2_48k_24bit.flac``,
``FootstepsGravel take 3.wav``. Where a clip has no caption sidecar, those words are the best description
there is, so ``dgsearch train --captions names`` pairs each clip's audio with them.

Cleaning (``name_words``), for the file name without its extension (and each tag value):

1. split on anything that is not a letter or digit (``_ - . space`` and punctuation), then on camelCase
   boundaries: ``FootstepsGravel`` -> ``Footsteps Gravel``; an uppercase run before a capitalised word is
   a word of its own, so a UCS category prefix ``DOORWood`` -> ``DOOR Wood``;
2. drop what describes the file rather than the sound: numbers (``03``, ``1``), versions (``v2``, ``V03``),
   takes (``take 3``, ``take3``, ``tk3``), sample rates (``48k``, ``44.1k``, ``96kHz``), bit depths
   (``24bit``, ``16b``, ``32f``) and channel layouts (``mono``, ``stereo``); digits glued to a word are cut
   off it (``Door01`` -> ``door``);
3. lowercase everything (UCS categories too: ``DOOR`` -> ``door``).

A caption is the cleaned words joined by spaces; a name with no words left gives none. ``weak_captions``
returns the name's caption, then one per tag value (title, description, keywords …: any strings the
caller has for the file, fed by the metadata reader once one exists), optionally preceded by the names of
``folder_levels`` parent folders (``Doors/Wood/slam_01.wav`` with 2 levels -> ``doors wood slam``);
duplicates are dropped, order kept. Folder names are off by default: ordinary folders (``Recordings``,
``Session 2``, ``Bounce``) say nothing about the sound.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePath

_SPLIT = re.compile(r"[^\w]+|_+", re.UNICODE)
# camelCase boundaries between letters only (lower->Upper "doorWood"; UPPER->Upper+lower "DOORWood"), so
# letter-digit runs ("Door01", "48k", "24bit") stay whole for the noise rules
_CAMEL = re.compile(r"(?<=[a-zà-ÿ])(?=[A-ZÀ-Þ])|(?<=[A-ZÀ-Þ])(?=[A-ZÀ-Þ][a-zà-ÿ])")
_NOISE = re.compile(
    r"""^(
        \d+                                   # 03, 1, 48000
      | v\d+                                  # v2, V03
      | (take|tk)\d+                          # take3, tk3 (a bare "take" only before a number: see below)
      | \d+(\.\d+)?k(hz)?  | \d+hz            # 48k, 44.1k, 96khz, 48000hz
      | \d+(bit|b|f)                          # 24bit, 16b, 32f
      | mono | stereo
    )$""",
    re.VERBOSE | re.IGNORECASE,
)
_GLUED = re.compile(r"^(?P<word>[^\W\d_]{2,})\d+$|^\d+(?P<word2>[^\W\d_]{2,})$", re.UNICODE)


def _raw_tokens(text: str) -> list[str]:
    """Separator- and camelCase-split tokens of ``text`` (NFKC-normalised first: a name from macOS's HFS+ spells
    ``ê`` as ``e`` + U+0302, which ``\\w`` cuts in two), case kept, letters and digits glued together (``Door01``,
    ``48k``, ``24bit``) so that rule 2 sees them whole."""
    out: list[str] = []
    for chunk in _SPLIT.split(text if text.isascii() else unicodedata.normalize("NFKC", text)):
        if not chunk:
            continue
        out += [chunk] if _NOISE.match(chunk) else [t for t in _CAMEL.split(chunk) if t]  # "96kHz" stays whole
    return out


def name_words(text: str) -> list[str]:
    """The cleaned, lowercased words of a file stem or tag value (rules in the module docstring).

    ``"DOORWood_Slam Heavy_03"`` -> ``["door", "wood", "slam", "heavy"]``;
    ``"creak-v2_48k_24bit take 3"`` -> ``["creak"]``.
    """
    tokens = _raw_tokens(text)
    words: list[str] = []
    skip_number = False
    for i, token in enumerate(tokens):
        low = token.lower()
        if skip_number and low.isdigit():
            skip_number = False
            continue
        skip_number = False
        if low in ("take", "tk") and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            skip_number = True
            continue
        if _NOISE.match(low):
            continue
        glued = _GLUED.match(token)
        if glued:
            low = (glued.group("word") or glued.group("word2")).lower()
        words.append(low)
    return words


def caption_of(text: str) -> str | None:
    """``name_words`` joined by spaces, or None when nothing is left."""
    words = name_words(text)
    return " ".join(words) if words else None


def weak_captions(path: str | PurePath, tag_values: Iterable[str] = (), *, folder_levels: int = 0) -> list[str]:
    """A file's weak captions: its cleaned name (with ``folder_levels`` parent folders' words first), then
    each cleaned tag value; empty ones dropped, duplicates removed keeping the first. ``[]`` when none."""
    p = PurePath(path)
    stem = p.name[: -len(p.suffix)] if p.suffix and p.name != p.suffix else p.name
    folders = [part for part in p.parent.parts if part not in ("/", "") and not part.endswith(":\\")]
    folder_words = [w for part in (folders[-folder_levels:] if folder_levels > 0 else []) for w in name_words(part)]
    captions: list[str] = []
    name = name_words(stem)
    if name or folder_words:
        captions.append(" ".join(folder_words + name))
    for value in tag_values:
        caption = caption_of(value)
        if caption:
            captions.append(caption)
    return list(dict.fromkeys(captions))
