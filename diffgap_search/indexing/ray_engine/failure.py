"""An embedding actor's error, carried to the driver in a row instead of through Ray.

The driver sets Ray Data's ``max_errored_blocks`` to -1 so that a decoder that kills its worker on every try
loses its files, not the run; the price is that Ray Data drops *any* block whose task raised, the actor's
included, and an actor whose models cannot load ended every file as "lost" (then "nothing indexed", exit 7).
And Ray keeps only the text of an actor's creation error. So the actor catches what it raises and answers the
batch with one row holding an ``ActorFailure``; the driver raises it as the run's error, as the local engine
raises the same error from its encoder: a ``DGSearchError`` as itself (a missing model: exit 5), anything else
as an internal error (exit 1) with the actor's traceback attached.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from diffgap_search import errors
from diffgap_search.errors import DGSearchError
from diffgap_search.indexing.ray_engine.rows_codec import register

FAILED = -2  # ``seq`` of a row holding an ActorFailure (windows are >= 0, a file's end -1)
# What every message about actors that cannot start ends with (``work._on_this_node``, ``driver._explain``).
SAME_ON_EVERY_NODE = "every node needs diffgap-search, its models and the files, at the same paths"


class ActorError(RuntimeError):
    """An embedding actor's exception that is not a DGSearchError: a bug (exit 1), its traceback in a note."""


@register
@dataclass(frozen=True)
class ActorFailure:
    """Why an embedding actor could not embed: the DGSearchError subclass's name ('' for any other exception),
    the exception's type name and message, and its traceback as the actor formatted it."""

    error: str
    kind: str
    message: str
    trace: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> ActorFailure:
        name = type(exc).__name__ if isinstance(exc, DGSearchError) else ""
        return cls(name, type(exc).__name__, str(exc), "".join(traceback.format_exception(exc)))

    def raised(self) -> Exception:
        """The exception the driver raises: the named DGSearchError (same class, so the same exit code) with
        the message, else an ActorError. Only classes of ``diffgap_search.errors`` are ever built."""
        cls = getattr(errors, self.error, None) if self.error else None
        if isinstance(cls, type) and issubclass(cls, DGSearchError):
            exc: Exception = cls.__new__(cls)
            exc.args = (self.message,)
            return exc
        error = ActorError(f"an embedding actor failed: {self.kind}: {self.message}")
        error.add_note(f"the actor's traceback:\n{self.trace}")
        return error
