"""The driver side of ``--engine ray``: the planned files as a Ray Dataset (decode tasks -> embedding actor
pool), its rows streamed back and regrouped into files for the runner to commit (``runner.embed_elsewhere``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from diffgap_search.config import Device, device_name
from diffgap_search.errors import DGSearchError, EngineUnavailableError, ModelUnavailableError
from diffgap_search.indexing.commit import EmbeddedFile, FailedFile
from diffgap_search.indexing.decode import DecodeArgs, SegmentData
from diffgap_search.indexing.models import RunModels
from diffgap_search.indexing.plan import ToEmbed
from diffgap_search.indexing.ray_engine.connect import ray_session, where
from diffgap_search.indexing.ray_engine.failure import FAILED, SAME_ON_EVERY_NODE, ActorError
from diffgap_search.indexing.ray_engine.options import RayOptions
from diffgap_search.indexing.ray_engine.rows_codec import pack, unpack
from diffgap_search.indexing.ray_engine.watch import ClusterWatch
from diffgap_search.indexing.ray_engine.work import (
    ACTOR_ENV,
    END,
    FILES_PER_TASK,
    Embedder,
    FileEnd,
    ModelSpec,
    decode_rows,
)
from diffgap_search.indexing.stages import Stages, default_stages

LOST = "lost on the Ray cluster: the task decoding it failed on every try (a decoder that crashes?); see the Ray logs"


@dataclass
class _Pending:
    """A file's rows received so far: its windows by ``seq`` and its end row."""

    windows: dict[int, tuple[float, float, dict[str, Any]]] = field(default_factory=dict)
    end: FileEnd | None = None

    @property
    def complete(self) -> bool:
        return self.end is not None and len(self.windows) >= self.end.windows


@dataclass(frozen=True)
class RayEmbedFiles:
    """The ``embed_files`` stage on Ray (``stages.EmbedFiles``)."""

    options: RayOptions

    @contextmanager
    def __call__(self, models: RunModels, todo: Sequence[ToEmbed],
                 prepare: Callable[[], Sequence[DecodeArgs]]) -> Iterator[Iterator[EmbeddedFile | FailedFile]]:
        watch: ClusterWatch | None = None
        tasks: Sequence[DecodeArgs] = ()

        def load() -> None:  # the driver's models, loaded while Ray joins the cluster
            nonlocal tasks
            tasks = prepare()

        try:
            with ray_session(self.options.address, meanwhile=load) as (ray, watch):
                results = _results(ray, self.options, _spec(models), todo, tasks)
                try:
                    yield results
                finally:  # the runner failed mid-way, or is done: Ray Data's executor stops before Ray lets go
                    results.close()
        except KeyboardInterrupt:  # however late it lands, up to the session's end
            if watch is None or watch.message is None:
                raise  # the user's Ctrl-C
            raise watch.lost_error() from None  # the watch's interrupt: the cluster is gone


def ray_stages(options: RayOptions = RayOptions(), base: Stages | None = None) -> Stages:
    """``base`` (default: the local engine's stages) with decode, embed and bridge run on Ray."""
    return replace(base or default_stages(), embed_files=RayEmbedFiles(options))


def _spec(models: RunModels) -> ModelSpec:
    """What the actors need, from the driver's models (already loaded and bound to the catalog)."""
    prints = {"audio": models.audio().fingerprint}
    if models.is_cavp:
        prints["video"] = models.video().fingerprint
    load_encoder, load_video_encoder = models.loaders
    return ModelSpec(load_encoder, models.cfg, load_video_encoder, models.video_cfg, models.window,
                     models.bridge(), models.is_cavp, prints)


def _results(ray: Any, options: RayOptions, spec: ModelSpec, todo: Sequence[ToEmbed],
             tasks: Sequence[DecodeArgs], per_task_asked: int | None = None,
             ) -> Generator[EmbeddedFile | FailedFile, None, None]:
    """Each file of ``todo`` once, embedded or failed, as the cluster finishes it. The files of a decode task
    that died on every try are decoded again one per task (``per_task_asked`` 1), so that only a file whose
    decoder kills its process is lost: those come last, failed. Raises EngineUnavailableError when the cluster
    goes away (what was committed stays); an actor's error as the actor sent it (``failure.py``: a
    DGSearchError as itself, anything else as ActorError)."""
    resources = ray.cluster_resources()
    per_task = per_task_asked or files_per_task(len(tasks), int(resources.get("CPU", 1)))
    ds = _dataset(ray, options, spec, tasks, per_task, resources)
    pending: dict[int, _Pending] = {}
    done: set[int] = set()
    batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
    try:
        for batch in batches:
            for file, seq, payload in zip(batch["file"], batch["seq"], batch["payload"]):
                file, seq = int(file), int(seq)
                if seq == FAILED:  # whichever file the failed batch began with
                    raise unpack(payload).raised()
                if file in done:
                    continue  # a retried task's rows, already committed
                got = pending.setdefault(file, _Pending())
                if seq == END:
                    got.end = unpack(payload)
                else:
                    got.windows[seq] = unpack(payload)
                if got.complete:
                    done.add(file)
                    yield _file_result(todo[file], pending.pop(file))
    except (DGSearchError, ActorError):
        raise
    except Exception as exc:  # noqa: BLE001 - Ray's errors: actors that cannot start, or the cluster gone
        raise EngineUnavailableError(_explain(exc, options)) from None
    finally:  # now, not when the frames are collected (after ray.shutdown): its executor calls Ray as it stops
        batches.close()
    lost = [file for file in range(len(todo)) if file not in done]
    if lost and per_task > 1:  # each again on its own: only the file whose decoder crashes is lost
        yield from _results(ray, options, spec, [todo[f] for f in lost], [tasks[f] for f in lost], 1)
        return
    for file in lost:
        yield FailedFile(todo[file].file, todo[file].sha256, LOST)


