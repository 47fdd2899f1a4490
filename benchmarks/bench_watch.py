"""``dgsearch index FOLDER --watch`` beside a DAW: the CPU a watching process spends while nothing it indexes changes.

A sound designer's library folder is also where sessions live: a DAW saves its project file (and a backup, and a
hidden lock) every few seconds, and renders land in a folder a ``.dgsearchignore`` leaves out. None of it is
anything a run indexes. The library is a copy of Debian's sonic-pi samples (real recordings, ``--library``),
indexed once with ``--model aisfx`` (real weights from its package); then a watch runs (``--interval 2``, decoding
inline) for ``--seconds`` while this script plays the DAW: every 0.5 s it rewrites ``Session/mix.rpp``,
``Session/mix.rpp-bak``, ``Session/.mix.rpp.lock`` and ``Renders/bounce.wav`` (ignored). The same seconds again
with nothing written ("idle"). The figure is the CPU time of the watching process and its children, from
``/proc``, after its first run. With ``--against TREE`` (a ``git worktree`` of an older commit) the same watches
run that tree's code, and ``--poll`` is timed as well (a look every interval, what a watch without events does).

    python benchmarks/bench_watch.py [--seconds 30] [--against /tmp/oldtree]
    python benchmarks/bench_watch.py --library ~/.cache/dgsearch-real-gap --index IX --against /tmp/oldtree
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _alternated import tree_cli  # noqa: E402
from _common import ROOT, write_results  # noqa: E402

SAMPLES = Path("/usr/share/sonic-pi/samples")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every live descendant (``/proc/*/stat``)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    tree, total, grew = {pid}, 0.0, True
    while grew:
        grew = False
        for p, (ppid, _) in stats.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    for p in tree:
        total += stats.get(p, (0, 0.0))[1]
    return total


def daw(lib: Path, stop: threading.Event) -> None:
    """Save a session every 0.5 s, as a DAW does, and render into an ignored folder."""
    (lib / "Session").mkdir(exist_ok=True)
    (lib / "Renders").mkdir(exist_ok=True)
    n = 0
    while not stop.wait(0.5):
        n += 1
        for name in ("Session/mix.rpp", "Session/mix.rpp-bak", "Session/.mix.rpp.lock"):
            (lib / name).write_text(f"<REAPER_PROJECT {n}>\n")
        (lib / "Renders" / "bounce.wav").write_bytes(b"RIFF" + bytes(n % 256))


def watched_cpu(cli: list[str], lib: Path, ix: Path, seconds: float, noise: bool, poll: bool) -> float:
    """CPU seconds a watch spends over ``seconds`` after its first run, with or without the DAW writing."""
    cmd = [*cli, "index", str(lib), "--index", str(ix), "--watch", "--interval", "2", "--workers", "0", "--jsonl",
           *(["--poll"] if poll else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        assert proc.stdout is not None
        if not proc.stdout.readline():  # the first run's report: the watch is now waiting
            raise RuntimeError(f"the watch ended before its first report: {cmd}")
        time.sleep(1.0)
        start = cpu_seconds(proc.pid)
        stop = threading.Event()
        writer = threading.Thread(target=daw, args=(lib, stop), daemon=True)
        if noise:
            writer.start()
        time.sleep(seconds)
        used = cpu_seconds(proc.pid) - start
        stop.set()
        if noise:
            writer.join()
        return used
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_all(trees: dict[str, Path], lib: Path, ix: Path, seconds: float, rows: list[dict[str, object]]) -> None:
    """Each tree's watch with the DAW writing and idle, then this tree's with ``--poll`` and the DAW writing."""
    for label, tree in trees.items():
        for noise in (True, False):
            used = watched_cpu(tree_cli(tree), lib, ix, seconds, noise, poll=False)
            rows.append({"tree": label, "daw": noise, "poll": False, "cpu_s": round(used, 2)})
            print(rows[-1], flush=True)
    used = watched_cpu(tree_cli(ROOT), lib, ix, seconds, True, poll=True)
    rows.append({"tree": "this tree", "daw": True, "poll": True, "cpu_s": round(used, 2)})
    print(rows[-1], flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--library", type=Path, default=SAMPLES)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--against", type=Path, help="another source tree whose CLI watches the same library")
    p.add_argument("--index", type=Path, help="an index of --library already built (its files stay where they are)")
    p.add_argument("--name", default="watch")
    args = p.parse_args()
    trees = {"this tree": ROOT} | ({"--against": args.against.resolve()} if args.against else {})
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        if args.index is None:
            lib, ix = Path(tmp) / "lib", Path(tmp) / "ix"
            shutil.copytree(args.library, lib)
            (lib / ".dgsearchignore").write_text("Renders/\n")
            subprocess.run([*tree_cli(ROOT), "index", str(lib), "--index", str(ix), "--model", "aisfx", "--workers", "0"],
                           check=True, capture_output=True)
        else:  # an index of --library already built: the DAW writes into the library itself, and is cleaned up
            lib, ix = args.library.resolve(), args.index.resolve()
            made = [lib / name for name in ("Session", "Renders", ".dgsearchignore") if not (lib / name).exists()]
            if lib / ".dgsearchignore" not in made:
                raise SystemExit(f"{lib} has a .dgsearchignore of its own: give a library without one")
            (lib / ".dgsearchignore").write_text("Renders/\n")
        files = sum(len(f) for _d, _s, f in os.walk(lib))
        try:
            run_all(trees, lib, ix, args.seconds, rows)
        finally:
            if args.index is not None:
                for path in made:
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    table = [("watch", "the DAW writing", f"CPU s in {args.seconds:g} s")]
    for r in rows:
        table.append((f"{r['tree']}{' --poll' if r['poll'] else ''}", "yes" if r["daw"] else "no (idle)",
                      f"{r['cpu_s']:.2f}"))
    write_results(args.name, {"rows": rows, "files": files, "seconds": args.seconds, "library": str(args.library)},
                  table, notes=[
        f"{files} files ({args.library}{' copied' if args.index is None else ''}), indexed with aisfx; watch --interval 2 --workers 0",
        "the DAW: Session/mix.rpp, mix.rpp-bak, .mix.rpp.lock and Renders/bounce.wav (left out by .dgsearchignore)"
        " rewritten every 0.5 s",
    ])
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
