"""A reader that stops reading (`dgsearch query dog --paths | head -1`) is not an internal error; Ctrl-C says
what is kept only where a command writes.

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


@pytest.mark.parametrize(("command", "said"), [
    ("index", "dgsearch: interrupted (what was committed is kept; run again to resume)\n"),
    ("train", "dgsearch: interrupted (what was committed is kept; run again to resume)\n"),
    ("query", "dgsearch: interrupted\n"),  # a search has nothing to keep or resume
    ("dupes", "dgsearch: interrupted\n"),
])
def test_ctrl_c_says_what_is_kept_only_where_something_was_written(command: str, said: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from diffgap_search.cli.errors import handle_errors

    def interrupted() -> None:
        raise KeyboardInterrupt

    interrupted.__name__ = command
    with pytest.raises(typer.Exit) as exc:
        handle_errors(interrupted)()
    assert (exc.value.exit_code, capsys.readouterr().err) == (130, said)
