"""A reader that stops reading (`dgsearch query dog --paths | head -1`) is not an internal error.

Real ``dgsearch`` processes whose stdout pipe has no reader left: every write gets EPIPE. Before, each printed
"dgsearch: internal error: BrokenPipeError ... please report it" and exited 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DGSEARCH = Path(sys.executable).with_name("dgsearch")


@pytest.mark.parametrize("args", [
    ["query", "dog", "--mode", "keyword", "--paths"],
    ["query", "dog", "--mode", "keyword", "--jsonl"],
    ["query", "dog", "--mode", "keyword"],
    ["info", "--json"],
])
def test_a_reader_gone_ends_the_command_quietly_with_exit_0(cli_index: Path, args: list[str]) -> None:
    proc = subprocess.Popen([str(DGSEARCH), *args, "--index", str(cli_index)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "error" not in err and "Broken pipe" not in err and "Exception ignored" not in err
