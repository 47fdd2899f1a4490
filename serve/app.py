"""The FastAPI application of ``dgsearch serve``: the page, the JSON API, playback, peaks and downloads.

Why FastAPI (on uvicorn) rather than bare Starlette: the API is documented at ``/docs`` and
``/openapi.json`` from the endpoint signatures themselves, and query parameters are validated for free.

Routes (all ``GET`` unless said):

- ``/``: the page; ``/static/app.js``, ``map.js``, ``selection.js``, ``labels.js``, ``app.css``: its code
  (fixed names, read from the package).
- ``/api/search?q=TEXT | like=SEGMENT_ID | file=FILE_ID&start=S&end=E`` (a span of an indexed file) and ``POST /api/search/file`` (multipart ``file``, optional
  ``media=audio|video``, ``start``, ``end``): the same parameters and the same JSON as
  ``dgsearch query --json`` (``k``, ``min_score``, ``kind``, ``glob``, ``segments``, ``no_bridge``,
  ``all_copies``, ``tag``, ``pinpoint``, ``timeline`` (a file's or a span's windows, each with its hits), ...),
  through
  the same ``Searcher.search``.
- ``/api/info``: ``dgsearch info --json``; ``/api/labels`` and ``POST /api/labels``: ``dgsearch labels --json``
  and ``dgsearch label`` by file ids (``serve/labels_api.py``, guarded against other sites' pages).
- ``/api/map?cap=N&colour=folder|tag|label``: the library map (``search/library_map.py``), one point per audio window.
- ``/files/{id}/audio``: the file's audio for playback (Range requests), ``/files/{id}/peaks``: its waveform.
- ``/files/{id}/original``: the file itself to save; ``/files/{id}/window?start=S&end=E``: that span as WAV
  (``serve/downloads.py``).

Errors are JSON ``{"exit_code", "error", "message"}`` (``serve/errors.py``). With ``--token`` every request
needs it (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``); without one (loopback only), a request must
name a loopback ``Host``, so a web page elsewhere cannot reach the server through DNS rebinding.
"""

from __future__ import annotations

import hmac
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, File, Form, Query as Param, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from diffgap_search import __version__
from diffgap_search.config import DEFAULT_MODE, SearchConfig
from diffgap_search.errors import (
    EXIT_INTERNAL,
    DGSearchError,
    ForbiddenHostError,
    UnauthorizedError,
    UploadTooLargeError,
    UsageError,
)
from diffgap_search.info import index_info
from diffgap_search.media.cut import MAX_WINDOW_S, cut_window, window_name
from diffgap_search.media.discover import utf8_name
from diffgap_search.search import Query
from diffgap_search.search.library_map import DEFAULT_CAP, map_points
from diffgap_search.search.options import search_options
from diffgap_search.search.upload import search_upload
from diffgap_search.serve import downloads, media
from diffgap_search.serve.errors import error_body, status_of
from diffgap_search.serve.labels_api import add_label_routes
from diffgap_search.serve.state import ServeConfig, SharedSearcher, reading_catalog

STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "map.js": "text/javascript; charset=utf-8",
                "selection.js": "text/javascript; charset=utf-8", "labels.js": "text/javascript; charset=utf-8",
                "app.css": "text/css; charset=utf-8"}
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
               "favicon-32x32.png": "image/png"}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MULTIPART_SLACK = 64 * 1024  # form fields and part headers around an upload


def _static(name: str) -> bytes:
    return resources.files("diffgap_search.serve").joinpath("static", name).read_bytes()


def _json_error(exc: DGSearchError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(exc.exit_code, str(exc)), status_code=status_of(exc), headers=headers)


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port: ``"127.0.0.1:8765"`` -> ``"127.0.0.1"``, ``"[::1]:80"``
    -> ``"[::1]"``."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def search_config(k: int, min_score: float | None, kind: str | None, glob: str | None, segments: bool,
                  mode: str = DEFAULT_MODE.value, duration: str | None = None, sample_rate: int | None = None,
                  channels: int | None = None, folder: str | None = None, no_bridge: bool = False,
                  all_copies: bool = False, tag: str | None = None, label: str | None = None,
                  pinpoint: bool = False) -> SearchConfig:
    """The ``SearchConfig`` the CLI builds from the same flags (``search_options``: same checks, same
    defaults)."""
    return search_options(k, min_score, kind, glob, segments, mode, duration, sample_rate, channels, folder,
                          no_bridge=no_bridge, all_copies=all_copies, tag=tag, label=label, pinpoint=pinpoint)


