"""Options several ``dgsearch`` commands share (the filters, where a model runs), as typer annotations."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from diffgap_search.config import Device, choices_text
from diffgap_search.encoders.clap.precision import Precision

DurationOpt = Annotated[Optional[str], typer.Option("--duration", help="Only files lasting MIN..MAX seconds (MIN.. or ..MAX for one bound).")]
SampleRateOpt = Annotated[Optional[int], typer.Option("--sample-rate", min=1, max=100_000_000, help="Only files at this sample rate (Hz, as the file states it).")]
ChannelsOpt = Annotated[Optional[int], typer.Option("--channels", min=1, max=65_535, help="Only files with this many channels.")]
FolderOpt = Annotated[Optional[str], typer.Option("--folder", help="Only files below this folder (or with a folder of this name above them).")]
DeviceOpt = Annotated[str, typer.Option("--device", help=f"{choices_text(Device)}.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Windows per encoder call.")]


def _precision(value: str) -> str:
    """``--precision``'s value, checked (a usage error, exit 2, for another: typer's, as for any bad option)."""
    if value not in {str(p) for p in Precision}:
        raise typer.BadParameter(f"must be {choices_text(Precision)}, got '{value}'")
    return value


PrecisionOpt = Annotated[str, typer.Option("--precision", callback=_precision, help=(
    f"CLAP's precision path: {choices_text(Precision)}. auto: the fastest path this machine runs natively whose "
    "vectors stay within cosine 0.999 of fp32's on a probe (run once, remembered); the onnx paths need "
    "onnxruntime. Any path can query an index built with another."))]
