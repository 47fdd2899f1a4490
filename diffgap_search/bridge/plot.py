"""``dgsearch eval --plot FILE``: the evaluation as pictures, drawn by matplotlib (the optional extra ``plot``).

One figure: a row of R@k curves (k = 1 … 50 or the gallery's size), one panel per direction, a line per
method (alone and served); then, per pair set, the gap itself: the paired test embeddings projected to 2-D
(PCA of both sides together) before the bridge and after it (the query side carried across), and the
histogram of true-pair against random-pair cosines before and after. ``.png`` and ``.svg`` are matplotlib's
own; ``.html`` is one page holding the SVG and the R@1/5/10 table. What is drawn is :func:`plot_data`: the
very numbers ``dgsearch eval`` prints (the tests compare them), nothing recomputed here.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.bridge.evaluate import EvalResult
from diffgap_search.errors import StorageError, UsageError

SUFFIXES = (".png", ".svg", ".html")
SERVED = ("diffgap_fusion", "ridge_fusion", "procrustes_fusion")


def check_plot_path(path: Path) -> None:
    """UsageError, before any work, for a suffix other than .png/.svg/.html or matplotlib missing."""
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"--plot {path}: the file must end in .png, .svg or .html")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'diffgap-search[plot]' (or pip install matplotlib)") from None


def plot_data(result: EvalResult) -> dict[str, Any]:
    """What the figure draws: ``{"captions": "real"|"weak", "curves": {direction: {method: [R@1..R@K]}},
    "results": the printed metrics, "pictures": {pair set: gap_picture}}``: the real captions' scores, or the
    weak captions' when the test clips have no real ones. UsageError when the result carries no curves
    (evaluated without ``plot=True``)."""
    scores = result.real
    captions = "real"
    if (scores is None or not scores.results) and result.weak_captions is not None:
        scores, captions = result.weak_captions, "weak"
    if scores is None or not scores.curves:
        raise UsageError("this evaluation carries no curves: run it with plot=True (dgsearch eval --plot)")
    return {"captions": captions, "curves": scores.curves, "results": scores.results, "pictures": scores.pictures}


def write_plot(result: EvalResult, path: Path) -> Path:
    """Draw :func:`plot_data` of ``result`` into ``path`` (.png, .svg or .html); returns ``path``. StorageError
    when it cannot be written."""
    check_plot_path(path)
    data = plot_data(result)
    fig = _figure(data, result)
    try:
        if path.suffix.lower() == ".html":
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
            path.write_text(_page(buf.getvalue(), data, result), encoding="utf-8")
        else:
            fig.savefig(path, format=path.suffix.lower()[1:], dpi=110)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _figure(data: dict[str, Any], result: EvalResult) -> Any:
    from matplotlib.figure import Figure

    from diffgap_search.gap.evaluation import LABELS

    directions = list(data["curves"])
    pictures = list(data["pictures"].values())
    cols = max(len(directions), 3)
    fig = Figure(figsize=(4.2 * cols, 3.6 * (1 + len(pictures))), layout="constrained")
    grid = fig.add_gridspec(1 + len(pictures), cols)
    fig.suptitle(f"dgsearch eval — bridge {result.bridge[:12]}, test pairs: {result.pairs_source}"
                 f" ({data['captions']} captions)", fontsize=10)
    for j, direction in enumerate(directions):
        ax = fig.add_subplot(grid[0, j])
        for method, recalls in data["curves"][direction].items():
            ks = np.arange(1, len(recalls) + 1)
            bold = method in ("diffgap", "diffgap_fusion")
            ax.plot(ks, recalls, label=LABELS.get(method, method), linewidth=2.2 if bold else 1.0,
                    linestyle="-" if method not in SERVED else "--")
        ax.set(title=direction, xlabel="k", ylabel="R@k (%)", xscale="log", ylim=(0, 101))
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7, loc="lower right")
    for i, pic in enumerate(pictures, start=1):
        a, b = pic["a"], pic["b"]
        for j, stage in enumerate(("before", "after")):
            ax = fig.add_subplot(grid[i, j])
            ax.scatter(*pic[stage]["a"].T, s=5, alpha=0.6, label=a)
            ax.scatter(*pic[stage]["b"].T, s=5, alpha=0.6, label=f"{b}" if stage == "before" else f"{b} bridged to {a}")
            ax.set(title=f"{pic['pair_set']} {stage} the bridge (PCA)", xticks=[], yticks=[])
            ax.legend(fontsize=7)
        ax = fig.add_subplot(grid[i, 2])
        for stage, style in (("before", ":"), ("after", "-")):
            for kind, colour in (("true", "tab:green"), ("random", "tab:gray")):
                ax.hist(pic["cosines"][stage][kind], bins=40, histtype="step", linestyle=style, color=colour,
                        linewidth=1.6 if stage == "after" else 1.2, label=f"{kind} pairs, {stage}")
        ax.set(title=f"{pic['pair_set']}: cosine of pairs", xlabel="cosine", ylabel="pairs")
        ax.legend(fontsize=7)
    return fig


def _page(svg: str, data: dict[str, Any], result: EvalResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(d)}</td><td>{html.escape(m)}</td>"
        + "".join(f"<td>{v[k]:.1f}</td>" for k in ("R@1", "R@5", "R@10", "mAP@10")) + "</tr>"
        for d, methods in data["results"].items() for m, v in methods.items())
    svg_body = svg[svg.index("<svg"):]
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dgsearch eval — bridge"
            f" {html.escape(result.bridge[:12])}</title></head>\n<body>\n<h1>dgsearch eval</h1>\n{svg_body}\n"
            "<table><thead><tr><th>direction</th><th>method</th><th>R@1</th><th>R@5</th><th>R@10</th><th>mAP@10</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>\n</body></html>\n")
