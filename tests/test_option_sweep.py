"""Every option of every command over its edge values: a clear line and a documented exit code, never an
internal error or a traceback (issue 28).

The options are read from the real ``dgsearch`` application (typer), so an option added later is swept too.
Each value goes into a minimal valid invocation of its command against a real index (tiny CLAP weights, real
recordings); ``option_sweep_runner.py`` runs the invocations in one subprocess, in process, each under a
watchdog: an invocation still running at its limit (a server serving, a training under way) has not failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from fixtures_index import INLINE, CountingLoader

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig
from diffgap_search.errors import EXIT_CODES, EXIT_INTERNAL
from diffgap_search.indexing import index_folder

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SAMPLES = Path("/usr/share/sonic-pi/samples")
RECORDINGS = ("bd_haus.flac", "elec_ping.flac", "ambi_choir.flac")

INTS = ["0", "-1", "1", "2147483648", "99999999999999999999"]
FLOATS = ["0", "-1", "1e-9", "1e12", "nan", "inf", "-inf"]
RANGES = ["5..1", "..", "a..b", "-1..", "1e400..", "..-3"]


def text_values(scratch: Path) -> list[str]:
    """Strings and paths: empty, blank, very long, missing, through a file, a folder, a device."""
    a_file = scratch / "plain.txt"
    return ["", " ", "x" * 300, str(scratch / "missing" / "x.wav"), f"{a_file}/x", str(scratch), "/dev/null"]


def edge_values(param: Any, scratch: Path) -> list[str]:
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        return []
    if annotation is int:
        return INTS
    if annotation is float:
        return FLOATS
    values = text_values(scratch)
    return values + RANGES if param.name == "duration" else values


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> dict[str, Path]:
    if not SAMPLES.is_dir():
        pytest.skip("needs the sonic-pi-samples package")
    root = tmp_path_factory.mktemp("sweep")
    clips = root / "clips"
    clips.mkdir()
    for name in RECORDINGS:
        shutil.copy(SAMPLES / name, clips / name)
    (clips / "bd_haus.txt").write_text("a deep house kick drum\n")
    index_folder(clips, root / "ix", load_encoder=CountingLoader(), indexing_cfg=INLINE,
                 encoder_cfg=EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=4))
    scratch = root / "scratch"
    scratch.mkdir()
    (scratch / "plain.txt").write_text("not audio\n")
    return {"root": root, "clips": clips, "ix": root / "ix", "scratch": scratch, "model": tiny_clap_dir}


def base_args(command: str, w: dict[str, Path], case: int) -> tuple[list[str], float]:
    """A minimal valid invocation of ``command`` (writers get an index of their own) and its time limit."""
    own = w["root"] / "own" / str(case)
    if command == "index":
        return ["index", str(w["clips"]), "--index", str(own), "--model", str(w["model"]), "--workers", "0"], 120
    if command == "train":
        shutil.copytree(w["ix"], own)
        return ["train", "--index", str(own), "--epochs", "1"], 30
    if command == "export":
        own.mkdir(parents=True)
        return ["export", "--index", str(w["ix"]), "--text", "a kick", "--out", str(own / "out.npz")], 60
    if command == "serve":
        return ["serve", "--index", str(w["ix"]), "--port", "0"], 6
    first = {"query": ["query", "a kick drum"], "similar": ["similar", str(w["clips"] / "bd_haus.flac")]}
    return [*first.get(command, [command]), "--index", str(w["ix"])], 60


def build_cases(w: dict[str, Path]) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    root = typer.main.get_command(app)
    for command, cmd in root.commands.items():  # type: ignore[attr-defined]
        for param in cmd.params:
            for value in edge_values(param, w["scratch"]):
                args, limit = base_args(command, w, len(cases))
                if param.opts[0].startswith("-"):
                    args = [*args, param.opts[0], value]
                else:  # the positional argument: replace the base one
                    args = [command, value, *args[2:]] if command in ("index", "query", "similar") else args
                cases.append({"i": len(cases), "args": args, "limit_s": limit, "what": f"{command} {param.opts[0]}"})
    return cases


def run_cases(cases: list[dict[str, Any]], work: Path) -> dict[int, dict[str, Any]]:
    """Every case's outcome, restarting the runner after a case that overran its limit."""
    (work / "cases.json").write_text(json.dumps(cases))
    out = work / "out.jsonl"
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "DGSEARCH_INDEX": str(work / "default-ix")}
    results: dict[int, dict[str, Any]] = {}
    start = 0
    while start < len(cases):
        subprocess.run([sys.executable, str(HERE / "option_sweep_runner.py"), str(work / "cases.json"), str(out),
                        str(start)], cwd=work, env=env, timeout=1800, check=False, stdin=subprocess.DEVNULL)
        for line in out.read_text().splitlines():
            row = json.loads(line)
            results[row["i"]] = row
        if len(results) == start:
            raise AssertionError(f"the runner died on case {cases[start]}")
        start = max(results) + 1
    return results


def test_every_option_of_every_command_fails_cleanly_at_its_edges(world: dict[str, Path], tmp_path: Path) -> None:
    cases = build_cases(world)
    commands = {c["args"][0] for c in cases}
    assert commands == set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    results = run_cases(cases, tmp_path)
    assert sorted(results) == list(range(len(cases)))
    bad = []
    for case in cases:
        got = results[case["i"]]
        if got.get("running"):
            if case["args"][0] not in ("serve", "train"):
                bad.append((case["what"], case["args"][-1], "still running"))
            continue
        text = got["stdout"] + got["stderr"]
        if got["code"] == EXIT_INTERNAL or got["code"] not in EXIT_CODES or "internal error" in text \
                or "Traceback" in text or "uncaught" in text:
            bad.append((case["what"], case["args"][-1][:40], got["code"], text.strip().splitlines()[-1:]))
        elif got["code"] != 0:
            last = got["stderr"].strip().splitlines()
            if not last:  # an error says what is wrong, on stderr
                bad.append((case["what"], case["args"][-1][:40], got["code"], "no message"))
    assert bad == []
