"""What ``dgsearch index --dry-run`` prints: the files a run would take in, follow and remove, one per line,
below the library folder (``--json``/``--jsonl``: the whole preview as one document or one line)."""

from __future__ import annotations

from diffgap_search.cli.output import emit_json, emit_jsonl, stderr_console, stdout_console
from diffgap_search.indexing.preview import Preview

MARKS = {"new": "+", "changed": "~", "renamed": ">", "copied": "=", "removed": "-"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def print_preview(preview: Preview, *, fmt: str) -> None:
    """``preview`` as ``fmt`` (table, json or jsonl); the table's notes (unreadable paths, failed files) on stderr."""
    if fmt == "json":
        emit_json(preview.to_dict())
        return
    if fmt == "jsonl":
        emit_jsonl([preview.to_dict()])
        return
    out, notes = stdout_console(), stderr_console()
    root = preview.root.rstrip("/") + "/"

    def below(path: str) -> str:
        return path[len(root):] if path.startswith(root) else path

    if not preview.changes:
        out.print(f"dry run: nothing would change: {preview.root} is up to date in {preview.index}"
                  f" ({_plural(preview.unchanged, 'file')} unchanged)", markup=False)
    else:
        parts = [f"index {_plural(len(preview.new), 'new file')}" if preview.new else "",
                 f"re-index {len(preview.changed)} changed" if preview.changed else "",
                 f"follow {_plural(len(preview.renamed), 'rename')}" if preview.renamed else "",
                 f"reuse the vectors of {len(preview.copied)} {'copy' if len(preview.copied) == 1 else 'copies'}"
                 if preview.copied else "",
                 f"remove {len(preview.removed)}" if preview.removed else ""]
        out.print(f"dry run: indexing {preview.root} into {preview.index} would "
                  f"{', '.join(p for p in parts if p)} ({preview.unchanged} unchanged); nothing was changed",
                  markup=False)
        lines = [f"{MARKS['new']} {below(p)}" for p in preview.new]
        lines += [f"{MARKS['changed']} {below(p)}" for p in preview.changed]
        lines += [f"{MARKS['renamed']} {below(old)} -> {below(new)}" for old, new in preview.renamed]
        lines += [f"{MARKS['copied']} {below(new)} (same content as {below(of)})" for new, of in preview.copied]
        lines += [f"{MARKS['removed']} {below(p)}" for p in preview.removed]
        for line in lines:
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    for path, reason in preview.unreadable + preview.cannot_read:
        notes.print(f"note: cannot read {path}: {reason}", markup=False)
    if preview.failed_before:
        notes.print(f"note: {_plural(len(preview.failed_before), 'file')} failed in an earlier run and would be left"
                    " alone (--retry-failed tries them again; `dgsearch info --errors` says why)", markup=False)
