"""The docs stay true to the code: every command has help, a page listing every option, and a row in the README's
table; the exit-code tables match the code; the quick start's test command is what CI runs; the README stays a
front page; the site builds with `mkdocs build --strict` (no broken link, no page left out)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
README_MAX_BYTES = 15_000


def command_names() -> list[str]:
    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)  # type: ignore[union-attr]


def command_page(name: str) -> str:
    return (DOCS / "commands" / f"{name}.md").read_text(encoding="utf-8")


def options_of(name: str) -> set[str]:
    """Every option name `dgsearch NAME --help` lists (long, short and `--no-` forms), from the click command."""
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    names: set[str] = set()
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    names.discard("--help")
    return names


def options_table(page: str) -> set[str]:
    """The option names in the first cell of each row of the page's `## Options` table."""
    section = page.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {n for cell in cells for n in re.findall(r"`(-[^`]+)`", cell)}


def exit_table(text: str) -> dict[int, tuple[str, str]]:
    table = re.findall(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|$", text, flags=re.M)
    return {int(c): (n.strip(), m.strip()) for c, n, m in table}


def test_every_command_has_help_and_a_docs_page() -> None:
    runner = CliRunner()
    names = command_names()
    assert {"index", "query", "info"} <= set(names)
    assert sorted(typer.main.get_command(app).commands) == names  # type: ignore[attr-defined]
    overview = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output and "--index" in result.output
        page = DOCS / "commands" / f"{name}.md"
        assert page.is_file(), f"docs has no page for `dgsearch {name}`"
        assert page.read_text(encoding="utf-8").startswith(f"# dgsearch {name}\n"), f"{page} is not titled `# dgsearch {name}`"
        assert f"commands/{name}.md" in MKDOCS_YML, f"mkdocs.yml's nav has no page for `dgsearch {name}`"
        row = f"| [`dgsearch {name}`](docs/commands/{name}.md) |"
        assert row in README, f"README's command table has no row for `dgsearch {name}`"
        assert f"| [`dgsearch {name}`](commands/{name}.md) |" in overview, f"docs/cli.md has no row for `dgsearch {name}`"


def test_every_option_is_on_its_command_page() -> None:
    for name in command_names():
        page = command_page(name)
        listed = options_table(page)
        assert options_of(name) - listed == set(), f"docs/commands/{name}.md's options table lacks these options"
        assert listed - options_of(name) == set(), f"docs/commands/{name}.md lists options `dgsearch {name}` lacks"
        synopsis = page.split("\n\n", 2)[1]
        assert synopsis.startswith(f"    dgsearch {name}"), f"docs/commands/{name}.md starts with no synopsis"
        assert set(re.findall(r"(?<![\w-])--[a-z][\w-]*", synopsis)) <= options_of(name), synopsis


def test_exit_code_table_matches_the_code() -> None:
    docs_table = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    assert exit_table(docs_table) == EXIT_CODES
    assert exit_table(README) == EXIT_CODES


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


def test_readme_is_a_front_page() -> None:
    size = len(README.encode("utf-8"))
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move reference text into docs/"
    for target in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"


def test_every_docs_page_is_in_the_nav() -> None:
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if f": {p}\n" not in MKDOCS_YML]
    assert missing == [], f"pages missing from mkdocs.yml's nav: {missing}"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_docs_build_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "commands" / "query.html").is_file()
