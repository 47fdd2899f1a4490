"""A library that moved: ``dgsearch index NEW`` (what a user without ``--moved-from`` runs) against
``dgsearch index NEW --moved-from OLD``, fresh processes, the same index copied for each.

The library is a hard-linked copy of ``--library`` (the real-gap library of Debian's recordings, 10,883 media
files; hard links: no bytes copied, the same sizes and times), made at ``OLD`` inside a scratch folder on the same
file system; the index is a copy of ``--index`` (an index of ``--library``, e.g. built with ``--model aisfx``)
whose rows this script moves to ``OLD`` with ``Catalog.move_file`` (setup, not timed), then brought up to date
by one run. Then ``OLD`` is renamed to ``NEW`` (a real ``mv``) and each timed run gets its own copy of that
index. With ``--drop-caches`` the kernel's page cache is dropped before each timed run (root only), so the run
that hashes reads its bytes from the disk, as a moved archive on a USB drive or a NAS would: the warm figure is
the best case for hashing. Repeats alternate the order; after each `--moved-from` run the same index is run once
more, with nothing left to do: the floor any run costs (a walk and a stat per file).

    python benchmarks/bench_moved.py --index IX [--library ~/.cache/dgsearch-real-gap] [--repeats 2] [--drop-caches]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_results  # noqa: E402


def dgsearch(*args: object) -> tuple[float, dict]:
    """Run ``dgsearch ARGS... --json`` in a fresh process; ``(wall seconds, its JSON report)``."""
    started = time.perf_counter()
    out = subprocess.run([str(Path(sys.executable).parent / "dgsearch"), *map(str, args), "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"dgsearch {' '.join(map(str, args))} exited {out.returncode}: {out.stderr[-2000:]}")
    return elapsed, json.loads(out.stdout)


def move_rows(index: Path, old_root: Path, new_root: Path) -> int:
    """Setup: every row under ``old_root`` moved to the same relative path under ``new_root``; how many."""
    from diffgap_search.media.discover import display_path, path_key
    from diffgap_search.store.catalog import Catalog

    old_key, new_key = path_key(old_root) + b"/", path_key(new_root) + b"/"
    with Catalog.open(index) as catalog:
        rows = catalog.files_under(old_key)
        with catalog.batch():
            for row in rows:
                key = new_key + row.path_key[len(old_key):]
                catalog.move_file(row.id, key, display_path(key), row.size, row.mtime_ns)
    return len(rows)


def rows_under(index: Path, root: Path) -> int:
    with sqlite3.connect(index / "catalog.sqlite") as db:
        prefix = os.fsencode(str(root)) + b"/"
        return int(db.execute("SELECT count(*) FROM files WHERE substr(path_key, 1, ?) = ?",
                              (len(prefix), prefix)).fetchone()[0])


def _row(rep: int, way: str, seconds: float, report: dict, ix: Path, old: Path) -> dict:
    return {"repeat": rep, "run": way, "seconds": round(seconds, 2), "copied": report["copied"],
            "moved": report["moved"], "unchanged": report["unchanged"], "embedded": report["embedded_files"],
            "rows_left_under_old": rows_under(ix, old), "hint": report["moved_hint"]}


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=Path.home() / ".cache" / "dgsearch-real-gap")
    parser.add_argument("--index", type=Path, required=True, help="an index of --library")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--drop-caches", action="store_true")
    parser.add_argument("--name", default="moved_library")
    args = parser.parse_args()
    library, index = args.library.resolve(), args.index.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="bench-moved-", dir=library.parent))  # same file system: hard links
    try:
        old, new, ix_old = scratch / "old" / "sfx", scratch / "new" / "sfx", scratch / "ix-old"
        old.parent.mkdir()
        new.parent.mkdir()
        subprocess.run(["cp", "-al", str(library), str(old)], check=True)
        shutil.copytree(index, ix_old)
        move_rows(ix_old, library, old)
        dgsearch("index", old, "--index", ix_old, "--workers", "0")  # setup: up to date, FAISS files current
        os.rename(old, new)
        with sqlite3.connect(ix_old / "catalog.sqlite") as db:
            moved, media_bytes = db.execute("SELECT count(*), sum(size) FROM files WHERE status = 'ok'").fetchone()
        rows = []
        for rep in range(args.repeats):
            order = ("plain", "moved-from") if rep % 2 == 0 else ("moved-from", "plain")
            for way in order:
                ix = scratch / f"ix-{rep}-{way}"
                shutil.copytree(ix_old, ix)
                if args.drop_caches:
                    drop_caches()
                extra = ["--moved-from", old] if way == "moved-from" else []
                seconds, report = dgsearch("index", new, "--index", ix, "--workers", "0", *extra)
                rows.append(_row(rep, way, seconds, report, ix, old))
                print(rows[-1], flush=True)
                if way == "moved-from":  # the floor: the same index, nothing to follow any more
                    if args.drop_caches:
                        drop_caches()
                    seconds, report = dgsearch("index", new, "--index", ix, "--workers", "0")
                    rows.append(_row(rep, "up to date", seconds, report, ix, old))
                    print(rows[-1], flush=True)
                shutil.rmtree(ix)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ways = ("plain", "moved-from", "up to date")
    by_way = {w: sorted(r["seconds"] for r in rows if r["run"] == w) for w in ways}
    table = [("run", "seconds (each repeat)", "copied", "moved", "unchanged", "embedded", "rows left under OLD")]
    commands = {"plain": "`index NEW`", "moved-from": "`index NEW --moved-from OLD`",
                "up to date": "`index NEW` after it (nothing to do: the floor)"}
    for way in ways:
        last = next(r for r in rows if r["run"] == way)
        table.append((commands[way],
                      ", ".join(f"{s:.2f}" for s in by_way[way]), str(last["copied"]), str(last["moved"]),
                      str(last["unchanged"]), str(last["embedded"]), str(last["rows_left_under_old"])))
    notes = [f"{moved:,} indexed files, {media_bytes / 1e6:,.0f} MB of them;"
             f" page cache {'dropped before each run' if args.drop_caches else 'warm'}",
             f"median ratio plain / moved-from: {by_way['plain'][len(by_way['plain']) // 2] / by_way['moved-from'][len(by_way['moved-from']) // 2]:.1f}x",
             "the plain run's hint: " + str(next(r["hint"] for r in rows if r["run"] == "plain"))]
    write_results(args.name, {"rows": rows, "files": moved, "media_bytes": media_bytes,
                              "drop_caches": args.drop_caches, "library": str(library)}, table, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
