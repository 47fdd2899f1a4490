"""The one place where library errors become exit codes and one-line messages on stderr."""

from __future__ import annotations

import errno
import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from diffgap_search.cli.notices import shown_notices
from diffgap_search.errors import EXIT_INTERNAL, DGSearchError, InputNotFoundError

# What the OS answers about a path the user gave (a name too long, a file where a folder must be, a folder
# where a file must be, no permission): the path is the problem, not the program, wherever it reached the OS.
PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES,
                         errno.EPERM, errno.EEXIST})


def path_error(exc: OSError) -> InputNotFoundError | None:
    """``exc`` as the one-line input error it is (exit 3) when it is the OS refusing a path, else None."""
    if exc.errno not in PATH_ERRNOS or exc.filename is None:
        return None
    name = os.fsdecode(exc.filename)
    shown = name if len(name) <= 120 else name[:60] + "…" + name[-40:]
    return InputNotFoundError(f"cannot use {shown!r}: {exc.strerror}")

# The commands that write an index: Ctrl-C in one of them says what is kept (``interrupted`` alone elsewhere).
WRITING_COMMANDS = frozenset({"index", "train"})

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: its notices are shown (``cli/notices.py``); a ``DGSearchError`` prints ``dgsearch: error:
    <message>`` and exits with its code; anything else is a bug (exit 1) with the traceback shown only under
    ``DGSEARCH_DEBUG=1``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with shown_notices():
                result = fn(*args, **kwargs)
            sys.stdout.flush()  # a reader gone (`| head`) shows here, not at the interpreter's exit
            return result
        except BrokenPipeError:
            # The reader of stdout stopped reading (`dgsearch query dog --paths | head -1`): it has what it wanted,
            # nothing failed. Later writes (the interpreter's last flush) go nowhere, quietly; exit 0.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except DGSearchError as exc:
            print(f"dgsearch: error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            writes = fn.__name__ in WRITING_COMMANDS  # a search or `info` has nothing to keep or resume
            print("dgsearch: interrupted" + (" (what was committed is kept; run again to resume)" if writes else ""),
                  file=sys.stderr)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except OSError as exc:
            user_error = path_error(exc)
            if user_error is None:
                _internal(exc)
            print(f"dgsearch: error: {user_error}", file=sys.stderr)
            raise typer.Exit(user_error.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            _internal(exc)

    return wrapper


def _internal(exc: BaseException) -> NoReturn:
    """A bug: one line (the traceback under ``DGSEARCH_DEBUG=1``), exit 1."""
    if os.environ.get("DGSEARCH_DEBUG"):
        traceback.print_exception(exc)
    print(f"dgsearch: internal error: {type(exc).__name__}: {exc} (set DGSEARCH_DEBUG=1 for the"
          " traceback and please report it)", file=sys.stderr)
    raise typer.Exit(EXIT_INTERNAL) from None
