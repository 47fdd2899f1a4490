"""Debian packages of described sounds: fetch them (``apt-get download`` + ``dpkg -x``, no root install) and
read each one's sounds with the words people wrote for them.

One row per sound: ``path, description, category, package, licence, sha256``. The readers:

- ``qabcs-data``: ``abcs/all/noises/NAME.ogg`` (241 noises); the description is the noun in the name
  (``electric_guitar`` -> "electric guitar"); the category is the one ``abcs/*/abc*.properties`` gives it
  (lines ``category:letter=image==word=noise``: animals, instrument, toys, misc, food);
- ``tuxpaint-stamps-default``: ``stamps/**/NAME.ogg`` beside ``NAME.txt``, whose first line is an English
  sentence ("A great blue heron."); the category is the first folder under ``stamps/`` (music split into
  percussion and instrument). Only a sound with its own ``NAME.txt`` counts, so the spoken names
  ``NAME_<lang>.ogg`` are never read; skipped besides: ``*_desc*`` files (descriptions read aloud) and
  ``symbols/`` (letters and digits, spoken);
- ``scratch``: ``Media/Sounds/<Category>/<CamelCaseName>.wav|mp3``; the description is the cleaned name
  (``HorseGallop`` -> "horse gallop", ``media/weak_captions.caption_of``), the category its folder.

- ``minetest-data``: ``games/minetest_game/mods/<mod>/sounds/<mod>_<words>[.N].ogg``; the description is the
  cleaned name without its mod prefix (``default_dig_oddly_breakable_by_hand`` -> "dig oddly breakable by
  hand", variants ``.1`` ``.2`` each a sound), the category the mod (``default``, ``doors``, ``fire`` ...);
- ``lmms-common``: ``samples/<folder>/<name>.ogg``; the description is the cleaned name (``hihat_closed01`` ->
  "hihat closed"), the category the folder (drums, instruments, effects, beats, basses ...); ``waveforms/``
  and ``shapes/`` (single-cycle test tones) skipped.

Judge only (never trained on by ``run.py``; ``unseen.py`` holds it out whole, read for the first time on
2026-12-05 after every rule it judges was fixed):

- ``wesnoth-1.16-data``: ``data/core/sounds/NAME[-N].ogg|wav`` (unit, weapon and magic sounds: "wolf hit",
  "crossbow fire miss", "human female die") and ``data/core/sounds/ambient/`` ("birds", "campfire"); the
  description is the cleaned name without its variant number, the category the folder (``battle``,
  ``ambient``: none of the table's canonical categories, so it has description queries only); the interface
  sounds (``sounds/``) and horn signals skipped.

Identical files (by content sha256) are kept once, the first in (package, path) order: a renamed copy
cannot sit on both sides of a split.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from diffgap_search.media.weak_captions import caption_of

PACKAGES = ("qabcs-data", "tuxpaint-stamps-default", "scratch", "minetest-data", "lmms-common")
JUDGE_PACKAGES = ("wesnoth-1.16-data",)
CATEGORY_WORDS = {  # a package's category label -> the canonical category of the table
    "animals": "animal", "animal": "animal", "instrument": "instrument", "instruments": "instrument",
    "toys": "toy", "percussion": "percussion", "human": "human", "vocals": "voice", "effects": "effect",
    "electronic": "electronic", "music loops": "music loop", "household": "household", "drums": "percussion",
    "beats": "music loop", "bassloops": "music loop", "latin": "instrument",
}

# a canonical category -> the words that query it (the category queries of run.py, unseen.py and hybrid.py)
CATEGORY_QUERIES = {
    "animal": "an animal", "instrument": "a musical instrument", "percussion": "a percussion hit",
    "toy": "a toy", "human": "a human sound", "voice": "a singing voice", "effect": "a sound effect",
    "electronic": "an electronic sound", "music loop": "a music loop", "household": "a household object",
}

@dataclass(frozen=True)
class Sound:
    """One described sound of the table."""

    path: str
    description: str
    category: str  # canonical (CATEGORY_WORDS), else the package's own label
    label: str  # the category as the package writes it (a training text: the words a library has)
    package: str
    licence: str
    sha256: str

    def row(self) -> dict[str, str]:
        return asdict(self)


def fetch(package: str, cache: Path) -> Path:
    """``cache/<package>/``: the package unpacked (downloaded once with ``apt-get download``)."""
    root = cache / package
    if (root / ".unpacked").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    (root / ".unpacked").write_text(deb.name)
    return root


def licence_of(root: Path, package: str) -> str:
    """The first ``License:`` field of the package's ``debian/copyright`` (its sounds' licence, mostly)."""
    copyright_file = root / "usr/share/doc" / package / "copyright"
    if copyright_file.exists():
        for line in copyright_file.read_text(errors="replace").splitlines():
            if line.startswith("License:") and line.split(":", 1)[1].strip():
                return line.split(":", 1)[1].strip()
    return "see debian/copyright"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_qabcs(root: Path, licence: str) -> list[Sound]:
    base = root / "usr/share/qabcs/abcs"
    categories: dict[str, str] = {}
    for props in sorted(base.glob("*/abc*.properties")):
        for line in props.read_text(errors="replace").splitlines():
            m = re.match(r"^(\w+):\w+=.*=([^=]*)$", line.strip())
            if m and m.group(2):
                categories.setdefault(m.group(2), m.group(1))
    out = []
    for path in sorted((base / "all/noises").glob("*.ogg")):
        label = categories.get(path.stem, "misc")
        out.append(Sound(str(path), path.stem.replace("_", " "), CATEGORY_WORDS.get(label, label), label,
                         "qabcs-data", licence, _sha(path)))
    return out


def read_tuxpaint(root: Path, licence: str) -> list[Sound]:
    base = root / "usr/share/tuxpaint/stamps"
    out = []
    for path in sorted(base.rglob("*.ogg")):
        text = path.with_suffix(".txt")
        rel = path.relative_to(base).parts
        if not text.exists() or rel[0] == "symbols" or "_desc" in path.stem:
            continue
        lines = text.read_text(errors="replace").splitlines()
        if not lines or not lines[0].strip():
            continue
        label = rel[0]
        if rel[:2] == ("hobbies", "music"):
            label = "percussion" if rel[2] == "percussion" else "instrument"
        out.append(Sound(str(path), lines[0].strip(), CATEGORY_WORDS.get(label, label), label,
                         "tuxpaint-stamps-default", licence, _sha(path)))
    return out


def read_scratch(root: Path, licence: str) -> list[Sound]:
    base = root / "usr/share/scratch/Media/Sounds"
    out = []
    for path in sorted(p for p in base.rglob("*") if p.suffix.lower() in (".wav", ".mp3")):
        description = caption_of(path.stem)
        if description is None:
            continue
        label = path.parent.name.lower()
        out.append(Sound(str(path), description, CATEGORY_WORDS.get(label, label), label, "scratch", licence,
                         _sha(path)))
    return out


def read_minetest(root: Path, licence: str) -> list[Sound]:
    base = root / "usr/share/games/minetest/games/minetest_game/mods"
    out = []
    for path in sorted(base.glob("*/sounds/*.ogg")):
        mod = path.parent.parent.name
        stem = path.name.split(".", 1)[0]
        description = caption_of(stem[len(mod) + 1:] if stem.startswith(mod + "_") else stem)
        if description is None:
            continue
        out.append(Sound(str(path), description, CATEGORY_WORDS.get(mod, mod), mod, "minetest-data", licence, _sha(path)))
    return out


def read_lmms(root: Path, licence: str) -> list[Sound]:
    base = root / "usr/share/lmms/samples"
    out = []
    for path in sorted(base.glob("*/*.ogg")):
        folder = path.parent.name
        description = caption_of(path.stem)
        if folder in ("waveforms", "shapes") or description is None:
            continue
        out.append(Sound(str(path), description, CATEGORY_WORDS.get(folder, folder), folder, "lmms-common", licence,
                         _sha(path)))
    return out


def read_wesnoth(root: Path, licence: str) -> list[Sound]:
    base = root / "usr/share/games/wesnoth/1.16/data/core/sounds"
    out = []
    for path in sorted(p for p in [*base.glob("*"), *(base / "ambient").glob("*")] if p.suffix in (".ogg", ".wav")):
        description = caption_of(path.stem)
        if description is None:
            continue
        label = "ambient" if path.parent.name == "ambient" else "battle"
        out.append(Sound(str(path), description, label, label, "wesnoth-1.16-data", licence, _sha(path)))
    return out


READERS = {"qabcs-data": read_qabcs, "tuxpaint-stamps-default": read_tuxpaint, "scratch": read_scratch,
           "minetest-data": read_minetest, "lmms-common": read_lmms, "wesnoth-1.16-data": read_wesnoth}


def build_table(cache: Path, packages: tuple[str, ...] = PACKAGES) -> tuple[list[Sound], int]:
    """The described sounds of ``packages``, identical files kept once; returns ``(sounds, duplicates dropped)``."""
    sounds: list[Sound] = []
    for package in packages:
        root = fetch(package, cache)
        sounds.extend(READERS[package](root, licence_of(root, package)))
    seen: set[str] = set()
    kept = []
    for sound in sorted(sounds, key=lambda s: (s.package, s.path)):
        if sound.sha256 not in seen:
            seen.add(sound.sha256)
            kept.append(sound)
    return kept, len(sounds) - len(kept)
