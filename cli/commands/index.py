"""``dgsearch index``: embed a folder into an index, incrementally, once or watching it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from diffgap_search.cli import loaders
from diffgap_search.cli.engine import EngineOpt, RayActorsOpt, RayAddressOpt, RayBatchOpt, engine_stages
from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.options import (
    BatchOpt, BudgetOpt, DeviceOpt, IndexOpt, JsonlOpt, JsonOpt, ModelOpt, output_format, PrecisionOpt,
)
from diffgap_search.cli.watching import IntervalOpt, PollOpt, SettleOpt, WatchOpt, watch_folder, watching
from diffgap_search.config import Device


@handle_errors
def index(
    folder: Annotated[Path, typer.Argument(help="Folder (or single file) of audio/video clips to index.")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.AUTO.value,
    batch_size: BatchOpt = 16,
    precision: PrecisionOpt = "auto",
    window: Annotated[Optional[float], typer.Option("--window", help="Window length in seconds (CLAP sees 10 s). Default: the index's, else 10.")] = None,
    hop: Annotated[Optional[float], typer.Option("--hop", help="Hop between windows in seconds (default: the index's, else the window).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Decoding processes (0: decode inline).")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Pin the hub model to this branch, tag or commit (recorded in the index).")] = None,
    text_model: Annotated[Optional[str], typer.Option("--text-model", help="A text encoder for an audio-only --model: 'wordllama' (recorded in the index; words reach the sounds through the bridge `dgsearch train` learns from the library's captions and names). Default: the index's, else none.")] = None,
    video_model: Annotated[Optional[str], typer.Option("--video-model", help="Video encoder: 'cavp' (Diff-Foley's CAVP, video and sound in one space: --video queries need no bridge), a CAVP checkpoint file (.ckpt), or a CLIP hub id or local directory. Default: the index's, else openai/clip-vit-base-patch32.")] = None,
    video_revision: Annotated[Optional[str], typer.Option("--video-revision", help="Pin the hub video model to this branch, tag or commit.")] = None,
    frames: Annotated[Optional[bool], typer.Option("--frames/--no-frames", help="Embed videos' frames (--no-frames: soundtracks only, no video model). Default: the index's choice, else --frames.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again files that failed in earlier runs.")] = False,
    moved_from: Annotated[Optional[Path], typer.Option("--moved-from", metavar="OLD", help="Where this folder was indexed before it moved (mv, another mount point, another machine): its files are followed here, those whose size and time did not change without being read, with their labels; the rows under OLD leave the index. Refused while a file indexed under OLD is still there.")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another writer to finish.")] = 0.0,
    memory_budget: BudgetOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    ray_batch_size: RayBatchOpt = None,
    ray_actors: RayActorsOpt = None,
    watch: WatchOpt = False,
    interval: IntervalOpt = None,
    settle: SettleOpt = None,
    poll: PollOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show which files a run would index, re-index, follow (renamed, copied) and remove, and change nothing: no model is loaded, nothing is written.")] = False,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Index a folder: embed new and changed files, follow renames and deletions; --watch keeps doing it."""
    from diffgap_search.config import IndexingConfig, resolve_index_dir
    from diffgap_search.errors import NothingIndexedError
    from diffgap_search.indexing import IndexReport, ModelChoice, update_index
    from diffgap_search.indexing.models import run_window
    from diffgap_search.store.index_budget import faiss_config

    from diffgap_search.cli.index_output import print_index_report
    from diffgap_search.cli.output import stderr_console
    from diffgap_search.cli.progress import RichIndexProgress

    fmt = output_format(json_, jsonl)
    index_dir = resolve_index_dir(index)
    if dry_run:
        from diffgap_search.errors import UsageError
        from diffgap_search.indexing.preview import preview_index

        from diffgap_search.cli.index_output import print_preview

        if watch:
            raise UsageError("--dry-run shows one run's changes: leave out --watch")
        print_preview(preview_index(folder, index_dir, retry_failed=retry_failed, moved_from=moved_from), fmt=fmt)
        return
    window_cfg = run_window(index_dir, window, hop)
    choice = ModelChoice(model=model, revision=revision, text_model=text_model, video_model=video_model, video_revision=video_revision,
                         frames=frames, device=device, batch_size=batch_size, precision=precision)
    indexing_cfg = IndexingConfig() if workers is None else IndexingConfig(decode_workers=workers)
    stages = engine_stages(engine, ray_address, ray_batch_size, ray_actors)
    watch_cfg = watching(watch, interval, settle, engine, fmt, poll)
    load_encoder, load_video = loaders.encoder_loader(), loaders.video_encoder_loader
    if watch_cfg is not None:  # the models a run loads stay loaded for the next
        from diffgap_search.indexing.watch import remembered

        load_encoder, load_video = remembered(load_encoder), remembered(load_video)

    def run(settle_s: float, first: bool) -> IndexReport:  # --retry-failed and --moved-from: the first run only
        return update_index(folder, index_dir, choice, load_encoder=load_encoder, load_video_encoder=load_video,
                            window_cfg=window_cfg, indexing_cfg=indexing_cfg, retry_failed=retry_failed and first,
                            progress=RichIndexProgress(stderr_console()), wait_s=wait, stages=stages,
                            faiss_cfg=faiss_config(memory_budget), settle_s=settle_s,
                            moved_from=moved_from if first else None)

    if watch_cfg is not None:
        watch_folder(lambda first: run(watch_cfg.settle_s, first), folder, index_dir, watch_cfg, fmt)
        return
    try:
        report = run(0.0, True)
    except NothingIndexedError as exc:
        if getattr(exc, "report", None) is not None:
            print_index_report(exc.report, fmt=fmt)  # type: ignore[attr-defined]
        raise
    print_index_report(report, fmt=fmt)


@handle_errors
def forget(
    targets: Annotated[list[str], typer.Argument(metavar="PATH", help="Indexed files or folders (every file indexed below), on disk or not any more. '-' reads paths from stdin, one per line.")],
    null: Annotated[bool, typer.Option("--null", "-0", help="With '-': the paths on stdin each end with a NUL byte (as --print0 writes them).")] = False,
    index: IndexOpt = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another writer to finish.")] = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="List the files that would be taken out, and change nothing.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Take files out of the index (a folder gone for good, a retired drive): their windows, vectors and labels."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.errors import UsageError
    from diffgap_search.indexing.forget import forget as forget_files

    from diffgap_search.cli.commands.labels import stdin_paths
    from diffgap_search.cli.index_output import print_forget_outcome
    from diffgap_search.cli.output import stderr_console

    names = list(targets)
    if null and "-" not in names:
        raise UsageError("--null reads paths from stdin: give '-' among the paths")
    if "-" in names:
        names = [p for n in names for p in (stdin_paths(null) if n == "-" else [n])]
        if not names:
            raise UsageError("no paths on stdin: nothing to forget")
    notes = stderr_console()
    outcome = forget_files(resolve_index_dir(index), names, dry_run=dry_run, wait_s=wait,
                           note=lambda text: notes.print(text, markup=False))
    print_forget_outcome(outcome, fmt=output_format(json_, False))
