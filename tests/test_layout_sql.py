"""The layering rule of the catalog: ``diffgap_search/store/`` is the only place holding SQL.

An AST scan of the package and of the faces (``cli/``, ``serve/``): outside ``store/``, no string in code (a
docstring may explain a table) is an SQL statement, nothing calls ``execute``/``executemany``/``executescript``,
nothing imports ``sqlite3``, and nothing reaches into a catalog's connection (``catalog.conn``,
``searcher.catalog.conn``, ``cat.db``). The store's own rule (every store function takes the ``Catalog``) is
written in ``diffgap_search/store/__init__.py``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("diffgap_search", "cli", "serve")
STORE = ROOT / "diffgap_search" / "store"

# The shapes of SQL statements (upper case, as this code base writes SQL); plain English does not match.
SQL = re.compile(
    r"\b(SELECT\b[\s\S]+?\bFROM\b|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|CREATE\s+(TABLE|INDEX|VIRTUAL\s+TABLE|TRIGGER|UNIQUE\s+INDEX)\b|DROP\s+(TABLE|INDEX|TRIGGER)\b"
    r"|ALTER\s+TABLE\b|PRAGMA\s+\w+|BEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)\b)"
)
EXECUTE = {"execute", "executemany", "executescript"}
CONNECTION = {"conn", "_conn", "db"}
CATALOG_NAME = re.compile(r"^(cat|catalog|_catalog)$")


def modules() -> Iterator[Path]:
    """Every Python file scanned: the package less ``store/``, and the faces."""
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if STORE not in path.parents:
                yield path


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _receiver(node: ast.expr) -> str:
    """The last name of an attribute's receiver: ``searcher.catalog`` -> ``catalog``, ``cat`` -> ``cat``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def offences(path: Path, root: Path = ROOT) -> list[str]:
    """``path:line: what`` for every SQL string, execute call, sqlite3 import or catalog connection access
    (``path`` shown relative to ``root``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docs = _docstrings(tree)
    where = path.relative_to(root)
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            match = SQL.search(node.value)
            if match:
                out.append(f"{where}:{node.lineno}: SQL statement {match.group(0)[:40]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTE:
            out.append(f"{where}:{node.lineno}: .{node.func.attr}(...) call")
        elif isinstance(node, ast.Attribute) and node.attr in CONNECTION and CATALOG_NAME.match(_receiver(node.value)):
            out.append(f"{where}:{node.lineno}: {_receiver(node.value)}.{node.attr}")
        elif isinstance(node, ast.Import) and any(a.name == "sqlite3" for a in node.names):
            out.append(f"{where}:{node.lineno}: import sqlite3")
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            out.append(f"{where}:{node.lineno}: from sqlite3 import")
    return out


def test_no_sql_outside_store() -> None:
    found = [o for path in modules() for o in offences(path)]
    assert found == [], "SQL belongs in diffgap_search/store/ (its rule: store/__init__.py):\n" + "\n".join(found)


def test_the_scan_sees_what_it_forbids(tmp_path: Path) -> None:
    """The detector itself: each kind of offence is found, a docstring or English text is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""A module that SELECTs nothing FROM anywhere: docstrings may name tables."""\n'
        "import sqlite3\n"
        "def f(catalog, searcher, pool):\n"
        '    """UPDATE files SET path = ? in a docstring is documentation."""\n'
        '    catalog.conn.execute("SELECT count(*) FROM vectors WHERE space = ?", ("audio",))\n'
        "    searcher.catalog.conn\n"
        "    pool.conn.send(1)\n"
        '    note = "select a file from the list, then update the settings"\n'
        '    return f"DELETE FROM files WHERE id = {1}"\n',
        encoding="utf-8",
    )
    found = offences(sample, tmp_path)
    kinds = sorted(line.split(": ", 1)[1].split(" ")[0] for line in found)
    assert kinds == [".execute(...)", "SQL", "SQL", "catalog.conn", "catalog.conn", "import"], found