def files_per_task(files: int, cpus: int) -> int:
    """Files per decode task: up to ``FILES_PER_TASK``, as long as there are at least as many tasks as the
    cluster has CPUs (a small run on a large cluster still decodes on all of them)."""
    return max(1, min(FILES_PER_TASK, files // max(1, cpus)))


def _file_result(item: ToEmbed, got: _Pending) -> EmbeddedFile | FailedFile:
    end = got.end
    assert end is not None
    if end.error is not None:
        return FailedFile(item.file, item.sha256, end.error)
    seqs = sorted(got.windows)
    segments = [SegmentData(got.windows[s][0], got.windows[s][1], None, None) for s in seqs]
    return EmbeddedFile(item, segments, [got.windows[s][2] for s in seqs], end.has_audio, end.tags)


def _dataset(ray: Any, options: RayOptions, spec: ModelSpec, tasks: Sequence[DecodeArgs], per_task: int,
             resources: dict[str, float]) -> Any:
    """Files -> decode tasks (``per_task`` files each, retried ``decode_retries`` times, never fused with the
    actors) -> the embedding actor pool, sized by the cluster's ``resources`` (``ray.cluster_resources()``)."""
    ctx = ray.data.DataContext.get_current()
    ctx.max_errored_blocks = -1  # a file whose decoder kills every try is lost, not the run (recorded failed)
    items = [{"file": i, "task": pack(t)} for i, t in enumerate(tasks)]
    gpus = resources.get("GPU", 0)
    per_actor = options.gpus_per_actor if options.gpus_per_actor is not None else (1 if gpus else 0)
    check_device(spec.cfg.device, gpus, per_actor, options.address)
    actors = options.actors or (max(1, int(gpus // per_actor)) if per_actor else 1)
    decode_args = {"num_cpus": 1, "max_retries": options.decode_retries, "retry_exceptions": False}
    embed_args: dict[str, Any] = {"runtime_env": {"env_vars": dict(ACTOR_ENV)}}  # one malloc arena (work.py)
    if per_actor:
        embed_args["num_gpus"] = per_actor
    else:  # CPU actors share the cluster's CPUs for torch (as the local engine's encoder uses all)
        spec = replace(spec, cpu_threads=max(1, int(resources.get("CPU", 1) // actors)))
    with warnings.catch_warnings():  # max_retries goes through ray_remote_args, deprecated for 2.64 (pinned < 2.64)
        warnings.simplefilter("ignore")
        return (ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // per_task)))
                .map_batches(decode_rows, batch_size=per_task, **decode_args)  # its own max_retries: never fused
                .map_batches(Embedder, fn_constructor_args=(spec,),
                             batch_size=options.batch_size or spec.cfg.batch_size,
                             compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, **embed_args))


def check_device(device: str, gpus: float, gpus_per_actor: float, address: str | None) -> None:
    """A CUDA ``--device`` for embedding actors that get no GPU (a cluster of ``gpus`` 0, or
    ``RayOptions.gpus_per_actor`` 0) is refused here, before any actor starts, as the local engine refuses it
    (ModelUnavailableError). The driver needs no GPU of its own: it embeds nothing (``encoders/clap/record.py``)."""
    if device_name(device).startswith(Device.CUDA) and not gpus_per_actor:
        why = "it has none" if not gpus else "they are given none (gpus_per_actor 0)"
        raise ModelUnavailableError(f"device '{device}' was requested, but the embedding actors on {where(address)}"
                                    f" get no GPU ({why}): use --device cpu or --device auto")


def _explain(exc: BaseException, options: RayOptions) -> str:
    """One line for a Ray error that is not ours: actors that cannot start (a node without diffgap-search or
    the model files), or the cluster gone mid-run."""
    text = " ".join(str(exc).split())
    if "creation task" in text:
        last = [line.strip() for line in str(exc).splitlines() if line.strip()][-1]
        return f"the embedding actors cannot start on {where(options.address)}: {last[:300]} ({SAME_ON_EVERY_NODE})"
    return (f"{where(options.address)} failed mid-run ({type(exc).__name__}: {text[:200]}); what was committed"
            " is kept: run again to resume")
