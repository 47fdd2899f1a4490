"""``dgsearch serve``: the web page and JSON API."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from diffgap_search.cli import loaders
from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.options import DeviceOpt, IndexOpt, ModelOpt, output_format, PrecisionOpt
from diffgap_search.config import Device


@handle_errors
def serve(
    index: IndexOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port, printed at start).")] = 8765,
    token: Annotated[Optional[str], typer.Option("--token", help="Require this token on every request (Authorization: Bearer TOKEN, or ?token=TOKEN). Env DGSEARCH_TOKEN.", envvar="DGSEARCH_TOKEN")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in a web browser once the server listens.")] = False,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, max=1_000_000, help="Largest query file accepted, in MB.")] = 100.0,
    model: ModelOpt = None,
    device: DeviceOpt = Device.AUTO.value,
    precision: PrecisionOpt = "auto",
) -> None:
    """Serve a web page and a JSON API to search, listen, and search again (local by default)."""
    from diffgap_search.config import device_name, resolve_index_dir
    from diffgap_search.serve.run import ServeConfig, serve_forever

    cfg = ServeConfig(index_dir=resolve_index_dir(index), host=host, port=port, token=token or None,
                      max_upload_bytes=int(max_upload_mb * 1_000_000), model=model, device=device_name(device),
                      precision=precision)
    serve_forever(cfg, load_encoder=loaders.encoder_loader(), load_video_encoder=loaders.query_video_loader, open_browser=open_)
