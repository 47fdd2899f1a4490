"""Errors as JSON: every ``DGSearchError`` becomes ``{"exit_code", "error", "message"}`` with an HTTP status.

``exit_code`` and ``message`` are exactly what the CLI would exit with and print after ``dgsearch: error:``
for the same request (one library function serves both); ``error`` is the code's name in ``EXIT_CODES``.
"""

from __future__ import annotations

from typing import Any

from diffgap_search.errors import EXIT_CODES, EXIT_INTERNAL, EXIT_USAGE, DGSearchError

# exit code -> HTTP status: the client's fault is 4xx, the server's state 5xx / 409.
HTTP_STATUS: dict[int, int] = {
    EXIT_INTERNAL: 500,
    EXIT_USAGE: 400,
    3: 404,  # input not found (a query file, a segment, a file id)
    4: 503,  # no index
    5: 503,  # model unavailable
    6: 409,  # incompatible index
    7: 500,
    8: 503,  # index busy (readers never are)
    9: 500,  # corrupt index
    10: 409,  # no bridge
    11: 422,  # undecodable query file
    12: 507,  # cannot write (the server's caches)
    13: 422,  # query not supported by the index's model
    14: 503,  # index not ready
}


def error_body(exit_code: int, message: str) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"exit_code": exit_code, "error": EXIT_CODES.get(exit_code, ("error", ""))[0], "message": message}


def status_of(exc: DGSearchError) -> int:
    """The HTTP status of a library error: its own ``http_status``, else by exit code."""
    return int(getattr(exc, "http_status", HTTP_STATUS.get(exc.exit_code, 500)))
