"""The layout is a contract the build checks (issue 19): import-linter's layers and acyclic contracts pass on
the package as the wheel lays it out, a back-arrow or a cycle fails them, and no module grows past 400 lines."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts" / "check_layers.py")
assert spec is not None and spec.loader is not None
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)

pytestmark = pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                                reason="import-linter is not installed (it is a test extra)")

MAX_LINES = 400


def _with_line(staged: Path, module: str, line: str) -> None:
    path = staged / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_contracts_are_kept(tmp_path: Path) -> None:
    done = check_layers.lint(check_layers.stage(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(("module", "line", "report"), [
    ("diffgap_search.gap.diffusion", "import diffgap_search.search.types  # a back-arrow",
     "diffgap_search.gap is not allowed to import diffgap_search.search:"),
    ("diffgap_search.store.rows", "import diffgap_search.media.windows  # a stage importing a stage",
     "diffgap_search.store is not allowed to import diffgap_search.media:"),
    ("diffgap_search.search.types", "import diffgap_search.search.searcher  # a cycle",
     "No cycles are allowed in diffgap_search.search."),
], ids=["back-arrow", "stage-to-stage", "cycle"])
def test_a_broken_contract_fails_the_check(tmp_path: Path, module: str, line: str, report: str) -> None:
    staged = check_layers.stage(tmp_path)
    _with_line(staged, module, line)
    done = check_layers.lint(staged)
    assert done.returncode == 1
    assert report in done.stdout


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for folder in ("diffgap_search", "cli", "serve")
            for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
