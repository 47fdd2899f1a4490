"""The options several ``dgsearch`` commands share, as ``Annotated`` types (one definition, one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from diffgap_search.config import Device, choices_text
from diffgap_search.encoders.precision import Precision


def output_format(json_: bool, jsonl: bool, paths: bool = False, print0: bool = False) -> str:
    """The one output format ``--json``, ``--jsonl``, ``--paths`` and ``--print0`` ask for: json, jsonl, paths,
    paths0 or table. Raises UsageError (exit 2) when more than one is given."""
    from diffgap_search.errors import UsageError

    if sum([json_, jsonl, paths, print0]) > 1:
        raise UsageError("choose one of --json, --jsonl, --paths, --print0" if print0 else
                         "choose one of --json, --jsonl, --paths")
    return "json" if json_ else "jsonl" if jsonl else "paths" if paths else "paths0" if print0 else "table"

IndexOpt = Annotated[
    Optional[str],
    typer.Option("--index", "-i", help="Index name (under indexes/) or folder. Env DGSEARCH_INDEX; default indexes/default."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
JsonlOpt = Annotated[bool, typer.Option("--jsonl", help="Print JSON lines on stdout (one per hit/row).")]
ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Audio/text model: hub id, local directory, LAION-CLAP .pt checkpoint, or aisfx (audio only). Default: the index's model, else laion/clap-htsat-unfused."),
]
TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, max=1_000_000, help="How many results.")]
MinScoreOpt = Annotated[Optional[float], typer.Option("--min-score", help="Drop hits scoring below this cosine.")]
KindOpt = Annotated[Optional[str], typer.Option("--kind", help="Only 'audio' files or only 'video' soundtracks.")]
GlobOpt = Annotated[Optional[str], typer.Option("--glob", help="Only paths matching this glob (file name if no '/').")]
SegmentsOpt = Annotated[bool, typer.Option("--segments", help="List every matching window, not the best per file.")]
AllCopiesOpt = Annotated[bool, typer.Option("--all-copies", help="Show copies (files with the same content) apart, not as one hit.")]
PathsOpt = Annotated[bool, typer.Option("--paths", help="Print only the matching paths, one per line.")]
Print0Opt = Annotated[bool, typer.Option("--print0", "-0", help="Print only the matching paths, each followed by a NUL byte (for xargs -0: any name passes, newlines included).")]
SaveOpt = Annotated[Optional[Path], typer.Option("--save", metavar="DIR", help="Also cut each hit's window (with --pinpoint: its narrowed seconds) out into DIR as WAV, at its file's own rate and channels, named 'RANK NAME START-ENDs.wav' (with --timeline: in a folder per query window, 'NN A-Bs').")]
TimelineOpt = Annotated[bool, typer.Option("--timeline", help="With --audio or --video: the hits for each window of the query file, in its order (spotting a video), not for the whole file.")]
PinpointOpt = Annotated[bool, typer.Option("--pinpoint", help="Narrow each hit's seconds to the part of its window that matches best (down to 0.5 s; embeds about 20 short spans per hit).")]
DurationOpt = Annotated[Optional[str], typer.Option("--duration", help="Only files lasting MIN..MAX seconds (MIN.. or ..MAX for one bound).")]
SampleRateOpt = Annotated[Optional[int], typer.Option("--sample-rate", min=1, max=100_000_000, help="Only files at this sample rate (Hz, as the file states it).")]
ChannelsOpt = Annotated[Optional[int], typer.Option("--channels", min=1, max=65_535, help="Only files with this many channels.")]
FolderOpt = Annotated[Optional[str], typer.Option("--folder", help="Only files below this folder (or with a folder of this name above them).")]
DeviceOpt = Annotated[str, typer.Option("--device", help=f"{choices_text(Device)}.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Windows per encoder call.")]
TagOpt = Annotated[Optional[str], typer.Option("--tag", help="Only files with an embedded tag containing this text, any case (KEY=TEXT: tag KEY's value).")]
LabelOpt = Annotated[Optional[str], typer.Option("--label", "-l", help="Only files carrying this label of yours (`dgsearch label`), any case.")]
BudgetOpt = Annotated[Optional[float], typer.Option("--memory-budget", metavar="MB", help="RAM one space's FAISS index may take (MB); above it a compressed index whose hits are re-scored exactly. Env DGSEARCH_INDEX_BUDGET_MB; default: the budget recorded in the index, else 1/8 of the machine's RAM.")]


def _precision(value: str) -> str:
    """``--precision``'s value, checked (a usage error, exit 2, for another: typer's, as for any bad option)."""
    if value not in {str(p) for p in Precision}:
        raise typer.BadParameter(f"must be {choices_text(Precision)}, got '{value}'")
    return value


PrecisionOpt = Annotated[str, typer.Option("--precision", callback=_precision, help=(
    f"The audio model's precision path: {choices_text(Precision)} (aisfx: auto, fp32 or bf16). auto: the fastest "
    "path this machine runs natively whose vectors stay within cosine 0.999 of fp32's on a probe (run once, "
    "remembered); the onnx paths need onnxruntime. Any path can query an index built with another."))]
