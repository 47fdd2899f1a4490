"""Formatting results for people (rich tables) and programs (``--json``, ``--jsonl``) on stdout."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from diffgap_search.gap.directions import describe_scales
from diffgap_search.info import LINEAR_NAMES, task_anchor
from diffgap_search.media.discover import display_path
from diffgap_search.search import SearchResult


class _PipedConsole(Console):
    """rich's Console, but a reader gone (``| head``) is left to ``cli/errors.handle_errors`` (exit 0, quietly)
    instead of rich's own ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def stdout_console() -> Console:
    """stdout's console. No emoji codes: what it prints names the user's files and words (``:dog:`` stays text)."""
    return _PipedConsole(file=sys.stdout, soft_wrap=True, highlight=False, emoji=False)


def stderr_console() -> Console:
    """stderr's console (notes, progress), emoji codes off as on stdout."""
    return Console(file=sys.stderr, highlight=False, emoji=False)


def timecode(seconds: float) -> str:
    """``75.25`` -> ``"1:15.2"`` (minutes:seconds with tenths; hours when needed)."""
    tenths = int(round(seconds * 10))
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    s = rest / 10
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def emit_jsonl(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def emitted_as_json(fmt: str, doc: Any, rows: list[dict[str, Any]] | None = None) -> bool:
    """For ``--json`` print ``doc``, for ``--jsonl`` print ``rows`` (``[doc]`` when None): True when ``fmt`` was
    one of them, so the caller has nothing left to print; False for a human format."""
    if fmt == "json":
        emit_json(doc)
    elif fmt == "jsonl":
        emit_jsonl([doc] if rows is None else rows)
    else:
        return False
    return True


def literal(text: str) -> Text:
    """``text`` (a file's path, a caption, a tag, a label: anything the user's files or words put there) as a table
    cell shown exactly: a file named ``take [2] :dog:.wav`` is not rich markup (``[2]`` would vanish) nor an emoji
    code (``:dog:`` would become a dog)."""
    return Text(text)


def copies_note(copies: list[str]) -> str:
    """``" (+3 copies)"`` after a hit's path when other files hold its content; ``""`` when none do."""
    return f" (+{len(copies)} {'copy' if len(copies) == 1 else 'copies'})" if copies else ""


def working_directory() -> Path | None:
    """The working directory, ``None`` where it was removed under the process."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        return None


def shown_path(path: str, here: Path | None) -> str:
    """A file's path as the human output shows it (hits, dupes, failed files): relative to the working directory
    ``here`` where the file lies below it (``clips/dog.wav``, as ``rg`` and ``fd`` print theirs), else as stored
    (absolute). ``--paths``, ``--json`` and ``--jsonl`` keep the stored path."""
    if here is None or not Path(path).is_absolute():
        return path
    try:
        return str(Path(path).relative_to(here))
    except ValueError:
        return path


def whereabouts(path: str) -> str | None:
    """``None`` where the file at ``path`` is there; ``"missing"`` where it is gone (moved or deleted);
    ``"unreadable"`` where the OS refuses to look (a folder's permission, a drive or share that is away)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    return None


def show_hits(result: SearchResult, *, fmt: str, save: Path | None) -> None:
    """:func:`print_hits`, after cutting the hits' windows into ``save`` where given (``--save``: each hit's JSON
    gains ``saved``, the WAV's path; a note on stderr says where they went and which were skipped, and why)."""
    if save is None:
        print_hits(result, fmt=fmt)
        return
    from diffgap_search.search.saved_windows import save_windows

    done = save_windows(result.hits, save)
    print_hits(result, fmt=fmt, saved={sid: str(p) for sid, p in done.saved.items()})
    notes = stderr_console()
    n = len(done.saved)
    notes.print(f"saved {n} window{'' if n == 1 else 's'} to {display_path(done.folder)}", markup=False)
    for path, reason in done.skipped:
        notes.print(f"  not saved: {path}: {reason}", markup=False)


def print_hits(result: SearchResult, *, fmt: str, saved: dict[int, str] | None = None) -> None:
    """Hits as a table, one JSON document, JSON lines, or bare paths (a note on how it was ranked goes to
    stderr, or into the JSON document); ``saved``: segment id -> the WAV ``--save`` wrote (JSON's ``saved``)."""
    if result.note and fmt != "json":
        stderr_console().print(f"note: {result.note}", markup=False)
    if fmt in ("json", "jsonl"):
        doc = result.to_dict()
        if saved is not None:
            for hit in doc["hits"]:
                hit["saved"] = saved.get(hit["segment_id"])
        if fmt == "json":
            emit_json(doc)
        else:
            emit_jsonl(doc["hits"])
        return
    if fmt in ("paths", "paths0"):  # the exact bytes of each path, as find and fd print them: a pipe can open any name
        end = b"\n" if fmt == "paths" else b"\0"
        sys.stdout.flush()
        sys.stdout.buffer.write(b"".join(os.fsencode(h.fs_path) + end for h in result.hits))
        sys.stdout.buffer.flush()
        return
    console = stdout_console()
    if not result.hits:
        console.print("no results")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("from", justify="right")
    table.add_column("to", justify="right")
    with_captions = any(h.caption for h in result.hits)
    if with_captions:
        table.add_column("caption", overflow="fold")
    with_tags = any(h.tags for h in result.hits)
    if with_tags:
        table.add_column("tags", overflow="fold")
    with_labels = any(h.labels for h in result.hits)
    if with_labels:
        table.add_column("labels", overflow="fold")
    here = working_directory()
    away = {h.path: state for h in result.hits if (state := whereabouts(h.fs_path))}  # files
    for rank, h in enumerate(result.hits, 1):
        gone = f" ({away[h.path]})" if h.path in away else ""
        shown = literal(shown_path(h.path, here) + gone + copies_note(h.copies))
        row: list[str | Text] = [str(rank), f"{h.score:.3f}", shown, timecode(h.start_s), timecode(h.end_s)]
        if with_captions:
            row.append(literal(h.caption or ""))
        if with_tags:
            row.append(literal("; ".join(f"{k}: {', '.join(v)}" for k, v in h.tags.items())))
        if with_labels:
            row.append(literal(", ".join(h.labels)))
        table.add_row(*row)
    console.print(table)
    n = sum(1 for state in away.values() if state == "missing")
    if n:
        stderr_console().print(
            f"note: {n} of these files {'are' if n > 1 else 'is'} no longer where {'they were' if n > 1 else 'it was'}"
            " indexed (moved or deleted): run `dgsearch index FOLDER` again to update the index", markup=False)
    n = sum(1 for state in away.values() if state == "unreadable")
    if n:
        stderr_console().print(
            f"note: {n} of these files cannot be read now (a folder's permission, or a drive or share that is"
            f" away); {'they stay' if n > 1 else 'it stays'} in the index until a run can read"
            f" {'them' if n > 1 else 'it'} again", markup=False)


def print_info(info: dict[str, Any], *, fmt: str, errors: bool) -> None:
    if emitted_as_json(fmt, info, info["errors"] if errors else None):
        return
    console = stdout_console()
    if errors:
        if not info["errors"]:
            console.print("no failed files")
        here = working_directory()
        for row in info["errors"]:
            console.print(f"{shown_path(row['path'], here)}: {row['error']}", markup=False)
        return
    table = Table(show_header=False, show_edge=False, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in info["summary"].items():
        table.add_row(key, literal(str(value)))
    console.print(table)


def _pairs(counts: dict[str, int]) -> str:
    """``{"audio-text": 163, "audio-video": 12}`` -> ``163 audio-text, 12 audio-video`` (``0`` when empty)."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "0"


TRAIN_FIGURES = (("raw_R@1", "raw"), ("anchor_R@1", "{anchor} alone"), ("bridged_R@1", "DiffGAP alone"),
                 ("fused_R@1", "served"))


def _validation_line(task: str, figures: dict[str, float], chosen: dict[str, Any]) -> str:
    """One task's validation figures in words: ``text->audio R@1: raw 0.0, ridge alone 50.0, DiffGAP alone 50.0,
    served 50.0 (ridge + fusion 50.0, Procrustes + fusion 33.3); residual confirmed in 35 % of resamples (90 %
    needed)``. The JSON keeps every figure; this line keeps those a user compares."""
    anchor = task_anchor(chosen.get("anchor") or {}, task)
    shown = [f"{label.format(anchor=LINEAR_NAMES.get(anchor, anchor))} {figures[key]:.1f}"
             for key, label in TRAIN_FIGURES if key in figures]
    counterparts = [f"{LINEAR_NAMES.get(kind, kind)} + fusion {per[task]:.1f}"
                    for kind, per in sorted(chosen.get("counterparts_served_R@1", {}).items()) if task in per]
    line = f"{task} R@1: {', '.join(shown)}" + (f" ({', '.join(counterparts)})" if counterparts else "")
    share = (chosen.get("confirmation") or {}).get(task)
    return line + (f"; residual confirmed in {100 * share:.0f} % of resamples (90 % needed)" if share is not None else "")


def _scales_in_words(chosen: dict[str, Any]) -> str:
    """The residual scales validation chose and what 0 means under this bridge's anchors: ``audio|text 0,
    text|audio 0.5 (0 = the Procrustes map alone)``; where the pair sets differ, ``(0 = the linear map alone:
    Procrustes for audio-text, ridge for audio-video)``; ``ridge`` for a bridge that recorded no anchor.
    ``dgsearch train`` and ``dgsearch eval`` print the same words."""
    anchors = chosen.get("anchor") or {}
    names = {LINEAR_NAMES.get(kind, kind) for kind in anchors.values()} or {"ridge"}
    alphas = describe_scales(chosen["residual_scale"], chosen.get("residual_scale_items"))
    if len(names) == 1:
        return f"{alphas} (0 = the {names.pop()} map alone)"
    per = ", ".join(f"{LINEAR_NAMES.get(kind, kind)} for {pairs}" for pairs, kind in sorted(anchors.items()))
    return f"{alphas} (0 = the linear map alone: {per})"


def print_train(outcome: dict[str, Any], *, fmt: str) -> None:
    """What ``dgsearch train`` did: pairs and clips, loss, validation R@1 beside the fair counterparts, what
    validation chose, the bridged spaces written. ``--json`` carries every figure under the same keys."""
    if emitted_as_json(fmt, outcome):
        return
    console = stdout_console()

    def say(label: str, text: str) -> None:  # "  pairs       163 audio-text ...": a label column, then the words
        console.print(f"  {label:<11} {text}", markup=False)

    groups = outcome["groups"]
    chosen = outcome.get("chosen") or {}
    ran = chosen.get("epochs_run")
    epochs = (f"{ran} of at most {outcome['epochs']} epochs{' (stopped early)' if chosen.get('stopped_early') else ''}"
              if ran is not None else f"{outcome['epochs']} epochs")
    loss = f", final loss {outcome['final_loss']:.4f}" if outcome.get("final_loss") is not None else ""
    console.print(f"trained DiffGAP bridge {outcome['bridge'][:12]} in {outcome['seconds']:.1f} s: {epochs},"
                  f" {outcome['steps']} steps, {outcome['pairs_per_s']:.0f} pairs/s{loss}", markup=False)
    say("pairs", f"{_pairs(outcome['train_pairs'])} of {groups['train'] + groups['val']} clips from"
                 f" {outcome['pairs_source']}; of them {_pairs(outcome['validation_pairs'])} of {groups['val']} clips"
                 " validate (checkpoint, sampler, residual scales, fusion weights), never trained on")
    say("held out", f"{_pairs(outcome['held_out_pairs'])} for `dgsearch eval`" if outcome["held_out_pairs"]
        else "none: evaluate it with `dgsearch eval --pairs-file` on pairs of other clips")
    if outcome.get("caption_pairs"):
        say("captions", f"{outcome['captions']}: {outcome['caption_pairs']['sidecar']} text pairs with sidecar"
                        f" captions, {outcome['caption_pairs']['name']} with weak captions from names and tags")
    for i, (task, figures) in enumerate(sorted(outcome["validation"].items())):
        say("validation" if i == 0 else "", _validation_line(task, figures, chosen))
    if chosen:
        say("chosen", f"epoch {chosen['epoch']}; residual scale {_scales_in_words(chosen)}")
    sampler = outcome.get("sampler") or {}
    if sampler:
        say("sampler", f"{sampler['steps']} DDIM step{'s' if sampler['steps'] != 1 else ''},"
                       f" guidance {sampler['guidance_scale']:g} (chosen on validation)")
    written = outcome["derived_vectors"]
    say("written", ", ".join(f"{n} bridged vectors ({space})" for space, n in sorted(written.items()))
        or "no bridged vectors (the index holds no audio yet)")


def print_eval(result: dict[str, Any], *, fmt: str) -> None:
    """The methods side by side, one table per direction (standard protocol: units are clips and captions)."""
    if fmt == "json":
        emit_json(result)
        return
    weak = result.get("weak_captions", {}).get("results", {})
    if fmt == "jsonl":
        emit_jsonl([{"direction": d, "method": m, "captions": captions, **v}
                    for captions, results in (("real", result["results"]), ("weak", weak))
                    for d, ms in results.items() for m, v in ms.items()])
        return
    console = stdout_console()
    trained = result["trained_on"]
    console.print(
        f"test set ({result['pairs_source']}): {_units(result['n_test']) or 'no held-out clip with a real caption'};"
        f" bridge {result['bridge'][:12]} trained on {_pairs(trained['pairs'])} pairs of {trained['groups']} clips"
        f" ({trained['validation_groups']} more tuned its fusion weights); baselines fitted on the same training pairs",
        markup=False,
    )
    if weak:
        console.print(f"weak captions (file names, tags) of held-out clips, scored apart:"
                      f" {_units(result['weak_captions']['n_test'])}", markup=False)
    chosen = result.get("chosen") or {}
    if chosen:
        console.print(f"chosen on validation: epoch {chosen['epoch']} of {chosen['epochs_run']},"
                      f" residual scale {_scales_in_words(chosen)}", markup=False)
    tables = [(d, ms) for d, ms in result["results"].items()] + [(f"{d} (weak captions)", ms) for d, ms in weak.items()]
    for direction, methods in tables:
        table = Table(title=direction, show_edge=False, pad_edge=False)
        for col in ("method", "R@1", "R@5", "R@10", "median rank", "mAP@10"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for method, m in methods.items():
            table.add_row(method, *(f"{m[c]:.1f}" if c != "median_rank" else f"{m[c]:g}"
                                    for c in ("R@1", "R@5", "R@10", "median_rank", "mAP@10")))
        console.print(table)
    from diffgap_search.gap.evaluation import verdict_line

    for direction, duels in (result.get("verdict") or {}).items():
        console.print(verdict_line(direction, duels), markup=False)
    for direction, duels in (result.get("weak_captions", {}).get("verdict") or {}).items():
        console.print(verdict_line(f"{direction} (weak captions)", duels), markup=False)


UNIT_NOUNS = {"audio": "audio clips", "text": "texts", "video": "videos"}


def _units(n_test: dict[str, dict[str, int]]) -> str:
    """``{"audio-text": {"audio": 72, "text": 81}}`` -> ``audio-text: 72 audio clips, 81 texts`` (``""`` when empty)."""
    return "; ".join(f"{kind}: {', '.join(f'{n} {UNIT_NOUNS.get(m, m)}' for m, n in units.items())}"
                     for kind, units in sorted(n_test.items()) if units)


def print_dupes(result: dict[str, Any], *, fmt: str) -> None:
    """Near-duplicate groups: one JSON document, one group per JSON line, or a list per group."""
    if emitted_as_json(fmt, result, result["groups"]):
        return
    console = stdout_console()
    groups = result["groups"]
    console.print(f"{len(groups)} groups of near-duplicates (similarity ≥ {result['threshold']:g}) among"
                  f" {result['files']} files, {result['vectors']} windows, in {result['timings_ms']['total'] / 1000:.2f} s",
                  markup=False)
    here = working_directory()
    for number, group in enumerate(groups, 1):
        console.print(f"group {number}: {group['size']} files, lowest similarity {group['min_score']:.3f}", markup=False)
        for f in group["files"]:
            console.print(f"  {shown_path(f['path'], here)}", markup=False)
