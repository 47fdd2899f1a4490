"""``dgsearch train``, ``eval`` and ``export``: the DiffGAP bridge of an index, trained, judged and applied."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from diffgap_search.cli import loaders
from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.options import BudgetOpt, DeviceOpt, IndexOpt, JsonlOpt, JsonOpt, ModelOpt, output_format
from diffgap_search.config import DEFAULT_CAPTIONS, DEFAULT_EXPORT_FORMAT, DEFAULT_PAIRS, Device


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

    fmt = output_format(json_, jsonl)
    cfg = TrainConfig(seed=seed, threads=threads, device=device).with_guidance(guidance).with_anchor(anchor)
    cfg = replace(cfg, **{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None})
    progress = RichTrainProgress(stderr_console(), cfg.epochs)
    try:
        outcome = train_index_bridge(resolve_index_dir(index), load_encoder=loaders.encoder_loader(), pairs=pairs,
                                     pairs_file=pairs_file, cfg=cfg, on_step=progress.step, wait_s=wait,
                                     captions=captions, faiss_cfg=faiss_cfg)
    finally:
        progress.stop()
    print_train(outcome.to_dict(), fmt=fmt)


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

    fmt = output_format(json_, jsonl)
    if plot is not None:
        from diffgap_search.bridge.plot import check_plot_path

        check_plot_path(plot)  # before the work
    result = evaluate_index_bridge(resolve_index_dir(index), load_encoder=loaders.encoder_loader(), pairs_file=pairs_file,
                                   max_test=max_clips, plot=plot is not None)
    if plot is not None:
        from diffgap_search.bridge.plot import write_plot

        write_plot(result, plot)
    print_eval(result.to_dict(), fmt=fmt)


@handle_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output prefix: writes PREFIX.npy + PREFIX.json (or PREFIX.parquet); a PREFIX ending in .npy, .json or .parquet loses that extension.")],
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

    fmt = output_format(json_, jsonl)
    texts = list(text or []) + (read_lines(text_file) if text_file is not None else [])
    with Searcher(resolve_index_dir(index), loaders.encoder_loader(), model=model, device=device,
                  load_video_encoder=loaders.query_video_loader) as searcher:
        outcome = export_bridged(searcher, out, texts=texts, videos=list(video or []), windows=windows, fmt=format_)
    if fmt == "json":
        emit_json(outcome.to_dict())
    elif fmt == "jsonl":
        emit_jsonl([outcome.to_dict()])
    else:
        stdout_console().print(f"exported {outcome.count} {outcome.direction} embeddings ({outcome.dim}-d, bridge"
                               f" {outcome.bridge[:12]}): {', '.join(outcome.files)}", markup=False)