class BodyLimit:
    """ASGI middleware: a ``POST`` body larger than ``limit`` bytes is answered 413 without reading it on
    (by ``Content-Length`` before any byte, or by counting a chunked body as it arrives)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        too_large = UploadTooLargeError(
            f"the query file is larger than the {self.limit - MULTIPART_SLACK} bytes this server accepts"
            " (dgsearch serve --max-upload-mb)"
        )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _json_error(too_large, {"Connection": "close"})(scope, receive, send)
            return
        seen = 0
        exceeded = replaced = started = False

        async def counted() -> Any:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                exceeded = True
                raise too_large
            return message

        async def sending(message: Any) -> None:
            # The body parser may turn our exception into its own 400: once over the limit, the response
            # is our 413, whatever the app sends.
            nonlocal replaced, started
            if exceeded:
                if not replaced and message["type"] == "http.response.start":
                    replaced = True
                    await _json_error(too_large, {"Connection": "close"})(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except UploadTooLargeError:
            if not started and not replaced:
                await _json_error(too_large, {"Connection": "close"})(scope, receive, send)


def create_app(shared: SharedSearcher, cfg: ServeConfig) -> FastAPI:
    """The application over ``shared``'s index (see the module docstring for its routes)."""
    app = FastAPI(title="dgsearch serve", version=__version__, docs_url=None, redoc_url=None,
                  description="Search sound by words, by example (an audio or video file) or by a hit; listen.")
    index_dir = cfg.index_dir
    pages = {name: _static(name) for name in STATIC_FILES}
    page = _static("index.html")

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if cfg.token is not None:
            given = request.query_params.get("token")
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if given is None or not hmac.compare_digest(given.encode(), cfg.token.encode()):
                return _json_error(UnauthorizedError(
                    "this server needs its token: send `Authorization: Bearer TOKEN` or add ?token=TOKEN"
                    " (the one given to dgsearch serve --token)"), {"WWW-Authenticate": "Bearer"})
        else:
            host = host_name(request.headers.get("host") or "")
            if host not in LOOPBACK_HOSTS:
                return _json_error(ForbiddenHostError(
                    f"this server answers only requests to localhost, not to {host!r}: give --token to serve other names"))
        response: Response = await call_next(request)
        return response

    @app.exception_handler(DGSearchError)
    async def library_error(request: Request, exc: DGSearchError) -> JSONResponse:
        return _json_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = 3 if exc.status_code == 404 else 2
        message = f"no such page: {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(error_body(code, message), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse(error_body(2, "bad parameter " + "; ".join(parts)), status_code=400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        message = (f"internal error: {type(exc).__name__}: {exc} (set DGSEARCH_DEBUG=1 for the traceback and"
                   " please report it)")
        return JSONResponse(error_body(EXIT_INTERNAL, message), status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI over ``/openapi.json``, its script and style served from the swagger-ui-bundle package
        (FastAPI's default page loads them from a CDN, which fails offline)."""
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="dgsearch serve — API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    @app.get("/docs-assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if name not in DOCS_ASSETS:  # a fixed set of names: the request never names a path
            raise StarletteHTTPException(404)
        from swagger_ui_bundle import swagger_ui_path

        data = (Path(str(swagger_ui_path)) / name).read_bytes()
        return Response(data, media_type=DOCS_ASSETS[name], headers={"Cache-Control": "max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in pages:  # a fixed set of names: the request never names a path
            raise StarletteHTTPException(404)
        return Response(pages[name], media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/search", summary="Search by text, more like an indexed window, or like a span of an indexed file")
    def search(
        q: Optional[str] = Param(None, description="What to look for, in words (text -> audio)."),
        like: Optional[int] = Param(None, description="More like this: a hit's segment_id."),
        file: Optional[str] = Param(None, description="Like a span of an indexed file: its file_id (with start, end)."),
        start: Optional[float] = Param(None, description="With file: the span's first second (default 0)."),
        end: Optional[float] = Param(None, description="With file: the span's last second (default: the file's end)."),
        k: int = Param(10, ge=1, le=1000, description="How many results."),
        min_score: Optional[float] = Param(None, description="Drop hits scoring below this cosine."),
        kind: Optional[str] = Param(None, description="Only 'audio' files or only 'video' soundtracks."),
        glob: Optional[str] = Param(None, description="Only paths matching this glob (file name if no '/')."),
        segments: bool = Param(False, description="Every matching window, not the best per file."),
        no_bridge: bool = Param(False, description="Plain cosine search, without the DiffGAP bridge."),
        mode: str = Param(DEFAULT_MODE.value, description="hybrid (embeddings + keywords), semantic or keyword (no model)."),
        duration: Optional[str] = Param(None, description="Only files lasting MIN..MAX seconds."),
        sample_rate: Optional[int] = Param(None, ge=1, description="Only files at this sample rate (Hz)."),
        channels: Optional[int] = Param(None, ge=1, description="Only files with this many channels."),
        folder: Optional[str] = Param(None, description="Only files below this folder (or with a folder of this name)."),
        all_copies: bool = Param(False, description="Copies (files with the same content) apart, not as one hit."),
        tag: Optional[str] = Param(None, description="Only files with an embedded tag containing this text (KEY=TEXT: tag KEY's)."),
        label: Optional[str] = Param(None, description="Only files carrying this label of the user's (dgsearch label), any case."),
        pinpoint: bool = Param(False, description="Narrow each hit's seconds to the part of its window that matches best."),
        timeline: bool = Param(False, description="With file: the hits for each window of the span (windows, each with its hits)."),
    ) -> dict[str, Any]:
        """The same JSON as ``dgsearch query --json`` (``query_kind``, ``mode``, ``hits``, ``timings_ms``); with
        ``file``, as ``dgsearch query --audio THAT_FILE --start S --end E --json`` (``--timeline``: ``windows``)."""
        query = Query(text=q, segment_id=like, audio=span_file(file, start, end), start_s=start, end_s=end)
        sc = search_config(k, min_score, kind, glob, segments, mode, duration, sample_rate, channels, folder, no_bridge,
                           all_copies, tag, label, pinpoint)
        return (shared.timeline if timeline else shared.search)(query, sc).to_dict()

    def span_file(file_id: str | None, start: float | None, end: float | None) -> Path | None:
        """The indexed file a span query names (None without ``file``), its span checked as a saved window's."""
        if file_id is None:
            if start is not None or end is not None:
                raise UsageError("start and end need file (the file_id of an indexed file)")
            return None
        with reading_catalog(index_dir) as catalog:
            row, path = media.catalog_file(catalog, file_id)
        first = 0.0 if start is None else start
        last = end if end is not None else row.duration_s if row.duration_s is not None else first + MAX_WINDOW_S
        downloads.checked_span(row, first, last)  # inside the file, at most MAX_WINDOW_S: one query, not an hour
        return path

    @app.post("/api/search/file", summary="Search with an audio or video file")
    def search_file(
        file: UploadFile = File(..., description="An audio file (query by example) or a video (video -> audio)."),
        media_kind: Optional[str] = Form(None, alias="media", description="audio or video (default: by the file's name)."),
        start: Optional[float] = Form(None, ge=0, description="Use the file from this second."),
        end: Optional[float] = Form(None, ge=0, description="Use the file up to this second."),
        k: int = Form(10, ge=1, le=1000),
        min_score: Optional[float] = Form(None),
        kind: Optional[str] = Form(None),
        glob: Optional[str] = Form(None),
        segments: bool = Form(False),
        no_bridge: bool = Form(False),
        duration: Optional[str] = Form(None),
        sample_rate: Optional[int] = Form(None, ge=1),
        channels: Optional[int] = Form(None, ge=1),
        folder: Optional[str] = Form(None),
        all_copies: bool = Form(False),
        tag: Optional[str] = Form(None),
        label: Optional[str] = Form(None),
        pinpoint: bool = Form(False),
        timeline: bool = Form(False),
    ) -> dict[str, Any]:
        """The same JSON as ``dgsearch query --audio FILE --json`` (or ``--video``; ``--timeline``: ``windows``)."""
        if file.size is not None and file.size > cfg.max_upload_bytes:
            raise UploadTooLargeError(f"the query file is larger than the {cfg.max_upload_bytes} bytes this server"
                                      " accepts (dgsearch serve --max-upload-mb)")
        sc = search_config(k, min_score, kind, glob, segments, DEFAULT_MODE, duration, sample_rate, channels, folder,
                           no_bridge, all_copies, tag, label, pinpoint)
        search = shared.timeline if timeline else shared.search
        return search_upload(search, file.file, file.filename, file.content_type, sc, media=media_kind,  # type: ignore[arg-type]
                             start_s=start, end_s=end).to_dict()

    add_label_routes(app, cfg)

    @app.get("/api/info", summary="What the index holds (dgsearch info --json)")
    def info() -> dict[str, Any]:
        return index_info(index_dir).to_dict()

    @app.get("/api/map", summary="The library map: every audio window in 2-D, coloured by folder or tag")
    def library_map(
        cap: int = Param(DEFAULT_CAP, ge=1, le=1_000_000, description="At most this many points (evenly sampled beyond)."),
        colour: str = Param("folder", description="Colour key: 'folder' (the file's folder name), 'tag' (its first tag) or 'label' (its first label)."),
    ) -> dict[str, Any]:
        """Columns, one entry per point: ``segment_id``, ``file_id``, ``x``, ``y``, ``start_s``, ``end_s``,
        ``key`` (an index into ``keys``); ``total`` windows before sampling, the map's ``generation`` and
        ``method`` (pca, or umap where installed)."""
        with reading_catalog(index_dir) as catalog:
            return map_points(index_dir, catalog, cap=cap, colour=colour).to_dict()

    @app.get("/files/{file_id}/audio", summary="A file's audio for playback (Range requests)",
             response_class=FileResponse)
    def audio(file_id: str) -> FileResponse:
        with reading_catalog(index_dir) as catalog:
            row, path = media.catalog_file(catalog, file_id)
        send, media_type = media.playable(index_dir, row, path)
        return FileResponse(send, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @app.get("/files/{file_id}/original", summary="The file itself, as indexed, to save (an attachment)",
             response_class=FileResponse)
    def original(file_id: str) -> FileResponse:
        with reading_catalog(index_dir) as catalog:
            row, path = media.catalog_file(catalog, file_id, sound=False)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind, filename=utf8_name(path.name),
                            headers={"Cache-Control": "no-cache"})

    @app.get("/files/{file_id}/window", summary="One span of a file's audio as WAV, to save (an attachment)",
             response_class=FileResponse)
    def window(file_id: str, start: float, end: float) -> FileResponse:
        with reading_catalog(index_dir) as catalog:
            row, path = media.catalog_file(catalog, file_id)
        start, end = downloads.checked_span(row, start, end)
        wav = cut_window(path, start, end)
        return FileResponse(wav, media_type="audio/wav", filename=window_name(path, start, end),
                            background=BackgroundTask(wav.unlink, missing_ok=True))

    @app.get("/files/{file_id}/peaks", summary="A file's waveform: peaks in [0, 1] over its duration")
    def peaks(file_id: str) -> dict[str, Any]:
        with reading_catalog(index_dir) as catalog:
            row, path = media.catalog_file(catalog, file_id)
        return media.waveform_peaks(index_dir, row, path)

    return app


def wrap(app: FastAPI, cfg: ServeConfig) -> Any:
    """The ASGI app uvicorn runs: ``app`` behind the upload bound."""
    return BodyLimit(app, cfg.max_upload_bytes + MULTIPART_SLACK)

