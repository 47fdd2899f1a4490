"""The one place where library errors become exit codes and one-line messages on stderr."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from diffgap_search.errors import EXIT_INTERNAL, DGSearchError

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: a ``DGSearchError`` prints ``dgsearch: error: <message>`` and exits with its code;
    anything else is a bug (exit 1) with the traceback shown only under ``DGSEARCH_DEBUG=1``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DGSearchError as exc:
            print(f"dgsearch: error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("dgsearch: interrupted (what was committed is kept; run again to resume)", file=sys.stderr)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get("DGSEARCH_DEBUG"):
                traceback.print_exc()
            print(f"dgsearch: internal error: {type(exc).__name__}: {exc} (set DGSEARCH_DEBUG=1 for the"
                  " traceback and please report it)", file=sys.stderr)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper
