"""The ``dgsearch`` command line: parse flags, call one library function, format the result.

Heavy modules (torch, transformers, faiss) are imported inside the commands, so ``dgsearch --help`` is
instant. Results go to stdout, progress and messages to stderr; ``NO_COLOR`` is honoured by rich.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from diffgap_search import __version__
from diffgap_search.cli.engine import EngineOpt, RayActorsOpt, RayAddressOpt, RayBatchOpt, engine_stages
from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.loaders import encoder_loader, query_video_loader, video_encoder_loader
from diffgap_search.cli.options import (
    AllCopiesOpt, BatchOpt, BudgetOpt, ChannelsOpt, DeviceOpt, DurationOpt, FolderOpt, GlobOpt, IndexOpt,
    JsonlOpt, JsonOpt, KindOpt, MinScoreOpt, ModelOpt, PathsOpt, PrecisionOpt, SampleRateOpt, SaveOpt, SegmentsOpt, TagOpt,
    TopKOpt,
)
from diffgap_search.cli.watching import IntervalOpt, SettleOpt, WatchOpt, watch_folder, watching
from diffgap_search.config import (
    DEFAULT_CAPTIONS,
    DEFAULT_EXPORT_FORMAT,
    DEFAULT_MODE,
    DEFAULT_PAIRS,
    Device,
)

app = typer.Typer(
    name="dgsearch",
    help="Search sound: index audio and video clips, then find them by text, by example, or by video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fmt(json_: bool, jsonl: bool, paths: bool = False) -> str:
    from diffgap_search.errors import UsageError

    if sum([json_, jsonl, paths]) > 1:
        raise UsageError("choose one of --json, --jsonl, --paths")
    return "json" if json_ else "jsonl" if jsonl else "paths" if paths else "table"


def version_callback(value: bool) -> None:
    if value:
        print(f"dgsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Search sound: index audio and video clips, then find them by text, by example, or by video."""


@app.command()
@handle_errors
def index(
    folder: Annotated[Path, typer.Argument(help="Folder (or single file) of audio/video clips to index.")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.AUTO.value,
    batch_size: BatchOpt = 16,
    precision: PrecisionOpt = "auto",
    window: Annotated[float, typer.Option("--window", help="Window length in seconds (CLAP sees 10 s).")] = 10.0,
    hop: Annotated[Optional[float], typer.Option("--hop", help="Hop between windows in seconds (default: the window).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Decoding processes (0: decode inline).")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Pin the hub model to this branch, tag or commit (recorded in the index).")] = None,
    text_model: Annotated[Optional[str], typer.Option("--text-model", help="A text encoder for an audio-only --model: 'wordllama' (recorded in the index; words reach the sounds through the bridge `dgsearch train` learns from the library's captions and names). Default: the index's, else none.")] = None,
    video_model: Annotated[Optional[str], typer.Option("--video-model", help="Video encoder: 'cavp' (Diff-Foley's CAVP, video and sound in one space: --video queries need no bridge), a CAVP checkpoint file (.ckpt), or a CLIP hub id or local directory. Default: the index's, else openai/clip-vit-base-patch32.")] = None,
    video_revision: Annotated[Optional[str], typer.Option("--video-revision", help="Pin the hub video model to this branch, tag or commit.")] = None,
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Embed videos' frames (--no-frames: soundtracks only, no video model).")] = True,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again files that failed in earlier runs.")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another writer to finish.")] = 0.0,
    memory_budget: BudgetOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    ray_batch_size: RayBatchOpt = None,
    ray_actors: RayActorsOpt = None,
    watch: WatchOpt = False,
    interval: IntervalOpt = None,
    settle: SettleOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Index a folder: embed new and changed files, follow renames and deletions (incremental); --watch keeps
    doing it."""
    from diffgap_search.config import IndexingConfig, WindowConfig, resolve_index_dir
    from diffgap_search.errors import NothingIndexedError
    from diffgap_search.indexing import IndexReport, ModelChoice, update_index
    from diffgap_search.store.index_budget import faiss_config

    from diffgap_search.cli.output import print_index_report, stderr_console
    from diffgap_search.cli.progress import RichIndexProgress

    fmt = _fmt(json_, jsonl)
    index_dir = resolve_index_dir(index)
    try:
        window_cfg = WindowConfig(window_s=window, hop_s=hop if hop is not None else window)
    except ValueError as exc:
        from diffgap_search.errors import UsageError

        raise UsageError(str(exc)) from None
    choice = ModelChoice(model=model, revision=revision, text_model=text_model, video_model=video_model, video_revision=video_revision,
                         frames=frames, device=device, batch_size=batch_size, precision=precision)
    indexing_cfg = IndexingConfig() if workers is None else IndexingConfig(decode_workers=workers)
    stages = engine_stages(engine, ray_address, ray_batch_size, ray_actors)
    watch_cfg = watching(watch, interval, settle, engine, fmt)
    load_encoder, load_video = encoder_loader(), video_encoder_loader
    if watch_cfg is not None:  # the models a run loads stay loaded for the next
        from diffgap_search.indexing.watch import remembered

        load_encoder, load_video = remembered(load_encoder), remembered(load_video)

    def run(settle_s: float, retry: bool) -> IndexReport:
        return update_index(folder, index_dir, choice, load_encoder=load_encoder, load_video_encoder=load_video,
                            window_cfg=window_cfg, indexing_cfg=indexing_cfg, retry_failed=retry,
                            progress=RichIndexProgress(stderr_console()), wait_s=wait, stages=stages,
                            faiss_cfg=faiss_config(memory_budget), settle_s=settle_s)

    if watch_cfg is not None:
        watch_folder(lambda first: run(watch_cfg.settle_s, retry_failed and first), folder, watch_cfg, fmt)
        return
    try:
        report = run(0.0, retry_failed)
    except NothingIndexedError as exc:
        if getattr(exc, "report", None) is not None:
            print_index_report(exc.report, fmt=fmt)  # type: ignore[attr-defined]
        raise
    print_index_report(report, fmt=fmt)


@app.command()
@handle_errors
def query(
    text: Annotated[Optional[str], typer.Argument(help="What to look for, in words (text -> audio).")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", "-a", help="Query by example: an audio file.")] = None,
    video: Annotated[Optional[Path], typer.Option("--video", "-v", help="Query with a video's frames (video -> audio).")] = None,
    like: Annotated[Optional[int], typer.Option("--like", help="More like this: an indexed window's segment_id (from --json output).")] = None,
    start: Annotated[Optional[float], typer.Option("--start", min=0, help="Use the query file from this second.")] = None,
    end: Annotated[Optional[float], typer.Option("--end", min=0, help="Use the query file up to this second.")] = None,
    top_k: TopKOpt = 10,
    min_score: MinScoreOpt = None,
    kind: KindOpt = None,
    glob: GlobOpt = None,
    segments: SegmentsOpt = False,
    all_copies: AllCopiesOpt = False,
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.AUTO.value,
    precision: PrecisionOpt = "auto",
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
    paths: PathsOpt = False,
    save: SaveOpt = None,
    no_bridge: Annotated[bool, typer.Option("--no-bridge", help="Plain cosine search, without the DiffGAP bridge (for comparison).")] = False,
    mode: Annotated[str, typer.Option("--mode", help="hybrid (embeddings + keywords, fused by reciprocal rank), semantic (embeddings only) or keyword (file names, folders, captions and tags; loads no model).")] = DEFAULT_MODE.value,
    duration: DurationOpt = None,
    sample_rate: SampleRateOpt = None,
    channels: ChannelsOpt = None,
    folder: FolderOpt = None,
    tag: TagOpt = None,
) -> None:
    """Search the index with words, an audio file (--audio), a video (--video) or a hit (--like SEGMENT_ID)."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.options import search_options

    from diffgap_search.cli.output import show_hits

    fmt = _fmt(json_, jsonl, paths)
    cfg = search_options(top_k, min_score, kind, glob, segments, mode, duration, sample_rate, channels, folder,
                         no_bridge=no_bridge, all_copies=all_copies, tag=tag)
    q = Query(text=text, audio=audio, video=video, start_s=start, end_s=end, segment_id=like)
    # One query: an audio network a text query never runs is loaded only if an audio window needs it.
    with Searcher(resolve_index_dir(index), lambda c: encoder_loader()(c, audio_on_demand=True), model=model, device=device,
                  load_video_encoder=query_video_loader, precision=precision) as searcher:
        result = searcher.search(q, cfg)
    show_hits(result, fmt=fmt, save=save)


@app.command()
@handle_errors
def similar(
    target: Annotated[str, typer.Argument(help="A file (indexed: its stored vectors; else embedded) or a segment id.")],
    top_k: TopKOpt = 10,
    min_score: MinScoreOpt = None,
    kind: KindOpt = None,
    glob: GlobOpt = None,
    segments: SegmentsOpt = False,
    all_copies: AllCopiesOpt = False,
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.AUTO.value,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
    paths: PathsOpt = False,
    save: SaveOpt = None,
    duration: DurationOpt = None,
    sample_rate: SampleRateOpt = None,
    channels: ChannelsOpt = None,
    folder: FolderOpt = None,
    tag: TagOpt = None,
) -> None:
    """Sounds like one file or window of the library (its own file left out)."""
    from diffgap_search.config import SearchMode, resolve_index_dir
    from diffgap_search.search import Searcher
    from diffgap_search.search.options import search_options
    from diffgap_search.search.similar import similar as find_similar

    from diffgap_search.cli.output import show_hits

    fmt = _fmt(json_, jsonl, paths)
    cfg = search_options(top_k, min_score, kind, glob, segments, SearchMode.SEMANTIC, duration, sample_rate,
                         channels, folder, all_copies=all_copies, tag=tag)
    with Searcher(resolve_index_dir(index), lambda c: encoder_loader()(c, audio_on_demand=True), model=model,
                  device=device) as searcher:
        result = find_similar(searcher, target, cfg)
    show_hits(result, fmt=fmt, save=save)


@app.command()
@handle_errors
def dupes(
    threshold: Annotated[Optional[float], typer.Option("--threshold", "-t", help="Smallest file similarity (cosine) of two near-duplicates; default 0.94.")] = None,
    index: IndexOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Groups of near-duplicate sounds across the whole index (re-encoded, trimmed, louder or quieter copies)."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.search.dupes import DEFAULT_THRESHOLD, find_dupes

    from diffgap_search.cli.output import print_dupes

    fmt = _fmt(json_, jsonl)
    result = find_dupes(resolve_index_dir(index), threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    print_dupes(result.to_dict(), fmt=fmt)


@app.command()
@handle_errors
def train(
    pairs: Annotated[str, typer.Option("--pairs", help="Which pairs: text (captions), video (video windows), or all.")] = DEFAULT_PAIRS.value,
    pairs_file: Annotated[Optional[Path], typer.Option("--pairs-file", help="Train on all of this .npz (arrays audio, text, video: row i = pair i; optional group: clip ids). The index need not exist.")] = None,
    captions: Annotated[str, typer.Option("--captions", help="Text pairs' captions: sidecars, names (cleaned file names and tags), all, per-file (a file's sidecars where it has any, else its name and tags), or auto (sidecars when at least half the files have one, per-file when fewer do, names when none does).")] = DEFAULT_CAPTIONS.value,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Training epochs (default 40).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=4, help="Pairs per step and pair set.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random generator of the run.")] = 0,
    guidance: Annotated[str, typer.Option("--guidance", help="Classifier-free guidance scale (1 = none), or auto: tuned on the validation clips with the fusion weights.")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=0, help="CPU threads; 0 (default): the cores idle now (a busy core slows every thread). Fix it for bit-for-bit reruns.")] = 0,
    device: Annotated[str, typer.Option("--device", help="Where training and its validation run: auto (CUDA where torch sees a GPU), cpu, cuda or cuda:N. The bridge is stored and served from the CPU.")] = Device.AUTO.value,
    anchor: Annotated[str, typer.Option("--anchor", help="The linear map the bridge learns a residual on, per pair set: auto (Procrustes where the validation clips are 90 % sure Procrustes + fusion beats ridge + fusion, else ridge), ridge or procrustes.")] = "auto",
    index: IndexOpt = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another writer to finish.")] = 0.0,
    memory_budget: BudgetOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Train the index's DiffGAP bridge from its pairs (or all of a pairs file) and apply it to the stored vectors."""
    from diffgap_search.store.index_budget import faiss_config
    faiss_cfg = faiss_config(memory_budget)  # a bad budget is refused before torch loads
    from dataclasses import replace

    from diffgap_search.config import resolve_index_dir
    from diffgap_search.gap.training import TrainConfig
    from diffgap_search.bridge.train import train_index_bridge

    from diffgap_search.cli.output import print_train, stderr_console
    from diffgap_search.cli.progress import RichTrainProgress

    fmt = _fmt(json_, jsonl)
    cfg = TrainConfig(seed=seed, threads=threads, device=device).with_guidance(guidance).with_anchor(anchor)
    cfg = replace(cfg, **{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None})
    progress = RichTrainProgress(stderr_console(), cfg.epochs)
    try:
        outcome = train_index_bridge(resolve_index_dir(index), load_encoder=encoder_loader(), pairs=pairs,
                                     pairs_file=pairs_file, cfg=cfg, on_step=progress.step, wait_s=wait,
                                     captions=captions, faiss_cfg=faiss_cfg)
    finally:
        progress.stop()
    print_train(outcome.to_dict(), fmt=fmt)


@app.command(name="eval")
@handle_errors
def eval_(
    pairs_file: Annotated[Optional[Path], typer.Option("--pairs-file", help="Evaluate on all of this .npz (pairs the bridge never saw) instead of the index's held-out clips.")] = None,
    max_clips: Annotated[Optional[int], typer.Option("--max-clips", "--max-pairs", min=2, help="Cap the test clips per pair set.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw R@k curves and the gap before/after the bridge into this .png, .svg or .html (needs matplotlib).")] = None,
    index: IndexOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Compare raw cosine, mean shift, linear maps and DiffGAP (with and without fusion) on test clips."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.bridge.evaluate import evaluate_index_bridge

    from diffgap_search.cli.output import print_eval

    fmt = _fmt(json_, jsonl)
    if plot is not None:
        from diffgap_search.bridge.plot import check_plot_path

        check_plot_path(plot)  # before the work
    result = evaluate_index_bridge(resolve_index_dir(index), load_encoder=encoder_loader(), pairs_file=pairs_file,
                                   max_test=max_clips, plot=plot is not None)
    if plot is not None:
        from diffgap_search.bridge.plot import write_plot

        write_plot(result, plot)
    print_eval(result.to_dict(), fmt=fmt)


@app.command()
@handle_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output prefix: writes PREFIX.npy + PREFIX.json (or PREFIX.parquet).")],
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A text to bridge to the audio side (repeatable).")] = None,
    text_file: Annotated[Optional[Path], typer.Option("--text-file", help="Texts to bridge, one per line.")] = None,
    video: Annotated[Optional[list[Path]], typer.Option("--video", "-v", help="A video whose windows to bridge to the audio side (repeatable).")] = None,
    windows: Annotated[Optional[str], typer.Option("--windows", help="Export every stored audio window bridged to text or video (with segment ids, paths, seconds).")] = None,
    format_: Annotated[str, typer.Option("--format", help="npy (+ JSON sidecar) or parquet (needs pyarrow).")] = DEFAULT_EXPORT_FORMAT.value,
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.AUTO.value,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Write DiffGAP-bridged embeddings (text->audio, video->audio, or every window's audio->text) for a generator."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.export import export_bridged, read_lines
    from diffgap_search.search import Searcher

    from diffgap_search.cli.output import emit_json, emit_jsonl, stdout_console

    fmt = _fmt(json_, jsonl)
    texts = list(text or []) + (read_lines(text_file) if text_file is not None else [])
    with Searcher(resolve_index_dir(index), encoder_loader(), model=model, device=device,
                  load_video_encoder=query_video_loader) as searcher:
        outcome = export_bridged(searcher, out, texts=texts, videos=list(video or []), windows=windows, fmt=format_)
    if fmt == "json":
        emit_json(outcome.to_dict())
    elif fmt == "jsonl":
        emit_jsonl([outcome.to_dict()])
    else:
        stdout_console().print(f"exported {outcome.count} {outcome.direction} embeddings ({outcome.dim}-d, bridge"
                               f" {outcome.bridge[:12]}): {', '.join(outcome.files)}", markup=False)


@app.command()
@handle_errors
def info(
    index: IndexOpt = None,
    errors: Annotated[bool, typer.Option("--errors", help="List the files that could not be indexed, with reasons.")] = False,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Show what an index holds: files, segments, model, size on disk, failed files."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.info import index_info

    from diffgap_search.cli.output import print_info

    print_info(index_info(resolve_index_dir(index)).to_dict(), fmt=_fmt(json_, jsonl), errors=errors)


@app.command()
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
    serve_forever(cfg, load_encoder=encoder_loader(), load_video_encoder=query_video_loader, open_browser=open_)


def main() -> None:
    """Console-script entry point."""
    app()
