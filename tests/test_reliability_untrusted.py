"""Untrusted files never run code; damaged files are rebuilt or refused clearly; newer formats refused.

Nothing a user or an index folder supplies is unpickled; a tampered or truncated FAISS file is rebuilt
from the catalog; a corrupt catalog gives one line and exit code 9; a newer schema gives exit code 6.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import read_state
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import SearchConfig, SearchMode
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.search import Searcher

ROOT = Path(__file__).resolve().parent.parent
UNSAFE = [
    (r"\bimport pickle\b|\bfrom pickle\b|\bpickle\.load", "pickle"),
    (r"\bcPickle\b|\bdill\b|\bjoblib\b|\bshelve\b|\bmarshal\.loads?\b", "pickle-like loaders"),
    (r"allow_pickle\s*=\s*True", "np.load(allow_pickle=True)"),
    (r"(?<![.\w`])eval\(|(?<![.\w`])exec\(", "eval/exec"),
]


def test_no_code_loads_pickles() -> None:
    offenders = []
    for path in sorted([*(ROOT / "diffgap_search").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for pattern, what in UNSAFE:
            for m in re.finditer(pattern, code):
                offenders.append(f"{path.relative_to(ROOT)}: {what}: {m.group(0)}")
        for m in re.finditer(r"torch\.load\(([^)]*)\)", code):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
        for m in re.finditer(r"from_pretrained\(([^)]*)\)", code):
            if "use_safetensors=False" in m.group(1):
                offenders.append(f"{path.relative_to(ROOT)}: from_pretrained(use_safetensors=False)")
    assert offenders == []


def _answers(index_dir: Path) -> tuple[list[tuple[int, float]], bool]:
    with Searcher(index_dir, load_encoder) as s:
        q = np.random.default_rng(3).standard_normal((1, 32)).astype(np.float32)
        hits, _, _ = s.search_vectors(q / np.linalg.norm(q), "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=100, group_by_file=False))
        return [(h.segment_id, round(h.score, 5)) for h in hits], s.index_for("audio").rebuilt


def _tamper_header(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[:4] = b"XXXX"
    p.write_bytes(bytes(data))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _other_index(p: Path) -> None:
    """A valid FAISS file of another size (fewer vectors) in place of the real one."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    index.add_with_ids(np.eye(32, dtype=np.float32)[:3], np.array([1, 2, 3], dtype=np.int64))
    faiss.write_index(index, str(p))


def _pickle_bomb(p: Path) -> None:
    """A pickle that would run code if anything unpickled it."""
    p.write_bytes(b"cos\nsystem\n(S'touch " + str(p.parent / "PWNED").encode() + b"'\ntR.")


def _missing(p: Path) -> None:
    p.unlink()


@pytest.mark.parametrize("damage", [_tamper_header, _truncate, _empty, _other_index, _pickle_bomb, _missing])
def test_damaged_faiss_file_is_rebuilt_from_the_catalog(damage, indexed: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    _, index_dir = indexed
    expected, rebuilt = _answers(index_dir)
    assert not rebuilt
    gen = read_state(index_dir).meta["faiss.audio"]["generation"]
    damage(index_dir / f"audio.{gen}.faiss")
    got, rebuilt = _answers(index_dir)
    assert rebuilt and got == expected
    assert not (index_dir / "PWNED").exists()
    r = CliRunner().invoke(app, ["query", "a dog", "--index", str(index_dir), "--json"])
    assert r.exit_code == 0, r.output


def _garbage(db: Path) -> None:
    db.write_bytes(b"\x00garbage" * 2000)


def _half(db: Path) -> None:
    db.write_bytes(db.read_bytes()[:4096 + 100])


def _no_meta(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE meta")
    conn.commit()
    conn.close()


def _no_segments(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DROP TABLE vectors")
    conn.execute("DROP TABLE segments")
    conn.commit()
    conn.close()


def _bad_version(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = 'not a number' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def _bad_meta_json(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '{broken' WHERE key = 'faiss.audio'")
    conn.commit()
    conn.close()


CORRUPT_CASES = [(d, c) for d in (_garbage, _half, _no_meta, _no_segments, _bad_version, _bad_meta_json)
                 for c in (["query", "a dog"], ["info"])]
CORRUPT_CASES += [(d, ["index", "{clips}", "--workers", "0"]) for d in (_half, _no_segments, _bad_meta_json)]


@pytest.mark.parametrize(("damage", "command"), CORRUPT_CASES)
def test_corrupt_catalog_is_exit_9_in_one_line(damage, command: list[str], indexed: tuple[Path, Path],  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    clips, index_dir = indexed
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(index_dir / "catalog.sqlite", broken / "catalog.sqlite")
    damage(broken / "catalog.sqlite")
    r = CliRunner().invoke(app, [c.format(clips=clips) for c in command] + ["--index", str(broken)])
    assert r.exit_code == 9, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("dgsearch:")]
    assert len(errors) == 1 and errors[0].startswith("dgsearch: error: ") and "Traceback" not in r.output


@pytest.mark.parametrize("command", [["query", "a dog"], ["info"], ["index", "{clips}", "--workers", "0"]])
def test_newer_schema_is_refused_with_exit_6(command: list[str], indexed: tuple[Path, Path]) -> None:
    clips, index_dir = indexed
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    r = CliRunner().invoke(app, [c.format(clips=clips) for c in command] + ["--index", str(index_dir)])
    assert r.exit_code == 6, r.output
    assert "schema version 99, newer than this dgsearch understands" in r.stderr
    assert r.stderr.count("\n") == 1
