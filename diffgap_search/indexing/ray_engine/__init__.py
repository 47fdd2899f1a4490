"""``dgsearch index --engine ray``: decoding and embedding on a Ray cluster, committing here.

The catalog plans the run as the local engine does; the planned files become a Ray Dataset whose decode step
runs as Ray tasks (CPU; a task whose worker dies is retried, then its file is recorded as failed) and whose
embed and bridge step runs in an actor pool (``map_batches`` with a callable class: the models loaded once per
actor, ``num_gpus=1`` per actor on a cluster with GPUs; a killed actor is restarted and its batch retried).
The vectors stream back to this process, which commits them with the local engine's commit stage (one writer,
a kill loses at most the batch in flight) and publishes the FAISS files as today.

Ray is optional (``pip install 'diffgap-search[ray]'``) and imported only when ``--engine ray`` runs:

- ``options.py``: the engine's settings (``RayOptions``).
- ``connect.py``: joining the cluster (``RAY_ADDRESS`` / ``--ray-address``, else a local runtime).
- ``watch.py``: noticing a cluster that goes away mid-run (exit 16 in bounded time, one line).
- ``work.py``: what runs on the cluster (the decode task, the ``Embedder`` actor), rows as ``Row`` bytes.
- ``driver.py``: ``ray_stages`` (the stages with Ray's ``embed_files``), the dataset, and the windows
  regrouped into files for the runner to commit.
"""

from diffgap_search.indexing.ray_engine.driver import ray_stages
from diffgap_search.indexing.ray_engine.options import RayOptions

__all__ = ["RayOptions", "ray_stages"]
