"""``dgsearch index --engine local|ray`` and the Ray flags (``docs/commands/index.md``, ``docs/ray.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from diffgap_search.config import Choice, choices_text

if TYPE_CHECKING:
    from diffgap_search.indexing import Stages


class Engine(Choice):
    """Where an indexing run decodes and embeds: here (``local``), or on a Ray cluster (``ray``)."""

    LOCAL = "local"
    RAY = "ray"


EngineOpt = Annotated[str, typer.Option("--engine", help=f"Where files are decoded and embedded: {choices_text(Engine)}. 'ray': a Ray cluster (RAY_ADDRESS or --ray-address; else a local Ray runtime), needs pip install 'diffgap-search[ray]'.")]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="--engine ray: the cluster's address (host:port or ray://host:10001). Default: RAY_ADDRESS, else a local Ray runtime for the run.")]
RayBatchOpt = Annotated[Optional[int], typer.Option("--ray-batch-size", min=1, help="--engine ray: windows per call of an embedding actor (default: --batch-size).")]
RayActorsOpt = Annotated[Optional[int], typer.Option("--ray-actors", min=1, help="--engine ray: embedding actors, each loading the models once (default: one per GPU of the cluster, else 1).")]


def engine_stages(engine: str, address: str | None, batch_size: int | None, actors: int | None) -> Stages | None:
    """The stages of ``--engine`` (None: the local engine's defaults). Raises UsageError for an unknown engine,
    Ray flags without ``--engine ray`` or a bad ``DGSEARCH_RAY_LOST_S``, EngineUnavailableError when Ray is not
    installed."""
    from diffgap_search.errors import UsageError

    if Engine.parse(engine, f"--engine must be {choices_text(Engine)}, not {{!r}}") is Engine.LOCAL:
        if address is not None or batch_size is not None or actors is not None:
            raise UsageError("--ray-address, --ray-batch-size and --ray-actors need --engine ray")
        return None
    from diffgap_search.indexing.ray_engine import RayOptions, ray_stages
    from diffgap_search.indexing.ray_engine.connect import import_ray
    from diffgap_search.indexing.ray_engine.watch import lost_after_s

    lost_after_s()  # a bad DGSEARCH_RAY_LOST_S: refused before anything is read or planned
    import_ray()  # likewise, one line saying how to install it
    return ray_stages(RayOptions(address=address, batch_size=batch_size, actors=actors))
