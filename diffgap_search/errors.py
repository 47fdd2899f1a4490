"""The one exception hierarchy of diffgap-search, and the exit code each error maps to.

Every error a user can cause (bad input, missing weights, a busy or incompatible index) is a
``DGSearchError`` subclass carrying its ``exit_code``. The CLI maps them to process exit codes in one
place (``cli/app.py``); the table of codes is ``EXIT_CODES`` and is reproduced in the README, which a
test keeps in sync.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2


class DGSearchError(Exception):
    """Base class of every error diffgap-search raises on purpose. Its message is one line for the user."""

    exit_code: int = EXIT_INTERNAL


class UsageError(DGSearchError):
    """The command line is valid syntax but asks for something impossible (an empty query, two query kinds)."""

    exit_code = EXIT_USAGE


class InputNotFoundError(DGSearchError):
    """A file or folder named on the command line does not exist or cannot be read."""

    exit_code = 3


class IndexNotFoundError(DGSearchError):
    """The index folder or its catalog does not exist yet."""

    exit_code = 4


class ModelUnavailableError(DGSearchError):
    """Model weights are missing and cannot be fetched, or the model id/directory is unknown or invalid."""

    exit_code = 5


class IncompatibleIndexError(DGSearchError):
    """The index was written by a newer schema, with another model, or with other window settings."""

    exit_code = 6


class NothingIndexedError(DGSearchError):
    """An indexing run found files but could index none of them."""

    exit_code = 7


class IndexBusyError(DGSearchError):
    """Another process is writing to this index."""

    exit_code = 8


class CorruptIndexError(DGSearchError):
    """The catalog cannot be read as a diffgap-search index."""

    exit_code = 9


class BridgeUnavailableError(DGSearchError):
    """The query needs a DiffGAP bridge (for example video -> audio) and none is trained for these encoders."""

    exit_code = 10


class MediaDecodeError(DGSearchError):
    """A media file cannot be decoded. Recorded per file while indexing; fatal only for a query file."""

    exit_code = 11


class StorageError(DGSearchError):
    """The index cannot be written: the disk is full, read-only or failing. What was committed is kept."""

    exit_code = 12


class QueryNotSupportedError(DGSearchError):
    """The index's model cannot embed this kind of query (text or video on an audio-only model)."""

    exit_code = 13


class IndexNotReadyError(DGSearchError):
    """The catalog exists but its first ``dgsearch index`` run has not recorded a model yet: there is nothing
    to search (the run may still be loading its model or embedding its first batch)."""

    exit_code = 14


class DecoderStartError(DGSearchError):
    """Decode worker processes die before they are ready, again and again (memory exhausted, a broken
    installation): the run stops; what it committed stays."""

    exit_code = 15


class EngineUnavailableError(DGSearchError):
    """``--engine ray``: Ray is not installed, its cluster cannot be reached, or it went away mid-run (what the
    run committed is kept; the next run, local or Ray, resumes)."""

    exit_code = 16


# code -> (name, meaning); the README's exit-code table is checked against this.
EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("ok", "success (an indexing run where some files failed still exits 0; they are listed); also when"
                    " whatever reads its output stops early, as `head -1` does: it has what it wanted"),
    EXIT_INTERNAL: ("internal error", "a bug: please report it with the traceback that `DGSEARCH_DEBUG=1` prints"),
    EXIT_USAGE: ("usage", "bad flags or arguments, an empty query, conflicting query kinds"),
    InputNotFoundError.exit_code: ("input not found", "a folder or query file does not exist or is unreadable; a file to label or forget is not in the index"),
    IndexNotFoundError.exit_code: ("no index", "the index does not exist yet: run `dgsearch index FOLDER` first"),
    ModelUnavailableError.exit_code: ("model unavailable", "weights missing and not downloadable, or unknown model"),
    IncompatibleIndexError.exit_code: (
        "incompatible index",
        "newer schema, other model, other window settings, or a space's vectors made by an older preprocessing of its "
        "model (re-index that space)",
    ),
    NothingIndexedError.exit_code: ("nothing indexed", "files were found but none could be indexed"),
    IndexBusyError.exit_code: ("index busy", "another `dgsearch index` or `train` is writing to this index"),
    CorruptIndexError.exit_code: ("corrupt index", "the catalog is not a readable diffgap-search index"),
    BridgeUnavailableError.exit_code: ("no bridge", "the query needs a trained DiffGAP bridge: run `dgsearch train`"),
    MediaDecodeError.exit_code: ("undecodable query", "the query's media file cannot be decoded"),
    StorageError.exit_code: ("cannot write", "the index cannot be written (disk full, read-only or failing); what was committed is kept"),
    QueryNotSupportedError.exit_code: ("query not supported", "the index's model cannot embed this kind of query (text or video on an audio-only model such as aisfx)"),
    IndexNotReadyError.exit_code: ("index not ready", "the index is being built and has nothing to search yet: query again once `dgsearch index` has committed its first files"),
    DecoderStartError.exit_code: ("decoders cannot start", "decode worker processes die before they are ready, again and again (out of memory?); what was committed is kept: free memory, or index with --workers 0"),
    EngineUnavailableError.exit_code: ("engine unavailable", "`--engine ray`: Ray is not installed (`pip install 'diffgap-search[ray]'`), or its cluster cannot be reached or went away mid-run; what was committed is kept"),
}


class BridgeMismatchError(IncompatibleIndexError):
    """A DiffGAP bridge checkpoint was trained for other encoders, or written by a newer format version."""


class UploadTooLargeError(UsageError):
    """``dgsearch serve``: an uploaded query file is larger than ``--max-upload-mb`` (exit 2, HTTP 413)."""

    http_status = 413


class UnauthorizedError(UsageError):
    """``dgsearch serve``: a request without the server's ``--token`` (exit 2, HTTP 401)."""

    http_status = 401


class ForbiddenHostError(UsageError):
    """``dgsearch serve``: a request naming another ``Host`` than this loopback server (DNS rebinding;
    exit 2, HTTP 403)."""

    http_status = 403


class CrossSiteWriteError(UsageError):
    """``dgsearch serve``: a request that would change the index (``POST /api/labels``) coming from another web
    page than the server's own (its ``Origin`` or ``Sec-Fetch-Site`` says so; exit 2, HTTP 403)."""

    http_status = 403
