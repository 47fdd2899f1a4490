"""Check the layer contract (``[tool.importlinter]`` in pyproject.toml) with import-linter, on the package
laid out as the wheel installs it.

In this tree the faces live beside the package (``cli/``, ``serve/``) and setuptools maps them into it
(``diffgap_search.cli``, ``diffgap_search.serve``); import-linter reads a package from one folder, so the
package is staged in a temporary folder with the faces in place, and checked there. Exit status: 0 when
every contract is kept, 1 when one is broken (import-linter's report says which import), 2 on a bad setup.

    .venv/bin/python scripts/check_layers.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACES = {"cli": "diffgap_search/cli", "serve": "diffgap_search/serve"}


def stage(dest: Path, root: Path = ROOT) -> Path:
    """Copy the package into ``dest`` with the faces inside it; returns ``dest`` (to put on PYTHONPATH)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "diffgap_search", dest / "diffgap_search", ignore=ignore)
    for src, target in FACES.items():
        shutil.copytree(root / src, dest / target, ignore=ignore)
    return dest


def lint(staged: Path, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run import-linter over the staged package with the project's contracts."""
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(staged)}
    return subprocess.run([str(exe), str(root / "pyproject.toml"), "--no-cache"], cwd=staged, env=env,
                          capture_output=True, text=True, timeout=300)


def main() -> int:
    if not Path(sys.executable).with_name("lint-imports").exists():
        print("check_layers: import-linter is not installed (pip install -e '.[test]')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dgsearch-layers-") as tmp:
        done = lint(stage(Path(tmp)))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
