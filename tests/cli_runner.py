"""The CLI run in-process as the tests run it (typer's ``CliRunner``): ``dg("index", folder, "--index", ix)``.

Arguments may be paths or numbers (each is passed as ``str``). ``wide(200)`` gives a ``dg`` whose terminal is
200 columns wide (rich wraps tables to ``COLUMNS``), with any other variables set for each run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from click.testing import Result
from typer.testing import CliRunner

from diffgap_search.cli.app import app

_runner = CliRunner()


def dg(*args: object, env: Mapping[str, str] | None = None) -> Result:
    """``dgsearch ARGS...`` in this process; the result holds ``exit_code``, ``stdout``, ``stderr``, ``output``."""
    return _runner.invoke(app, [str(a) for a in args], env=dict(env) if env is not None else None)


def wide(columns: int = 200, **env: str) -> Callable[..., Result]:
    """A ``dg`` run in a terminal ``columns`` wide, with ``env`` set too (``NO_COLOR="1"``, ...)."""
    settings = {"COLUMNS": str(columns), **env}

    def run(*args: object) -> Result:
        return dg(*args, env=settings)

    return run
