"""The README stays true: every command has help and a section, the exit-code table matches the code,
the quick start's test command is what CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def command_names() -> list[str]:
    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)  # type: ignore[union-attr]


def test_every_command_has_help_and_a_readme_section() -> None:
    runner = CliRunner()
    names = command_names()
    assert {"index", "query", "info"} <= set(names)
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output and "--index" in result.output
        assert f"### dgsearch {name}\n" in README, f"README has no section for `dgsearch {name}`"


def test_exit_code_table_matches_the_code() -> None:
    table = re.findall(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|$", README, flags=re.M)
    assert {int(c): (n.strip(), m.strip()) for c, n, m in table} == EXIT_CODES


def test_ci_runs_the_readme_test_command() -> None:
    quick = README.split("## Quick start", 1)[1].split("## ", 1)[0]
    commands = [line.strip() for line in quick.splitlines() if line.startswith("    ")]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()
    assert "scripts/install.sh" in commands[0] and "dgsearch index" in commands[0]


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from diffgap_search.cli.app import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0\n"
        "for name in ['index', 'query', 'info']:\n"
        "    assert CliRunner().invoke(app, [name, '--help']).exit_code == 0\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'faiss', 'librosa') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
