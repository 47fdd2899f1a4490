"""``dgsearch query``, ``similar`` and ``dupes``: find sounds in an index and print the hits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from diffgap_search.cli import loaders
from diffgap_search.cli.errors import handle_errors
from diffgap_search.cli.options import (
    AllCopiesOpt, ChannelsOpt, DeviceOpt, DurationOpt, FolderOpt, GlobOpt, IndexOpt, JsonlOpt, JsonOpt, KindOpt, LabelOpt,
    MinScoreOpt, ModelOpt, output_format, PathsOpt, PinpointOpt, Print0Opt, PrecisionOpt, SampleRateOpt, SaveOpt, SegmentsOpt,
    TagOpt, TimelineOpt, TopKOpt,
)
from diffgap_search.config import DEFAULT_MODE, Device


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
    print0: Print0Opt = False,
    save: SaveOpt = None,
    pinpoint: PinpointOpt = False,
    timeline: TimelineOpt = False,
    no_bridge: Annotated[bool, typer.Option("--no-bridge", help="Plain cosine search, without the DiffGAP bridge (for comparison).")] = False,
    mode: Annotated[str, typer.Option("--mode", help="hybrid (embeddings + keywords, fused by reciprocal rank), semantic (embeddings only) or keyword (file names, folders, captions and tags; loads no model).")] = DEFAULT_MODE.value,
    duration: DurationOpt = None,
    sample_rate: SampleRateOpt = None,
    channels: ChannelsOpt = None,
    folder: FolderOpt = None,
    tag: TagOpt = None,
    label: LabelOpt = None,
) -> None:
    """Search the index with words, an audio file (--audio), a video (--video) or a hit (--like SEGMENT_ID)."""
    from diffgap_search.config import resolve_index_dir
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.options import search_options

    from diffgap_search.cli.output import show_hits

    fmt = output_format(json_, jsonl, paths, print0)
    cfg = search_options(top_k, min_score, kind, glob, segments, mode, duration, sample_rate, channels, folder,
                         no_bridge=no_bridge, all_copies=all_copies, tag=tag, label=label, pinpoint=pinpoint)
    q = Query(text=text, audio=audio, video=video, start_s=start, end_s=end, segment_id=like)
    refuse_timeline_output(timeline, fmt)
    # One query: an audio network a text query never runs is loaded only if an audio window needs it.
    with Searcher(resolve_index_dir(index), lambda c: loaders.encoder_loader()(c, audio_on_demand=True), model=model, device=device,
                  load_video_encoder=loaders.query_video_loader, precision=precision) as searcher:
        if timeline:
            from diffgap_search.search.timeline import search_timeline

            from diffgap_search.cli.timeline_output import show_timeline

            show_timeline(search_timeline(searcher, q, cfg), fmt=fmt, save=save)
            return
        result = searcher.search(q, cfg)
    show_hits(result, fmt=fmt, save=save)


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
    print0: Print0Opt = False,
    save: SaveOpt = None,
    pinpoint: PinpointOpt = False,
    timeline: Annotated[bool, typer.Option("--timeline", help="The hits for each window of the target, in its order, not for the whole target.")] = False,
    duration: DurationOpt = None,
    sample_rate: SampleRateOpt = None,
    channels: ChannelsOpt = None,
    folder: FolderOpt = None,
    tag: TagOpt = None,
    label: LabelOpt = None,
) -> None:
    """Sounds like one file or window of the library (its own file left out)."""
    from diffgap_search.config import SearchMode, resolve_index_dir
    from diffgap_search.search import Searcher
    from diffgap_search.search.options import search_options
    from diffgap_search.search.similar import similar as find_similar

    from diffgap_search.cli.output import show_hits

    fmt = output_format(json_, jsonl, paths, print0)
    cfg = search_options(top_k, min_score, kind, glob, segments, SearchMode.SEMANTIC, duration, sample_rate,
                         channels, folder, all_copies=all_copies, tag=tag, label=label, pinpoint=pinpoint)
    refuse_timeline_output(timeline, fmt)
    with Searcher(resolve_index_dir(index), lambda c: loaders.encoder_loader()(c, audio_on_demand=True), model=model,
                  device=device) as searcher:
        if timeline:
            from diffgap_search.search.similar import similar_timeline

            from diffgap_search.cli.timeline_output import show_timeline

            show_timeline(similar_timeline(searcher, target, cfg), fmt=fmt, save=save)
            return
        result = find_similar(searcher, target, cfg)
    show_hits(result, fmt=fmt, save=save)


def refuse_timeline_output(timeline: bool, fmt: str) -> None:
    """UsageError (exit 2) for ``--timeline`` with an output that has no place for lists of lists (bare paths)."""
    if timeline and fmt in ("paths", "paths0"):
        from diffgap_search.errors import UsageError

        raise UsageError("--timeline lists hits per query window: show them as a table, --json or --jsonl (not with"
                         " --paths or --print0; --save puts each window's cuts in a folder of its own)")


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

    fmt = output_format(json_, jsonl)
    result = find_dupes(resolve_index_dir(index), threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    print_dupes(result.to_dict(), fmt=fmt)
