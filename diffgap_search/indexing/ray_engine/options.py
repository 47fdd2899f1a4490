"""The Ray engine's settings (``dgsearch index`` flags; no Ray import here)."""

from __future__ import annotations

from dataclasses import dataclass

ADDRESS_ENV = "RAY_ADDRESS"


@dataclass(frozen=True)
class RayOptions:
    """``dgsearch index --engine ray`` flags.

    ``address``: the cluster (``--ray-address``; None: ``RAY_ADDRESS``, else a local runtime for the run).
    ``batch_size``: windows per call of an embedding actor (None: the encoder's ``--batch-size``).
    ``actors``: embedding actors (None: one per GPU of the cluster, else 1). ``gpus_per_actor``: None asks
    for one GPU per actor where the cluster has GPUs and none elsewhere. ``decode_retries``: tries after the
    first of a decode task whose worker died (a crashing decoder), before its file is recorded as failed.
    """

    address: str | None = None
    batch_size: int | None = None
    actors: int | None = None
    gpus_per_actor: float | None = None
    decode_retries: int = 1

