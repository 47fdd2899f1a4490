"""Where the real-gap benchmarks write what they measured: the command that ran, and the result files."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any


def command_line(script: str, argv: list[str] | None) -> str:
    """``python benchmarks/real_gap/<script> <arguments>``: the command as a user would type it again."""
    return f"python benchmarks/real_gap/{script} " + shlex.join(argv if argv is not None else sys.argv[1:])


def write_outputs(out_dir: Path | None, files: dict[str, str]) -> None:
    """Write each ``name -> text`` into ``out_dir`` (made when missing); nothing when ``out_dir`` is None."""
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text)


def report(out_dir: Path | None, stem: str, text: str, result: dict[str, Any]) -> None:
    """Print the markdown ``text`` and write ``<stem>.md`` and ``<stem>.json`` (``result``) into ``out_dir``."""
    print(text)
    write_outputs(out_dir, {f"{stem}.md": text, f"{stem}.json": json.dumps(result, indent=1) + "\n"})
