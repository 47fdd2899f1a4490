"""``dgsearch serve``: a local web app and JSON API over one index (``diffgap_search.serve``).

- ``run.py``: the command's library function: refuse unsafe binds, warm the searcher, run uvicorn.
- ``app.py``: the FastAPI application (routes, error mapping, token and host checks, upload bound).
- ``state.py``: what the app shares across requests: one :class:`~diffgap_search.search.Searcher` behind a
  lock, short-lived catalog connections for everything else.
- ``media.py``: playback (catalog files by id, Range requests, transcoding) and waveform peaks, cached.
- ``static/``: the page (HTML, CSS, vanilla JS), served from the package: no CDN, no build step.

Everything here is imported by the ``serve`` command only, so ``dgsearch --help`` never imports fastapi.
"""
