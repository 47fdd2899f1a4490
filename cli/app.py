"""The ``dgsearch`` command line: the Typer app, its ``--version``, and the commands registered in the order
``dgsearch --help`` lists them (each lives in ``cli/commands/``: parse flags, call one library function,
format the result).

Heavy modules (torch, transformers, faiss) are imported inside the commands, so ``dgsearch --help`` is
instant. Results go to stdout, progress and messages to stderr; ``NO_COLOR`` is honoured by rich.
"""

from __future__ import annotations

from typing import Annotated

import typer

from diffgap_search import __version__
from diffgap_search.cli.commands import bridge, index, info, labels, search, serve

app = typer.Typer(
    name="dgsearch",
    help="Search sound: index audio and video clips, then find them by text, by example, or by video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version_callback(value: bool) -> None:
    if value:
        print(f"dgsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Search sound: index audio and video clips, then find them by text, by example, or by video."""


app.command(name="index")(index.index)
app.command(name="forget")(index.forget)
app.command(name="query")(search.query)
app.command(name="similar")(search.similar)
app.command(name="dupes")(search.dupes)
app.command(name="label")(labels.label)
app.command(name="labels")(labels.labels)
app.command(name="train")(bridge.train)
app.command(name="eval")(bridge.eval_)
app.command(name="export")(bridge.export)
app.command(name="info")(info.info)
app.command(name="serve")(serve.serve)


def main() -> None:
    """Console-script entry point."""
    app()
