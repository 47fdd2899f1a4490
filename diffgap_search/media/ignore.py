"""``.dgsearchignore`` files: what a library's own folders say to leave out of the index, in ``.gitignore`` syntax.

A ``.dgsearchignore`` in any folder of a library applies to that folder and everything below it, as a
``.gitignore`` does in git (and ``.fdignore`` in fd, ``.rgignore`` in ripgrep): one pattern per line; blank
lines and lines starting with ``#`` are skipped; trailing spaces are dropped unless escaped with ``\\``; ``!``
re-includes what an earlier pattern left out (a file below a left-out folder stays out: the folder is not
walked); a trailing ``/`` matches folders only; a pattern holding another ``/`` is matched against the path
from the ignore file's folder (a leading ``/`` only anchors it there), one without against the name at any
depth; ``*`` and ``?`` match within a name, ``[...]`` one of a set of characters (ranges, ``!`` or ``^`` to negate,
POSIX classes such as ``[[:digit:]]``), ``**`` any number of folders
(``**/x``, ``a/**/b``, ``a/**``); ``\\`` makes the next character literal. The last pattern that matches
decides; a deeper ignore file's patterns come after its parents'. Checked against ``git check-ignore`` on the
same trees (``tests/test_ignore_files.py``).

Why a file in the library rather than a flag: it travels with the library, and every run reads it — the next
``dgsearch index``, each look of ``--watch``, a Ray run — so a left-out file stays out (and one already indexed
leaves the index at the next run, as any file that is no longer found does).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".dgsearchignore"
MAX_IGNORE_BYTES = 1_000_000
# git's wildmatch takes the POSIX character classes inside [...] (ASCII, as in the C locale)
POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9",
    "graph": "\\x21-\\x7e", "lower": "a-z", "print": "\\x20-\\x7e", "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z", "xdigit": "0-9a-fA-F",
}  # a bigger "ignore file" is not one: it is reported and not read


@dataclass(frozen=True)
class Rule:
    """One pattern: ``regex`` matches the path relative to its file's folder ('/'-separated); ``negate``: a
    ``!`` pattern; ``dir_only``: a trailing ``/``."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


@dataclass(frozen=True)
class IgnoreFile:
    """The rules of one ignore file, and the folder (an absolute path, no trailing ``/``) they are relative to."""

    folder: str
    rules: tuple[Rule, ...]


def parse(text: str) -> tuple[Rule, ...]:
    """The rules of an ignore file's ``text`` (module docstring), in file order."""
    rules = []
    for line in text.removeprefix("\ufeff").splitlines():  # a byte-order mark skipped, as git skips it
        line = _strip_trailing_spaces(line)
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/") and not line.endswith("\\/")
        line = line.rstrip("/") if dir_only else line
        if not line:
            continue
        anchored = "/" in line
        line = line[1:] if line.startswith("/") else line
        body = _translate(line)
        rules.append(Rule(re.compile(body if anchored else f"(?:.*/)?{body}", re.DOTALL), negate, dir_only))
    return tuple(rules)


def _strip_trailing_spaces(line: str) -> str:
    end = len(line)
    while end and line[end - 1] == " " and not (end >= 2 and line[end - 2] == "\\"):
        end -= 1
    return line[:end]


def _translate(pattern: str) -> str:
    """A regex (matched whole) for a pattern relative to its folder."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            end = i
            while end < n and pattern[end] == "*":
                end += 1  # a run of asterisks counts as one, or as "**" when it has two or more (as git's wildmatch)
            whole = (i == 0 or pattern[i - 1] == "/") and (end == n or pattern[end] == "/")
            if end - i >= 2 and whole and end == n:
                out.append(".*")  # "a/**": everything inside a
            elif end - i >= 2 and whole:
                out.append("(?:.*/)?")  # "**/x", "a/**/b": any number of folders, none included
                end += 1
            else:
                out.append("[^/]*")
            i = end
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end, klass = _bracket(pattern, i)
            out.append(klass)
            i = end
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _bracket(pattern: str, start: int) -> tuple[int, str]:
    """``(index after it, regex)`` of the ``[...]`` set at ``start``; an unclosed ``[`` is a literal."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    members: list[str] = []
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        c = pattern[i]
        named = next((name for name in POSIX_CLASSES if pattern.startswith(f"[:{name}:]", i)), None)
        if named is not None:
            members.append(POSIX_CLASSES[named])
            i += len(named) + 4
        elif c == "\\" and i + 1 < len(pattern):
            members.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "-" and members and i + 1 < len(pattern) and pattern[i + 1] != "]":
            members.append("-")
            i += 1
        else:
            members.append(re.escape(c) if c not in "-" else "\\-")
            i += 1
        first = False
    if i >= len(pattern):
        return start + 1, re.escape("[")
    body = "".join(members)
    return i + 1, f"(?!/)[{'^' if negate else ''}{body}]"


def ignored(files: Sequence[IgnoreFile], path: str, is_dir: bool) -> bool:
    """Whether ``path`` (absolute, below every one of ``files``' folders, outermost file first) is left out."""
    verdict = False
    for file in files:
        rel = path[len(file.folder) + 1:]
        for rule in file.rules:
            if (is_dir or not rule.dir_only) and rule.regex.fullmatch(rel):
                verdict = not rule.negate
    return verdict


def read_ignore_file(folder: str, report: Callable[[Path, str], None]) -> IgnoreFile | None:
    """The ignore file of ``folder`` (None when it has none, or when it cannot be read: then ``report`` says why,
    and the walk goes on without it). Read as UTF-8 (undecodable bytes replaced)."""
    path = os.path.join(folder, IGNORE_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IGNORE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        report(Path(path), f"cannot read ignore file: {exc.strerror or exc}")
        return None
    if len(data) > MAX_IGNORE_BYTES:
        report(Path(path), f"ignore file larger than {MAX_IGNORE_BYTES:,} bytes: not read")
        return None
    rules = parse(data.decode("utf-8", errors="replace"))
    return IgnoreFile(folder.rstrip("/"), rules) if rules else None  # "/" as "": paths below it start "/"


def parent_ignores(top: str, report: Callable[[Path, str], None]) -> tuple[IgnoreFile, ...]:
    """The ignore files of the folders above ``top`` (an absolute folder path), outermost first: they apply
    below ``top`` too, as ripgrep reads the ignore files of a searched folder's parents (``top`` itself is
    walked whatever they say: it was named)."""
    found: list[IgnoreFile] = []
    folder = os.path.dirname(top)
    while True:
        own = read_ignore_file(folder, report)
        if own is not None:
            found.append(own)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return tuple(reversed(found))
