"""``dgsearch serve``'s label routes: ``GET /api/labels`` (``dgsearch labels --json``) and ``POST /api/labels``
(``dgsearch label``, by file ids: ``{"label": TEXT, "file_ids": [ID, ...], "remove": false}``).

The one route that changes the index is guarded against other web pages (cross-site request forgery): it takes
only a JSON body, which a page elsewhere cannot send without the browser asking this server first (a CORS
preflight it never answers), and it refuses a request whose ``Origin`` is not this server's own or whose
``Sec-Fetch-Site`` says it came from another site. The token and ``Host`` checks of every route apply too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from diffgap_search.errors import CrossSiteWriteError, UsageError
from diffgap_search.labels import all_labels, label_file_ids
from diffgap_search.serve.state import ServeConfig

MAX_FILES_PER_CHANGE = 10_000


class LabelChange(BaseModel):
    """Put ``label`` on the files ``file_ids`` (take it off them with ``remove``)."""

    label: str = Field(description="The label: any words, compared ignoring case (at most 100 characters).")
    file_ids: list[int] = Field(min_length=1, max_length=MAX_FILES_PER_CHANGE, description="The files' file_id.")
    remove: bool = Field(False, description="Take the label off these files instead.")


def check_same_origin(request: Request) -> None:
    """Refuse what a page of another site could have sent (see the module docstring)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise UsageError("POST /api/labels takes a JSON body (Content-Type: application/json)")
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    own = request.headers.get("host", "")  # the scheme is left out: a proxy may serve this page over https
    if (site is not None and site not in ("same-origin", "none")) or (
            origin is not None and urlsplit(origin).netloc != own):
        raise CrossSiteWriteError(f"a change to the index must come from this server's own page ({own}),"
                                  f" not from {origin or 'another site'}")


def add_label_routes(app: FastAPI, cfg: ServeConfig) -> None:
    """Register the label routes on ``app`` for ``cfg``'s index."""

    @app.get("/api/labels", summary="Every label of the index with its count of files (dgsearch labels --json)")
    def labels() -> dict[str, Any]:
        return {"labels": [{"label": c.label, "files": c.files} for c in all_labels(cfg.index_dir)]}

    @app.post("/api/labels", summary="Label files, or take a label off them (dgsearch label, by file ids)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": LabelChange.model_json_schema()}}}})
    async def change_labels(request: Request) -> dict[str, Any]:
        check_same_origin(request)  # before the body is read: a page elsewhere learns nothing but the refusal
        try:
            change = LabelChange.model_validate_json(await request.body())
        except ValidationError as exc:
            parts = [f"{'.'.join(str(x) for x in e.get('loc', ())) or 'body'}: {e.get('msg')}" for e in exc.errors()]
            raise UsageError("bad label change " + "; ".join(parts)) from None
        outcome = await run_in_threadpool(label_file_ids, cfg.index_dir, change.label, change.file_ids,
                                          remove=change.remove)  # a write may wait for an indexer's batch
        return outcome.to_dict()
